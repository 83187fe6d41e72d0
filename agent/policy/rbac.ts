// Envoy RBAC (envoy.filters.http.rbac / envoy.filters.network.rbac, as unpackAny decodes them)
// compiled once into an authorizer over a connection or request view, with Envoy's semantics.
//
// API:
//   const authz = InboundAuthorization.fromChain(chain);   // a decoded virtualInbound filter chain
//   authz.authorizeConnection(view) -> AuthorizationDecision   // TCP chains: network RBAC filters
//   authz.authorizeRequest(view)    -> AuthorizationDecision   // HTTP chains: HTTP RBAC filters
// Filters run in order; the first DENY decides; LOG (Istio's AUDIT) filters only report. A denied
// request gets 403 "RBAC: access denied"; a denied connection is closed. Decisions are built at
// compile time; evaluation allocates only with AUDIT/shadow matches or a path with a query string.
import type { JsonValue } from '../../lib/xds/struct';
import { HeaderMatcher, RouteConfigError, StringMatcher, checkFields, type Decoded, type HeaderLookup } from '../routing/request-matchers';
import { IpRange, IpRangeError } from './ip-range';

/** What connection-level rules read; every inbound stream or plaintext connection has these. */
export interface ConnectionView {
  /** The peer's SPIFFE id from its certificate; undefined for plaintext. */
  readonly sourcePrincipal?: string;
  /** The directly connected peer's address (Envoy's direct_remote_ip). */
  readonly sourceIp: string;
  /** The original client's address when known (x-forwarded-for); defaults to sourceIp. */
  readonly remoteIp?: string;
  readonly destinationIp?: string;
  readonly destinationPort: number;
  /** TLS server name the client asked for, if any. */
  readonly sni?: string;
}

/** Dynamic metadata by filter name; `istio_authn` holds request authentication results. */
export type DynamicMetadata = (filter: string) => Readonly<Record<string, JsonValue>> | undefined;

/** A request adds HTTP attributes; header names in `headers` are lower-case. */
export interface RequestView extends ConnectionView {
  readonly authority: string;
  readonly method: string;
  /** The request target: path with query string. */
  readonly path: string;
  readonly scheme: string;
  readonly headers: HeaderLookup;
  readonly metadata?: DynamicMetadata;
}

export interface AuthorizationDecision {
  readonly allowed: boolean;
  /** The policy that decided: a matching DENY policy, or the ALLOW policy that let it through. */
  readonly policy?: string;
  /** A LOG (AUDIT) policy that matched; reported, never deciding. */
  readonly audit?: string;
  /** What shadow rules (Istio's dry-run) would have decided, when a filter has them. */
  readonly shadow?: { readonly allowed: boolean; readonly policy?: string };
}

/** The body Envoy (and Istio's docs) show for a request RBAC denies. */
export const RBAC_DENIED_BODY = 'RBAC: access denied';
export const RBAC_DENIED_STATUS = 403;

type View = ConnectionView & Partial<Omit<RequestView, keyof ConnectionView>>;
type Predicate = (view: View) => boolean;

const RBAC_HTTP_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
const RBAC_NETWORK_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC';
const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

const RBAC_FIELDS = new Set(['@type', 'rules', 'shadow_rules', 'stat_prefix', 'shadow_rules_stat_prefix', 'rules_stat_prefix', 'track_per_rule_stats', 'enforcement_type', 'delay_deny']);
const RULES_FIELDS = new Set(['action', 'policies', 'audit_logging_options']);
const POLICY_FIELDS = new Set(['permissions', 'principals']);
const PRINCIPAL_FIELDS = new Set([
  'and_ids', 'or_ids', 'any', 'authenticated', 'source_ip', 'direct_remote_ip', 'remote_ip', 'header', 'url_path', 'metadata', 'not_id', 'identifier',
]);
const PERMISSION_FIELDS = new Set([
  'and_rules', 'or_rules', 'any', 'header', 'url_path', 'destination_ip', 'destination_port', 'destination_port_range', 'metadata', 'not_rule',
  'requested_server_name', 'rule',
]);
const METADATA_FIELDS = new Set(['filter', 'path', 'value', 'invert']);
const VALUE_FIELDS = new Set(['null_match', 'double_match', 'string_match', 'bool_match', 'present_match', 'list_match', 'or_match', 'match_pattern']);

