// The interface every load-balancing policy implements: pick one endpoint per request, and hear
// when a request to an endpoint starts and ends (least-request counts what is in flight).
import type { Endpoint, PriorityLoadOverride } from './endpoint-set';

/**
 * What a pick may use. Callers reuse one object per connection or worker so that a pick does not
 * allocate; `random` returns [0, 1) and is injected so that tests are deterministic.
 */
export interface PickContext {
  /** The request's hash (hash-policy.ts); only hash-based policies read it. */
  hash?: bigint | number;
  random(): number;
  /**
   * Set only while picking for a retry whose route has a retry priority (Istio's
   * retryRemoteLocalities): it replaces the priority loads the pick chooses a priority by.
   */
  priorityLoad?: PriorityLoadOverride | undefined;
}

export interface LoadBalancer {
  /** The endpoint for one request, or undefined when the cluster has no healthy endpoint. */
  pick(context: PickContext): Endpoint | undefined;
  /** A request to `endpoint` was sent. */
  started(endpoint: Endpoint): void;
  /** A request to `endpoint` completed (whatever its outcome). */
  finished(endpoint: Endpoint): void;
}
