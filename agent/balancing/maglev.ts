// Envoy's MAGLEV policy: a lookup table of prime size filled once per endpoint set from each
// endpoint's own permutation, turns weighted by weight; a request takes table[hash % size].
import type { Endpoint, EndpointSet, Pool } from './endpoint-set';
import { POSITION_SPACE, hashHigh, hashLow, toPosition } from './hash64';
import type { LoadBalancer, PickContext } from './load-balancer';

export const DEFAULT_MAGLEV_TABLE_SIZE = 65537;

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/** Why `size` cannot be a maglev table size (Envoy wants a prime, at most 5000011), or undefined. */
export function tableSizeProblem(size: number): string | undefined {
  if (!Number.isInteger(size) || size > 5000011 || !isPrime(size)) return `maglev_lb_config.table_size must be a prime up to 5000011, got ${size}`;
  return undefined;
}

function buildTable(pool: Pool, size: number): Uint32Array {
  const n = pool.endpoints.length;
  const offsets = new Uint32Array(n);
  const skips = new Uint32Array(n);
  const next = new Uint32Array(n);
  let maxWeight = 0;
  pool.endpoints.forEach((e, i) => {
    const key = `${e.address}:${e.port}`;
    offsets[i] = hashHigh(key) % size;
    skips[i] = (hashLow(key) % (size - 1)) + 1;
    maxWeight = Math.max(maxWeight, e.weight);
  });
  const credit = new Float64Array(n);
  const table = new Uint32Array(size);
  const filled = new Uint8Array(size);
  let count = 0;
  while (count < size) {
    for (let i = 0; i < n && count < size; i++) {
      // An endpoint takes a turn only when its accumulated weight allows, so slots follow weights.
      credit[i] = credit[i]! + pool.weights[i]! / maxWeight;
      if (credit[i]! < 1) continue;
      credit[i] = credit[i]! - 1;
      let slot = (offsets[i]! + next[i]! * skips[i]!) % size;
      while (filled[slot]) {
        next[i]!++;
        slot = (offsets[i]! + next[i]! * skips[i]!) % size;
      }
      next[i]!++;
      filled[slot] = 1;
      table[slot] = i;
      count++;
    }
  }
  return table;
}

export class MaglevLoadBalancer implements LoadBalancer {
  private readonly tables: Array<Uint32Array | undefined>;
  private readonly size: number;

  constructor(private readonly set: EndpointSet, tableSize = DEFAULT_MAGLEV_TABLE_SIZE) {
    const problem = tableSizeProblem(tableSize);
    if (problem) throw new Error(problem);
    this.size = tableSize;
    this.tables = set.pools.map((pool) => (set.priorities.some((p) => p.hashPool === pool) ? buildTable(pool, tableSize) : undefined));
  }

  pick(context: PickContext): Endpoint | undefined {
    const position = context.hash === undefined ? Math.floor(context.random() * POSITION_SPACE) : toPosition(context.hash);
    const pool = this.set.selectHashPool(position, context);
    if (!pool) return undefined;
    return pool.endpoints[this.tables[pool.index]![position % this.size]!];
  }

  started(): void {}

  finished(): void {}
}
