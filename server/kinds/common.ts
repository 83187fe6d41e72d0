// Pieces shared by the Istio kind schemas and checks: durations, ports, StringMatch, label maps,
// workload selectors, percentages, host/IP/regex validation and the path helpers checks report with.
import { z } from 'zod';
import { formatPath, type IssueSeverity } from '../../lib/config/issue';
import type { ReportIssue } from '../config/kind';

// ---------------------------------------------------------------------------------------------
// Issue codes and severities

/**
 * Codes the kind checks report as warnings rather than errors. `ReportIssue` (server/config/kind.ts)
 * carries no severity, so the loader maps a code to its severity with `severityOf`: config that
 * Istio accepts with a warning must not be rejected here.
 */
export const WARNING_CODES: ReadonlySet<string> = new Set([
  'deprecated-field',
  'per-try-timeout-exceeds-timeout',
  'https-redirect-non-http',
  'duplicate-egress-host',
  'ip-sni-host',
  'legacy-gateway-name',
  'tcp-hosts-with-addresses',
  'ignored-certificates',
  'agent-unsupported',
  'outlier-never-ejects',
  'failover-without-outlier-detection',
  'locality-lb-disabled',
  'retry-remote-localities-without-effect',
]);

export function severityOf(code: string | undefined): IssueSeverity {
  return code !== undefined && WARNING_CODES.has(code) ? 'warning' : 'error';
}

/** A location inside `spec`, as segments; rendered with `formatPath` only when something is reported. */
export type Segments = readonly PropertyKey[];

/** Reports at `segments` (relative to spec) in Istio's `a.b[0].c` notation. */
export function reportAt(report: ReportIssue, segments: Segments, message: string, value: unknown, code: string): void {
  report(formatPath(segments), message, value, code);
}

// ---------------------------------------------------------------------------------------------
// Durations

// Go's time.ParseDuration units, which is what Istio accepts in YAML (`1h`, `1m30s`, `0.5s`, `100ms`).
const DURATION_UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
const DURATION_TERM = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/** Parses a Go-style duration (`1h`, `10s`, `0.5s`, `100ms`, `1m30s`, `-1s`, `0`) to milliseconds. */
export function parseDurationMs(text: string): number | undefined {
  if (typeof text !== 'string' || text.length === 0) return undefined;
  let index = 0;
  let sign = 1;
  if (text[0] === '-' || text[0] === '+') {
    sign = text[0] === '-' ? -1 : 1;
    index = 1;
  }
  if (text.slice(index) === '0') return 0;
  if (index === text.length) return undefined;
  let total = 0;
  while (index < text.length) {
    DURATION_TERM.lastIndex = index;
    const match = DURATION_TERM.exec(text);
    if (!match) return undefined;
    total += Number(match[1]) * DURATION_UNIT_MS[match[2]!]!;
    index = DURATION_TERM.lastIndex;
  }
  // Rounded to nanoseconds so that `0.1s + 0.2s` style sums compare exactly against whole milliseconds.
  return sign * (Math.round(total * 1e6) / 1e6);
}

export const DurationSchema = z.string().superRefine((text, ctx) => {
  if (parseDurationMs(text) === undefined) {
    ctx.addIssue({ code: 'custom', message: 'not a duration; use Go syntax such as 10s, 1.5s, 100ms, 1m30s', input: text });
  }
});
/** A duration as written in the YAML; `parseDurationMs` turns it into milliseconds. */
export type Duration = z.infer<typeof DurationSchema>;

/**
 * Istio's ValidateDuration: at least 1ms and whole milliseconds. Returns false when it reported,
 * so a caller can skip comparisons against a value already known to be bad.
 */
