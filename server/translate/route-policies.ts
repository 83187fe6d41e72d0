// The per-route policies of a VirtualService HTTP route in Envoy's terms, following Istio: retry
// policy (with Istio's defaults), fault injection (per-route HTTPFault), request mirroring,
// header operations, CORS, timeouts and the consistent-hash policy of the destination.
import { anyOf, durationFromText, fractionalPercentFromInteger, fractionalPercentFromPercent, wrap, ZERO_DURATION, type ProtoObject } from './proto-values';
import { stringMatcher } from './route-match';
import type { ClientFlavor } from './clusters';
import type { ConsistentHashLB, CorsPolicy, Headers, HTTPFaultInjection, HTTPRetry, Percent } from './specs';

/** Istio's default retry conditions when a route sets no `retries`. */
export const DEFAULT_RETRY_ON = 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';
export const DEFAULT_RETRY_ATTEMPTS = 2;

/**
 * Prefer hosts not tried yet. Only the extension name is given: its typed config
 * (envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate) is not among the protos
 * lib/xds/protos.ts loads, and an unloaded type would be encoded as an empty Any.
 */
export const RETRY_PREVIOUS_HOSTS = { name: 'envoy.retry_host_predicates.previous_hosts' };
/**
 * Istio's retryRemoteLocalities: the priorities of the first two attempts are excluded from the
 * third on (update_frequency 2, Istio's value); Envoy requires the config (update_frequency > 0).
 */
export function retryPreviousPriorities(): ProtoObject {
  return {
    name: 'envoy.retry_priorities.previous_priorities',
    typed_config: anyOf('envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig', { update_frequency: 2 }),
  };
}

function isHttpStatus(text: string): boolean {
  if (!/^[0-9]{3}$/.test(text)) return false;
  const code = Number(text);
  return code >= 100 && code <= 599;
}

/** Splits Istio's retryOn into Envoy conditions and retriable status codes (numbers in the list). */
export function parseRetryOn(retryOn: string): { retryOn: string; codes: number[] } {
  const conditions: string[] = [];
  const codes: number[] = [];
  for (const raw of retryOn.split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    if (isHttpStatus(part)) codes.push(Number(part));
    else conditions.push(part);
  }
  let joined = conditions.join(',');
  if (codes.length > 0 && !conditions.includes('retriable-status-codes')) joined = joined ? `${joined},retriable-status-codes` : 'retriable-status-codes';
  return { retryOn: joined, codes };
}

/**
 * Istio's retry.ConvertPolicy: no `retries` → the default policy; `attempts` 0 (or absent) →
 * no retries; otherwise the default with the route's fields. With consistent hashing the
 * previous-hosts predicate is left out so retries stay on the hashed host.
 */
export function retryPolicy(retries: HTTPRetry | undefined, consistentHash: boolean): ProtoObject | undefined {
  const out: ProtoObject = {
    retry_on: DEFAULT_RETRY_ON,
    num_retries: wrap(DEFAULT_RETRY_ATTEMPTS),
    retriable_status_codes: [503],
    host_selection_retry_max_attempts: 5,
  };
  if (!consistentHash) out.retry_host_predicate = [RETRY_PREVIOUS_HOSTS];
  if (!retries) return out;
  if ((retries.attempts ?? 0) <= 0) return undefined;
  out.num_retries = wrap(retries.attempts!);
  if (retries.retryOn) {
    const { retryOn, codes } = parseRetryOn(retries.retryOn);
    out.retry_on = retryOn;
    out.retriable_status_codes = codes;
  }
  const perTry = durationFromText(retries.perTryTimeout);
  if (perTry) out.per_try_timeout = perTry;
  if (retries.retryIgnorePreviousHosts !== undefined) {
    if (retries.retryIgnorePreviousHosts) out.retry_host_predicate = [RETRY_PREVIOUS_HOSTS];
    else delete out.retry_host_predicate;
  }
  if (retries.retryRemoteLocalities) out.retry_priority = retryPreviousPriorities();
  const backoff = durationFromText(retries.backoff);
  if (backoff) out.retry_back_off = { base_interval: backoff };
  return out;
}

