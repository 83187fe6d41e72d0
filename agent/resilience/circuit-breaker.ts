// Envoy's circuit breaking for one cluster at the DEFAULT routing priority: limits on open
// connections, pending requests, active requests and active retries, with overflow counters.
//
// API (for the TCP path in agent/proxy/outbound.ts and the HTTP request path):
//   const breaker = table.guard(cluster).breaker;      // one CircuitBreaker per cluster name
//   if (!breaker.tryAcquireConnection()) { /* overflow: TCP closes, HTTP answers 503 flag UO */ }
//   ...                              breaker.releaseConnection();   // exactly once per acquire
//   hasConnectionRoom()              // asks without counting an overflow
//   tryAcquirePendingRequest / releasePendingRequest   // a request waiting for a connection
//   tryAcquireRequest / releaseRequest                 // a request in flight (any protocol)
//   tryAcquireRetry / releaseRetry                     // a retry in flight
// A failed try-acquire counts the overflow (upstream_cx_overflow, upstream_rq_pending_overflow,
// upstream_rq_retry_overflow) and changes nothing else. Calls never allocate.
import { wrappedCount, type Wrapped } from './decoded-fields';

/** Envoy's default for each threshold when a cluster states none (Istio states MaxUint32 for each). */
export const ENVOY_DEFAULT_THRESHOLD = 1024;

export interface CircuitBreakerThresholds {
  readonly maxConnections: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRetries: number;
}

/** The part of a decoded Cluster that sets the thresholds. */
export interface DecodedCircuitBreakers {
  circuit_breakers?: {
    thresholds?: Array<{
      priority?: string;
      max_connections?: Wrapped;
      max_pending_requests?: Wrapped;
      max_requests?: Wrapped;
      max_retries?: Wrapped;
      retry_budget?: object;
      max_connection_pools?: Wrapped;
      track_remaining?: boolean;
    }>;
    per_host_thresholds?: unknown[];
  };
}

/**
 * The DEFAULT-priority thresholds of `cluster`. HIGH-priority thresholds are accepted and unused:
 * the agent sends every request at DEFAULT priority, as Istio's routes do. Throws, naming the
 * cluster and field, for what the agent cannot honour.
 */
export function circuitBreakerThresholds(cluster: DecodedCircuitBreakers, name: string): CircuitBreakerThresholds {
  const where = `cluster ${name}: circuit_breakers`;
  if ((cluster.circuit_breakers?.per_host_thresholds?.length ?? 0) > 0) {
    throw new Error(`${where}.per_host_thresholds is not supported by mesh-agent`);
  }
  let chosen: NonNullable<NonNullable<DecodedCircuitBreakers['circuit_breakers']>['thresholds']>[number] | undefined;
  (cluster.circuit_breakers?.thresholds ?? []).forEach((entry, i) => {
    const priority = entry.priority ?? 'DEFAULT';
    if (priority !== 'DEFAULT' && priority !== 'HIGH') throw new Error(`${where}.thresholds[${i}].priority ${priority} is unknown`);
    if (priority !== 'DEFAULT') return;
    if (chosen) throw new Error(`${where}.thresholds[${i}]: a second entry for priority DEFAULT`);
    if (entry.retry_budget !== undefined) throw new Error(`${where}.thresholds[${i}].retry_budget is not supported by mesh-agent (use max_retries)`);
    if (entry.max_connection_pools !== undefined) throw new Error(`${where}.thresholds[${i}].max_connection_pools is not supported by mesh-agent`);
    chosen = entry;
  });
  const at = `${where}.thresholds[DEFAULT]`;
  return {
    maxConnections: wrappedCount(chosen?.max_connections, ENVOY_DEFAULT_THRESHOLD, `${at}.max_connections`),
    maxPendingRequests: wrappedCount(chosen?.max_pending_requests, ENVOY_DEFAULT_THRESHOLD, `${at}.max_pending_requests`),
    maxRequests: wrappedCount(chosen?.max_requests, ENVOY_DEFAULT_THRESHOLD, `${at}.max_requests`),
    maxRetries: wrappedCount(chosen?.max_retries, ENVOY_DEFAULT_THRESHOLD, `${at}.max_retries`),
  };
}