export function checkDuration(report: ReportIssue, at: Segments, text: string | undefined): boolean {
  if (text === undefined) return true;
  const ms = parseDurationMs(text);
  if (ms === undefined) {
    reportAt(report, at, 'not a duration; use Go syntax such as 10s, 1.5s, 100ms', text, 'invalid-duration');
    return false;
  }
  if (ms < 1) {
    reportAt(report, at, 'duration must be at least 1ms', text, 'invalid-duration');
    return false;
  }
  if (!Number.isInteger(ms)) {
    reportAt(report, at, 'only durations to ms precision are supported', text, 'invalid-duration');
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Numbers

export const PortNumberSchema = z.int().min(1, 'port must be in the range 1..65535').max(65535, 'port must be in the range 1..65535');
export const UInt32Schema = z.int().min(0).max(4_294_967_295);
export const Int32Schema = z.int().min(-2_147_483_648).max(2_147_483_647);
/** uint64 fields (ring sizes, table sizes) as JSON numbers. */
export const UInt64Schema = z.int().min(0);

/** Istio's `Percent` message: a double in 0..100 under `value`. */
export const PercentSchema = z.strictObject({
  value: z.number().min(0, 'percentage must be in 0..100').max(100, 'percentage must be in 0..100').optional(),
});
export type Percent = z.infer<typeof PercentSchema>;

export function isValidPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

// ---------------------------------------------------------------------------------------------
// Oneofs

/**
 * Refinement for a protobuf oneof expressed as sibling optional keys: at most one may be set, and
 * with `required` exactly one. Reported at the object, naming the keys, so the path stays useful.
 */
export function oneOf<K extends string>(keys: readonly K[], required: boolean) {
  return (value: Partial<Record<K, unknown>>, ctx: z.RefinementCtx): void => {
    const present = keys.filter((k) => value[k] !== undefined);
    if (present.length > 1) {
      ctx.addIssue({ code: 'custom', message: `only one of ${keys.join(', ')} may be set, got ${present.join(' and ')}`, input: value });
    } else if (required && present.length === 0) {
      ctx.addIssue({ code: 'custom', message: `one of ${keys.join(', ')} is required`, input: value });
    }
  };
}

// ---------------------------------------------------------------------------------------------
// StringMatch

const stringMatchShape = {
  exact: z.string().optional(),
  prefix: z.string().optional(),
  /** RE2 syntax, matched against the whole value (Envoy's safe_regex is a full match). */
  regex: z.string().optional(),
};

/** Istio's StringMatch: exactly one of exact, prefix, regex. */
export const StringMatchSchema = z
  .strictObject(stringMatchShape)
  .superRefine(oneOf(['exact', 'prefix', 'regex'], true));
export type StringMatch = z.infer<typeof StringMatchSchema>;

/**
 * StringMatch where Istio also accepts `{}`: header and query-parameter matches, where an empty
 * match tests presence only (`headers: {x-user: {}}`).
 */
export const PresenceStringMatchSchema = z
  .strictObject(stringMatchShape)
  .superRefine(oneOf(['exact', 'prefix', 'regex'], false));

// ---------------------------------------------------------------------------------------------
// Labels and selectors

const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
// Istio accepts upper case in DNS labels (hosts, subsets, namespaces in references), unlike Kubernetes names.
const DNS1123_LABEL = /^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$/;
const DNS1123_SUBDOMAIN_PART = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Kubernetes label syntax, which Istio enforces on every label map. Undefined when valid. */
export function labelProblem(key: string, value: string): string | undefined {
  if (key.includes('*') || value.includes('*')) return 'wildcard is not supported in labels or selectors';
  if (key === '') return 'label key must not be empty';
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN_PART.test(prefix))) {
    return `label key prefix ${JSON.stringify(prefix)} must be a DNS subdomain`;
  }
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
    return 'label key name must be 1-63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric';
  }
  if (value.length > 63 || (value !== '' && !LABEL_NAME.test(value))) {
    return 'label value must be at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric';
  }
  return undefined;
}

/** A map of Kubernetes-style labels; each bad entry is reported at its key. */
export const LabelsSchema = z.record(z.string(), z.string()).superRefine((labels, ctx) => {
  for (const [key, value] of Object.entries(labels)) {
    const problem = labelProblem(key, value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem, path: [key], input: value });
  }
});
export type Labels = z.infer<typeof LabelsSchema>;