/** gRPC status names Istio accepts for `abort.grpcStatus`, by code. */
const GRPC_STATUS: Readonly<Record<string, number>> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
};

export function grpcStatusCode(status: string): number | undefined {
  if (/^[0-9]+$/.test(status)) return Number(status);
  return GRPC_STATUS[status.toUpperCase()];
}

/**
 * Istio's TranslateFault → envoy.extensions.filters.http.fault.v3.HTTPFault. Percentages use a
 * MILLION denominator; the deprecated integer `percent` a HUNDRED one. A missing percentage
 * injects nothing (Istio's documented default). Exponential delays and http2Error aborts are not
 * supported by Istio either and are dropped.
 */
export function faultFilterConfig(fault: HTTPFaultInjection): ProtoObject | undefined {
  const out: ProtoObject = {};
  const delay = fault.delay;
  if (delay) {
    const fixed = durationFromText(delay.fixedDelay);
    if (fixed) {
      out.delay = {
        fixed_delay: fixed,
        percentage: delay.percentage ? fractionalPercentFromPercent(delay.percentage.value ?? 0) : fractionalPercentFromInteger(delay.percent ?? 0),
      };
    }
  }
  const abort = fault.abort;
  if (abort) {
    const result: ProtoObject = {};
    if (abort.httpStatus !== undefined) result.http_status = abort.httpStatus;
    else if (abort.grpcStatus !== undefined && grpcStatusCode(abort.grpcStatus) !== undefined) result.grpc_status = grpcStatusCode(abort.grpcStatus);
    if (result.http_status !== undefined || result.grpc_status !== undefined) {
      // As for the delay, no percentage is an explicit 0%: Envoy reads the unset field so, but gRPC
      // rejects an abort without one, and with it the client's whole RouteConfiguration.
      result.percentage = abort.percentage ? fractionalPercentFromPercent(abort.percentage.value ?? 0) : fractionalPercentFromInteger(0);
      out.abort = result;
    }
  }
  return out.delay || out.abort ? out : undefined;
}

/** Istio's MirrorPercent: an explicit 0 turns mirroring off; nothing given means 100%. */
export function mirrorFraction(percentage: Percent | undefined, legacyPercent?: number): ProtoObject | undefined {
  if (percentage) {
    const value = percentage.value ?? 0;
    return value > 0 ? { default_value: fractionalPercentFromPercent(value) } : undefined;
  }
  if (legacyPercent !== undefined) return legacyPercent > 0 ? { default_value: fractionalPercentFromInteger(legacyPercent) } : undefined;
  return { default_value: fractionalPercentFromInteger(100) };
}

export interface HeaderOperationsOut {
  requestHeadersToAdd: ProtoObject[];
  requestHeadersToRemove: string[];
  responseHeadersToAdd: ProtoObject[];
  responseHeadersToRemove: string[];
  /** From a set/add of `:authority` or `host`, which Envoy can only honour as a host rewrite. */
  authority?: string;
}

const isInternalHeader = (key: string): boolean => key.startsWith(':') || key.toLowerCase() === 'host';
const isAuthorityHeader = (key: string): boolean => key.toLowerCase() === ':authority' || key.toLowerCase() === 'host';