/** Envoy's circuit-breaker stats of one cluster: overflow counters and open/remaining gauges. */
export interface CircuitBreakerStats {
  upstream_cx_overflow: number;
  upstream_rq_pending_overflow: number;
  upstream_rq_retry_overflow: number;
  cx_open: number;
  rq_pending_open: number;
  rq_open: number;
  rq_retry_open: number;
  remaining_cx: number;
  remaining_pending: number;
  remaining_rq: number;
  remaining_retries: number;
}

export class CircuitBreaker {
  private limits: CircuitBreakerThresholds;
  private connections = 0;
  private pendingRequests = 0;
  private requests = 0;
  private retries = 0;
  private connectionOverflows = 0;
  private pendingOverflows = 0;
  private retryOverflows = 0;

  constructor(thresholds: CircuitBreakerThresholds) {
    this.limits = thresholds;
  }

  get thresholds(): CircuitBreakerThresholds {
    return this.limits;
  }

  /**
   * New limits from a config update. Open counts stay: connections and requests opened under the
   * old limits still hold their slots, as in Envoy, so a lowered limit applies to new ones only.
   */
  reconfigure(thresholds: CircuitBreakerThresholds): void {
    this.limits = thresholds;
  }

  tryAcquireConnection(): boolean {
    if (this.connections >= this.limits.maxConnections) {
      this.connectionOverflows++;
      return false;
    }
    this.connections++;
    return true;
  }

  /** Whether a connection could be opened now; unlike tryAcquireConnection, asking counts no overflow. */
  hasConnectionRoom(): boolean {
    return this.connections < this.limits.maxConnections;
  }

  releaseConnection(): void {
    if (this.connections > 0) this.connections--;
  }

  tryAcquirePendingRequest(): boolean {
    if (this.pendingRequests >= this.limits.maxPendingRequests) {
      this.pendingOverflows++;
      return false;
    }
    this.pendingRequests++;
    return true;
  }

  releasePendingRequest(): void {
    if (this.pendingRequests > 0) this.pendingRequests--;
  }

  /** Envoy counts a max_requests overflow as upstream_rq_pending_overflow too. */
  tryAcquireRequest(): boolean {
    if (this.requests >= this.limits.maxRequests) {
      this.pendingOverflows++;
      return false;
    }
    this.requests++;
    return true;
  }

  releaseRequest(): void {
    if (this.requests > 0) this.requests--;
  }

  tryAcquireRetry(): boolean {
    if (this.retries >= this.limits.maxRetries) {
      this.retryOverflows++;
      return false;
    }
    this.retries++;
    return true;
  }

  releaseRetry(): void {
    if (this.retries > 0) this.retries--;
  }

  stats(): CircuitBreakerStats {
    const l = this.limits;
    return {
      upstream_cx_overflow: this.connectionOverflows,
      upstream_rq_pending_overflow: this.pendingOverflows,
      upstream_rq_retry_overflow: this.retryOverflows,
      cx_open: this.connections >= l.maxConnections ? 1 : 0,
      rq_pending_open: this.pendingRequests >= l.maxPendingRequests ? 1 : 0,
      rq_open: this.requests >= l.maxRequests ? 1 : 0,
      rq_retry_open: this.retries >= l.maxRetries ? 1 : 0,
      remaining_cx: Math.max(0, l.maxConnections - this.connections),
      remaining_pending: Math.max(0, l.maxPendingRequests - this.pendingRequests),
      remaining_rq: Math.max(0, l.maxRequests - this.requests),
      remaining_retries: Math.max(0, l.maxRetries - this.retries),
    };
  }
}