function record(value: unknown, path: string): Decoded {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new RouteConfigError(path, 'expected a message');
  return value as Decoded;
}

function list(value: unknown, path: string): Decoded[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new RouteConfigError(path, 'expected a list');
  return value.map((v, i) => record(v, `${path}[${i}]`));
}

function ipRange(message: unknown, path: string): IpRange {
  const m = record(message, path);
  const prefixLen = m.prefix_len === undefined ? undefined : Number((m.prefix_len as Decoded).value ?? 0);
  try {
    const address = String(m.address_prefix ?? '');
    return IpRange.of(address, prefixLen ?? (address.includes(':') ? 128 : 32));
  } catch (error) {
    if (error instanceof IpRangeError) throw new RouteConfigError(path, error.message);
    throw error;
  }
}

/** The path part of a request target (Envoy's url_path matches without query or fragment). */
function pathOnly(target: string): string {
  const q = target.indexOf('?');
  const h = target.indexOf('#');
  const end = q < 0 ? h : h < 0 ? q : Math.min(q, h);
  return end < 0 ? target : target.slice(0, end);
}

function urlPathMatcher(message: unknown, path: string): Predicate {
  const m = record(message, path);
  checkFields(m, new Set(['path', 'rule']), path);
  const matcher = StringMatcher.compile(record(m.path, `${path}.path`), `${path}.path`);
  return (v) => v.path !== undefined && matcher.matches(pathOnly(v.path));
}

function headerPredicate(message: unknown, path: string): Predicate {
  const matcher = HeaderMatcher.compile(record(message, path), path);
  // Connections have no headers: a header rule never matches one (Istio never emits it for TCP).
  return (v) => v.headers !== undefined && matcher.matches(v as RequestView);
}

type ValuePredicate = (value: JsonValue | undefined) => boolean;

/** envoy.type.matcher.v3.ValueMatcher over one metadata value. */
function valueMatcher(message: unknown, path: string): ValuePredicate {
  const m = record(message, path);
  checkFields(m, VALUE_FIELDS, path);
  if (m.string_match !== undefined) {
    const matcher = StringMatcher.compile(record(m.string_match, `${path}.string_match`), `${path}.string_match`);
    return (value) => typeof value === 'string' && matcher.matches(value);
  }
  if (m.bool_match !== undefined) {
    const want = m.bool_match === true;
    return (value) => value === want;
  }
  if (m.present_match !== undefined) {
    const want = m.present_match === true;
    return (value) => (value !== undefined && value !== null) === want;
  }
  if (m.null_match !== undefined) return (value) => value === null;
  if (m.double_match !== undefined) {
    const d = record(m.double_match, `${path}.double_match`);
    if (typeof d.exact === 'number') {
      const exact = d.exact;
      return (value) => value === exact;
    }
    const range = record(d.range, `${path}.double_match.range`);
    const start = Number(range.start ?? -Infinity);
    const end = Number(range.end ?? Infinity);
    return (value) => typeof value === 'number' && value >= start && value < end;
  }
  if (m.list_match !== undefined) {
    const element = valueMatcher(record(m.list_match, `${path}.list_match`).one_of, `${path}.list_match.one_of`);
    // Istio's authn metadata holds every claim as a list; a single string is a one-element list.
    return (value) => {
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (element(value[i])) return true;
        return false;
      }
      return typeof value === 'string' && element(value);
    };
  }
  if (m.or_match !== undefined) {
    const options = list(record(m.or_match, `${path}.or_match`).value_matchers, `${path}.or_match.value_matchers`).map((v, i) => valueMatcher(v, `${path}.or_match.value_matchers[${i}]`));
    return (value) => options.some((o) => o(value));
  }
  throw new RouteConfigError(path, 'value matcher has no supported match');
}

/** envoy.type.matcher.v3.MetadataMatcher over the view's dynamic metadata. */
function metadataPredicate(message: unknown, path: string): Predicate {
  const m = record(message, path);
  checkFields(m, METADATA_FIELDS, path);
  if (typeof m.filter !== 'string' || m.filter === '') throw new RouteConfigError(`${path}.filter`, 'filter name missing');
  const filter = m.filter;
  const keys = list(m.path, `${path}.path`).map((segment, i) => {
    if (typeof segment.key !== 'string') throw new RouteConfigError(`${path}.path[${i}].key`, 'key missing');
    return segment.key;
  });
  const value = valueMatcher(m.value, `${path}.value`);
  const invert = m.invert === true;
  return (v) => {
    let current: JsonValue | undefined = v.metadata?.(filter);
    for (let i = 0; i < keys.length && current !== undefined; i++) {
      current = current !== null && typeof current === 'object' && !Array.isArray(current) ? current[keys[i]!] : undefined;
    }
    return value(current) !== invert;
  };
}