/** istio.type.v1beta1.WorkloadSelector (DestinationRule and the security kinds). */
export const WorkloadSelectorSchema = z.strictObject({ matchLabels: LabelsSchema.optional() });
export type WorkloadSelector = z.infer<typeof WorkloadSelectorSchema>;

/** networking.v1alpha3.WorkloadSelector (ServiceEntry and Sidecar) names its map `labels`. */
export const NetworkingWorkloadSelectorSchema = z.strictObject({ labels: LabelsSchema.optional() });
export type NetworkingWorkloadSelector = z.infer<typeof NetworkingWorkloadSelectorSchema>;

/** istio.type.v1beta1.PolicyTargetReference (AuthorizationPolicy/RequestAuthentication targetRef). */
export const PolicyTargetReferenceSchema = z.strictObject({
  group: z.string().optional(),
  kind: z.string(),
  name: z.string(),
  namespace: z.string().optional(),
});
export type PolicyTargetReference = z.infer<typeof PolicyTargetReferenceSchema>;

// Gateway API and Istio kinds a security policy may be attached to, by group.
const TARGET_KINDS: ReadonlyArray<{ group: string; kind: string }> = [
  { group: 'gateway.networking.k8s.io', kind: 'Gateway' },
  { group: 'gateway.networking.k8s.io', kind: 'GatewayClass' },
  { group: '', kind: 'Service' },
  { group: 'core', kind: 'Service' },
  { group: 'networking.istio.io', kind: 'ServiceEntry' },
];

/** Selector vs targetRef(s) exclusivity and supported target kinds, shared by the security kinds. */
export function checkPolicyTargets(
  report: ReportIssue,
  spec: { selector?: WorkloadSelector; targetRef?: PolicyTargetReference; targetRefs?: PolicyTargetReference[] },
): void {
  if (spec.targetRef && spec.targetRefs && spec.targetRefs.length > 0) {
    reportAt(report, ['targetRefs'], 'only one of targetRef or targetRefs can be set', spec.targetRefs, 'target-conflict');
  }
  if (spec.selector && (spec.targetRef || (spec.targetRefs && spec.targetRefs.length > 0))) {
    reportAt(report, ['selector'], 'only one of selector or targetRef(s) can be set', spec.selector, 'target-conflict');
  }
  const refs: Array<[Segments, PolicyTargetReference]> = [];
  if (spec.targetRef) refs.push([['targetRef'], spec.targetRef]);
  spec.targetRefs?.forEach((ref, i) => refs.push([['targetRefs', i], ref]));
  for (const [at, ref] of refs) {
    const group = ref.group ?? '';
    if (!TARGET_KINDS.some((t) => t.group === group && t.kind === ref.kind)) {
      reportAt(report, [...at, 'kind'], 'targetRef must be a Gateway or GatewayClass (gateway.networking.k8s.io), a Service (core) or a ServiceEntry (networking.istio.io)', `${group}/${ref.kind}`, 'invalid-target');
    }
    if (ref.name === '') reportAt(report, [...at, 'name'], 'targetRef name must not be empty', ref.name, 'invalid-target');
  }
}

// ---------------------------------------------------------------------------------------------
// Hosts and addresses

export function isDns1123Label(text: string): boolean {
  return text.length <= 63 && DNS1123_LABEL.test(text);
}

function dns1123Labels(domain: string): boolean {
  const parts = domain.split('.');
  const top = parts[parts.length - 1]!;
  if (/^[0-9]+$/.test(top)) return false;
  for (let i = 0; i < parts.length; i++) {
    // A trailing dot (`istio.io.`) is an unambiguous FQDN.
    if (i === parts.length - 1 && parts[i] === '') return true;
    if (!isDns1123Label(parts[i]!)) return false;
  }
  return true;
}

/** Istio's ValidateFQDN (no wildcards). */
export function isFqdn(name: string): boolean {
  return name.length > 0 && name.length <= 255 && dns1123Labels(name);
}

