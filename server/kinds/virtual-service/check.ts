// VirtualService rules a schema cannot express, following Istio's validation: route/redirect/
// directResponse/delegate conflicts, weights summing to 100, durations, regexes, retries, faults.
import type { ReportIssue } from '../../config/kind';
import {
  checkDuration,
  checkExportTo,
  checkHeaderName,
  checkRegexAt,
  checkStringMatch,
  isDns1123Label,
  isFqdn,
  isIp,
  isIpOrCidr,
  isWildcardDomain,
  parseDurationMs,
  reportAt,
  type Segments,
} from '../common';
import type {
  CorsPolicy,
  Destination,
  HTTPFaultInjection,
  HTTPMatchRequest,
  HTTPRedirect,
  HTTPRetry,
  HTTPRewrite,
  HTTPRoute,
  HTTPRouteDestination,
  Headers,
  L4MatchAttributes,
  RouteDestination,
  TLSMatchAttributes,
  VirtualServiceSpec,
} from './schema';

/** Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on conditions that Istio accepts in `retryOn`. */
export const RETRY_ON_POLICIES: ReadonlySet<string> = new Set([
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'retriable-headers',
  'envoy-ratelimited',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
]);

const GRPC_STATUS_NAMES = new Set([
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
]);

const CORS_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE']);

/** The header-match key prefix Istio uses for JWT claim based routing (gateways only). */
const JWT_CLAIM_HEADER_PREFIX = '@request.auth.claims.';

export function checkVirtualService(spec: VirtualServiceSpec, report: ReportIssue): void {
  const hosts = spec.hosts ?? [];
  const gateways = spec.gateways ?? [];
  // A VirtualService without hosts is a delegate: only its HTTP routes are ever used.
  const isDelegate = hosts.length === 0;
  if (isDelegate) {
    if (gateways.length > 0) reportAt(report, ['gateways'], 'delegate virtual service must have no gateways specified', gateways, 'invalid-delegate');
    if (spec.tls?.length) reportAt(report, ['tls'], 'delegate virtual service must have no tls route specified', spec.tls.length, 'invalid-delegate');
    if (spec.tcp?.length) reportAt(report, ['tcp'], 'delegate virtual service must have no tcp route specified', spec.tcp.length, 'invalid-delegate');
  }

  const appliesToMesh = gateways.length === 0 || gateways.includes('mesh');
  const appliesToGateway = gateways.some((g) => g !== 'mesh');
  checkGatewayNames(report, ['gateways'], gateways);

  let hostsValid = true;
  hosts.forEach((host, i) => {
    if (!isWildcardDomain(host) && !isIp(host)) {
      reportAt(report, ['hosts', i], 'host must be a DNS name (optionally with a leading wildcard) or an IP address', host, 'invalid-host');
      hostsValid = false;
    } else if (appliesToMesh && host === '*') {
      reportAt(report, ['hosts', i], 'wildcard host * is not allowed for virtual services bound to the mesh gateway', host, 'invalid-host');
      hostsValid = false;
    }
  });
  if (hostsValid) {
    for (let i = 0; i < hosts.length; i++) {
      for (let j = i + 1; j < hosts.length; j++) {
        if (hostsOverlap(hosts[i]!, hosts[j]!)) {
          reportAt(report, ['hosts', j], `duplicate hosts in virtual service: ${hosts[i]} & ${hosts[j]}`, hosts[j], 'duplicate-host');
        }
      }
    }
  }

  if (!spec.http?.length && !spec.tcp?.length && !spec.tls?.length) {
    reportAt(report, [], 'http, tcp or tls must be provided in virtual service', undefined, 'no-routes');
  }

  spec.http?.forEach((route, i) => checkHTTPRoute(report, ['http', i], route, isDelegate, appliesToGateway));
  spec.tcp?.forEach((route, i) => {
    const at: Segments = ['tcp', i];
    route.match?.forEach((match, j) => checkL4Match(report, [...at, 'match', j], match));
    if (!route.route?.length) reportAt(report, [...at, 'route'], 'TCP route is required', route.route, 'missing-route');
    checkRouteDestinations(report, [...at, 'route'], route.route ?? []);
  });
  spec.tls?.forEach((route, i) => {
    const at: Segments = ['tls', i];
    if (!route.match?.length) reportAt(report, [...at, 'match'], 'TLS route must have at least one match condition', route.match, 'missing-match');
    route.match?.forEach((match, j) => checkTLSMatch(report, [...at, 'match', j], match, hosts));
    if (!route.route?.length) reportAt(report, [...at, 'route'], 'TLS route is required', route.route, 'missing-route');
    checkRouteDestinations(report, [...at, 'route'], route.route ?? []);
  });

  checkExportTo(report, ['exportTo'], spec.exportTo, false);
}