function all(predicates: Predicate[]): Predicate {
  if (predicates.length === 1) return predicates[0]!;
  return (v) => {
    for (let i = 0; i < predicates.length; i++) if (!predicates[i]!(v)) return false;
    return true;
  };
}

function some(predicates: Predicate[]): Predicate {
  if (predicates.length === 1) return predicates[0]!;
  return (v) => {
    for (let i = 0; i < predicates.length; i++) if (predicates[i]!(v)) return true;
    return false;
  };
}

const ALWAYS: Predicate = () => true;

function compilePrincipal(message: Decoded, path: string): Predicate {
  checkFields(message, PRINCIPAL_FIELDS, path);
  if (message.any === true) return ALWAYS;
  if (message.and_ids !== undefined) return all(list(record(message.and_ids, `${path}.and_ids`).ids, `${path}.and_ids.ids`).map((p, i) => compilePrincipal(p, `${path}.and_ids.ids[${i}]`)));
  if (message.or_ids !== undefined) return some(list(record(message.or_ids, `${path}.or_ids`).ids, `${path}.or_ids.ids`).map((p, i) => compilePrincipal(p, `${path}.or_ids.ids[${i}]`)));
  if (message.not_id !== undefined) {
    const inner = compilePrincipal(record(message.not_id, `${path}.not_id`), `${path}.not_id`);
    return (v) => !inner(v);
  }
  if (message.authenticated !== undefined) {
    const auth = record(message.authenticated, `${path}.authenticated`);
    // Without principal_name, any peer with a verified certificate matches.
    if (auth.principal_name === undefined) return (v) => v.sourcePrincipal !== undefined;
    const name = StringMatcher.compile(record(auth.principal_name, `${path}.authenticated.principal_name`), `${path}.authenticated.principal_name`);
    return (v) => v.sourcePrincipal !== undefined && name.matches(v.sourcePrincipal);
  }
  if (message.direct_remote_ip !== undefined || message.source_ip !== undefined) {
    const field = message.direct_remote_ip !== undefined ? 'direct_remote_ip' : 'source_ip';
    const range = ipRange(message[field], `${path}.${field}`);
    return (v) => range.contains(v.sourceIp);
  }
  if (message.remote_ip !== undefined) {
    const range = ipRange(message.remote_ip, `${path}.remote_ip`);
    return (v) => range.contains(v.remoteIp ?? v.sourceIp);
  }
  if (message.header !== undefined) return headerPredicate(message.header, `${path}.header`);
  if (message.url_path !== undefined) return urlPathMatcher(message.url_path, `${path}.url_path`);
  if (message.metadata !== undefined) return metadataPredicate(message.metadata, `${path}.metadata`);
  throw new RouteConfigError(path, 'principal has no supported identifier');
}

function compilePermission(message: Decoded, path: string): Predicate {
  checkFields(message, PERMISSION_FIELDS, path);
  if (message.any === true) return ALWAYS;
  if (message.and_rules !== undefined) return all(list(record(message.and_rules, `${path}.and_rules`).rules, `${path}.and_rules.rules`).map((p, i) => compilePermission(p, `${path}.and_rules.rules[${i}]`)));
  if (message.or_rules !== undefined) return some(list(record(message.or_rules, `${path}.or_rules`).rules, `${path}.or_rules.rules`).map((p, i) => compilePermission(p, `${path}.or_rules.rules[${i}]`)));
  if (message.not_rule !== undefined) {
    const inner = compilePermission(record(message.not_rule, `${path}.not_rule`), `${path}.not_rule`);
    return (v) => !inner(v);
  }
  if (message.destination_port !== undefined) {
    const port = Number(message.destination_port);
    return (v) => v.destinationPort === port;
  }
  if (message.destination_port_range !== undefined) {
    const range = record(message.destination_port_range, `${path}.destination_port_range`);
    const start = Number(range.start ?? 0);
    const end = Number(range.end ?? 0);
    return (v) => v.destinationPort >= start && v.destinationPort < end;
  }
  if (message.destination_ip !== undefined) {
    const range = ipRange(message.destination_ip, `${path}.destination_ip`);
    return (v) => v.destinationIp !== undefined && range.contains(v.destinationIp);
  }
  if (message.requested_server_name !== undefined) {
    const name = StringMatcher.compile(record(message.requested_server_name, `${path}.requested_server_name`), `${path}.requested_server_name`);
    return (v) => v.sni !== undefined && name.matches(v.sni);
  }
  if (message.header !== undefined) return headerPredicate(message.header, `${path}.header`);
  if (message.url_path !== undefined) return urlPathMatcher(message.url_path, `${path}.url_path`);
  if (message.metadata !== undefined) return metadataPredicate(message.metadata, `${path}.metadata`);
  throw new RouteConfigError(path, 'permission has no supported rule');
}

