// Responses the agent makes itself, with Envoy's status, response flag and short body for each
// reason, so that clients and access logs read the same as behind an Envoy sidecar.

export interface LocalReply {
  readonly status: number;
  /** Envoy's short response flag, as in Istio's access log. */
  readonly flag: string;
  readonly body: string;
}

export const NO_ROUTE: LocalReply = { status: 404, flag: 'NR', body: '' };
export const NO_HEALTHY_UPSTREAM: LocalReply = { status: 503, flag: 'UH', body: 'no healthy upstream' };
export const NO_CLUSTER: LocalReply = { status: 503, flag: 'NC', body: 'cluster not found' };
export const CONNECT_FAILURE: LocalReply = {
  status: 503,
  flag: 'UF',
  body: 'upstream connect error or disconnect/reset before headers. reset reason: connection failure',
};
export const CONNECTION_TERMINATION: LocalReply = {
  status: 503,
  flag: 'UC',
  body: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination',
};
export const UPSTREAM_TIMEOUT: LocalReply = { status: 504, flag: 'UT', body: 'upstream request timeout' };
/** A circuit breaker limit reached (max_requests, max_pending_requests, max_connections): refused at once. */
export const OVERFLOW: LocalReply = {
  status: 503,
  flag: 'UO',
  body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow',
};