function checkHTTPRoute(report: ReportIssue, at: Segments, http: HTTPRoute, isDelegateService: boolean, appliesToGateway: boolean): void {
  checkRouteConflicts(report, at, http, isDelegateService);

  http.match?.forEach((match, j) => checkHTTPMatch(report, [...at, 'match', j], match, appliesToGateway));

  checkHeaderOperations(report, [...at, 'headers'], http.headers, false);
  checkCorsPolicy(report, [...at, 'corsPolicy'], http.corsPolicy);
  checkFault(report, [...at, 'fault'], http.fault);

  if (http.mirrorPercent !== undefined || http.mirror_percent !== undefined) {
    const key = http.mirrorPercent !== undefined ? 'mirrorPercent' : 'mirror_percent';
    const value = http.mirrorPercent ?? http.mirror_percent!;
    if (value > 100) reportAt(report, [...at, key], 'mirror percent must have a max value of 100', value, 'percent-range');
    reportAt(report, [...at, key], `"${key}" is deprecated, use "mirrorPercentage" instead`, value, 'deprecated-field');
  }
  if (http.mirror) checkDestination(report, [...at, 'mirror'], http.mirror);
  http.mirrors?.forEach((mirror, j) => checkDestination(report, [...at, 'mirrors', j, 'destination'], mirror.destination));

  checkRedirect(report, [...at, 'redirect'], http.redirect);
  if (http.directResponse) {
    const direct = http.directResponse;
    if (direct.status < 200 || direct.status > 599) {
      reportAt(report, [...at, 'directResponse', 'status'], 'status must be in the range 200-599', direct.status, 'invalid-status');
    }
    const bytes = direct.body?.bytes;
    if (bytes !== undefined && !/^[A-Za-z0-9+/]*={0,2}$/.test(bytes)) {
      reportAt(report, [...at, 'directResponse', 'body', 'bytes'], 'bytes must be base64 encoded', bytes, 'invalid-body');
    }
  }
  checkRetries(report, at, http.retries, http.timeout);
  checkRewrite(report, [...at, 'rewrite'], http.rewrite);
  checkAuthorityRewrite(report, at, http);
  checkHTTPRouteDestinations(report, [...at, 'route'], http.route ?? []);
  checkDuration(report, [...at, 'timeout'], http.timeout);
}

function checkRouteConflicts(report: ReportIssue, at: Segments, http: HTTPRoute, isDelegateService: boolean): void {
  const hasRoute = (http.route?.length ?? 0) > 0;
  if (http.delegate && !isDelegateService) {
    // A root route hands the whole request to the delegate VirtualService.
    if (http.redirect) reportAt(report, [...at, 'redirect'], 'a route with delegate must not specify redirect', http.redirect, 'route-conflict');
    if (hasRoute) reportAt(report, [...at, 'route'], 'a route with delegate must not specify route', http.route, 'route-conflict');
    if (http.directResponse) reportAt(report, [...at, 'directResponse'], 'a route with delegate must not specify directResponse', http.directResponse, 'route-conflict');
  } else {
    if (http.delegate && isDelegateService) {
      reportAt(report, [...at, 'delegate'], 'delegate HTTP route cannot contain delegate', http.delegate, 'route-conflict');
    }
    if (http.redirect) {
      if (hasRoute) reportAt(report, [...at, 'route'], 'HTTP route cannot contain both route and redirect', http.route, 'route-conflict');
      if (http.fault) reportAt(report, [...at, 'fault'], 'HTTP route cannot contain both fault and redirect', http.fault, 'route-conflict');
      if (http.rewrite) reportAt(report, [...at, 'rewrite'], 'HTTP route cannot contain both rewrite and redirect', http.rewrite, 'route-conflict');
      if (http.directResponse) reportAt(report, [...at, 'directResponse'], 'HTTP route cannot contain both directResponse and redirect', http.directResponse, 'route-conflict');
    } else if (http.directResponse) {
      if (hasRoute) reportAt(report, [...at, 'route'], 'HTTP route cannot contain both route and directResponse', http.route, 'route-conflict');
      if (http.fault) reportAt(report, [...at, 'fault'], 'HTTP route cannot contain both fault and directResponse', http.fault, 'route-conflict');
      if (http.rewrite) reportAt(report, [...at, 'rewrite'], 'HTTP route cannot contain both rewrite and directResponse', http.rewrite, 'route-conflict');
    } else if (!hasRoute) {
      reportAt(report, at, 'HTTP route needs one of route, redirect, directResponse or delegate', undefined, 'missing-route');
    }
  }
  if (http.mirror && http.mirrors?.length) {
    reportAt(report, [...at, 'mirrors'], 'HTTP route cannot contain both mirror and mirrors', http.mirrors, 'route-conflict');
  }
}