interface CompiledPolicy {
  readonly name: string;
  readonly matches: Predicate;
  /** The decisions this policy makes alone, built once so that deciding allocates nothing. */
  readonly allows: AuthorizationDecision;
  readonly denies: AuthorizationDecision;
}

type Action = 'ALLOW' | 'DENY' | 'LOG';

/** One RBAC `rules` block: an action and its policies, in a stable (name) order. */
class RbacRules {
  private constructor(
    readonly action: Action,
    private readonly policies: readonly CompiledPolicy[],
  ) {}

  static compile(message: unknown, path: string): RbacRules {
    const m = record(message, path);
    checkFields(m, RULES_FIELDS, path);
    const action = (m.action ?? 'ALLOW') as string;
    if (action !== 'ALLOW' && action !== 'DENY' && action !== 'LOG') throw new RouteConfigError(`${path}.action`, `unknown action ${action}`);
    const policies = record(m.policies ?? {}, `${path}.policies`);
    const compiled = Object.keys(policies).sort().map((name) => {
      const at = `${path}.policies[${JSON.stringify(name)}]`;
      const policy = record(policies[name], at);
      checkFields(policy, POLICY_FIELDS, at);
      const permissions = list(policy.permissions, `${at}.permissions`);
      const principals = list(policy.principals, `${at}.principals`);
      // Envoy requires both lists; an empty one could never match, so say so at config time.
      if (permissions.length === 0 || principals.length === 0) throw new RouteConfigError(at, 'a policy needs at least one permission and one principal');
      const permission = some(permissions.map((p, i) => compilePermission(p, `${at}.permissions[${i}]`)));
      const principal = some(principals.map((p, i) => compilePrincipal(p, `${at}.principals[${i}]`)));
      return {
        name,
        matches: (v: View) => permission(v) && principal(v),
        allows: Object.freeze({ allowed: true, policy: name }),
        denies: Object.freeze({ allowed: false, policy: name }),
      };
    });
    return new RbacRules(action, compiled);
  }

  /** The first policy (by name) that matches, or undefined. */
  match(view: View): CompiledPolicy | undefined {
    for (let i = 0; i < this.policies.length; i++) if (this.policies[i]!.matches(view)) return this.policies[i];
    return undefined;
  }
}

interface CompiledFilter {
  readonly rules?: RbacRules;
  readonly shadow?: RbacRules;
}

function compileFilter(config: Decoded, path: string): CompiledFilter {
  checkFields(config, RBAC_FIELDS, path);
  return {
    rules: config.rules === undefined ? undefined : RbacRules.compile(config.rules, `${path}.rules`),
    shadow: config.shadow_rules === undefined ? undefined : RbacRules.compile(config.shadow_rules, `${path}.shadow_rules`),
  };
}

const ALLOWED: AuthorizationDecision = Object.freeze({ allowed: true });
/** An ALLOW filter none of whose policies matched. */
const DENIED: AuthorizationDecision = Object.freeze({ allowed: false });

/** An ordered list of RBAC filters, evaluated as Envoy's filter chain would. */
export class RbacFilterChain {
  private constructor(private readonly filters: readonly CompiledFilter[]) {}

  /** From decoded typed_configs of RBAC filters (HTTP or network), in chain order. */
  static compile(configs: readonly Decoded[], path: string): RbacFilterChain {
    return new RbacFilterChain(configs.map((c, i) => compileFilter(c, `${path}[${i}]`)));
  }

