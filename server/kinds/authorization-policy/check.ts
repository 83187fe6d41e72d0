// AuthorizationPolicy rules beyond the schema, following Istio's validation: CUSTOM needs a provider
// (and is reported as not supported: no ext_authz here) and others must not have one, non-empty sources/operations, valid IPs/ports/conditions, and only
// the exact/prefix/suffix/presence (`*`) value forms Istio matches on.
import type { ReportIssue } from '../../config/kind';
import { checkPolicyTargets, isIpOrCidr, isValidPort, reportAt, type Segments } from '../common';
import type { AuthorizationPolicySpec, Condition, Operation, Source } from './schema';

const SOURCE_FIELDS = [
  'principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces',
  'serviceAccounts', 'notServiceAccounts', 'ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks',
] as const satisfies readonly (keyof Source)[];
const OPERATION_FIELDS = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'] as const satisfies readonly (keyof Operation)[];

/** Fields matched as strings with Istio's `*` forms (IPs and ports have their own syntax). */
const WILDCARD_FIELDS = new Set<string>([
  'principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces',
  'serviceAccounts', 'notServiceAccounts', 'hosts', 'notHosts', 'methods', 'notMethods',
]);
const IP_FIELDS = new Set<string>(['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks']);

/** Source fields the CUSTOM action (ext_authz) cannot evaluate before calling the provider. */
const CUSTOM_UNSUPPORTED_SOURCE = ['namespaces', 'notNamespaces', 'principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals'] as const;

// RFC 7230 token characters.
const METHOD_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export function checkAuthorizationPolicy(spec: AuthorizationPolicySpec, report: ReportIssue): void {
  checkPolicyTargets(report, spec);
  const action = spec.action ?? 'ALLOW';

  if (action === 'CUSTOM') {
    // Never let a CUSTOM policy look enforced: the agent has no ext_authz client to ask.
    reportAt(report, ['action'], `CUSTOM (external authorization through provider ${JSON.stringify(spec.provider?.name ?? '')}) is not supported by mesh-agent; express the rules as ALLOW or DENY policies (were it applied, its rules would deny the requests they match)`, action, 'custom-not-supported');
    if (spec.rules === undefined) {
      reportAt(report, ['rules'], 'CUSTOM action without rules is meaningless as it will never be triggered; add an empty rule {} to trigger it for every request', undefined, 'missing-rules');
    }
    if (!spec.provider?.name) reportAt(report, ['provider', 'name'], 'CUSTOM action requires provider.name', spec.provider?.name, 'provider-required');
    spec.rules?.forEach((rule, i) => {
      rule.from?.forEach((from, j) => {
        for (const field of CUSTOM_UNSUPPORTED_SOURCE) {
          if (from.source?.[field]?.length) reportAt(report, ['rules', i, 'from', j, 'source', field], `${field} is not supported with CUSTOM action`, from.source[field], 'custom-unsupported');
        }
      });
      rule.when?.forEach((condition, j) => {
        if (condition.key === 'source.namespace' || condition.key === 'source.principal' || condition.key.startsWith('request.auth.')) {
          reportAt(report, ['rules', i, 'when', j, 'key'], `${condition.key} is not supported with CUSTOM action`, condition.key, 'custom-unsupported');
        }
      });
    });
  } else if (spec.provider !== undefined) {
    reportAt(report, ['provider'], `provider must not be set with action ${action}, only with CUSTOM`, spec.provider, 'provider-not-allowed');
  }
  if (action === 'DENY' && spec.rules === undefined) {
    reportAt(report, ['rules'], 'DENY action without rules is meaningless as it will never be triggered; add an empty rule {} to trigger it for every request', undefined, 'missing-rules');
  }

  spec.rules?.forEach((rule, i) => {
    const at: Segments = ['rules', i];
    if (rule.from !== undefined && rule.from.length === 0) reportAt(report, [...at, 'from'], 'from must not be empty', rule.from, 'empty-rule');
    rule.from?.forEach((from, j) => {
      const where: Segments = [...at, 'from', j, 'source'];
      if (!from.source) {
        reportAt(report, where, 'from.source must be set', undefined, 'empty-rule');
        return;
      }
      if (SOURCE_FIELDS.every((field) => !from.source![field]?.length)) reportAt(report, where, 'from.source must not be empty', from.source, 'empty-rule');
      for (const field of SOURCE_FIELDS) checkValues(report, [...where, field], field, from.source[field]);
    });
    if (rule.to !== undefined && rule.to.length === 0) reportAt(report, [...at, 'to'], 'to must not be empty', rule.to, 'empty-rule');
    rule.to?.forEach((to, j) => {
      const where: Segments = [...at, 'to', j, 'operation'];
      if (!to.operation) {
        reportAt(report, where, 'to.operation must be set', undefined, 'empty-rule');
        return;
      }
      if (OPERATION_FIELDS.every((field) => !to.operation![field]?.length)) reportAt(report, where, 'to.operation must not be empty', to.operation, 'empty-rule');
      for (const field of OPERATION_FIELDS) checkValues(report, [...where, field], field, to.operation[field]);
    });
    rule.when?.forEach((condition, j) => checkCondition(report, [...at, 'when', j], condition));
  });
}