function checkHTTPMatch(report: ReportIssue, at: Segments, match: HTTPMatchRequest, appliesToGateway: boolean): void {
  // An empty uri prefix is meaningful to Envoy (matches everything); for the others it is not.
  checkStringMatch(report, [...at, 'uri'], match.uri, true);
  checkStringMatch(report, [...at, 'scheme'], match.scheme);
  checkStringMatch(report, [...at, 'method'], match.method);
  checkStringMatch(report, [...at, 'authority'], match.authority);
  for (const [name, value] of Object.entries(match.headers ?? {})) {
    if (checkHeaderName(report, [...at, 'headers', name], name)) checkJwtClaimHeader(report, [...at, 'headers', name], name, appliesToGateway);
    checkStringMatch(report, [...at, 'headers', name], value);
  }
  for (const [name, value] of Object.entries(match.withoutHeaders ?? {})) {
    if (checkHeaderName(report, [...at, 'withoutHeaders', name], name)) checkJwtClaimHeader(report, [...at, 'withoutHeaders', name], name, appliesToGateway);
    // `regex: "*"` in withoutHeaders is Istio's spelling of "header absent", not a regex.
    if (value.regex !== '*') checkStringMatch(report, [...at, 'withoutHeaders', name], value);
  }
  for (const [name, value] of Object.entries(match.queryParams ?? {})) {
    checkStringMatch(report, [...at, 'queryParams', name], value);
  }
  checkGatewayNames(report, [...at, 'gateways'], match.gateways ?? []);
  if (match.sourceNamespace !== undefined && !isDns1123Label(match.sourceNamespace)) {
    reportAt(report, [...at, 'sourceNamespace'], 'sourceNamespace must be a valid namespace name', match.sourceNamespace, 'invalid-namespace');
  }
}

function checkJwtClaimHeader(report: ReportIssue, at: Segments, name: string, appliesToGateway: boolean): void {
  if (!appliesToGateway && name.startsWith(JWT_CLAIM_HEADER_PREFIX)) {
    reportAt(report, at, 'JWT claim based routing is only supported for gateways', name, 'jwt-claim-route');
  }
}

function checkL4Match(report: ReportIssue, at: Segments, match: L4MatchAttributes): void {
  match.destinationSubnets?.forEach((subnet, k) => {
    if (!isIpOrCidr(subnet)) reportAt(report, [...at, 'destinationSubnets', k], 'must be an IP address or CIDR block', subnet, 'invalid-address');
  });
  checkGatewayNames(report, [...at, 'gateways'], match.gateways ?? []);
  if (match.sourceNamespace !== undefined && !isDns1123Label(match.sourceNamespace)) {
    reportAt(report, [...at, 'sourceNamespace'], 'sourceNamespace must be a valid namespace name', match.sourceNamespace, 'invalid-namespace');
  }
}

