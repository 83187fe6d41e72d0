// Everything that protects one upstream cluster, kept across config updates: its circuit breaker,
// its outlier detector, its connection settings, and the load balancer over its endpoints with
// ejected ones skipped (rebuilt whenever an endpoint is ejected or returns).
//
// API (from `table.guard(clusterName)` in agent/proxy/outbound-table.ts; undefined for clusters
// that are not EDS):
//   guard.breaker      CircuitBreaker: tryAcquire*/release* per connection, request, retry
//   guard.detector     OutlierDetector | undefined: recordResponse / recordFailure / recordConnected
//   guard.connection   ConnectionSettings: connectTimeoutMs, keepalive, idleTimeoutMs,
//                      maxRequestsPerConnection, maxConnectionDurationMs
//   guard.balancer     the LoadBalancer in force now (read it per pick: ejections replace it)
//   guard.stats()      Envoy-named counters for the admin API
import { createLoadBalancer, endpointSetFor, lbConfigFromCluster, panicThresholdFromCluster, type DecodedCluster, type LbConfig } from '../balancing/create-load-balancer';
import type { DecodedLoadAssignment, EndpointSet } from '../balancing/endpoint-set';
import type { LoadBalancer } from '../balancing/load-balancer';
import { CircuitBreaker, circuitBreakerThresholds, type CircuitBreakerStats, type CircuitBreakerThresholds, type DecodedCircuitBreakers } from './circuit-breaker';
import { systemClock, type Clock } from './clock';
import { connectionSettings, type ConnectionSettings, type DecodedConnectionFields } from './connection-settings';
import { OutlierDetector, outlierSettings, type DecodedOutlierDetection, type OutlierSettings, type OutlierStats } from './outlier-detector';

/** A decoded Cluster with every field a guard reads. */
export type DecodedGuardedCluster = DecodedCluster & DecodedCircuitBreakers & DecodedConnectionFields & DecodedOutlierDetection;

/** What a cluster asks of the agent, read and checked once: the value `validateResources` NACKs on. */
export interface ClusterResilience {
  readonly lb: LbConfig;
  readonly panicThreshold: number;
  readonly thresholds: CircuitBreakerThresholds;
  readonly connection: ConnectionSettings;
  readonly outlier: OutlierSettings | undefined;
}

/** Reads a cluster's balancing and resilience settings; throws, naming cluster and field, on what the agent cannot honour. */
export function clusterResilience(cluster: DecodedGuardedCluster): ClusterResilience {
  const name = cluster.name ?? '(unnamed cluster)';
  return {
    lb: lbConfigFromCluster(cluster),
    panicThreshold: panicThresholdFromCluster(cluster),
    thresholds: circuitBreakerThresholds(cluster, name),
    connection: connectionSettings(cluster, name),
    outlier: outlierSettings(cluster, name),
  };
}

export interface ClusterGuardStats {
  circuit_breakers: CircuitBreakerStats;
  outlier_detection: OutlierStats | undefined;
}

export class ClusterGuard {
  readonly name: string;
  readonly breaker: CircuitBreaker;
  private settings: ClusterResilience;
  private loadAssignment: DecodedLoadAssignment;
  private outlier: OutlierDetector | undefined;
  private current: LoadBalancer;
  private set: EndpointSet;
  private readonly clock: Clock;

  constructor(name: string, settings: ClusterResilience, cla: DecodedLoadAssignment, clock: Clock) {
    this.name = name;
    this.clock = clock;
    this.settings = settings;
    this.loadAssignment = cla;
    this.breaker = new CircuitBreaker(settings.thresholds);
    // Built before the detector exists: nothing is ejected yet.
    this.set = endpointSetFor(settings.lb, cla, { panicThreshold: settings.panicThreshold });
    this.current = createLoadBalancer(settings.lb, this.set);
    this.outlier = this.createDetector(settings.outlier);
  }

  get balancer(): LoadBalancer {
    return this.current;
  }

  get endpointSet(): EndpointSet {
    return this.set;
  }

  get detector(): OutlierDetector | undefined {
    return this.outlier;
  }

  get connection(): ConnectionSettings {
    return this.settings.connection;
  }

