// The agent's HTTP routing decision: an xDS RouteConfiguration (as unpackAny decodes it) compiled
// once into a RouteTable whose match() picks Envoy's virtual host and first matching route per request.
import { structToJson, type JsonValue } from '../../lib/xds/struct';
import { PREVIOUS_PRIORITIES } from '../balancing/previous-priorities';
import { KNOWN_RETRY_ON, PREVIOUS_HOSTS } from '../http/retry-policy';
import {
  HeaderMatcher,
  QueryParameterMatcher,
  RouteConfigError,
  checkFields,
  compileRegex,
  readHeader,
  type Decoded,
  type HeaderLookup,
} from './request-matchers';

export { RouteConfigError, type HeaderLookup } from './request-matchers';

/** What routing reads from one request; header names in `headers` are lower-case. */
export interface RequestView {
  readonly authority: string;
  readonly method: string;
  /** The request target: path with query string. */
  readonly path: string;
  readonly headers: HeaderLookup;
  readonly scheme: string;
  /** A uniform number in [0, 1) for runtime_fraction matches; Math.random() when absent. */
  readonly random?: number;
}

/** Envoy's header_append_action names, kept so logs read like Envoy's config. */
export type AppendAction = 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';

export interface HeaderToAdd {
  /** Lower-case. */
  readonly name: string;
  readonly value: string;
  readonly action: AppendAction;
  /** Envoy drops an added header whose value is empty unless this is set. */
  readonly keepEmptyValue: boolean;
}

/** Header changes in the order they are to be applied. */
export interface HeaderMutations {
  readonly add: readonly HeaderToAdd[];
  readonly remove: readonly string[];
}

export interface WeightedCluster {
  readonly name: string;
  readonly weight: number;
  /** Applied before the route's own mutations, as Envoy does for the chosen ClusterWeight. */
  readonly requestHeaders: HeaderMutations;
  readonly responseHeaders: HeaderMutations;
  readonly authority?: string;
}

export type RouteAction =
  | { readonly kind: 'cluster'; readonly cluster: string }
  | { readonly kind: 'weighted'; readonly clusters: readonly WeightedCluster[]; readonly totalWeight: number }
  | { readonly kind: 'redirect'; readonly location: string; readonly status: number }
  | { readonly kind: 'direct'; readonly status: number; readonly body?: Buffer };

export interface RetryDecision {
  readonly numRetries: number;
  readonly perTryTimeoutMs?: number;
  readonly retryOn: readonly string[];
  readonly retriableStatusCodes: readonly number[];
  readonly retryHostPredicates: readonly string[];
  readonly hostSelectionRetryMaxAttempts: number;
  readonly backOff: { readonly baseIntervalMs: number; readonly maxIntervalMs: number };
  /** Envoy's previous_priorities retry priority (Istio's retryRemoteLocalities), when the route has one. */
  readonly previousPriorities?: { readonly updateFrequency: number };
}

export interface FaultDecision {
  readonly delay?: { readonly ms: number; readonly percent: number };
  readonly abort?: { readonly httpStatus?: number; readonly grpcStatus?: number; readonly percent: number };
}

export type HashPolicy =
  | { readonly kind: 'header'; readonly name: string; readonly terminal: boolean }
  | { readonly kind: 'cookie'; readonly name: string; readonly ttlMs?: number; readonly path?: string; readonly terminal: boolean }
  | { readonly kind: 'sourceIp'; readonly terminal: boolean }
  | { readonly kind: 'queryParameter'; readonly name: string; readonly terminal: boolean };

export interface RouteDecision {
  readonly virtualHost: string;
  readonly routeName: string;
  readonly action: RouteAction;
  readonly rewrite: { readonly path?: string; readonly authority?: string };
  readonly requestHeaders: HeaderMutations;
  readonly responseHeaders: HeaderMutations;
  /** Absent when the route disables the timeout (Envoy's 0); Envoy's 15 s when the route sets none. */
  readonly timeoutMs?: number;
  /** Present when grpc-timeout is honoured; 0 means no upper bound. */
  readonly grpcTimeoutHeaderMaxMs?: number;
  readonly retry?: RetryDecision;
  readonly fault?: FaultDecision;
  readonly mirrors: readonly { readonly cluster: string; readonly percent: number }[];
  readonly hashPolicy: readonly HashPolicy[];
  /** filter_metadata as plain JSON, by filter name. */
  readonly metadata: Readonly<Record<string, Record<string, JsonValue>>>;
  /** The route's CORS policy as decoded, for the CORS handling that reads it. */
  readonly cors?: Readonly<Decoded>;
}

export interface CompileOptions {
  /** The listener's HttpConnectionManager strip_any_host_port: match domains on the host alone. */
  readonly stripAnyHostPort?: boolean;
}

/** Envoy's default route timeout when a RouteAction sets none. */
const DEFAULT_TIMEOUT_MS = 15_000;
const FAULT_FILTER = 'envoy.filters.http.fault';
const FAULT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
const FILTER_CONFIG_TYPE = 'type.googleapis.com/envoy.config.route.v3.FilterConfig';

const REDIRECT_STATUS: Readonly<Record<string, number>> = {
  MOVED_PERMANENTLY: 301,
  FOUND: 302,
  SEE_OTHER: 303,
  TEMPORARY_REDIRECT: 307,
  PERMANENT_REDIRECT: 308,
};

const DENOMINATOR: Readonly<Record<string, number>> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