function checkTLSMatch(report: ReportIssue, at: Segments, match: TLSMatchAttributes, hosts: readonly string[]): void {
  checkL4Match(report, at, match);
  const sniHosts = match.sniHosts ?? [];
  if (sniHosts.length === 0) reportAt(report, [...at, 'sniHosts'], 'TLS match must have at least one SNI host', match.sniHosts, 'missing-sni');
  sniHosts.forEach((sni, k) => {
    const where: Segments = [...at, 'sniHosts', k];
    if (!isWildcardDomain(sni)) {
      if (isIp(sni)) reportAt(report, where, 'using an IP address goes against the SNI spec and most clients do not support it', sni, 'ip-sni-host');
      else reportAt(report, where, 'SNI host must be a DNS name', sni, 'invalid-host');
      return;
    }
    if (!hosts.some((host) => hostIsSubsetOf(sni, host))) {
      reportAt(report, where, `SNI host is not a compatible subset of any of the virtual service hosts: [${hosts.join(', ')}]`, sni, 'invalid-sni');
    }
  });
}

/** Istio's gateway reference forms: `mesh`, `namespace/name`, or a legacy FQDN-style name. */
export function checkGatewayNames(report: ReportIssue, at: Segments, names: readonly string[]): void {
  names.forEach((name, i) => {
    if (name === 'mesh') return;
    const slash = name.indexOf('/');
    if (slash < 0) {
      if (!isFqdn(name)) reportAt(report, [...at, i], 'gateway must be "mesh", "namespace/name" or a gateway name', name, 'invalid-gateway');
      else if (name.includes('.')) {
        const parts = name.split('.');
        reportAt(report, [...at, i], `legacy gateway name format; prefer "${parts[1]}/${parts[0]}"`, name, 'legacy-gateway-name');
      }
      return;
    }
    const ns = name.slice(0, slash);
    const gw = name.slice(slash + 1);
    if (!isDns1123Label(ns) || !isDns1123Label(gw)) {
      reportAt(report, [...at, i], 'gateway namespace and name must be DNS labels ("namespace/name")', name, 'invalid-gateway');
    }
  });
}

/** Istio's destination rules: a real (non `*`) host, a DNS-label subset. */
export function checkDestination(report: ReportIssue, at: Segments, destination: Destination): void {
  if (destination.host === '*' || !isWildcardDomain(destination.host)) {
    reportAt(report, [...at, 'host'], 'destination host must be a service name or DNS name (not *)', destination.host, 'invalid-host');
  }
  if (destination.subset !== undefined && !isDns1123Label(destination.subset)) {
    reportAt(report, [...at, 'subset'], 'subset name must be a DNS label', destination.subset, 'invalid-subset');
  }
}

function checkHTTPRouteDestinations(report: ReportIssue, at: Segments, route: readonly HTTPRouteDestination[]): void {
  route.forEach((dest, i) => checkHeaderOperations(report, [...at, i, 'headers'], dest.headers, true));
  checkRouteDestinations(report, at, route);
}

/**
 * Each weight is a percentage; with more than one destination they must add up to 100 (a missing
 * weight counts as 0, as in Istio). The sum is reported at the last destination's weight.
 */
function checkRouteDestinations(report: ReportIssue, at: Segments, route: readonly RouteDestination[]): void {
  let total = 0;
  route.forEach((dest, i) => {
    checkDestination(report, [...at, i, 'destination'], dest.destination);
    const weight = dest.weight ?? 0;
    if (weight < 0 || weight > 100) reportAt(report, [...at, i, 'weight'], 'weight must be in the range 0..100', weight, 'percent-range');
    total += weight;
  });
  if (route.length > 1 && total !== 100) {
    reportAt(report, [...at, route.length - 1, 'weight'], `weights must sum to 100, got ${total}`, total, 'weights-sum');
  }
}

