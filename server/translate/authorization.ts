// AuthorizationPolicy to Envoy RBAC, as Istio generates it for a sidecar's inbound chain: one RBAC
// filter per action (CUSTOM, AUDIT as LOG, DENY, ALLOW, in that order), one policy per rule named
// `ns[NS]-policy[NAME]-rule[I]`, `from` as principals, `to` as permissions, `when` split by key;
// dry-run policies (annotation istio.io/dry-run) as shadow rules, reported and never enforced.
import type { ConfigResource } from '../config/resource';
import type { AuthorizationPolicySpec, Operation, Rule, Source } from '../kinds/authorization-policy/schema';
import { FilterName, ISTIO_AUTHN_METADATA, ProtoType } from './names';
import { anyOf, cidrRange, type ProtoObject } from './proto-values';

export type AuthorizationPolicyResource = ConfigResource<AuthorizationPolicySpec>;


/** Which side of the RBAC policy a `when` key constrains. */
const DESTINATION_KEYS = new Set(['destination.ip', 'destination.port', 'connection.sni']);

/** Raised while translating one rule when a field cannot apply to TCP traffic. */
class HttpOnlyField extends Error {}

type Action = 'ALLOW' | 'DENY' | 'LOG';

/** Istio's policy name, which Envoy reports as the matched policy (and we in our decisions). */
export function rbacPolicyName(policy: AuthorizationPolicyResource, ruleIndex: number): string {
  return `ns[${policy.metadata.namespace}]-policy[${policy.metadata.name}]-rule[${ruleIndex}]`;
}

// RE2 metacharacters; values become literal parts of regexes.
function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Istio's value forms: `*` any non-empty value, `abc*` prefix, `*abc` suffix, else exact. */
function stringMatcher(value: string, prefix = '', ignoreCase = false): ProtoObject {
  const extra: ProtoObject = ignoreCase ? { ignore_case: true } : {};
  if (value === '*') return { safe_regex: { regex: '.+' } };
  if (value.endsWith('*')) return { prefix: prefix + value.slice(0, -1), ...extra };
  if (value.startsWith('*')) return { suffix: value.slice(1), ...extra };
  return { exact: prefix + value, ...extra };
}

/** A wildcard value as a regex fragment (for namespaces and service accounts inside a SPIFFE id). */
function wildcardRegex(value: string): string {
  if (value === '*') return '[^/]+';
  if (value.endsWith('*')) return `${escapeRegex(value.slice(0, -1))}[^/]*`;
  if (value.startsWith('*')) return `[^/]*${escapeRegex(value.slice(1))}`;
  return escapeRegex(value);
}

/** Istio's path forms plus `{*}` (one segment) and `{**}` (the rest) templates. */
function pathMatcher(value: string): ProtoObject {
  if (value.includes('{')) {
    const regex = value
      .split('/')
      .map((segment) => (segment === '{*}' ? '[^/]+' : segment === '{**}' ? '.*' : escapeRegex(segment)))
      .join('/');
    return { path: { safe_regex: { regex } } };
  }
  return { path: stringMatcher(value) };
}

function authnMetadata(keys: readonly string[], value: ProtoObject): ProtoObject {
  return { metadata: { filter: ISTIO_AUTHN_METADATA, path: keys.map((key) => ({ key })), value } };
}

function headerMatcher(name: string, value: string, ignoreCase = false): ProtoObject {
  if (value === '*') return { header: { name, present_match: true } };
  return { header: { name, string_match: stringMatcher(value, '', ignoreCase) } };
}

/** `request.auth.claims[a][b]` → ['a', 'b']. */
function claimPath(key: string): string[] {
  return [...key.slice('request.auth.claims'.length).matchAll(/\[([^[\]]+)\]/g)].map((m) => m[1]!);
}

/** One source-side value as an RBAC Principal. */
function principalFor(key: string, value: string, trustDomain: string, forTcp: boolean): ProtoObject {
  const httpOnly = (): never => {
    throw new HttpOnlyField(key);
  };
  switch (key) {
    case 'principals':
    case 'source.principal':
      return { authenticated: { principal_name: stringMatcher(value, 'spiffe://') } };
    case 'namespaces':
    case 'source.namespace':
      return { authenticated: { principal_name: { safe_regex: { regex: `.*/ns/${wildcardRegex(value)}/.*` } } } };
    case 'serviceAccounts': {
      // `NAMESPACE/SERVICE_ACCOUNT` inside this trust domain's SPIFFE identities.
      const [ns, sa] = value.includes('/') ? [value.slice(0, value.indexOf('/')), value.slice(value.indexOf('/') + 1)] : ['[^/]+', value];
      const nsRegex = value.includes('/') ? wildcardRegex(ns!) : ns!;
      return { authenticated: { principal_name: { safe_regex: { regex: `spiffe://${escapeRegex(trustDomain)}/ns/${nsRegex}/sa/${wildcardRegex(sa!)}` } } } };
    }
    case 'ipBlocks':
    case 'source.ip':
      return { direct_remote_ip: cidrRange(value) };
    case 'remoteIpBlocks':
    case 'remote.ip':
      return { remote_ip: cidrRange(value) };
    case 'requestPrincipals':
    case 'request.auth.principal':
      if (forTcp) httpOnly();
      return authnMetadata(['request.auth.principal'], { string_match: stringMatcher(value) });
    case 'request.auth.audiences':
    case 'request.auth.presenter':
      if (forTcp) httpOnly();
      // A token may name several audiences; Istio matches any of them.
      return authnMetadata([key], { list_match: { one_of: { string_match: stringMatcher(value) } } });
    default:
      if (key.startsWith('request.headers[')) {
        if (forTcp) httpOnly();
        return headerMatcher(key.slice('request.headers['.length, -1), value);
      }
      if (key.startsWith('request.auth.claims[')) {
        if (forTcp) httpOnly();
        // Claims are lists in Istio's authn metadata (a string claim is a one-element list).
        return authnMetadata(['request.auth.claims', ...claimPath(key)], { list_match: { one_of: { string_match: stringMatcher(value) } } });
      }
      throw new Error(`unknown source attribute ${key}`);
  }
}