const CONFIG_FIELDS = new Set([
  'name', 'virtual_hosts', 'validate_clusters', 'max_direct_response_body_size_bytes', 'request_headers_to_add', 'request_headers_to_remove',
  'response_headers_to_add', 'response_headers_to_remove', 'internal_only_headers', 'most_specific_header_mutations_wins', 'ignore_port_in_host_matching',
]);
const VHOST_FIELDS = new Set([
  'name', 'domains', 'routes', 'require_tls', 'request_headers_to_add', 'request_headers_to_remove', 'response_headers_to_add',
  'response_headers_to_remove', 'retry_policy', 'typed_per_filter_config',
]);
const ROUTE_FIELDS = new Set([
  'name', 'match', 'route', 'redirect', 'direct_response', 'metadata', 'typed_per_filter_config', 'request_headers_to_add',
  'request_headers_to_remove', 'response_headers_to_add', 'response_headers_to_remove', 'action',
]);
const MATCH_FIELDS = new Set(['prefix', 'path', 'safe_regex', 'path_separated_prefix', 'case_sensitive', 'headers', 'query_parameters', 'runtime_fraction', 'grpc', 'path_specifier']);
const ACTION_FIELDS = new Set([
  'cluster', 'weighted_clusters', 'cluster_specifier', 'prefix_rewrite', 'regex_rewrite', 'host_rewrite_literal', 'host_rewrite_specifier',
  'timeout', 'retry_policy', 'request_mirror_policies', 'hash_policy', 'max_stream_duration', 'cors',
]);
const WEIGHTED_FIELDS = new Set(['clusters', 'total_weight']);
const CLUSTER_WEIGHT_FIELDS = new Set([
  'name', 'weight', 'request_headers_to_add', 'request_headers_to_remove', 'response_headers_to_add', 'response_headers_to_remove',
  'host_rewrite_literal', 'host_rewrite_specifier',
]);
const RETRY_FIELDS = new Set([
  'retry_on', 'num_retries', 'per_try_timeout', 'retriable_status_codes', 'retry_host_predicate', 'host_selection_retry_max_attempts',
  'retry_priority', 'retry_back_off',
]);
const REDIRECT_FIELDS = new Set([
  'https_redirect', 'scheme_redirect', 'host_redirect', 'port_redirect', 'path_redirect', 'prefix_rewrite', 'regex_rewrite', 'response_code',
  'strip_query', 'scheme_rewrite_specifier', 'path_rewrite_specifier',
]);
const DIRECT_FIELDS = new Set(['status', 'body']);
const MIRROR_FIELDS = new Set(['cluster', 'runtime_fraction', 'trace_sampled']);
const HASH_FIELDS = new Set(['header', 'cookie', 'connection_properties', 'query_parameter', 'terminal', 'policy_specifier']);
const FAULT_FIELDS = new Set(['@type', 'delay', 'abort']);
const DELAY_FIELDS = new Set(['fixed_delay', 'percentage', 'fault_delay_secifier']);
const ABORT_FIELDS = new Set(['http_status', 'grpc_status', 'percentage', 'error_type']);
const HEADER_OPTION_FIELDS = new Set(['header', 'append', 'append_action', 'keep_empty_value']);

const EMPTY_MUTATIONS: HeaderMutations = Object.freeze({ add: Object.freeze([]), remove: Object.freeze([]) });
const NO_REWRITE = Object.freeze({});

function list(value: unknown): Decoded[] {
  return Array.isArray(value) ? (value as Decoded[]) : [];
}

function wrapped(value: unknown): unknown {
  return value !== null && typeof value === 'object' ? (value as Decoded).value : undefined;
}

/** google.protobuf.Duration as unpackAny gives it ({seconds: '1', nanos}) in milliseconds. */
function durationMs(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  const d = value as Decoded;
  return Number(d.seconds ?? 0) * 1000 + Math.round(Number(d.nanos ?? 0) / 1e6);
}

/** FractionalPercent as a percentage 0..100; Envoy reads a missing message as 0. */
function percentOf(value: unknown, path: string): number {
  if (value === undefined) return 0;
  const fraction = value as Decoded;
  const denominator = DENOMINATOR[String(fraction.denominator ?? 'HUNDRED')];
  if (denominator === undefined) throw new RouteConfigError(`${path}.denominator`, `unknown denominator ${String(fraction.denominator)}`);
  return Math.min(100, (Number(fraction.numerator ?? 0) / denominator) * 100);
}

// Envoy expands %COMMAND% values from request data; the agent only sends literals, so a value
// that needs expansion is refused rather than sent with the placeholder in it.
const FORMATTER = /%[A-Z_][A-Z0-9_]*(\([^)]*\))?(:[0-9]+)?%/;

function headerMutations(addField: unknown, removeField: unknown, path: string, side: 'request' | 'response'): HeaderMutations {
  const add: HeaderToAdd[] = list(addField).map((option, i) => {
    const where = `${path}.${side}_headers_to_add[${i}]`;
    checkFields(option, HEADER_OPTION_FIELDS, where);
    const header = (option.header ?? {}) as Decoded;
    const name = String(header.key ?? '').toLowerCase();
    if (name === '') throw new RouteConfigError(`${where}.header.key`, 'header name missing');
    let value = '';
    if (typeof header.value === 'string') value = header.value;
    else if (Buffer.isBuffer(header.raw_value)) value = header.raw_value.toString();
    else if (typeof header.raw_value === 'string') value = Buffer.from(header.raw_value, 'base64').toString();
    if (FORMATTER.test(value)) throw new RouteConfigError(`${where}.header.value`, `substitution in ${JSON.stringify(value)} is not supported`);
    let action: AppendAction = 'APPEND_IF_EXISTS_OR_ADD';
    if (typeof option.append_action === 'string') {
      if (!['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS'].includes(option.append_action)) {
        throw new RouteConfigError(`${where}.append_action`, `unknown action ${option.append_action}`);
      }
      action = option.append_action as AppendAction;
    } else if (wrapped(option.append) === false) {
      action = 'OVERWRITE_IF_EXISTS_OR_ADD';
    }
    return { name, value: value.replace(/%%/g, '%'), action, keepEmptyValue: option.keep_empty_value === true };
  });
  const remove = (Array.isArray(removeField) ? (removeField as unknown[]) : []).map((n) => String(n).toLowerCase());
  return add.length === 0 && remove.length === 0 ? EMPTY_MUTATIONS : { add, remove };
}