function checkHeaderOperations(report: ReportIssue, at: Segments, headers: Headers | undefined, perDestination: boolean): void {
  if (!headers) return;
  const request = headers.request;
  for (const op of ['set', 'add'] as const) {
    for (const [name, value] of Object.entries(request?.[op] ?? {})) {
      const where: Segments = [...at, 'request', op, name];
      if (!checkHeaderName(report, where, name)) continue;
      // Authority may be rewritten on requests (`:authority`, or `host` per destination); other pseudo-headers never.
      const allowed = perDestination ? name.toLowerCase() === 'host' : isAuthorityHeader(name);
      if (isInternalHeader(name) && !allowed) reportAt(report, where, 'header cannot have ":" prefix', name, 'invalid-header');
      checkHeaderValue(report, where, value);
    }
  }
  request?.remove?.forEach((name, i) => checkModifiableHeader(report, [...at, 'request', 'remove', i], name));
  const response = headers.response;
  for (const op of ['set', 'add'] as const) {
    for (const [name, value] of Object.entries(response?.[op] ?? {})) {
      const where: Segments = [...at, 'response', op, name];
      if (checkModifiableHeader(report, where, name)) checkHeaderValue(report, where, value);
    }
  }
  response?.remove?.forEach((name, i) => checkModifiableHeader(report, [...at, 'response', 'remove', i], name));
}

function checkModifiableHeader(report: ReportIssue, at: Segments, name: string): boolean {
  if (!checkHeaderName(report, at, name)) return false;
  if (name.toLowerCase() === 'host') {
    reportAt(report, at, 'cannot set or remove the Host header here', name, 'invalid-header');
    return false;
  }
  if (name.startsWith(':')) {
    reportAt(report, at, 'header cannot have ":" prefix', name, 'invalid-header');
    return false;
  }
  return true;
}

function checkHeaderValue(report: ReportIssue, at: Segments, value: string): void {
  // Envoy reads %VAR% as a substitution; a lone % makes the whole route configuration invalid.
  if ((value.match(/%/g)?.length ?? 0) % 2 !== 0) {
    reportAt(report, at, 'single % not allowed; escape it as %% or enclose an Envoy variable name in a pair of %', value, 'invalid-header');
  }
}

function isInternalHeader(name: string): boolean {
  return name.startsWith(':') || name.toLowerCase() === 'host';
}
function isAuthorityHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return lower === ':authority' || lower === 'host';
}

function checkAuthorityRewrite(report: ReportIssue, at: Segments, http: HTTPRoute): void {
  let current = http.rewrite?.authority ?? '';
  for (const op of ['set', 'add'] as const) {
    for (const [name, value] of Object.entries(http.headers?.request?.[op] ?? {})) {
      if (!isAuthorityHeader(name)) continue;
      if (current !== '') {
        reportAt(report, [...at, 'headers', 'request', op, name], `authority header cannot be set multiple times: have "${current}"`, value, 'route-conflict');
        return;
      }
      current = value;
    }
  }
}

function checkCorsPolicy(report: ReportIssue, at: Segments, cors: CorsPolicy | undefined): void {
  if (!cors) return;
  cors.allowOrigins?.forEach((origin, i) => {
    const text = origin.exact ?? origin.prefix ?? origin.regex ?? '';
    if (text === '') reportAt(report, [...at, 'allowOrigins', i], 'allowOrigins entries must not be empty', origin, 'invalid-cors');
    else checkRegexAt(report, [...at, 'allowOrigins', i, 'regex'], origin.regex);
  });
  if (cors.allowOrigin !== undefined) {
    reportAt(report, [...at, 'allowOrigin'], '"allowOrigin" is deprecated, use "allowOrigins" instead', cors.allowOrigin, 'deprecated-field');
  }
  cors.allowMethods?.forEach((method, i) => {
    if (!CORS_METHODS.has(method)) reportAt(report, [...at, 'allowMethods', i], 'not a supported HTTP method', method, 'invalid-cors');
  });
  cors.allowHeaders?.forEach((name, i) => checkHeaderName(report, [...at, 'allowHeaders', i], name));
  cors.exposeHeaders?.forEach((name, i) => checkHeaderName(report, [...at, 'exposeHeaders', i], name));
  if (cors.maxAge !== undefined && checkDuration(report, [...at, 'maxAge'], cors.maxAge)) {
    // Access-Control-Max-Age is whole seconds.
    if (parseDurationMs(cors.maxAge)! % 1000 !== 0) {
      reportAt(report, [...at, 'maxAge'], 'maxAge is accurate only to seconds precision', cors.maxAge, 'invalid-duration');
    }
  }
}

