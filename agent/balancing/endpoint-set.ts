// One cluster's endpoints compiled from a decoded ClusterLoadAssignment: priorities, localities,
// health (outlier ejections included), Envoy's priority spill-over, panic threshold and locality
// choice, precomputed so that a pick never allocates; rebuilt when health or ejections change.

export type HealthStatus = 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'TIMEOUT' | 'DEGRADED';

export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subZone: string;
}

/** The `mesh` filter metadata the server puts on every endpoint (see server/translate/endpoints.ts). */
export interface MeshMetadata {
  readonly node?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount?: string;
}

export interface Endpoint {
  /** Position in EndpointSet.endpoints; policies key their per-endpoint state arrays on it. */
  readonly index: number;
  readonly address: string;
  readonly port: number;
  /** `address:port`: the endpoint's identity across successive endpoint sets of a cluster. */
  readonly key: string;
  readonly weight: number;
  readonly health: HealthStatus;
  /** Routable: the health status admits it and outlier detection has not ejected it. */
  readonly healthy: boolean;
  readonly priority: number;
  readonly locality: Locality;
  readonly mesh: MeshMetadata | undefined;
}

/**
 * A group of healthy endpoints that a policy picks within once the priority and locality are
 * chosen. Policies keep their per-pool state (cursors, rings) in arrays indexed by `index`.
 */
export interface Pool {
  readonly index: number;
  readonly endpoints: readonly Endpoint[];
  readonly weights: Float64Array;
  readonly totalWeight: number;
  readonly equalWeights: boolean;
}

export interface LocalityGroup {
  readonly locality: Locality;
  /** load_balancing_weight of the locality; 0 when absent (Envoy then ignores it under locality-weighted LB). */
  readonly weight: number;
  readonly endpoints: readonly Endpoint[];
  readonly healthy: readonly Endpoint[];
}

export interface PriorityLevel {
  readonly priority: number;
  readonly localities: readonly LocalityGroup[];
  readonly endpoints: readonly Endpoint[];
  readonly healthy: readonly Endpoint[];
  /** Envoy's health score: healthy share × overprovisioning factor, in integer percent capped at 100. */
  readonly health: number;
  /** Below the panic threshold while the priorities together lack capacity: picks ignore health here. */
  readonly panic: boolean;
  /** Percent of requests this priority receives (the "priority load"); the loads sum to 100 or all are 0. */
  readonly load: number;
  /** What request-level choices pick among: one pool, or one per locality, chosen by `poolThresholds`. */
  readonly pools: readonly Pool[];
  readonly poolThresholds: Float64Array;
  /** Every healthy endpoint of the priority, for hash-based policies (one ring or table per priority). */
  readonly hashPool: Pool | undefined;
}

export interface EndpointSetOptions {
  /** The cluster's common_lb_config has locality_weighted_lb_config. */
  localityWeighted?: boolean;
  /** The caller's locality; traffic stays in it while it has enough healthy endpoints. */
  localLocality?: Locality;
  /** Keys (`address:port`) of endpoints outlier detection has ejected: skipped like unhealthy ones. */
  ejected?: ReadonlySet<string>;
  /**
   * Envoy's healthy_panic_threshold in percent (Istio's minHealthPercent); 0 or absent disables
   * panic mode. A priority whose healthy share is below it, while all priorities together cannot
   * carry the load, sends its traffic to all of its endpoints regardless of health.
   */
  panicThreshold?: number;
}

/**
 * Replaces a set's priority loads for one pick, as Envoy's LoadBalancerContext::determinePriorityLoad
 * lets a retry priority plugin do (see previous-priorities.ts).
 */
export interface PriorityLoadOverride {
  /** Cumulative priority loads over [0, 100) by level of `set`, or undefined to keep the set's own. */
  thresholdsFor(set: EndpointSet): Float64Array | undefined;
}

/** What a pick hands the set: its random source and, on some retries, adjusted priority loads. */
export interface PoolSource {
  random(): number;
  priorityLoad?: PriorityLoadOverride | undefined;
}

