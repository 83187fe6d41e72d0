// Reads a decoded Envoy Cluster into a load-balancing decision (a plain value, checked when CDS
// arrives so that a bad cluster is NACKed) and builds the policy for each endpoint set.
import { EndpointSet, type DecodedLoadAssignment, type EndpointSetOptions, type Locality } from './endpoint-set';
import { LeastRequestLoadBalancer } from './least-request';
import type { LoadBalancer } from './load-balancer';
import { DEFAULT_MAGLEV_TABLE_SIZE, MaglevLoadBalancer, tableSizeProblem } from './maglev';
import { RandomLoadBalancer } from './random';
import { DEFAULT_MINIMUM_RING_SIZE, MAXIMUM_RING_SIZE, RingHashLoadBalancer } from './ring-hash';
import { RoundRobinLoadBalancer } from './round-robin';

type Wrapped = { value?: number | string } | undefined;

/** The subset of a decoded Cluster read here (unpackAny's snake_case form). */
export interface DecodedCluster {
  name?: string;
  lb_policy?: string;
  ring_hash_lb_config?: { minimum_ring_size?: Wrapped; maximum_ring_size?: Wrapped; hash_function?: string };
  maglev_lb_config?: { table_size?: Wrapped };
  least_request_lb_config?: { choice_count?: Wrapped; active_request_bias?: { default_value?: number } };
  common_lb_config?: { locality_weighted_lb_config?: object; zone_aware_lb_config?: object; healthy_panic_threshold?: { value?: number | string } };
}

export type LbConfig =
  | { policy: 'ROUND_ROBIN'; localityWeighted: boolean }
  | { policy: 'RANDOM'; localityWeighted: boolean }
  | { policy: 'LEAST_REQUEST'; localityWeighted: boolean; choiceCount: number; activeRequestBias: number }
  | { policy: 'RING_HASH'; localityWeighted: boolean; minimumRingSize: number; maximumRingSize: number }
  | { policy: 'MAGLEV'; localityWeighted: boolean; tableSize: number };

function wrapped(value: Wrapped, fallback: number): number {
  return value?.value === undefined ? fallback : Number(value.value);
}

/**
 * The cluster's load-balancing decision. Throws an Error whose message names the cluster and the
 * field, fit to be the NACK's error_detail.
 */
export function lbConfigFromCluster(cluster: DecodedCluster): LbConfig {
  const name = cluster.name ?? '(unnamed cluster)';
  const localityWeighted = cluster.common_lb_config?.locality_weighted_lb_config !== undefined;
  // ROUND_ROBIN is the enum's zero value, so a decoded cluster omits it.
  const policy = cluster.lb_policy ?? 'ROUND_ROBIN';
  let config: LbConfig;
  switch (policy) {
    case 'ROUND_ROBIN':
    case 'RANDOM':
      config = { policy, localityWeighted };
      break;
    case 'LEAST_REQUEST': {
      const lr = cluster.least_request_lb_config;
      config = { policy, localityWeighted, choiceCount: wrapped(lr?.choice_count, 2), activeRequestBias: lr?.active_request_bias?.default_value ?? 1 };
      if (!Number.isInteger(config.choiceCount) || config.choiceCount < 2) throw new Error(`cluster ${name}: least_request_lb_config.choice_count must be at least 2, got ${config.choiceCount}`);
      if (!(config.activeRequestBias >= 0)) throw new Error(`cluster ${name}: least_request_lb_config.active_request_bias must be at least 0, got ${config.activeRequestBias}`);
      break;
    }
    case 'RING_HASH': {
      const rh = cluster.ring_hash_lb_config;
      const minimumRingSize = wrapped(rh?.minimum_ring_size, DEFAULT_MINIMUM_RING_SIZE);
      const maximumRingSize = wrapped(rh?.maximum_ring_size, MAXIMUM_RING_SIZE);
      if (!Number.isInteger(minimumRingSize) || minimumRingSize < 1 || minimumRingSize > MAXIMUM_RING_SIZE) {
        throw new Error(`cluster ${name}: ring_hash_lb_config.minimum_ring_size must be 1..${MAXIMUM_RING_SIZE}, got ${rh?.minimum_ring_size?.value}`);
      }
      if (!Number.isInteger(maximumRingSize) || maximumRingSize < minimumRingSize || maximumRingSize > MAXIMUM_RING_SIZE) {
        throw new Error(`cluster ${name}: ring_hash_lb_config.maximum_ring_size must be ${minimumRingSize}..${MAXIMUM_RING_SIZE}, got ${rh?.maximum_ring_size?.value}`);
      }
      config = { policy, localityWeighted, minimumRingSize, maximumRingSize };
      break;
    }
    case 'MAGLEV': {
      const tableSize = wrapped(cluster.maglev_lb_config?.table_size, DEFAULT_MAGLEV_TABLE_SIZE);
      config = { policy, localityWeighted, tableSize };
      const problem = tableSizeProblem(tableSize);
      if (problem) throw new Error(`cluster ${name}: ${problem}`);
      break;
    }
    default:
      throw new Error(`cluster ${name}: lb_policy ${policy} is not supported by mesh-agent (supported: ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV)`);
  }
  return config;
}

