// Envoy's RING_HASH policy (ketama): each priority's healthy endpoints hashed onto a ring once per
// endpoint set, entries in proportion to weight; a request takes the first entry at or after its hash.
import type { Endpoint, EndpointSet, Pool } from './endpoint-set';
import { POSITION_SPACE, hashPosition, toPosition } from './hash64';
import type { LoadBalancer, PickContext } from './load-balancer';

export interface RingHashOptions {
  /** Envoy's minimum_ring_size (default 1024). */
  minimumRingSize?: number;
  /** Envoy's maximum_ring_size (default 8M, Envoy's own limit). */
  maximumRingSize?: number;
}

export const DEFAULT_MINIMUM_RING_SIZE = 1024;
export const MAXIMUM_RING_SIZE = 8 * 1024 * 1024;

interface Ring {
  /** Sorted 53-bit positions (see hash64.ts). */
  positions: Float64Array;
  owners: Uint32Array;
}

/**
 * Entries per endpoint: scaled so that the lightest endpoint gets at least its share of
 * `minimum` entries, capped by `maximum`, as Envoy sizes its ring.
 */
function buildRing(pool: Pool, minimum: number, maximum: number): Ring {
  let minShare = 1;
  for (let i = 0; i < pool.weights.length; i++) minShare = Math.min(minShare, pool.weights[i]! / pool.totalWeight);
  const scale = Math.min(Math.ceil(minShare * minimum) / minShare, maximum);
  const counts = Array.from(pool.weights, (w) => Math.max(1, Math.round((scale * w) / pool.totalWeight)));
  const size = counts.reduce((s, c) => s + c, 0);
  const positions = new Float64Array(size);
  const owners = new Uint32Array(size);
  let at = 0;
  pool.endpoints.forEach((endpoint, i) => {
    // The key names the endpoint, not its index, so that other endpoints' entries do not move
    // when one joins or leaves.
    const prefix = `${endpoint.address}:${endpoint.port}_`;
    for (let j = 0; j < counts[i]!; j++) {
      positions[at] = hashPosition(prefix + j);
      owners[at] = i;
      at++;
    }
  });
  const order = Array.from(positions.keys()).sort((a, b) => positions[a]! - positions[b]! || owners[a]! - owners[b]!);
  return { positions: Float64Array.from(order, (k) => positions[k]!), owners: Uint32Array.from(order, (k) => owners[k]!) };
}

export class RingHashLoadBalancer implements LoadBalancer {
  private readonly rings: Array<Ring | undefined>;

  constructor(private readonly set: EndpointSet, options: RingHashOptions = {}) {
    const minimum = options.minimumRingSize ?? DEFAULT_MINIMUM_RING_SIZE;
    const maximum = options.maximumRingSize ?? MAXIMUM_RING_SIZE;
    if (!Number.isInteger(minimum) || minimum < 1 || minimum > MAXIMUM_RING_SIZE) throw new Error(`ring_hash_lb_config.minimum_ring_size must be 1..${MAXIMUM_RING_SIZE}, got ${minimum}`);
    if (!Number.isInteger(maximum) || maximum < minimum || maximum > MAXIMUM_RING_SIZE) throw new Error(`ring_hash_lb_config.maximum_ring_size must be ${minimum}..${MAXIMUM_RING_SIZE}, got ${maximum}`);
    this.rings = set.pools.map((pool) => (set.priorities.some((p) => p.hashPool === pool) ? buildRing(pool, minimum, maximum) : undefined));
  }

  /** Ring entries of the priority-0 ring, for tests and the admin page. */
  ringSize(priority = 0): number {
    const pool = this.set.priorities[priority]?.hashPool;
    return pool ? this.rings[pool.index]!.positions.length : 0;
  }

  pick(context: PickContext): Endpoint | undefined {
    // Without a hash (no hash policy matched) Envoy picks a random ring entry.
    const position = context.hash === undefined ? Math.floor(context.random() * POSITION_SPACE) : toPosition(context.hash);
    const pool = this.set.selectHashPool(position, context);
    if (!pool) return undefined;
    const ring = this.rings[pool.index]!;
    const positions = ring.positions;
    let low = 0;
    let high = positions.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (positions[mid]! < position) low = mid + 1;
      else high = mid;
    }
    return pool.endpoints[ring.owners[low === positions.length ? 0 : low]!];
  }

  started(): void {}

  finished(): void {}
}