/** Levels from most to least specific; Envoy applies them in that order unless told to reverse it. */
function combine(levels: HeaderMutations[], mostSpecificWins: boolean): HeaderMutations {
  const ordered = mostSpecificWins ? [...levels].reverse() : levels;
  const add = ordered.flatMap((l) => l.add);
  const remove = ordered.flatMap((l) => l.remove);
  return add.length === 0 && remove.length === 0 ? EMPTY_MUTATIONS : { add, remove };
}

function retryDecision(message: Decoded, path: string): RetryDecision {
  checkFields(message, RETRY_FIELDS, path);
  const backOff = (message.retry_back_off ?? {}) as Decoded;
  const base = durationMs(backOff.base_interval) ?? 25;
  const retryOn = String(message.retry_on ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const condition of retryOn) {
    if (!KNOWN_RETRY_ON.has(condition)) throw new RouteConfigError(`${path}.retry_on`, `condition ${JSON.stringify(condition)} is not one mesh-agent retries on (${[...KNOWN_RETRY_ON].join(', ')})`);
  }
  for (const predicate of list(message.retry_host_predicate)) {
    if (predicate.name !== PREVIOUS_HOSTS) throw new RouteConfigError(`${path}.retry_host_predicate`, `${String(predicate.name)} is not supported by mesh-agent (only ${PREVIOUS_HOSTS})`);
  }
  const previousPriorities = message.retry_priority !== undefined ? previousPrioritiesDecision(message.retry_priority as Decoded, `${path}.retry_priority`) : undefined;
  return {
    ...(previousPriorities ? { previousPriorities } : {}),
    // Envoy retries once when a policy names no count.
    numRetries: Number(wrapped(message.num_retries) ?? 1),
    perTryTimeoutMs: durationMs(message.per_try_timeout) || undefined,
    retryOn,
    retriableStatusCodes: (Array.isArray(message.retriable_status_codes) ? (message.retriable_status_codes as unknown[]) : []).map(Number),
    retryHostPredicates: list(message.retry_host_predicate).map((p) => String(p.name)),
    hostSelectionRetryMaxAttempts: Number(message.host_selection_retry_max_attempts ?? 1),
    backOff: { baseIntervalMs: base, maxIntervalMs: durationMs(backOff.max_interval) ?? base * 10 },
  };
}

// config_type is the name of the oneof holding typed_config, which decoding with oneofs adds.
const RETRY_PRIORITY_FIELDS: ReadonlySet<string> = new Set(['name', 'typed_config', 'config_type']);
const PREVIOUS_PRIORITIES_CONFIG_TYPE = 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig';
const PREVIOUS_PRIORITIES_CONFIG_FIELDS: ReadonlySet<string> = new Set(['@type', 'update_frequency']);

/**
 * A retry_priority: only previous_priorities exists in Envoy, and its config is required, since
 * Envoy validates update_frequency > 0 and would reject the policy without it.
 */
function previousPrioritiesDecision(message: Decoded, path: string): { updateFrequency: number } {
  checkFields(message, RETRY_PRIORITY_FIELDS, path);
  if (message.name !== PREVIOUS_PRIORITIES) throw new RouteConfigError(`${path}.name`, `${String(message.name)} is not supported by mesh-agent (only ${PREVIOUS_PRIORITIES})`);
  const config = message.typed_config as Decoded | undefined;
  if (config === undefined) throw new RouteConfigError(`${path}.typed_config`, `missing: ${PREVIOUS_PRIORITIES} needs a PreviousPrioritiesConfig with update_frequency greater than 0`);
  if (config['@type'] !== PREVIOUS_PRIORITIES_CONFIG_TYPE) throw new RouteConfigError(`${path}.typed_config`, `type ${String(config['@type'] ?? config.type_url)} is not ${PREVIOUS_PRIORITIES_CONFIG_TYPE}`);
  checkFields(config, PREVIOUS_PRIORITIES_CONFIG_FIELDS, `${path}.typed_config`);
  const updateFrequency = Number(config.update_frequency ?? 0);
  if (!Number.isInteger(updateFrequency) || updateFrequency < 1) throw new RouteConfigError(`${path}.typed_config.update_frequency`, `must be greater than 0, got ${String(config.update_frequency ?? 0)}`);
  return { updateFrequency };
}