/** One destination-side value as an RBAC Permission. */
function permissionFor(key: string, value: string, forTcp: boolean): ProtoObject {
  const httpOnly = (): never => {
    throw new HttpOnlyField(key);
  };
  switch (key) {
    case 'ports':
    case 'destination.port':
      return { destination_port: Number(value) };
    case 'destination.ip':
      return { destination_ip: cidrRange(value) };
    case 'connection.sni':
      return { requested_server_name: stringMatcher(value) };
    case 'hosts':
      if (forTcp) httpOnly();
      return headerMatcher(':authority', value, true);
    case 'methods':
      if (forTcp) httpOnly();
      return headerMatcher(':method', value);
    case 'paths':
      if (forTcp) httpOnly();
      return { url_path: pathMatcher(value) };
    default:
      if (key.startsWith('experimental.envoy.filters.')) {
        // `experimental.envoy.filters.FILTER[key]`: a string in that filter's dynamic metadata.
        const open = key.indexOf('[');
        const filter = key.slice('experimental.'.length, open < 0 ? undefined : open);
        const path = open < 0 ? [] : [...key.slice(open).matchAll(/\[([^[\]]+)\]/g)].map((m) => ({ key: m[1]! }));
        return { metadata: { filter, path, value: { string_match: stringMatcher(value) } } };
      }
      throw new Error(`unknown destination attribute ${key}`);
  }
}

interface FieldValues {
  key: string;
  values?: readonly string[];
  notValues?: readonly string[];
}

/**
 * One field as the AND of "any of values" and "none of notValues". For TCP an HTTP-only field
 * throws: Istio then drops the whole rule of an ALLOW policy (it can only allow less) and ignores
 * just the field in DENY and AUDIT policies (they can only match more).
 */
function fieldMatchers<T>(field: FieldValues, one: (key: string, value: string) => T, or: (list: T[]) => T, not: (m: T) => T, action: Action): T[] {
  const out: T[] = [];
  try {
    if (field.values?.length) out.push(or(field.values.map((v) => one(field.key, v))));
    if (field.notValues?.length) out.push(not(or(field.notValues.map((v) => one(field.key, v)))));
  } catch (error) {
    if (error instanceof HttpOnlyField && action !== 'ALLOW') return [];
    throw error;
  }
  return out;
}

function principalOr(list: ProtoObject[]): ProtoObject {
  return list.length === 1 ? list[0]! : { or_ids: { ids: list } };
}
function permissionOr(list: ProtoObject[]): ProtoObject {
  return list.length === 1 ? list[0]! : { or_rules: { rules: list } };
}

const SOURCE_FIELDS: ReadonlyArray<[keyof Source, keyof Source, string]> = [
  ['principals', 'notPrincipals', 'principals'],
  ['requestPrincipals', 'notRequestPrincipals', 'requestPrincipals'],
  ['namespaces', 'notNamespaces', 'namespaces'],
  ['serviceAccounts', 'notServiceAccounts', 'serviceAccounts'],
  ['ipBlocks', 'notIpBlocks', 'ipBlocks'],
  ['remoteIpBlocks', 'notRemoteIpBlocks', 'remoteIpBlocks'],
];
const OPERATION_FIELDS: ReadonlyArray<[keyof Operation, keyof Operation, string]> = [
  ['hosts', 'notHosts', 'hosts'],
  ['ports', 'notPorts', 'ports'],
  ['methods', 'notMethods', 'methods'],
  ['paths', 'notPaths', 'paths'],
];

