// Istio's merge of a DestinationRule's traffic policy for one cluster: port-level settings replace
// the top-level components wholesale (omitted ones fall back to defaults), and a subset's policy
// overrides the rule's component by component, its own port-level settings last.
import type {
  ClientTLSSettings,
  ConnectionPoolSettings,
  ConsistentHashLB,
  DestinationRuleSpec,
  LoadBalancerSettings,
  OutlierDetection,
  Subset,
  TrafficPolicy,
} from './specs';

/** The four components that shape a cluster, after merging. */
export interface EffectivePolicy {
  connectionPool?: ConnectionPoolSettings;
  loadBalancer?: LoadBalancerSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
}

function components(policy: TrafficPolicy | undefined): EffectivePolicy {
  if (!policy) return {};
  return {
    connectionPool: policy.connectionPool,
    loadBalancer: policy.loadBalancer,
    outlierDetection: policy.outlierDetection,
    tls: policy.tls,
  };
}

/** A policy's components for one port, and whether a port-level entry decided them. */
export function portLevelPolicy(policy: TrafficPolicy | undefined, port: number): { policy: EffectivePolicy; hasPortLevel: boolean } {
  const entry = policy?.portLevelSettings?.find((p) => p.port?.number === port);
  if (!entry) return { policy: components(policy), hasPortLevel: false };
  return {
    policy: { connectionPool: entry.connectionPool, loadBalancer: entry.loadBalancer, outlierDetection: entry.outlierDetection, tls: entry.tls },
    hasPortLevel: true,
  };
}

/** The effective policy of cluster `outbound|port|subset|host` under `rule`. */
export function effectivePolicy(rule: DestinationRuleSpec | undefined, subset: Subset | undefined, port: number): EffectivePolicy {
  const base = portLevelPolicy(rule?.trafficPolicy, port).policy;
  if (!subset?.trafficPolicy) return base;
  const { policy: own, hasPortLevel } = portLevelPolicy(subset.trafficPolicy, port);
  const merged: EffectivePolicy = { ...base };
  if (own.connectionPool !== undefined || hasPortLevel) merged.connectionPool = own.connectionPool;
  if (own.outlierDetection !== undefined || hasPortLevel) merged.outlierDetection = own.outlierDetection;
  if (own.loadBalancer !== undefined || hasPortLevel) merged.loadBalancer = own.loadBalancer;
  if (own.tls !== undefined || hasPortLevel) merged.tls = own.tls;
  return merged;
}

export function findSubset(rule: DestinationRuleSpec | undefined, name: string | undefined): Subset | undefined {
  if (!rule || !name) return undefined;
  return rule.subsets?.find((s) => s.name === name);
}

/**
 * The consistent-hash settings a route must carry for a destination cluster. Derived from the
 * same merged policy as the cluster's lb_policy, so that a RING_HASH/MAGLEV cluster always gets
 * the route hash_policy that feeds it.
 */
export function consistentHashFor(rule: DestinationRuleSpec | undefined, subsetName: string | undefined, port: number): ConsistentHashLB | undefined {
  return effectivePolicy(rule, findSubset(rule, subsetName), port).loadBalancer?.consistentHash;
}