function faultDecision(config: Decoded, path: string): FaultDecision | undefined {
  let fault = config;
  if (fault['@type'] === FILTER_CONFIG_TYPE) {
    if (fault.disabled === true) return undefined;
    fault = (fault.config ?? {}) as Decoded;
  }
  if (fault['@type'] !== FAULT_TYPE) throw new RouteConfigError(`${path}['@type']`, `expected HTTPFault, got ${String(fault['@type'])}`);
  checkFields(fault, FAULT_FIELDS, path);
  const out: { delay?: FaultDecision['delay']; abort?: FaultDecision['abort'] } = {};
  if (fault.delay !== undefined) {
    const delay = fault.delay as Decoded;
    checkFields(delay, DELAY_FIELDS, `${path}.delay`);
    const ms = durationMs(delay.fixed_delay);
    if (ms === undefined) throw new RouteConfigError(`${path}.delay.fixed_delay`, 'only fixed delays are supported');
    out.delay = { ms, percent: percentOf(delay.percentage, `${path}.delay.percentage`) };
  }
  if (fault.abort !== undefined) {
    const abort = fault.abort as Decoded;
    checkFields(abort, ABORT_FIELDS, `${path}.abort`);
    const percent = percentOf(abort.percentage, `${path}.abort.percentage`);
    if (abort.http_status !== undefined) out.abort = { httpStatus: Number(abort.http_status), percent };
    else if (abort.grpc_status !== undefined) out.abort = { grpcStatus: Number(abort.grpc_status), percent };
    else throw new RouteConfigError(`${path}.abort`, 'abort needs http_status or grpc_status');
  }
  return out.delay || out.abort ? out : undefined;
}

function perFilterFault(perFilter: unknown, path: string): FaultDecision | undefined | null {
  if (perFilter === undefined) return null;
  let fault: FaultDecision | undefined | null = null;
  for (const [filter, config] of Object.entries(perFilter as Record<string, Decoded>)) {
    const where = `${path}.typed_per_filter_config['${filter}']`;
    if (filter === FAULT_FILTER) fault = faultDecision(config, where);
    // An optional config for a filter the agent lacks is ignored, as Envoy ignores it.
    else if (!(config['@type'] === FILTER_CONFIG_TYPE && config.is_optional === true)) throw new RouteConfigError(where, 'the mesh agent has no such HTTP filter');
  }
  return fault;
}

function hashPolicies(value: unknown, path: string): HashPolicy[] {
  return list(value).map((policy, i) => {
    const where = `${path}.hash_policy[${i}]`;
    checkFields(policy, HASH_FIELDS, where);
    const terminal = policy.terminal === true;
    if (policy.header) {
      const header = policy.header as Decoded;
      if (header.regex_rewrite !== undefined) throw new RouteConfigError(`${where}.header.regex_rewrite`, 'not supported');
      return { kind: 'header', name: String(header.header_name).toLowerCase(), terminal };
    }
    if (policy.cookie) {
      const cookie = policy.cookie as Decoded;
      const ttlMs = durationMs(cookie.ttl);
      return { kind: 'cookie', name: String(cookie.name), ...(ttlMs !== undefined ? { ttlMs } : {}), ...(cookie.path ? { path: String(cookie.path) } : {}), terminal };
    }
    if (policy.connection_properties) return { kind: 'sourceIp', terminal };
    if (policy.query_parameter) return { kind: 'queryParameter', name: String((policy.query_parameter as Decoded).name), terminal };
    throw new RouteConfigError(where, 'only header, cookie, connection_properties and query_parameter hashing are supported');
  });
}

/** RE2 substitution (`\1`) in JS replace syntax (`$1`), with `$` in the literal text escaped. */
function substitution(text: string): string {
  return text.replace(/\$/g, '$$$$').replace(/\\(\\|[0-9])/g, (_m, c: string) => (c === '\\' ? '\\' : `$${c}`));
}

interface RegexRewrite {
  readonly pattern: RegExp;
  readonly replacement: string;
}

function regexRewrite(value: unknown, path: string): RegexRewrite | undefined {
  if (value === undefined) return undefined;
  const rewrite = value as Decoded;
  const source = (rewrite.pattern as Decoded | undefined)?.regex;
  if (typeof source !== 'string') throw new RouteConfigError(`${path}.pattern.regex`, 'regex missing');
  let pattern: RegExp;
  try {
    pattern = new RegExp(source, 'g');
  } catch (err) {
    throw new RouteConfigError(`${path}.pattern.regex`, `invalid regex ${JSON.stringify(source)}: ${(err as Error).message}`);
  }
  return { pattern, replacement: substitution(String(rewrite.substitution ?? '')) };
}

const enum PathKind {
  Prefix,
  Exact,
  Regex,
  SeparatedPrefix,
}

interface Redirect {
  readonly scheme?: string;
  readonly host?: string;
  /** `:8443`, or empty for none. */
  readonly port: string;
  readonly path?: string;
  readonly prefixRewrite?: string;
  readonly regexRewrite?: RegexRewrite;
  readonly stripQuery: boolean;
  readonly status: number;
}

interface CompiledRoute {
  readonly name: string;
  readonly pathKind: PathKind;
  /** Lower-cased when not case sensitive. */
  readonly pathValue: string;
  readonly pathRegex?: RegExp;
  readonly caseSensitive: boolean;
  readonly headers: readonly HeaderMatcher[];
  readonly query: readonly QueryParameterMatcher[];
  readonly grpc: boolean;
  /** Probability 0..1 from runtime_fraction; undefined when always. */
  readonly fraction?: number;
  readonly prefixRewrite?: string;
  readonly regexRewrite?: RegexRewrite;
  readonly authority?: string;
  readonly redirect?: Redirect;
  /** Everything of the decision that does not depend on the request. */
  readonly fixed: Omit<RouteDecision, 'rewrite' | 'action'> & { action?: RouteAction };
  /** The whole decision of a route that rewrites nothing, made on its first match and shared after (decisions are read-only). */
  unrewritten?: RouteDecision;
}