function checkFault(report: ReportIssue, at: Segments, fault: HTTPFaultInjection | undefined): void {
  if (!fault) return;
  if (!fault.abort && !fault.delay) {
    reportAt(report, at, 'HTTP fault injection must have an abort and/or a delay', fault, 'invalid-fault');
  }
  const abort = fault.abort;
  if (abort) {
    const where: Segments = [...at, 'abort'];
    checkFaultPercentage(report, [...where, 'percentage', 'value'], abort.percentage?.value);
    if (abort.httpStatus === undefined && abort.grpcStatus === undefined && abort.http2Error === undefined) {
      reportAt(report, where, 'abort needs one of httpStatus or grpcStatus', abort, 'invalid-fault');
    }
    if (abort.httpStatus !== undefined && (abort.httpStatus < 200 || abort.httpStatus > 599)) {
      reportAt(report, [...where, 'httpStatus'], 'HTTP status must be in the range 200-599', abort.httpStatus, 'invalid-status');
    }
    if (abort.grpcStatus !== undefined && !GRPC_STATUS_NAMES.has(abort.grpcStatus)) {
      reportAt(report, [...where, 'grpcStatus'], 'grpcStatus must be a gRPC status code name such as UNAVAILABLE', abort.grpcStatus, 'invalid-status');
    }
    if (abort.http2Error !== undefined) {
      reportAt(report, [...where, 'http2Error'], 'HTTP/2 abort fault injection is not supported', abort.http2Error, 'unsupported-field');
    }
  }
  const delay = fault.delay;
  if (delay) {
    const where: Segments = [...at, 'delay'];
    checkFaultPercentage(report, [...where, 'percentage', 'value'], delay.percentage?.value);
    if (delay.percent !== undefined) {
      if (delay.percent < 0 || delay.percent > 100) reportAt(report, [...where, 'percent'], 'percentage must be in the range 0..100', delay.percent, 'percent-range');
      reportAt(report, [...where, 'percent'], '"percent" is deprecated, use "percentage.value" instead', delay.percent, 'deprecated-field');
    }
    if (delay.fixedDelay !== undefined) checkDuration(report, [...where, 'fixedDelay'], delay.fixedDelay);
    else if (delay.exponentialDelay !== undefined) {
      reportAt(report, [...where, 'exponentialDelay'], 'exponentialDelay is not supported', delay.exponentialDelay, 'unsupported-field');
    } else reportAt(report, where, 'delay needs fixedDelay', delay, 'invalid-fault');
  }
}

/** Istio's validatePercentage: 0, or within [0.0001, 100] (Envoy's resolution is a millionth). */
function checkFaultPercentage(report: ReportIssue, at: Segments, value: number | undefined): void {
  if (value === undefined) return;
  if (value < 0 || value > 100 || (value > 0 && value < 0.0001)) {
    reportAt(report, at, 'percentage must be 0 or in the range 0.0001..100', value, 'percent-range');
  }
}

function checkRedirect(report: ReportIssue, at: Segments, redirect: HTTPRedirect | undefined): void {
  if (!redirect) return;
  if (!redirect.uri && !redirect.authority && !redirect.scheme && redirect.port === undefined && redirect.derivePort === undefined) {
    reportAt(report, at, 'redirect must specify uri, authority, scheme, port or derivePort', redirect, 'invalid-redirect');
  }
  if (redirect.redirectCode !== undefined && redirect.redirectCode !== 0 && (redirect.redirectCode < 300 || redirect.redirectCode > 399)) {
    reportAt(report, [...at, 'redirectCode'], 'redirectCode must be a 3xx status', redirect.redirectCode, 'invalid-redirect');
  }
  if (redirect.scheme !== undefined && redirect.scheme !== '' && redirect.scheme !== 'http' && redirect.scheme !== 'https') {
    reportAt(report, [...at, 'scheme'], 'redirect scheme must be "http" or "https"', redirect.scheme, 'invalid-redirect');
  }
}