/** Istio's ValidateWildcardDomain: an FQDN whose first label may be `*` or `*suffix`. */
export function isWildcardDomain(name: string): boolean {
  if (name.length === 0 || name.length > 255) return false;
  const dot = name.indexOf('.');
  const first = dot >= 0 ? name.slice(0, dot) : name;
  const rest = dot >= 0 ? name.slice(dot + 1) : undefined;
  const firstOk = first === '*' || (first.startsWith('*') ? isDns1123Label(first.slice(1)) : isDns1123Label(first));
  if (!firstOk) return false;
  return rest === undefined || dns1123Labels(rest);
}

export function isIp(text: string): boolean {
  return isIPv4(text) || isIPv6(text);
}

function isIPv4(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

function isIPv6(text: string): boolean {
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !text.includes(':')) return false;
  let body = text;
  let groupsFromV4 = 0;
  const lastColon = body.lastIndexOf(':');
  const tail = body.slice(lastColon + 1);
  if (tail.includes('.')) {
    if (!isIPv4(tail)) return false;
    body = `${body.slice(0, lastColon + 1)}0`;
    groupsFromV4 = 1;
  }
  const doubleColon = body.indexOf('::');
  if (doubleColon !== body.lastIndexOf('::')) return false;
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const validGroup = (g: string) => /^[0-9A-Fa-f]{1,4}$/.test(g);
  if (doubleColon >= 0) {
    const head = groups(body.slice(0, doubleColon));
    const rest = groups(body.slice(doubleColon + 2));
    return [...head, ...rest].every(validGroup) && head.length + rest.length + groupsFromV4 <= 7;
  }
  const all = groups(body);
  return all.length === 8 && all.every(validGroup);
}

/** An IP address or a CIDR block (Istio's ValidateIPSubnet). */
export function isIpOrCidr(text: string): boolean {
  const slash = text.indexOf('/');
  if (slash < 0) return isIp(text);
  if (text.indexOf('/', slash + 1) >= 0) return false;
  const ip = text.slice(0, slash);
  const bits = text.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(bits)) return false;
  if (isIPv4(ip)) return Number(bits) <= 32;
  return isIPv6(ip) && Number(bits) <= 128;
}

export const UNIX_ADDRESS_PREFIX = 'unix://';

/** Istio's ValidateUnixAddress applied to what follows `unix://`. Undefined when valid. */
export function unixAddressProblem(path: string): string | undefined {
  if (path.length === 0) return 'unix address must not be empty';
  if (path.startsWith('@')) return undefined;
  if (!path.startsWith('/') || path.endsWith('/')) return `${path} is not an absolute path to a file`;
  return undefined;
}

/** Istio's exportTo rules: `.`, `*`, `~` (ServiceEntry only) or a namespace, no duplicates, `*`/`~` alone. */
export function checkExportTo(report: ReportIssue, at: Segments, exportTo: readonly string[] | undefined, allowNone: boolean): void {
  if (!exportTo || exportTo.length === 0) return;
  const seen = new Set<string>();
  exportTo.forEach((entry, i) => {
    if (seen.has(entry)) reportAt(report, [...at, i], 'duplicate entry in exportTo', entry, 'invalid-export-to');
    seen.add(entry);
    const valid = entry === '.' || entry === '*' || (entry === '~' && allowNone) || isDns1123Label(entry);
    if (!valid) {
      reportAt(report, [...at, i], `exportTo entries must be ".", "*"${allowNone ? ', "~"' : ''} or a namespace name`, entry, 'invalid-export-to');
    }
  });
  if (exportTo.length > 1 && seen.has('*')) {
    reportAt(report, at, 'cannot have both public (*) and non-public exportTo values', exportTo, 'invalid-export-to');
  }
  if (exportTo.length > 1 && seen.has('~')) {
    reportAt(report, at, 'cannot export to no one (~) and someone', exportTo, 'invalid-export-to');
  }
}