/** Envoy's healthy_panic_threshold when common_lb_config does not state one. */
export const DEFAULT_PANIC_THRESHOLD = 50;

/**
 * The cluster's panic threshold in percent: Envoy's 50 unless stated; Istio states its
 * minHealthPercent (0, which disables panic mode, by default) whenever outlier detection is on.
 */
export function panicThresholdFromCluster(cluster: DecodedCluster): number {
  const field = cluster.common_lb_config?.healthy_panic_threshold;
  if (field === undefined) return DEFAULT_PANIC_THRESHOLD;
  // A Percent of 0 decodes as {} (proto3 leaves zero out).
  const value = Number(field.value ?? 0);
  if (!Number.isFinite(value) || value < 0 || value > 100) {
    throw new Error(`cluster ${cluster.name ?? '(unnamed cluster)'}: common_lb_config.healthy_panic_threshold must be 0..100 (percent), got ${String(field.value)}`);
  }
  return value;
}

export interface BalancerOptions {
  /** The caller's locality, preferred when the cluster does not weight localities itself. */
  localLocality?: Locality;
  /** Endpoints ejected by outlier detection (`address:port` keys), skipped like unhealthy ones. */
  ejected?: ReadonlySet<string>;
  /** panicThresholdFromCluster's value; absent disables panic mode. */
  panicThreshold?: number;
}

/** The endpoint set for `cla` under `config`. */
export function endpointSetFor(config: LbConfig, cla: DecodedLoadAssignment, options: BalancerOptions = {}): EndpointSet {
  const setOptions: EndpointSetOptions = { localityWeighted: config.localityWeighted };
  if (options.localLocality) setOptions.localLocality = options.localLocality;
  if (options.ejected && options.ejected.size > 0) setOptions.ejected = options.ejected;
  if (options.panicThreshold !== undefined) setOptions.panicThreshold = options.panicThreshold;
  return EndpointSet.fromLoadAssignment(cla, setOptions);
}

/**
 * The policy `config` names, over `set` (rebuilt whenever the endpoint set changes). `previous`
 * is the balancer being replaced, whose in-flight counts carry over when the policy is the same.
 */
export function createLoadBalancer(config: LbConfig, set: EndpointSet, previous?: LoadBalancer): LoadBalancer {
  switch (config.policy) {
    case 'ROUND_ROBIN':
      return new RoundRobinLoadBalancer(set);
    case 'RANDOM':
      return new RandomLoadBalancer(set);
    case 'LEAST_REQUEST':
      return new LeastRequestLoadBalancer(set, {
        choiceCount: config.choiceCount,
        activeRequestBias: config.activeRequestBias,
        ...(previous instanceof LeastRequestLoadBalancer ? { previous } : {}),
      });
    case 'RING_HASH':
      return new RingHashLoadBalancer(set, { minimumRingSize: config.minimumRingSize, maximumRingSize: config.maximumRingSize });
    case 'MAGLEV':
      return new MaglevLoadBalancer(set, config.tableSize);
  }
}