interface CompiledVirtualHost {
  readonly name: string;
  readonly routes: readonly CompiledRoute[];
}

interface Wildcard {
  readonly affix: string;
  readonly vhost: CompiledVirtualHost;
}

interface Levels {
  readonly mostSpecificWins: boolean;
  readonly config: { request: HeaderMutations; response: HeaderMutations };
  readonly vhost: { request: HeaderMutations; response: HeaderMutations };
  readonly vhostRetry?: RetryDecision;
  readonly vhostFault: FaultDecision | undefined | null;
  readonly maxBodyBytes: number;
}

function compileMatch(match: Decoded, path: string): Pick<CompiledRoute, 'pathKind' | 'pathValue' | 'pathRegex' | 'caseSensitive' | 'headers' | 'query' | 'grpc' | 'fraction'> {
  checkFields(match, MATCH_FIELDS, path);
  const caseSensitive = wrapped(match.case_sensitive) !== false;
  const fold = (s: string): string => (caseSensitive ? s : s.toLowerCase());
  let pathKind: PathKind;
  let pathValue = '';
  let pathRegex: RegExp | undefined;
  if (typeof match.prefix === 'string') {
    pathKind = PathKind.Prefix;
    pathValue = fold(match.prefix);
  } else if (typeof match.path === 'string') {
    pathKind = PathKind.Exact;
    pathValue = fold(match.path);
  } else if (match.safe_regex !== undefined) {
    pathKind = PathKind.Regex;
    // Envoy: case_sensitive does not apply to safe_regex.
    pathRegex = compileRegex((match.safe_regex as Decoded).regex, `${path}.safe_regex.regex`);
  } else if (typeof match.path_separated_prefix === 'string') {
    pathKind = PathKind.SeparatedPrefix;
    pathValue = fold(match.path_separated_prefix);
  } else {
    throw new RouteConfigError(path, 'needs prefix, path, safe_regex or path_separated_prefix');
  }
  const headers = list(match.headers).map((h, i) => HeaderMatcher.compile(h, `${path}.headers[${i}]`));
  const query = list(match.query_parameters).map((q, i) => QueryParameterMatcher.compile(q, `${path}.query_parameters[${i}]`));
  let fraction: number | undefined;
  if (match.runtime_fraction !== undefined) fraction = percentOf((match.runtime_fraction as Decoded).default_value, `${path}.runtime_fraction.default_value`) / 100;
  return { pathKind, pathValue, pathRegex, caseSensitive, headers, query, grpc: match.grpc !== undefined, fraction };
}

function compileRedirect(redirect: Decoded, path: string): Redirect {
  checkFields(redirect, REDIRECT_FIELDS, path);
  const status = REDIRECT_STATUS[String(redirect.response_code ?? 'MOVED_PERMANENTLY')];
  if (status === undefined) throw new RouteConfigError(`${path}.response_code`, `unknown response code ${String(redirect.response_code)}`);
  let scheme: string | undefined;
  if (redirect.https_redirect === true) scheme = 'https';
  else if (typeof redirect.scheme_redirect === 'string' && redirect.scheme_redirect !== '') scheme = redirect.scheme_redirect.toLowerCase();
  return {
    scheme,
    host: typeof redirect.host_redirect === 'string' && redirect.host_redirect !== '' ? redirect.host_redirect : undefined,
    port: redirect.port_redirect ? `:${Number(redirect.port_redirect)}` : '',
    path: typeof redirect.path_redirect === 'string' && redirect.path_redirect !== '' ? redirect.path_redirect : undefined,
    prefixRewrite: typeof redirect.prefix_rewrite === 'string' ? redirect.prefix_rewrite : undefined,
    regexRewrite: regexRewrite(redirect.regex_rewrite, `${path}.regex_rewrite`),
    stripQuery: redirect.strip_query === true,
    status,
  };
}

function compileWeighted(weighted: Decoded, path: string): RouteAction {
  checkFields(weighted, WEIGHTED_FIELDS, path);
  const clusters: WeightedCluster[] = list(weighted.clusters).map((c, i) => {
    const where = `${path}.clusters[${i}]`;
    checkFields(c, CLUSTER_WEIGHT_FIELDS, where);
    if (typeof c.name !== 'string' || c.name === '') throw new RouteConfigError(`${where}.name`, 'cluster name missing');
    return {
      name: c.name,
      weight: Number(wrapped(c.weight) ?? 0),
      requestHeaders: headerMutations(c.request_headers_to_add, c.request_headers_to_remove, where, 'request'),
      responseHeaders: headerMutations(c.response_headers_to_add, c.response_headers_to_remove, where, 'response'),
      ...(typeof c.host_rewrite_literal === 'string' ? { authority: c.host_rewrite_literal } : {}),
    };
  });
  const totalWeight = clusters.reduce((sum, c) => sum + c.weight, 0);
  if (totalWeight <= 0) throw new RouteConfigError(`${path}.clusters`, 'weights must add up to more than 0');
  const declared = wrapped(weighted.total_weight);
  if (declared !== undefined && Number(declared) !== totalWeight) throw new RouteConfigError(`${path}.total_weight`, `is ${String(declared)}, weights add up to ${totalWeight}`);
  return { kind: 'weighted', clusters, totalWeight };
}