/** Envoy's default overprovisioning factor, in percent. */
export const DEFAULT_OVERPROVISIONING_FACTOR = 140;

/** The subset of a decoded ClusterLoadAssignment read here (unpackAny's snake_case form). */
export interface DecodedLoadAssignment {
  cluster_name?: string;
  endpoints?: Array<{
    locality?: { region?: string; zone?: string; sub_zone?: string };
    lb_endpoints?: Array<{
      endpoint?: { address?: { socket_address?: { address?: string; port_value?: number } } };
      health_status?: string;
      load_balancing_weight?: { value?: number | string };
      metadata?: { filter_metadata?: Record<string, unknown> };
    }>;
    load_balancing_weight?: { value?: number | string };
    priority?: number;
  }>;
  policy?: { overprovisioning_factor?: { value?: number | string } };
}

const HEALTH_STATUSES: ReadonlySet<string> = new Set(['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT', 'DEGRADED']);

/**
 * Envoy routes to HEALTHY and UNKNOWN (no health checking) endpoints. DEGRADED ones only take
 * load Envoy cannot place on healthy ones; we treat them as unavailable, as gRPC does.
 */
function isHealthy(status: HealthStatus): boolean {
  return status === 'HEALTHY' || status === 'UNKNOWN';
}

function structString(value: unknown): string | undefined {
  const v = value as { stringValue?: unknown } | undefined;
  return typeof v?.stringValue === 'string' ? v.stringValue : undefined;
}

/** Reads the `mesh` Struct (decoded as {fields: {...Value}}) without trusting its shape. */
function meshMetadata(filterMetadata: Record<string, unknown> | undefined): MeshMetadata | undefined {
  const struct = filterMetadata?.mesh as { fields?: Record<string, unknown> } | undefined;
  if (!struct?.fields) return undefined;
  const fields = struct.fields;
  const labels: Record<string, string> = {};
  const labelFields = (fields.labels as { structValue?: { fields?: Record<string, unknown> } } | undefined)?.structValue?.fields ?? {};
  for (const [key, value] of Object.entries(labelFields)) {
    const text = structString(value);
    if (text !== undefined) labels[key] = text;
  }
  const out: { node?: string; labels: Record<string, string>; serviceAccount?: string } = { labels };
  const node = structString(fields.node);
  if (node !== undefined) out.node = node;
  const serviceAccount = structString(fields.serviceAccount);
  if (serviceAccount !== undefined) out.serviceAccount = serviceAccount;
  return out;
}

function sameLocality(a: Locality, b: Locality): boolean {
  return a.region === b.region && a.zone === b.zone && a.subZone === b.subZone;
}

/** Healthy share × factor, as Envoy's integer percent capped at 100 (counts, not weights). */
function healthScore(healthy: number, total: number, factor: number): number {
  if (total === 0) return 0;
  return Math.min(100, Math.floor((healthy * factor) / total));
}

function makePool(endpoints: readonly Endpoint[], pools: Pool[]): Pool {
  const weights = new Float64Array(endpoints.length);
  let total = 0;
  let equal = true;
  for (let i = 0; i < endpoints.length; i++) {
    weights[i] = endpoints[i]!.weight;
    total += endpoints[i]!.weight;
    if (endpoints[i]!.weight !== endpoints[0]!.weight) equal = false;
  }
  const pool: Pool = Object.freeze({ index: pools.length, endpoints: Object.freeze([...endpoints]), weights, totalWeight: total, equalWeights: equal });
  pools.push(pool);
  return pool;
}