function checkValues(report: ReportIssue, at: Segments, field: string, list: readonly string[] | undefined): void {
  list?.forEach((value, i) => {
    const where: Segments = [...at, i];
    if (value === '') {
      reportAt(report, where, `empty value not allowed in ${field}`, value, 'empty-value');
      return;
    }
    if (IP_FIELDS.has(field)) {
      if (!isIpOrCidr(value)) reportAt(report, where, 'must be an IP address or CIDR block', value, 'invalid-address');
      return;
    }
    if (field === 'ports' || field === 'notPorts') {
      if (!/^[0-9]+$/.test(value) || !isValidPort(Number(value))) reportAt(report, where, 'port must be a number in the range 1..65535', value, 'port-range');
      return;
    }
    if (field === 'paths' || field === 'notPaths') {
      const problem = pathProblem(value);
      if (problem) reportAt(report, where, problem, value, 'invalid-path');
      return;
    }
    if (WILDCARD_FIELDS.has(field)) {
      const problem = wildcardProblem(value);
      if (problem) {
        reportAt(report, where, problem, value, 'invalid-wildcard');
        return;
      }
    }
    if ((field === 'methods' || field === 'notMethods') && value !== '*') {
      const literal = value.replace(/^\*|\*$/g, '');
      if (!METHOD_TOKEN.test(literal)) reportAt(report, where, 'not an HTTP method', value, 'invalid-method');
      else if (literal !== literal.toUpperCase()) reportAt(report, where, `HTTP methods are case-sensitive; did you mean ${literal.toUpperCase()}?`, value, 'invalid-method');
    }
  });
}

/** Istio matches `*` (presence), `abc*` (prefix) and `*abc` (suffix); a `*` anywhere else is literal. */
function wildcardProblem(value: string): string | undefined {
  if (value === '*') return undefined;
  const inner = value.startsWith('*') ? value.slice(1) : value.endsWith('*') ? value.slice(0, -1) : value;
  if (inner.includes('*')) return 'only exact, prefix (abc*), suffix (*abc) or presence (*) matching is supported';
  return undefined;
}

/**
 * Paths are matched against the request path, which always starts with `/`: exact and prefix
 * forms must start with `/`; `*suffix` and `*` are allowed; `{*}` / `{**}` make a path template.
 */
function pathProblem(value: string): string | undefined {
  if (value.includes('{') || value.includes('}')) {
    if (!value.startsWith('/')) return 'a path template must start with /';
    const segments = value.split('/').slice(1);
    let seenMulti = false;
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i]!;
      if (seenMulti) return '{**} must be the last segment of a path template';
      if (segment === '{**}') seenMulti = true;
      else if (segment !== '{*}' && (segment.includes('{') || segment.includes('}') || segment.includes('*'))) {
        return 'path template operators must be whole segments: {*} or {**}';
      }
    }
    return undefined;
  }
  const problem = wildcardProblem(value);
  if (problem) return problem;
  if (value === '*' || value.startsWith('*')) return undefined;
  if (!value.startsWith('/')) return 'path must start with / (or be a * suffix/presence match)';
  return undefined;
}

const KNOWN_KEYS = new Set([
  'source.ip', 'remote.ip', 'source.namespace', 'source.principal',
  'request.auth.principal', 'request.auth.audiences', 'request.auth.presenter',
  'destination.ip', 'destination.port', 'connection.sni',
]);

function checkCondition(report: ReportIssue, at: Segments, condition: Condition): void {
  const key = condition.key;
  if (key === '') {
    reportAt(report, [...at, 'key'], 'key must not be empty', key, 'invalid-condition');
    return;
  }
  if (!condition.values?.length && !condition.notValues?.length) {
    reportAt(report, at, `at least one of values or notValues must be set for key ${key}`, condition, 'invalid-condition');
  }
  const bracketed = key.includes('[') || key.includes(']');
  if (bracketed) {
    // request.headers[name] and request.auth.claims[a][b]: balanced, closing, non-empty names.
    const open = key.indexOf('[');
    const prefix = key.slice(0, open);
    const names = key.slice(open);
    const wellFormed = /^(\[[^[\]]+\])+$/.test(names);
    const known = prefix === 'request.headers' ? /^\[[^[\]]+\]$/.test(names) : prefix === 'request.auth.claims';
    if (!wellFormed || !known) {
      reportAt(report, [...at, 'key'], 'unknown or malformed attribute; use request.headers[name] or request.auth.claims[name]', key, 'invalid-condition');
      return;
    }
  } else if (!KNOWN_KEYS.has(key) && !key.startsWith('experimental.envoy.filters.')) {
    reportAt(report, [...at, 'key'], 'unknown attribute', key, 'invalid-condition');
    return;
  }
  for (const field of ['values', 'notValues'] as const) {
    condition[field]?.forEach((value, i) => {
      const where: Segments = [...at, field, i];
      if (key === 'source.ip' || key === 'remote.ip' || key === 'destination.ip') {
        if (!isIpOrCidr(value)) reportAt(report, where, 'must be an IP address or CIDR block', value, 'invalid-address');
      } else if (key === 'destination.port') {
        if (!/^[0-9]+$/.test(value) || !isValidPort(Number(value))) reportAt(report, where, 'port must be a number in the range 1..65535', value, 'port-range');
      }
    });
  }
}