function directBody(body: unknown, path: string, maxBytes: number): Buffer | undefined {
  if (body === undefined) return undefined;
  const source = body as Decoded;
  let bytes: Buffer;
  if (typeof source.inline_string === 'string') bytes = Buffer.from(source.inline_string);
  else if (source.inline_bytes !== undefined) bytes = Buffer.isBuffer(source.inline_bytes) ? source.inline_bytes : Buffer.from(String(source.inline_bytes), 'base64');
  else throw new RouteConfigError(path, 'only inline_string and inline_bytes bodies are supported');
  if (bytes.length > maxBytes) throw new RouteConfigError(path, `body of ${bytes.length} bytes exceeds max_direct_response_body_size_bytes ${maxBytes}`);
  return bytes;
}

function metadataOf(metadata: unknown): Record<string, Record<string, JsonValue>> {
  const out: Record<string, Record<string, JsonValue>> = {};
  const filters = ((metadata as Decoded | undefined)?.filter_metadata ?? {}) as Record<string, unknown>;
  for (const [key, struct] of Object.entries(filters)) out[key] = structToJson(struct);
  return out;
}

function compileRoute(route: Decoded, index: number, vhostName: string, vhostPath: string, levels: Levels): CompiledRoute {
  const name = typeof route.name === 'string' ? route.name : '';
  const path = `${vhostPath}.routes[${name ? JSON.stringify(name) : index}]`;
  checkFields(route, ROUTE_FIELDS, path);
  if (route.match === undefined) throw new RouteConfigError(`${path}.match`, 'missing');
  const matched = compileMatch(route.match as Decoded, `${path}.match`);
  const routeLevel = {
    request: headerMutations(route.request_headers_to_add, route.request_headers_to_remove, path, 'request'),
    response: headerMutations(route.response_headers_to_add, route.response_headers_to_remove, path, 'response'),
  };
  const routeFault = perFilterFault(route.typed_per_filter_config, path);
  const fault = routeFault === null ? levels.vhostFault ?? undefined : routeFault;
  const fixed: { -readonly [K in keyof CompiledRoute['fixed']]: CompiledRoute['fixed'][K] } = {
    virtualHost: vhostName,
    routeName: name,
    requestHeaders: combine([routeLevel.request, levels.vhost.request, levels.config.request], levels.mostSpecificWins),
    responseHeaders: combine([routeLevel.response, levels.vhost.response, levels.config.response], levels.mostSpecificWins),
    mirrors: [],
    hashPolicy: [],
    metadata: metadataOf(route.metadata),
  };
  if (fault) fixed.fault = fault;
  const out: { -readonly [K in keyof CompiledRoute]?: CompiledRoute[K] } = { name, ...matched };

  if (route.route !== undefined) {
    const action = route.route as Decoded;
    const where = `${path}.route`;
    checkFields(action, ACTION_FIELDS, where);
    if (typeof action.cluster === 'string' && action.cluster !== '') fixed.action = { kind: 'cluster', cluster: action.cluster };
    else if (action.weighted_clusters !== undefined) fixed.action = compileWeighted(action.weighted_clusters as Decoded, `${where}.weighted_clusters`);
    else throw new RouteConfigError(where, 'needs cluster or weighted_clusters');
    if (typeof action.prefix_rewrite === 'string' && action.prefix_rewrite !== '') out.prefixRewrite = action.prefix_rewrite;
    out.regexRewrite = regexRewrite(action.regex_rewrite, `${where}.regex_rewrite`);
    if (typeof action.host_rewrite_literal === 'string' && action.host_rewrite_literal !== '') out.authority = action.host_rewrite_literal;
    const timeout = action.timeout === undefined ? DEFAULT_TIMEOUT_MS : durationMs(action.timeout)!;
    if (timeout > 0) fixed.timeoutMs = timeout;
    const stream = action.max_stream_duration as Decoded | undefined;
    if (stream?.grpc_timeout_header_max !== undefined) fixed.grpcTimeoutHeaderMaxMs = durationMs(stream.grpc_timeout_header_max)!;
    if (action.retry_policy !== undefined) fixed.retry = retryDecision(action.retry_policy as Decoded, `${where}.retry_policy`);
    else if (levels.vhostRetry) fixed.retry = levels.vhostRetry;
    fixed.mirrors = list(action.request_mirror_policies).map((m, i) => {
      const at = `${where}.request_mirror_policies[${i}]`;
      checkFields(m, MIRROR_FIELDS, at);
      if (typeof m.cluster !== 'string' || m.cluster === '') throw new RouteConfigError(`${at}.cluster`, 'cluster name missing');
      // No runtime_fraction means every request is mirrored.
      const percent = m.runtime_fraction === undefined ? 100 : percentOf((m.runtime_fraction as Decoded).default_value, `${at}.runtime_fraction.default_value`);
      return { cluster: m.cluster, percent };
    });
    fixed.hashPolicy = hashPolicies(action.hash_policy, where);
    if (action.cors !== undefined) fixed.cors = action.cors as Decoded;
  } else if (route.redirect !== undefined) {
    out.redirect = compileRedirect(route.redirect as Decoded, `${path}.redirect`);
  } else if (route.direct_response !== undefined) {
    const direct = route.direct_response as Decoded;
    checkFields(direct, DIRECT_FIELDS, `${path}.direct_response`);
    const status = Number(direct.status);
    if (!(status >= 200 && status <= 599)) throw new RouteConfigError(`${path}.direct_response.status`, `must be 200..599, got ${String(direct.status)}`);
    const body = directBody(direct.body, `${path}.direct_response.body`, levels.maxBodyBytes);
    fixed.action = body ? { kind: 'direct', status, body } : { kind: 'direct', status };
  } else {
    throw new RouteConfigError(path, 'needs route, redirect or direct_response');
  }
  out.fixed = fixed;
  return out as CompiledRoute;
}