/** Envoy's priority load: each level takes its health score until 100 is reached, scaled up when the sum is short. */
function priorityLoads(health: readonly number[]): number[] {
  const total = health.reduce((sum, h) => sum + h, 0);
  const loads = health.map(() => 0);
  if (total === 0) return loads;
  // Below 100 in total, Envoy normalizes so that the healthy capacity that exists gets all traffic.
  const scale = total < 100 ? 100 / total : 1;
  let remaining = 100;
  for (let p = 0; p < health.length; p++) {
    const load = Math.min(remaining, Math.floor(health[p]! * scale));
    loads[p] = load;
    remaining -= load;
  }
  if (remaining > 0) {
    // Rounding leftovers go to the first level that can take traffic, as in Envoy.
    const first = health.findIndex((h) => h > 0);
    loads[first] = loads[first]! + remaining;
  }
  return loads;
}

/**
 * Envoy's panic rule: priorities are judged only when their health scores together fall short of
 * 100 (lower priorities cannot absorb the load); then each one whose plain healthy share is below
 * the threshold is in panic.
 */
function panicLevels(healthy: readonly number[], sizes: readonly number[], health: readonly number[], threshold: number): boolean[] {
  const normalizedTotal = Math.min(100, health.reduce((sum, h) => sum + h, 0));
  return sizes.map((size, i) => threshold > 0 && normalizedTotal < 100 && (size === 0 ? 0 : (healthy[i]! * 100) / size) < threshold);
}

/** Every priority in panic: Envoy splits the load by each priority's share of all endpoints. */
function loadsInTotalPanic(sizes: readonly number[]): number[] {
  const total = sizes.reduce((sum, n) => sum + n, 0);
  const loads = sizes.map((n) => (total === 0 ? 0 : Math.floor((n * 100) / total)));
  const first = sizes.findIndex((n) => n > 0);
  if (first >= 0) loads[first] = loads[first]! + 100 - loads.reduce((sum, l) => sum + l, 0);
  return loads;
}

export function cumulative(values: readonly number[]): Float64Array {
  const out = new Float64Array(values.length);
  let sum = 0;
  for (let i = 0; i < values.length; i++) out[i] = sum += values[i]!;
  return out;
}

export class EndpointSet {
  readonly clusterName: string;
  readonly endpoints: readonly Endpoint[];
  readonly healthy: readonly Endpoint[];
  readonly priorities: readonly PriorityLevel[];
  /** Every pool of every priority, by Pool.index. */
  readonly pools: readonly Pool[];
  readonly overprovisioningFactor: number;
  private readonly loadThresholds: Float64Array;
  private readonly indexByKey: ReadonlyMap<string, number>;

  private constructor(clusterName: string, endpoints: Endpoint[], priorities: PriorityLevel[], pools: Pool[], factor: number) {
    this.clusterName = clusterName;
    this.endpoints = Object.freeze(endpoints);
    this.healthy = Object.freeze(endpoints.filter((e) => e.healthy));
    this.priorities = Object.freeze(priorities);
    this.pools = Object.freeze(pools);
    this.overprovisioningFactor = factor;
    this.loadThresholds = cumulative(priorities.map((p) => p.load));
    this.indexByKey = new Map(endpoints.map((e) => [e.key, e.index]));
    Object.freeze(this);
  }