/**
 * Istio's `namespace/dnsName` host form of Gateway servers and Sidecar egress listeners. A Gateway
 * also accepts a bare host (and an IP); Sidecar namespaces may be `~` (none). Undefined when valid.
 */
export function namespacedHostProblem(host: string, isGateway: boolean): string | undefined {
  const slash = host.indexOf('/');
  let dnsName = host;
  if (slash < 0) {
    if (!isGateway) return 'host must be of the form namespace/dnsName';
  } else {
    const ns = host.slice(0, slash);
    dnsName = host.slice(slash + 1);
    if (ns === '' || dnsName === '') return 'namespace and dnsName in host cannot be empty';
    const special = ns === '*' || ns === '.' || (!isGateway && ns === '~');
    if (!special && !isDns1123Label(ns)) return `invalid namespace ${JSON.stringify(ns)}`;
  }
  if (isGateway && isIp(dnsName)) return undefined;
  if (dnsName !== '*' && !dnsName.includes('.')) return 'short names (non FQDN) are not allowed';
  if (!isWildcardDomain(dnsName)) return `invalid DNS name ${JSON.stringify(dnsName)}`;
  return undefined;
}

/** Istio's known port protocols (case-insensitive), `protocol.Parse` minus the unsupported ones. */
const PROTOCOLS = new Set(['HTTP', 'HTTPS', 'HTTP2', 'GRPC', 'GRPC-WEB', 'TCP', 'TLS', 'UDP', 'MONGO', 'REDIS', 'MYSQL']);

export function isKnownProtocol(protocol: string): boolean {
  return PROTOCOLS.has(protocol.toUpperCase());
}
export function isTlsProtocol(protocol: string | undefined): boolean {
  const p = protocol?.toUpperCase();
  return p === 'HTTPS' || p === 'TLS';
}
export function isHttpLikeProtocol(protocol: string | undefined): boolean {
  const p = protocol?.toUpperCase();
  return p === 'HTTP' || p === 'HTTP2' || p === 'GRPC' || p === 'GRPC-WEB';
}

// ---------------------------------------------------------------------------------------------
// Regular expressions

const MAX_REGEX_LENGTH = 1024;

interface Translation {
  source: string;
  flags: string;
}

/**
 * Rewrites the RE2 forms that JavaScript spells differently (leading `(?i)`-style flags,
 * `(?P<name>`, `\A`, `\z`) and rejects what RE2 refuses or JavaScript would silently read
 * differently. Returns the problem as a string, or the JavaScript source and flags.
 */