/** `host:port` → `host`, including `[v6]:port`; a bare v6 literal without brackets is left alone. */
function stripPort(authority: string): string {
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    return close > 0 ? authority.slice(0, close + 1) : authority;
  }
  const colon = authority.lastIndexOf(':');
  return colon >= 0 && authority.indexOf(':') === colon ? authority.slice(0, colon) : authority;
}

/** Envoy's fallback for the redirect host: the request's, minus a port the redirect makes wrong. */
function redirectHost(authority: string, scheme: string, requestScheme: string, newPort: string): string {
  const host = stripPort(authority);
  if (host.length === authority.length) return authority;
  if (newPort !== '') return host;
  const port = authority.slice(host.length);
  if (scheme !== requestScheme && ((requestScheme === 'https' && port === ':443') || (requestScheme === 'http' && port === ':80'))) return host;
  return authority;
}

export class RouteTable {
  private constructor(
    readonly name: string,
    private readonly exact: ReadonlyMap<string, CompiledVirtualHost>,
    /** Longest suffix first; ties keep config order. */
    private readonly suffixes: readonly Wildcard[],
    private readonly prefixes: readonly Wildcard[],
    private readonly fallback: CompiledVirtualHost | undefined,
    private readonly stripPorts: boolean,
  ) {}

  /** Compiles a decoded RouteConfiguration; throws a RouteConfigError naming the field it cannot honour. */
  static compile(config: Decoded, options: CompileOptions = {}): RouteTable {
    const name = typeof config.name === 'string' ? config.name : '';
    const root = `route_configuration[${JSON.stringify(name)}]`;
    checkFields(config, CONFIG_FIELDS, root);
    const internalOnly = (Array.isArray(config.internal_only_headers) ? (config.internal_only_headers as unknown[]) : []).map((h) => String(h).toLowerCase());
    const configRequest = headerMutations(config.request_headers_to_add, config.request_headers_to_remove, root, 'request');
    const levelsBase = {
      mostSpecificWins: config.most_specific_header_mutations_wins === true,
      // internal_only_headers are stripped from requests like a config-level remove.
      config: {
        request: internalOnly.length > 0 ? { add: configRequest.add, remove: [...configRequest.remove, ...internalOnly] } : configRequest,
        response: headerMutations(config.response_headers_to_add, config.response_headers_to_remove, root, 'response'),
      },
      maxBodyBytes: Number(wrapped(config.max_direct_response_body_size_bytes) ?? 4096),
    };
    const exact = new Map<string, CompiledVirtualHost>();
    const suffixes: Wildcard[] = [];
    const prefixes: Wildcard[] = [];
    let fallback: CompiledVirtualHost | undefined;
    const seen = new Set<string>();
    for (const vh of list(config.virtual_hosts)) {
      const vhName = typeof vh.name === 'string' ? vh.name : '';
      const path = `virtual_hosts[${JSON.stringify(vhName)}]`;
      checkFields(vh, VHOST_FIELDS, path);
      if (vh.require_tls !== undefined && vh.require_tls !== 'NONE') throw new RouteConfigError(`${path}.require_tls`, 'TLS redirection is not supported');
      const levels: Levels = {
        ...levelsBase,
        vhost: {
          request: headerMutations(vh.request_headers_to_add, vh.request_headers_to_remove, path, 'request'),
          response: headerMutations(vh.response_headers_to_add, vh.response_headers_to_remove, path, 'response'),
        },
        vhostRetry: vh.retry_policy !== undefined ? retryDecision(vh.retry_policy as Decoded, `${path}.retry_policy`) : undefined,
        vhostFault: perFilterFault(vh.typed_per_filter_config, path),
      };
      const compiled: CompiledVirtualHost = { name: vhName, routes: list(vh.routes).map((r, i) => compileRoute(r, i, vhName, path, levels)) };
      const domains = Array.isArray(vh.domains) ? (vh.domains as unknown[]).map((d) => String(d).toLowerCase()) : [];
      if (domains.length === 0) throw new RouteConfigError(`${path}.domains`, 'at least one domain is required');
      for (const domain of domains) {
        if (seen.has(domain)) throw new RouteConfigError(`${path}.domains`, `domain ${JSON.stringify(domain)} is used by an earlier virtual host`);
        seen.add(domain);
        const star = domain.indexOf('*');
        if (star >= 0 && domain !== '*' && domain.indexOf('*', star + 1) >= 0) throw new RouteConfigError(`${path}.domains`, `only one wildcard allowed in ${JSON.stringify(domain)}`);
        if (domain === '*') fallback = compiled;
        else if (star < 0) exact.set(domain, compiled);
        else if (star === 0) suffixes.push({ affix: domain.slice(1), vhost: compiled });
        else if (star === domain.length - 1) prefixes.push({ affix: domain.slice(0, -1), vhost: compiled });
        else throw new RouteConfigError(`${path}.domains`, `wildcard only allowed at the start or end of ${JSON.stringify(domain)}`);
      }
    }
    // Array#sort is stable, so equal lengths keep config order.
    suffixes.sort((a, b) => b.affix.length - a.affix.length);
    prefixes.sort((a, b) => b.affix.length - a.affix.length);
    return new RouteTable(name, exact, suffixes, prefixes, fallback, options.stripAnyHostPort === true || config.ignore_port_in_host_matching === true);
  }