function headerValues(headers: Record<string, string> | undefined, append: boolean): { options: ProtoObject[]; authority?: string } {
  let authority: string | undefined;
  const options: ProtoObject[] = [];
  for (const key of Object.keys(headers ?? {}).sort()) {
    const value = headers![key]!;
    if (isAuthorityHeader(key)) authority = value;
    if (isInternalHeader(key)) continue;
    options.push({ header: { key, value }, append_action: append ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD' });
  }
  return { options, authority };
}

/** Istio's TranslateHeadersOperations: `set` overwrites, `add` appends, `remove` removes. */
export function headerOperations(headers: Headers | undefined): HeaderOperationsOut {
  const requestSet = headerValues(headers?.request?.set, false);
  const requestAdd = headerValues(headers?.request?.add, true);
  const responseSet = headerValues(headers?.response?.set, false);
  const responseAdd = headerValues(headers?.response?.add, true);
  return {
    requestHeadersToAdd: [...requestSet.options, ...requestAdd.options],
    requestHeadersToRemove: (headers?.request?.remove ?? []).filter((k) => !isInternalHeader(k)),
    responseHeadersToAdd: [...responseSet.options, ...responseAdd.options],
    responseHeadersToRemove: (headers?.response?.remove ?? []).filter((k) => !isInternalHeader(k)),
    authority: requestSet.authority ?? requestAdd.authority,
  };
}

/** Copies non-empty header operations onto a Route or a weighted ClusterWeight. */
export function applyHeaderOperations(target: ProtoObject, ops: HeaderOperationsOut): void {
  const append = (field: string, values: unknown[]): void => {
    if (values.length === 0) return;
    target[field] = [...((target[field] as unknown[] | undefined) ?? []), ...values];
  };
  append('request_headers_to_add', ops.requestHeadersToAdd);
  append('request_headers_to_remove', ops.requestHeadersToRemove);
  append('response_headers_to_add', ops.responseHeadersToAdd);
  append('response_headers_to_remove', ops.responseHeadersToRemove);
}

/**
 * Istio's TranslateCORSPolicy, as the route-level envoy.config.route.v3.CorsPolicy: the CORS
 * filter's own per-route type (envoy.extensions.filters.http.cors.v3) is not among the loaded protos.
 */
export function corsPolicy(cors: CorsPolicy): ProtoObject {
  const out: ProtoObject = {
    forward_not_matching_preflights: wrap(cors.unmatchedPreflights !== 'IGNORE'),
    filter_enabled: { default_value: { numerator: 100, denominator: 'HUNDRED' } },
  };
  if (cors.allowOrigins) out.allow_origin_string_match = cors.allowOrigins.map(stringMatcher).filter((m) => m !== undefined);
  else if (cors.allowOrigin) out.allow_origin_string_match = cors.allowOrigin.map((exact) => ({ exact }));
  if (cors.allowCredentials !== undefined) out.allow_credentials = wrap(cors.allowCredentials);
  if (cors.allowHeaders) out.allow_headers = cors.allowHeaders.join(',');
  if (cors.allowMethods) out.allow_methods = cors.allowMethods.join(',');
  if (cors.exposeHeaders) out.expose_headers = cors.exposeHeaders.join(',');
  const maxAge = durationFromText(cors.maxAge);
  if (maxAge) out.max_age = String(maxAge.seconds);
  return out;
}

/**
 * Istio's setTimeout: the route's timeout or 0 (disabled). Envoy clients also let a gRPC
 * `grpc-timeout` header apply up to the same bound; gRPC clients read max_stream_duration only.
 */
export function applyTimeout(action: ProtoObject, timeout: string | undefined, flavor: ClientFlavor): void {
  const value = durationFromText(timeout) ?? ZERO_DURATION;
  action.timeout = value;
  action.max_stream_duration = flavor === 'grpc' ? { max_stream_duration: value } : { max_stream_duration: value, grpc_timeout_header_max: value };
}

/** Istio's consistentHashToHashPolicy. */
export function hashPolicy(hash: ConsistentHashLB | undefined): ProtoObject | undefined {
  if (!hash) return undefined;
  if (hash.httpHeaderName !== undefined) return { header: { header_name: hash.httpHeaderName } };
  if (hash.httpCookie) {
    const cookie: ProtoObject = { name: hash.httpCookie.name };
    const ttl = durationFromText(hash.httpCookie.ttl);
    if (ttl) cookie.ttl = ttl;
    if (hash.httpCookie.path) cookie.path = hash.httpCookie.path;
    return { cookie };
  }
  if (hash.useSourceIp) return { connection_properties: { source_ip: true } };
  if (hash.httpQueryParameterName !== undefined) return { query_parameter: { name: hash.httpQueryParameterName } };
  return undefined;
}