function checkRewrite(report: ReportIssue, at: Segments, rewrite: HTTPRewrite | undefined): void {
  if (!rewrite) return;
  if (!rewrite.uri && !rewrite.authority && !rewrite.uriRegexRewrite) {
    reportAt(report, at, 'rewrite must specify uri, authority or uriRegexRewrite', rewrite, 'invalid-rewrite');
  }
  if (rewrite.uri && rewrite.uriRegexRewrite) {
    reportAt(report, [...at, 'uriRegexRewrite'], 'rewrite may only contain one of uri or uriRegexRewrite', rewrite.uriRegexRewrite, 'invalid-rewrite');
  }
  const regexRewrite = rewrite.uriRegexRewrite;
  if (regexRewrite) {
    if (!regexRewrite.match) reportAt(report, [...at, 'uriRegexRewrite', 'match'], 'uriRegexRewrite requires match', regexRewrite.match, 'invalid-rewrite');
    else checkRegexAt(report, [...at, 'uriRegexRewrite', 'match'], regexRewrite.match);
    if (regexRewrite.rewrite === undefined) reportAt(report, [...at, 'uriRegexRewrite', 'rewrite'], 'uriRegexRewrite requires rewrite', undefined, 'invalid-rewrite');
  }
}

function checkRetries(report: ReportIssue, routeAt: Segments, retries: HTTPRetry | undefined, timeout: string | undefined): void {
  if (!retries) return;
  const at: Segments = [...routeAt, 'retries'];
  const attempts = retries.attempts ?? 0;
  if (attempts < 0) reportAt(report, [...at, 'attempts'], 'attempts cannot be negative', attempts, 'invalid-retries');
  if (attempts === 0 && (retries.perTryTimeout !== undefined || (retries.retryOn ?? '') !== '' || retries.retryRemoteLocalities !== undefined)) {
    reportAt(report, [...at, 'attempts'], 'retry policy configured while attempts is 0 (retries disabled)', attempts, 'invalid-retries');
  }
  if (retries.retryRemoteLocalities === true && attempts === 1) {
    // Istio configures previous_priorities with update_frequency 2: the priorities tried are left
    // out from the third attempt on, so a single retry still goes by the original loads.
    reportAt(report, [...at, 'attempts'], 'retryRemoteLocalities has no effect with 1 attempt: the localities already tried are left out from the third attempt on (Istio\'s update_frequency 2); set attempts to 2 or more', attempts, 'retry-remote-localities-without-effect');
  }
  const perTryOk = checkDuration(report, [...at, 'perTryTimeout'], retries.perTryTimeout);
  checkDuration(report, [...at, 'backoff'], retries.backoff);
  if (retries.retryOn !== undefined && retries.retryOn !== '') {
    for (const raw of retries.retryOn.split(',')) {
      const policy = raw.trim();
      const code = /^[0-9]{3}$/.test(policy) ? Number(policy) : NaN;
      if (!RETRY_ON_POLICIES.has(policy) && !(code >= 100 && code <= 599)) {
        reportAt(report, [...at, 'retryOn'], `"${policy}" is not a valid retryOn policy`, retries.retryOn, 'invalid-retry-on');
      }
    }
  }
  // Envoy caps every attempt at the route timeout, so a longer per-try timeout never takes effect.
  if (perTryOk && retries.perTryTimeout !== undefined && timeout !== undefined) {
    const perTry = parseDurationMs(retries.perTryTimeout)!;
    const total = parseDurationMs(timeout);
    if (total !== undefined && total > 0 && perTry > total) {
      reportAt(report, [...at, 'perTryTimeout'], `perTryTimeout is longer than the route timeout ${timeout}`, retries.perTryTimeout, 'per-try-timeout-exceeds-timeout');
    }
  }
}

function hostsOverlap(a: string, b: string): boolean {
  if (a === b) return true;
  return (a.startsWith('*') && wildcardCovers(a, b)) || (b.startsWith('*') && wildcardCovers(b, a));
}

function wildcardCovers(wildcard: string, other: string): boolean {
  const suffix = wildcard.slice(1);
  return other.startsWith('*') ? other.slice(1).endsWith(suffix) : other.endsWith(suffix);
}

/** True when every name `sni` matches is also matched by `host` (Istio's host.Name.SubsetOf). */
function hostIsSubsetOf(sni: string, host: string): boolean {
  if (sni === host) return true;
  if (!host.startsWith('*')) return false;
  const suffix = host.slice(1);
  return sni.startsWith('*') ? sni.slice(1).endsWith(suffix) : sni.endsWith(suffix);
}