  get empty(): boolean {
    return this.filters.length === 0;
  }

  evaluate(view: View): AuthorizationDecision {
    if (this.filters.length === 0) return ALLOWED;
    let audit: CompiledPolicy | undefined;
    let allowedBy: CompiledPolicy | undefined;
    let deniedBy: CompiledPolicy | undefined;
    let denied = false;
    let shadow: { allowed: boolean; policy?: string } | undefined;
    for (let i = 0; i < this.filters.length && !denied; i++) {
      const { rules, shadow: shadowRules } = this.filters[i]!;
      if (shadowRules && (!shadow || shadow.allowed)) shadow = shadowOutcome(shadowRules, view, shadow);
      if (!rules) continue;
      const matched = rules.match(view);
      if (rules.action === 'LOG') audit ??= matched;
      else if (rules.action === 'DENY') {
        if (matched !== undefined) {
          denied = true;
          deniedBy = matched;
        }
      } else if (matched === undefined) denied = true;
      else allowedBy ??= matched;
    }
    // The common outcomes are decisions built at compile time.
    if (audit === undefined && shadow === undefined) {
      if (denied) return deniedBy ? deniedBy.denies : DENIED;
      return allowedBy ? allowedBy.allows : ALLOWED;
    }
    const decision: { allowed: boolean; policy?: string; audit?: string; shadow?: typeof shadow } = { allowed: !denied };
    const policy = denied ? deniedBy : allowedBy;
    if (policy !== undefined) decision.policy = policy.name;
    if (audit !== undefined) decision.audit = audit.name;
    if (shadow !== undefined) decision.shadow = shadow;
    return decision;
  }
}

/** What shadow rules would decide, folded into the outcome so far (a shadow denial sticks). */
function shadowOutcome(rules: RbacRules, view: View, before: { allowed: boolean; policy?: string } | undefined): { allowed: boolean; policy?: string } | undefined {
  const matched = rules.match(view);
  if (rules.action === 'DENY') return matched !== undefined ? { allowed: false, policy: matched.name } : before;
  if (rules.action === 'ALLOW') return matched === undefined ? { allowed: false } : { allowed: true, policy: matched.name };
  return before ?? (matched ? { allowed: true, policy: matched.name } : undefined);
}

function typeOf(message: Decoded): string | undefined {
  const typed = message.typed_config as Decoded | undefined;
  return typeof typed?.['@type'] === 'string' ? typed['@type'] : undefined;
}

/** The authorization of one inbound chain: network RBAC for connections, HTTP RBAC for requests. */
export class InboundAuthorization {
  private constructor(
    private readonly connection: RbacFilterChain,
    private readonly request: RbacFilterChain,
  ) {}

  /** From a decoded filter chain of virtualInbound; throws RouteConfigError naming the bad field. */
  static fromChain(chain: Decoded, path = 'filter_chain'): InboundAuthorization {
    const network: Decoded[] = [];
    const http: Decoded[] = [];
    list(chain.filters, `${path}.filters`).forEach((filter, i) => {
      const type = typeOf(filter);
      if (type === RBAC_NETWORK_TYPE) network.push(filter.typed_config as Decoded);
      if (type === HCM_TYPE) {
        for (const httpFilter of list((filter.typed_config as Decoded).http_filters, `${path}.filters[${i}].http_filters`)) {
          const httpType = typeOf(httpFilter);
          if (httpType === RBAC_HTTP_TYPE) http.push(httpFilter.typed_config as Decoded);
        }
      }
    });
    return new InboundAuthorization(RbacFilterChain.compile(network, `${path}.network_rbac`), RbacFilterChain.compile(http, `${path}.http_rbac`));
  }

  /** Whether network RBAC filters apply (a decision is then counted as Envoy's rbac.allowed/denied). */
  get enforcesConnections(): boolean {
    return !this.connection.empty;
  }

  /** Whether HTTP RBAC filters apply. */
  get enforcesRequests(): boolean {
    return !this.request.empty;
  }

  /** Decision for a new connection (TCP chains, and the connection before any HTTP request). */
  authorizeConnection(view: ConnectionView): AuthorizationDecision {
    return this.connection.evaluate(view);
  }

  /** Decision for one HTTP request; its `metadata` should carry `istio_authn` from authentication. */
  authorizeRequest(view: RequestView): AuthorizationDecision {
    return this.request.evaluate(view);
  }
}