  /** Builds the set from a decoded ClusterLoadAssignment; throws on values Envoy would reject. */
  static fromLoadAssignment(cla: DecodedLoadAssignment, options: EndpointSetOptions = {}): EndpointSet {
    const clusterName = cla.cluster_name ?? '';
    const factor = Number(cla.policy?.overprovisioning_factor?.value ?? DEFAULT_OVERPROVISIONING_FACTOR);
    if (!Number.isFinite(factor) || factor <= 0) throw new Error(`${clusterName}: policy.overprovisioning_factor must be positive, got ${factor}`);
    const endpoints: Endpoint[] = [];
    const byPriority = new Map<number, LocalityGroup[]>();
    (cla.endpoints ?? []).forEach((group, g) => {
      const priority = group.priority ?? 0;
      const locality: Locality = Object.freeze({ region: group.locality?.region ?? '', zone: group.locality?.zone ?? '', subZone: group.locality?.sub_zone ?? '' });
      const members: Endpoint[] = [];
      const ejected = options.ejected;
      (group.lb_endpoints ?? []).forEach((lb, i) => {
        const socket = lb.endpoint?.address?.socket_address;
        if (!socket?.address) throw new Error(`${clusterName}: endpoints[${g}].lb_endpoints[${i}] has no socket address`);
        const health = (lb.health_status ?? 'UNKNOWN') as HealthStatus;
        if (!HEALTH_STATUSES.has(health)) throw new Error(`${clusterName}: endpoints[${g}].lb_endpoints[${i}].health_status ${health} is unknown`);
        // Envoy treats an absent endpoint weight as 1 and rejects 0.
        const weight = Number(lb.load_balancing_weight?.value ?? 1);
        if (!Number.isInteger(weight) || weight < 1) throw new Error(`${clusterName}: endpoints[${g}].lb_endpoints[${i}].load_balancing_weight must be at least 1, got ${weight}`);
        const key = `${socket.address}:${socket.port_value ?? 0}`;
        const endpoint: Endpoint = Object.freeze({
          index: endpoints.length,
          address: socket.address,
          port: socket.port_value ?? 0,
          key,
          weight,
          health,
          healthy: isHealthy(health) && !(ejected?.has(key) ?? false),
          priority,
          locality,
          mesh: meshMetadata(lb.metadata?.filter_metadata),
        });
        endpoints.push(endpoint);
        members.push(endpoint);
      });
      const localities = byPriority.get(priority) ?? [];
      localities.push(Object.freeze({
        locality,
        weight: Number(group.load_balancing_weight?.value ?? 0),
        endpoints: Object.freeze(members),
        healthy: Object.freeze(members.filter((e) => e.healthy)),
      }));
      byPriority.set(priority, localities);
    });

    const pools: Pool[] = [];
    const ordered = [...byPriority.keys()].sort((a, b) => a - b);
    const sizes = ordered.map((p) => byPriority.get(p)!.reduce((n, l) => n + l.endpoints.length, 0));
    const healthyCounts = ordered.map((p) => byPriority.get(p)!.reduce((n, l) => n + l.healthy.length, 0));
    const health = ordered.map((_, i) => healthScore(healthyCounts[i]!, sizes[i]!, factor));
    const panic = panicLevels(healthyCounts, sizes, health, options.panicThreshold ?? 0);
    const loads = panic.length > 0 && panic.every((p) => p) ? loadsInTotalPanic(sizes) : priorityLoads(health);
    const levels = ordered.map((priority, i) => {
      const localities = byPriority.get(priority)!;
      const all = localities.flatMap((l) => l.endpoints);
      const healthy = all.filter((e) => e.healthy);
      // In panic every endpoint counts as available, so pools and hash tables take them all.
      const usable = panic[i] ? localities.map((l) => ({ ...l, healthy: l.endpoints })) : localities;
      const candidates = panic[i] ? all : healthy;
      const { pools: levelPools, thresholds } = choosePools(usable, candidates, factor, options, pools);
      const level: PriorityLevel = Object.freeze({
        priority,
        localities: Object.freeze(localities),
        endpoints: Object.freeze(all),
        healthy: Object.freeze(healthy),
        health: health[i]!,
        panic: panic[i]!,
        load: loads[i]!,
        pools: Object.freeze(levelPools),
        poolThresholds: thresholds,
        hashPool: candidates.length > 0 ? makePool(candidates, pools) : undefined,
      });
      return level;
    });
    return new EndpointSet(clusterName, endpoints, levels, pools, factor);
  }

  /**
   * This set's index for `endpoint`, which may come from an earlier set of the same cluster (a
   * request that outlived an EDS update); -1 when the endpoint is no longer in the cluster.
   */
  indexOf(endpoint: Endpoint): number {
    if (this.endpoints[endpoint.index] === endpoint) return endpoint.index;
    return this.indexByKey.get(endpoint.key) ?? -1;
  }