function translateRe2(pattern: string): Translation | string {
  let flags = '';
  let body = pattern;
  const leading = /^\(\?([imsU]+)\)/.exec(body);
  if (leading) {
    if (leading[1]!.includes('U')) return 'the ungreedy flag (?U) is not supported';
    flags = [...new Set(leading[1]!.split(''))].join('');
    body = body.slice(leading[0].length);
  }
  let out = '';
  let inClass = false;
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (ch === '\\') {
      const next = body[i + 1];
      if (next === undefined) return 'trailing backslash';
      if (!inClass && next >= '1' && next <= '9') return `backreference \\${next} is not supported by RE2`;
      if (next === 'k' && body[i + 2] === '<') return 'named backreference \\k<...> is not supported by RE2';
      if (next === 'Q') return '\\Q...\\E literal quoting is not supported by the mesh agent';
      if (next === 'C') return '\\C (any byte) is not supported by the mesh agent';
      if (next === 'Z') return '\\Z is not supported by RE2; use \\z or $';
      if (next === 'u') return '\\u escapes are not RE2 syntax; use \\x{...}';
      if (next === 'x' && body[i + 2] === '{') return '\\x{...} escapes are not supported by the mesh agent; use \\xHH';
      if (next === 'p' || next === 'P') {
        if (!flags.includes('u')) flags += 'u';
        // RE2 allows the one-letter form `\pL`; JavaScript only the braced `\p{L}`.
        const name = body[i + 2];
        if (name !== undefined && name !== '{') {
          out += `\\${next}{${name}}`;
          i += 2;
          continue;
        }
      }
      if (!inClass && next === 'A') out += '^';
      else if (!inClass && next === 'z') out += '$';
      else out += ch + next;
      i++;
      continue;
    }
    if (inClass) {
      if (ch === '[' && body[i + 1] === ':') return 'POSIX character classes like [[:alpha:]] are not supported by the mesh agent';
      if (ch === ']') inClass = false;
      out += ch;
      continue;
    }
    if (ch === '[') {
      inClass = true;
      out += ch;
      // A `]` right after `[` or `[^` is a literal in RE2 but closes an empty class in JavaScript.
      if (body[i + 1] === '^') {
        out += '^';
        i++;
      }
      if (body[i + 1] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (ch === '(' && body[i + 1] === '?') {
      const rest = body.slice(i + 2);
      if (rest.startsWith('=') || rest.startsWith('!')) return 'lookahead (?= / (?! is not supported by RE2';
      if (rest.startsWith('<=') || rest.startsWith('<!')) return 'lookbehind (?<= / (?<! is not supported by RE2';
      if (rest.startsWith('P<')) {
        out += '(?<';
        i += 3;
        continue;
      }
      if (rest.startsWith('P=')) return 'named backreference (?P=...) is not supported by RE2';
      if (rest.startsWith('>')) return 'atomic groups (?>...) are not supported by RE2';
      if (/^[imsU-]+[:)]/.test(rest)) return 'inline flags are only supported at the start of the pattern, e.g. (?i)abc';
    }
    out += ch;
  }
  return { source: out, flags };
}

/**
 * Why a regex Istio would pass to Envoy cannot be used here: too long, not RE2 (lookaround,
 * backreferences), or not compilable by the agent's JavaScript engine. Undefined when usable.
 */
export function checkRegex(pattern: string): string | undefined {
  if (pattern.length === 0) return 'regex must not be empty';
  if (pattern.length > MAX_REGEX_LENGTH) return `regex is too large, max length allowed is ${MAX_REGEX_LENGTH}`;
  const translated = translateRe2(pattern);
  if (typeof translated === 'string') return translated;
  try {
    new RegExp(translated.source, translated.flags);
  } catch (error) {
    return `invalid regex: ${(error as Error).message}`;
  }
  return undefined;
}

/**
 * The JavaScript equivalent of an Istio (RE2) regex with Envoy's full-match semantics, for code
 * that evaluates matches itself. Throws on a pattern `checkRegex` rejects.
 */
export function compileFullMatchRegex(pattern: string): RegExp {
  const problem = checkRegex(pattern);
  if (problem) throw new Error(problem);
  const translated = translateRe2(pattern) as Translation;
  return new RegExp(`^(?:${translated.source})$`, translated.flags);
}

export function checkRegexAt(report: ReportIssue, at: Segments, pattern: string | undefined): void {
  if (pattern === undefined) return;
  const problem = checkRegex(pattern);
  if (problem) reportAt(report, at, `${problem} (Istio uses RE2 syntax)`, pattern, 'invalid-regex');
}

/** The semantic rules of one StringMatch: regex valid, prefix/regex non-empty (uri may have an empty prefix). */
export function checkStringMatch(report: ReportIssue, at: Segments, match: StringMatch | undefined, allowEmptyPrefix = false): void {
  if (!match) return;
  if (match.prefix === '' && !allowEmptyPrefix) {
    reportAt(report, [...at, 'prefix'], 'prefix string match should not be empty', match.prefix, 'invalid-match');
  }
  checkRegexAt(report, [...at, 'regex'], match.regex);
}

/** Header names used in matches and header operations must not be empty. */
export function checkHeaderName(report: ReportIssue, at: Segments, name: string): boolean {
  if (name === '') {
    reportAt(report, at, 'header name cannot be empty', name, 'invalid-header');
    return false;
  }
  return true;
}
