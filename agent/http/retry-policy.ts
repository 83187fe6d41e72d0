// Envoy's router retry decisions for one request: which attempt outcomes its retry_on conditions
// retry, how long to back off before the next attempt, and which hosts a retry should avoid.
import type { RetryDecision } from '../routing/route-table';

/** What one upstream attempt ended with, as far as retrying cares. */
export type RetryableOutcome =
  | { readonly kind: 'response'; readonly status: number; readonly grpcStatus: number | undefined }
  | { readonly kind: 'connect-failure' }
  | { readonly kind: 'reset'; readonly refusedStream: boolean }
  | { readonly kind: 'timeout' };

/** retry_on conditions as bits, parsed once per request from the route's list. */
const RETRY_ON_BITS: Readonly<Record<string, number>> = {
  '5xx': 1 << 0,
  'gateway-error': 1 << 1,
  reset: 1 << 2,
  'connect-failure': 1 << 3,
  'retriable-4xx': 1 << 4,
  'refused-stream': 1 << 5,
  'retriable-status-codes': 1 << 6,
  cancelled: 1 << 7,
  'deadline-exceeded': 1 << 8,
  internal: 1 << 9,
  'resource-exhausted': 1 << 10,
  unavailable: 1 << 11,
  'reset-before-request': 1 << 12,
};
const B = RETRY_ON_BITS as Record<string, number>;
/** Conditions that retry any reset or timeout of an attempt (Envoy's wouldRetryFromReset). */
const ANY_RESET = B['5xx']! | B['gateway-error']! | B.reset!;

/** The retry_on conditions mesh-agent understands (Envoy's router and gRPC retry conditions). */
export const KNOWN_RETRY_ON: ReadonlySet<string> = new Set(Object.keys(RETRY_ON_BITS));

/** gRPC status codes of the gRPC retry conditions. */
const GRPC_CONDITION: ReadonlyArray<readonly [number, number]> = [
  [1, B.cancelled!],
  [4, B['deadline-exceeded']!],
  [13, B.internal!],
  [8, B['resource-exhausted']!],
  [14, B.unavailable!],
];

export function retryOnBits(conditions: readonly string[]): number {
  let bits = 0;
  for (const condition of conditions) bits |= RETRY_ON_BITS[condition] ?? 0;
  return bits;
}

/**
 * Whether `outcome` is one the policy retries. Responses: 5xx (any status ≥ 500), gateway-error
 * (502/503/504), retriable-4xx (409), retriable-status-codes (the route's list), and the gRPC
 * conditions on a grpc-status carried in the response headers (trailers-only answers). Resets and
 * timeouts of an attempt: 5xx, gateway-error and reset; connect failures also connect-failure;
 * an HTTP/2 REFUSED_STREAM also refused-stream.
 */
export function isRetriable(bits: number, retriableStatusCodes: readonly number[], outcome: RetryableOutcome): boolean {
  switch (outcome.kind) {
    case 'connect-failure':
      return (bits & (ANY_RESET | B['connect-failure']! | B['reset-before-request']!)) !== 0;
    case 'reset':
      return (bits & ANY_RESET) !== 0 || (outcome.refusedStream && (bits & B['refused-stream']!) !== 0);
    case 'timeout':
      return (bits & ANY_RESET) !== 0;
    case 'response': {
      const status = outcome.status;
      if (status >= 500 && (bits & B['5xx']!) !== 0) return true;
      if ((status === 502 || status === 503 || status === 504) && (bits & B['gateway-error']!) !== 0) return true;
      if (status === 409 && (bits & B['retriable-4xx']!) !== 0) return true;
      if ((bits & B['retriable-status-codes']!) !== 0 && retriableStatusCodes.includes(status)) return true;
      const grpc = outcome.grpcStatus;
      if (grpc !== undefined) for (const [code, bit] of GRPC_CONDITION) if (grpc === code && (bits & bit) !== 0) return true;
      return false;
    }
  }
}

/**
 * Envoy's jittered exponential back-off: before retry n (1-based) a uniformly random wait in
 * [0, (2^n − 1) × base), the upper end capped at max_interval.
 */
export function backOffMs(policy: RetryDecision['backOff'], retry: number, random: () => number): number {
  const multiplier = 2 ** Math.min(retry, 30) - 1;
  const ceiling = Math.min(policy.baseIntervalMs * multiplier, policy.maxIntervalMs);
  return Math.floor(random() * ceiling);
}

/** Envoy's previous_hosts retry host predicate, the one Istio configures. */
export const PREVIOUS_HOSTS = 'envoy.retry_host_predicates.previous_hosts';