/** A rule as one Envoy Policy; undefined when an ALLOW rule cannot apply to TCP. */
function rulePolicy(rule: Rule, action: Action, forTcp: boolean, trustDomain: string): ProtoObject | undefined {
  const sourceConditions = (rule.when ?? []).filter((c) => !DESTINATION_KEYS.has(c.key) && !c.key.startsWith('experimental.'));
  const destinationConditions = (rule.when ?? []).filter((c) => DESTINATION_KEYS.has(c.key) || c.key.startsWith('experimental.'));
  const onePrincipal = (key: string, value: string): ProtoObject => principalFor(key, value, trustDomain, forTcp);
  const onePermission = (key: string, value: string): ProtoObject => permissionFor(key, value, forTcp);
  const notPrincipal = (m: ProtoObject): ProtoObject => ({ not_id: m });
  const notPermission = (m: ProtoObject): ProtoObject => ({ not_rule: m });
  try {
    const conditionPrincipals = sourceConditions.flatMap((c) => fieldMatchers(c, onePrincipal, principalOr, notPrincipal, action));
    const conditionPermissions = destinationConditions.flatMap((c) => fieldMatchers(c, onePermission, permissionOr, notPermission, action));
    const froms: (Source | undefined)[] = rule.from?.length ? rule.from.map((f) => f.source) : [undefined];
    const tos: (Operation | undefined)[] = rule.to?.length ? rule.to.map((t) => t.operation) : [undefined];
    const principals = froms.map((source) => {
      const ids = SOURCE_FIELDS.flatMap(([values, notValues, key]) =>
        fieldMatchers({ key, values: source?.[values], notValues: source?.[notValues] }, onePrincipal, principalOr, notPrincipal, action),
      );
      ids.push(...conditionPrincipals);
      return ids.length === 0 ? { any: true } : { and_ids: { ids } };
    });
    const permissions = tos.map((operation) => {
      const rules = OPERATION_FIELDS.flatMap(([values, notValues, key]) =>
        fieldMatchers({ key, values: operation?.[values], notValues: operation?.[notValues] }, onePermission, permissionOr, notPermission, action),
      );
      rules.push(...conditionPermissions);
      return rules.length === 0 ? { any: true } : { and_rules: { rules } };
    });
    return { permissions, principals };
  } catch (error) {
    if (error instanceof HttpOnlyField) return undefined;
    throw error;
  }
}

/** The RBAC `rules` of one action over the policies that apply to the workload. */
function rbacRules(policies: readonly AuthorizationPolicyResource[], action: Action, forTcp: boolean, trustDomain: string): ProtoObject {
  const out: Record<string, ProtoObject> = {};
  for (const policy of policies) {
    policy.spec.rules?.forEach((rule, i) => {
      const built = rulePolicy(rule, action, forTcp, trustDomain);
      if (built) out[rbacPolicyName(policy, i)] = built;
    });
  }
  return { action, policies: out };
}

/** Istio's `istio.io/dry-run: "true"` annotation: evaluate and report, never enforce. */
export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';

function isDryRun(policy: AuthorizationPolicyResource): boolean {
  return policy.metadata.annotations?.[DRY_RUN_ANNOTATION] === 'true';
}

function actionOf(policy: AuthorizationPolicyResource): NonNullable<AuthorizationPolicySpec['action']> {
  return policy.spec.action ?? 'ALLOW';
}

/**
 * The RBAC filters for one inbound chain (HTTP filters, or network filters for TCP), empty when no
 * policy applies. CUSTOM needs an ext_authz provider, which the mesh does not run: instead of
 * letting those requests through, its rules deny (the analysis reports such policies as errors).
 */
export function buildRbacFilters(policies: readonly AuthorizationPolicyResource[], forTcp: boolean, trustDomain: string): ProtoObject[] {
  const by = (action: string): AuthorizationPolicyResource[] => policies.filter((p) => actionOf(p) === action);
  const filters: ProtoObject[] = [];
  const name = forTcp ? FilterName.rbacNetwork : FilterName.rbacHttp;
  const type = forTcp ? ProtoType.rbacNetwork : ProtoType.rbacHttp;
  const emit = (group: readonly AuthorizationPolicyResource[], action: Action, statPrefix: string): void => {
    if (group.length === 0) return;
    const enforced = group.filter((p) => !isDryRun(p));
    const dryRun = group.filter(isDryRun);
    const config: ProtoObject = {};
    // Without enforced policies there are no `rules`, so dry-run ALLOW policies deny nothing.
    if (enforced.length > 0) config.rules = rbacRules(enforced, action, forTcp, trustDomain);
    if (dryRun.length > 0) {
      config.shadow_rules = rbacRules(dryRun, action, forTcp, trustDomain);
      config.shadow_rules_stat_prefix = `istio_dry_run_${action.toLowerCase()}_`;
    }
    // The network filter requires a stat prefix; Istio uses `tcp.` for it.
    if (forTcp) config.stat_prefix = `tcp.${statPrefix}`;
    filters.push({ name, typed_config: anyOf(type, config) });
  };
  emit(by('CUSTOM'), 'DENY', 'custom.');
  emit(by('AUDIT'), 'LOG', 'audit.');
  emit(by('DENY'), 'DENY', 'deny.');
  // An ALLOW policy whose rules are all absent (or all dropped for TCP) allows nothing.
  emit(by('ALLOW'), 'ALLOW', '');
  return filters;
}