  /** Envoy's order: exact domain, longest `*suffix`, longest `prefix*`, then `*`. */
  selectVirtualHost(authority: string): CompiledVirtualHost | undefined {
    const host = (this.stripPorts ? stripPort(authority) : authority).toLowerCase();
    const exact = this.exact.get(host);
    if (exact) return exact;
    // A wildcard stands for at least one character, so `*.foo.com` does not take `.foo.com`.
    for (const w of this.suffixes) if (host.length > w.affix.length && host.endsWith(w.affix)) return w.vhost;
    for (const w of this.prefixes) if (host.length > w.affix.length && host.startsWith(w.affix)) return w.vhost;
    return this.fallback;
  }

  /** The decision for one request, or undefined when no virtual host or route matches (Envoy's 404). */
  match(request: RequestView): RouteDecision | undefined {
    const vhost = this.selectVirtualHost(request.authority);
    if (!vhost) return undefined;
    const target = request.path;
    let end = target.length;
    const q = target.indexOf('?');
    if (q >= 0) end = q;
    const hash = target.indexOf('#');
    if (hash >= 0 && hash < end) end = hash;
    const path = end === target.length ? target : target.slice(0, end);
    const query = q >= 0 && q === end ? target.slice(q + 1, hash > q ? hash : target.length) : '';
    let lowerPath: string | undefined;
    for (const route of vhost.routes) {
      let subject = path;
      if (!route.caseSensitive && route.pathKind !== PathKind.Regex) subject = lowerPath ??= path.toLowerCase();
      switch (route.pathKind) {
        case PathKind.Prefix:
          if (!subject.startsWith(route.pathValue)) continue;
          break;
        case PathKind.Exact:
          if (subject !== route.pathValue) continue;
          break;
        case PathKind.Regex:
          if (!route.pathRegex!.test(path)) continue;
          break;
        case PathKind.SeparatedPrefix:
          if (!subject.startsWith(route.pathValue) || (subject.length > route.pathValue.length && subject.charCodeAt(route.pathValue.length) !== 47)) continue;
          break;
      }
      if (route.grpc && !(readHeader(request.headers, 'content-type') ?? '').startsWith('application/grpc')) continue;
      let ok = true;
      for (const h of route.headers) if (!h.matches(request)) { ok = false; break; }
      if (!ok) continue;
      for (const qp of route.query) if (!qp.matches(query)) { ok = false; break; }
      if (!ok) continue;
      if (route.fraction !== undefined && !((request.random ?? Math.random()) < route.fraction)) continue;
      return this.decide(route, path, target.slice(end), request);
    }
    return undefined;
  }

  private decide(route: CompiledRoute, path: string, rest: string, request: RequestView): RouteDecision {
    if (route.redirect) {
      const r = route.redirect;
      const scheme = r.scheme ?? request.scheme;
      const host = r.host ?? redirectHost(request.authority, scheme, request.scheme, r.port);
      let newPath: string;
      if (r.path !== undefined) newPath = r.path.includes('?') || r.stripQuery ? r.path : r.path + rest;
      else {
        const rewritten = r.prefixRewrite !== undefined || r.regexRewrite ? rewritePath(route, r.prefixRewrite, r.regexRewrite, path) : path;
        newPath = r.stripQuery ? rewritten : rewritten + rest;
      }
      const action: RouteAction = { kind: 'redirect', location: `${scheme}://${host}${r.port}${newPath}`, status: r.status };
      return { ...route.fixed, action, rewrite: NO_REWRITE };
    }
    let rewrite: RouteDecision['rewrite'] = NO_REWRITE;
    if (route.prefixRewrite !== undefined || route.regexRewrite) {
      const rewritten = rewritePath(route, route.prefixRewrite, route.regexRewrite, path) + rest;
      rewrite = route.authority !== undefined ? { path: rewritten, authority: route.authority } : { path: rewritten };
    } else if (route.authority !== undefined) {
      rewrite = { authority: route.authority };
    } else {
      // Nothing in it depends on the request: copying the fixed part for every request cost more than the rest of matching.
      return (route.unrewritten ??= { ...route.fixed, action: route.fixed.action!, rewrite });
    }
    return { ...route.fixed, action: route.fixed.action!, rewrite };
  }
}

/** Envoy swaps the matched prefix (prefix matches) or the whole path (path and regex matches). */
function rewritePath(route: CompiledRoute, prefix: string | undefined, regex: RegexRewrite | undefined, path: string): string {
  if (regex) return path.replace(regex.pattern, regex.replacement);
  if (route.pathKind === PathKind.Prefix || route.pathKind === PathKind.SeparatedPrefix) return prefix! + path.slice(route.pathValue.length);
  return prefix!;
}

export function compileRouteConfiguration(config: Record<string, unknown>, options?: CompileOptions): RouteTable {
  return RouteTable.compile(config, options);
}

/**
 * The weighted cluster for a uniform `random` in [0, 1): cluster i owns the share
 * [sum of weights before i, sum through i) of the total; undefined for other actions.
 */
export function pickWeightedCluster(decision: RouteDecision, random: number): WeightedCluster | undefined {
  const action = decision.action;
  if (action.kind !== 'weighted') return undefined;
  const point = Math.floor(random * action.totalWeight);
  let upTo = 0;
  for (const cluster of action.clusters) {
    upTo += cluster.weight;
    if (point < upTo) return cluster;
  }
  return action.clusters[action.clusters.length - 1];
}