  /**
   * A new config for the same cluster name: new limits and settings, new endpoints; open
   * connection and request counts, and outlier state of endpoints that remain, carry over.
   * Throws (changing nothing) when the endpoint set cannot be built.
   */
  reconfigure(settings: ClusterResilience, cla: DecodedLoadAssignment): void {
    const previousDetector = this.outlier;
    const ejected = previousDetector && settings.outlier ? previousDetector.ejectedKeys() : undefined;
    const set = endpointSetFor(settings.lb, cla, { panicThreshold: settings.panicThreshold, ...(ejected ? { ejected } : {}) });
    this.settings = settings;
    this.loadAssignment = cla;
    // The detector below is keyed on the new endpoints.
    this.set = set;
    this.breaker.reconfigure(settings.thresholds);
    if (settings.outlier && previousDetector) {
      previousDetector.reconfigure(settings.outlier, set.endpoints.map((e) => e.key));
    } else {
      previousDetector?.close();
      this.outlier = this.createDetector(settings.outlier);
    }
    this.rebuild();
  }

  /** Stops the detector's timer: the cluster is gone from the config. */
  close(): void {
    this.outlier?.close();
  }

  stats(): ClusterGuardStats {
    return { circuit_breakers: this.breaker.stats(), outlier_detection: this.outlier?.stats() };
  }

  private createDetector(settings: OutlierSettings | undefined): OutlierDetector | undefined {
    if (!settings) return undefined;
    return new OutlierDetector(settings, this.set.endpoints.map((e) => e.key), { clock: this.clock, onChange: () => this.rebuild() });
  }

  /** Envoy recomputes priority loads and locality pools whenever a host's health changes; so do we. */
  private rebuild(): void {
    const ejected = this.outlier?.ejectedKeys();
    this.set = endpointSetFor(this.settings.lb, this.loadAssignment, {
      panicThreshold: this.settings.panicThreshold,
      ...(ejected && ejected.size > 0 ? { ejected } : {}),
    });
    this.current = createLoadBalancer(this.settings.lb, this.set, this.current);
  }
}

/**
 * The guards of every EDS cluster, owned by the agent for its lifetime so that breaker counts and
 * outlier state survive config updates. Each config is applied with `update` per cluster, then
 * `retain` closes the guards of clusters that left.
 */
export class ClusterGuards {
  private readonly guards = new Map<string, ClusterGuard>();
  private readonly clock: Clock;

  constructor(clock: Clock = systemClock) {
    this.clock = clock;
  }

  /** The guard of `name` under its new settings; throws when the cluster cannot be built. */
  update(name: string, settings: ClusterResilience, cla: DecodedLoadAssignment): ClusterGuard {
    const existing = this.guards.get(name);
    if (existing) {
      existing.reconfigure(settings, cla);
      return existing;
    }
    const guard = new ClusterGuard(name, settings, cla, this.clock);
    this.guards.set(name, guard);
    return guard;
  }

  get(name: string): ClusterGuard | undefined {
    return this.guards.get(name);
  }

  /** Closes and forgets every guard whose cluster is not in `names`. */
  retain(names: ReadonlySet<string>): void {
    for (const [name, guard] of this.guards) {
      if (names.has(name)) continue;
      guard.close();
      this.guards.delete(name);
    }
  }

  /**
   * Every guarded cluster's counters under Envoy's stat names, one group per cluster
   * (`cluster.<name>`): upstream_cx_overflow, upstream_rq_pending_overflow,
   * upstream_rq_retry_overflow, circuit_breakers.default.*, outlier_detection.*.
   */
  stats(): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const [name, guard] of this.guards) {
      const { circuit_breakers: cb, outlier_detection: od } = guard.stats();
      const group: Record<string, number> = {
        upstream_cx_overflow: cb.upstream_cx_overflow,
        upstream_rq_pending_overflow: cb.upstream_rq_pending_overflow,
        upstream_rq_retry_overflow: cb.upstream_rq_retry_overflow,
        'circuit_breakers.default.cx_open': cb.cx_open,
        'circuit_breakers.default.rq_pending_open': cb.rq_pending_open,
        'circuit_breakers.default.rq_open': cb.rq_open,
        'circuit_breakers.default.rq_retry_open': cb.rq_retry_open,
        'circuit_breakers.default.remaining_cx': cb.remaining_cx,
        'circuit_breakers.default.remaining_pending': cb.remaining_pending,
        'circuit_breakers.default.remaining_rq': cb.remaining_rq,
        'circuit_breakers.default.remaining_retries': cb.remaining_retries,
      };
      if (od) for (const [key, value] of Object.entries(od)) group[`outlier_detection.${key}`] = value;
      out[`cluster.${name}`] = group;
    }
    return out;
  }

  /** Stops every timer (agent shutdown). */
  close(): void {
    this.retain(new Set());
  }
}