  /**
   * Envoy's previous_priorities recomputation: the levels whose priority is in `excluded` get no
   * load, and the others share 100 by their health scores as at any pick (spilling in order,
   * scaled up when they are short of 100 together). Undefined when the levels left have no
   * healthy endpoint, so that the caller can start over.
   */
  priorityLoadsExcluding(excluded: ReadonlySet<number>): number[] | undefined {
    const health = this.priorities.map((level) => (excluded.has(level.priority) ? 0 : level.health));
    if (!health.some((h) => h > 0)) return undefined;
    return priorityLoads(health);
  }

  /** The priority level a draw in [0, 100) lands on, or -1 when nothing is healthy. */
  private levelFor(draw: number, thresholds: Float64Array): number {
    for (let i = 0; i < thresholds.length; i++) if (draw < thresholds[i]!) return i;
    return -1;
  }

  /** The cumulative loads a pick uses: the override's when it gives some, else the set's own. */
  private thresholdsFor(source: PoolSource): Float64Array {
    const override = source.priorityLoad;
    return (override !== undefined ? override.thresholdsFor(this) : undefined) ?? this.loadThresholds;
  }

  /** Priority by load, then locality: the pool a non-hash policy picks within; undefined when nothing is healthy. */
  selectPool(source: PoolSource): Pool | undefined {
    const index = this.levelFor(source.random() * 100, this.thresholdsFor(source));
    if (index < 0) return undefined;
    const level = this.priorities[index]!;
    const pools = level.pools;
    if (pools.length === 1) return pools[0];
    const draw = source.random();
    const thresholds = level.poolThresholds;
    for (let i = 0; i < thresholds.length; i++) if (draw < thresholds[i]!) return pools[i];
    return pools[pools.length - 1];
  }

  /** The priority's hash pool for a hash position, priority chosen by `hash % 100` as Envoy does. */
  selectHashPool(position: number, source?: PoolSource): Pool | undefined {
    const index = this.levelFor(position % 100, source ? this.thresholdsFor(source) : this.loadThresholds);
    return index < 0 ? undefined : this.priorities[index]!.hashPool;
  }
}

/**
 * How a priority's traffic is split before a policy picks: by locality weight (Envoy's
 * locality-weighted LB, each locality scaled by its own overprovisioned health), toward the
 * caller's locality while it is healthy enough, or one pool of every healthy endpoint.
 */
function choosePools(
  localities: readonly LocalityGroup[],
  healthy: readonly Endpoint[],
  factor: number,
  options: EndpointSetOptions,
  pools: Pool[],
): { pools: Pool[]; thresholds: Float64Array } {
  const availability = (l: LocalityGroup) => Math.min(1, (l.healthy.length * factor) / (100 * Math.max(1, l.endpoints.length)));
  if (options.localityWeighted) {
    const chosen = localities.filter((l) => l.healthy.length > 0 && l.weight > 0);
    const effective = chosen.map((l) => l.weight * availability(l));
    const total = effective.reduce((s, w) => s + w, 0);
    if (total > 0) return { pools: chosen.map((l) => makePool(l.healthy, pools)), thresholds: cumulative(effective.map((w) => w / total)) };
  }
  const local = options.localLocality;
  if (local) {
    const own = localities.filter((l) => sameLocality(l.locality, local));
    const ownHealthy = own.flatMap((l) => l.healthy);
    const rest = healthy.filter((e) => !sameLocality(e.locality, local));
    if (ownHealthy.length > 0 && rest.length > 0) {
      // The local share is the locality's overprovisioned health: all traffic while ≥ 1/1.4 is healthy.
      const ownTotal = own.reduce((s, l) => s + l.endpoints.length, 0);
      const share = Math.min(1, (ownHealthy.length * factor) / (100 * ownTotal));
      return { pools: [makePool(ownHealthy, pools), makePool(rest, pools)], thresholds: Float64Array.of(share, 1) };
    }
  }
  return { pools: healthy.length > 0 ? [makePool(healthy, pools)] : [], thresholds: Float64Array.of(1) };
}
