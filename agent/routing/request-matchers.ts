// Envoy's request matchers (StringMatcher, HeaderMatcher, QueryParameterMatcher) compiled once from
// decoded xDS objects into plain predicates over one request, for the agent's per-request routing.
export type HeaderValue = string | readonly string[] | undefined;

/** Request headers by lower-case name: a Map, or a lookup function over the connection's own storage. */
export type HeaderLookup = ReadonlyMap<string, string | readonly string[]> | ((name: string) => HeaderValue);

/** The decoded proto objects this module reads; unpackAny gives snake_case fields. */
export type Decoded = Record<string, unknown>;

/** A config that cannot be honoured; `path` names the field so the NACK says what to fix. */
export class RouteConfigError extends Error {
  readonly code = 'ROUTE_CONFIG_UNSUPPORTED';
  constructor(readonly path: string, detail: string) {
    super(`${path}: ${detail}`);
    this.name = 'RouteConfigError';
  }
}

/**
 * Fields a message may carry, plus the oneof names protobufjs adds (`oneofs: true`). A field we
 * do not know changes behaviour we would silently get wrong, so it fails the whole config.
 */
export function checkFields(message: Decoded, allowed: ReadonlySet<string>, path: string): void {
  for (const key of Object.keys(message)) {
    if (!allowed.has(key) && message[key] !== undefined) throw new RouteConfigError(`${path}.${key}`, 'field not supported by the mesh agent');
  }
}

/** A JS RegExp for Envoy's full-match regex semantics; RE2 syntax JS lacks fails here, at config time. */
export function compileRegex(source: unknown, path: string, flags = ''): RegExp {
  if (typeof source !== 'string') throw new RouteConfigError(path, 'regex missing');
  try {
    return new RegExp(`^(?:${source})$`, flags);
  } catch (err) {
    throw new RouteConfigError(path, `invalid regex ${JSON.stringify(source)}: ${(err as Error).message}`);
  }
}

const enum StringKind {
  Exact,
  Prefix,
  Suffix,
  Contains,
  Regex,
}

/** envoy.type.matcher.v3.StringMatcher, with the pattern lower-cased once when ignore_case is set. */
export class StringMatcher {
  private constructor(
    private readonly kind: StringKind,
    private readonly pattern: string,
    private readonly regex: RegExp | undefined,
    private readonly ignoreCase: boolean,
  ) {}

  static compile(message: Decoded, path: string): StringMatcher {
    checkFields(message, STRING_MATCHER_FIELDS, path);
    // Envoy ignores ignore_case for safe_regex (the regex decides), so it does here too.
    const ignoreCase = message.ignore_case === true;
    const lower = (s: unknown): string => (ignoreCase ? String(s).toLowerCase() : String(s));
    if (typeof message.exact === 'string') return new StringMatcher(StringKind.Exact, lower(message.exact), undefined, ignoreCase);
    if (typeof message.prefix === 'string') return new StringMatcher(StringKind.Prefix, lower(message.prefix), undefined, ignoreCase);
    if (typeof message.suffix === 'string') return new StringMatcher(StringKind.Suffix, lower(message.suffix), undefined, ignoreCase);
    if (typeof message.contains === 'string') return new StringMatcher(StringKind.Contains, lower(message.contains), undefined, ignoreCase);
    if (message.safe_regex !== undefined) {
      const regex = message.safe_regex as Decoded;
      return new StringMatcher(StringKind.Regex, '', compileRegex(regex.regex, `${path}.safe_regex.regex`), false);
    }
    throw new RouteConfigError(path, 'string matcher has no exact, prefix, suffix, contains or safe_regex');
  }

  /** The header-level shorthands (exact_match, prefix_match, …) Envoy still accepts. */
  static of(kind: 'exact' | 'prefix' | 'suffix' | 'contains', pattern: string): StringMatcher {
    const k = kind === 'exact' ? StringKind.Exact : kind === 'prefix' ? StringKind.Prefix : kind === 'suffix' ? StringKind.Suffix : StringKind.Contains;
    return new StringMatcher(k, pattern, undefined, false);
  }

  static regex(regex: RegExp): StringMatcher {
    return new StringMatcher(StringKind.Regex, '', regex, false);
  }

  matches(input: string): boolean {
    const value = this.ignoreCase ? input.toLowerCase() : input;
    switch (this.kind) {
      case StringKind.Exact: return value === this.pattern;
      case StringKind.Prefix: return value.startsWith(this.pattern);
      case StringKind.Suffix: return value.endsWith(this.pattern);
      case StringKind.Contains: return value.includes(this.pattern);
      case StringKind.Regex: return this.regex!.test(value);
    }
  }
}

const STRING_MATCHER_FIELDS = new Set(['exact', 'prefix', 'suffix', 'contains', 'safe_regex', 'ignore_case', 'match_pattern']);

/** Reads one header, joining repeated values with ',' as Envoy does before matching. */
export function readHeader(headers: HeaderLookup, name: string): string | undefined {
  const raw = typeof headers === 'function' ? headers(name) : headers.get(name);
  if (raw === undefined) return undefined;
  return typeof raw === 'string' ? raw : raw.join(',');
}

/** What a HeaderMatcher needs from the request: the pseudo-headers come from the request line. */
export interface MatchInput {
  readonly authority: string;
  readonly method: string;
  readonly scheme: string;
  readonly path: string;
  readonly headers: HeaderLookup;
}

export function headerOf(input: MatchInput, name: string): string | undefined {
  switch (name) {
    case ':authority': return input.authority;
    case ':method': return input.method;
    case ':scheme': return input.scheme;
    case ':path': return input.path;
    default: return readHeader(input.headers, name);
  }
}

const HEADER_MATCHER_FIELDS = new Set([
  'name', 'exact_match', 'safe_regex_match', 'range_match', 'present_match', 'prefix_match', 'suffix_match', 'contains_match',
  'string_match', 'invert_match', 'treat_missing_header_as_empty', 'header_match_specifier',
]);

/** envoy.config.route.v3.HeaderMatcher. */
export class HeaderMatcher {
  private constructor(
    readonly name: string,
    private readonly value: StringMatcher | undefined,
    private readonly range: { start: number; end: number } | undefined,
    /** Only meaningful without a value or range matcher: whether presence (true) or absence is wanted. */
    private readonly wantPresent: boolean,
    private readonly invert: boolean,
    private readonly missingAsEmpty: boolean,
  ) {}

  static compile(message: Decoded, path: string): HeaderMatcher {
    checkFields(message, HEADER_MATCHER_FIELDS, path);
    if (typeof message.name !== 'string' || message.name === '') throw new RouteConfigError(`${path}.name`, 'header name missing');
    // HTTP/2 and our RequestView carry lower-case names; lower-casing here keeps the lookup exact.
    const name = message.name.toLowerCase();
    let value: StringMatcher | undefined;
    let range: { start: number; end: number } | undefined;
    let wantPresent = true;
    if (message.string_match !== undefined) value = StringMatcher.compile(message.string_match as Decoded, `${path}.string_match`);
    else if (typeof message.exact_match === 'string') value = StringMatcher.of('exact', message.exact_match);
    else if (typeof message.prefix_match === 'string') value = StringMatcher.of('prefix', message.prefix_match);
    else if (typeof message.suffix_match === 'string') value = StringMatcher.of('suffix', message.suffix_match);
    else if (typeof message.contains_match === 'string') value = StringMatcher.of('contains', message.contains_match);
    else if (message.safe_regex_match !== undefined) value = StringMatcher.regex(compileRegex((message.safe_regex_match as Decoded).regex, `${path}.safe_regex_match.regex`));
    else if (message.range_match !== undefined) {
      const r = message.range_match as Decoded;
      range = { start: Number(r.start ?? 0), end: Number(r.end ?? 0) };
    } else if (message.present_match !== undefined) wantPresent = message.present_match === true;
    return new HeaderMatcher(name, value, range, wantPresent, message.invert_match === true, message.treat_missing_header_as_empty === true);
  }

  matches(input: MatchInput): boolean {
    let header = headerOf(input, this.name);
    if (header === undefined && this.missingAsEmpty && (this.value || this.range)) header = '';
    if (!this.value && !this.range) return (header !== undefined) === this.wantPresent ? !this.invert : this.invert;
    // A missing header never matches a value, inverted or not (Envoy's and gRPC's reading):
    // "without header x = 1" needs treat_missing_header_as_empty, which Istio sets for that.
    if (header === undefined) return false;
    let result: boolean;
    if (this.value) result = this.value.matches(header);
    else {
      const n = INTEGER.test(header) ? Number(header) : NaN;
      result = !Number.isNaN(n) && n >= this.range!.start && n < this.range!.end;
    }
    return result !== this.invert;
  }
}

const INTEGER = /^-?[0-9]+$/;

const QUERY_MATCHER_FIELDS = new Set(['name', 'string_match', 'present_match', 'query_parameter_match_specifier']);

/** envoy.config.route.v3.QueryParameterMatcher: the first value of the parameter, URL-decoded. */
export class QueryParameterMatcher {
  private constructor(readonly name: string, private readonly value: StringMatcher | undefined) {}

  static compile(message: Decoded, path: string): QueryParameterMatcher {
    checkFields(message, QUERY_MATCHER_FIELDS, path);
    if (typeof message.name !== 'string' || message.name === '') throw new RouteConfigError(`${path}.name`, 'query parameter name missing');
    if (message.string_match !== undefined) return new QueryParameterMatcher(message.name, StringMatcher.compile(message.string_match as Decoded, `${path}.string_match`));
    if (message.present_match === true) return new QueryParameterMatcher(message.name, undefined);
    throw new RouteConfigError(path, 'query parameter matcher needs string_match or present_match: true');
  }

  matches(query: string): boolean {
    const value = queryParameter(query, this.name);
    if (value === undefined) return false;
    return this.value ? this.value.matches(value) : true;
  }
}

const PLUS = /\+/g;

function decode(text: string): string {
  const plus = text.includes('+') ? text.replace(PLUS, ' ') : text;
  if (!plus.includes('%')) return plus;
  try {
    return decodeURIComponent(plus);
  } catch {
    // A malformed escape is matched as sent rather than failing the request.
    return plus;
  }
}

/** The first value of `name` in a query string (without '?'); scans in place, no parsing into a map. */
export function queryParameter(query: string, name: string): string | undefined {
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end < 0) end = query.length;
    const eq = query.indexOf('=', start);
    const keyEnd = eq >= 0 && eq < end ? eq : end;
    if (keyEnd > start && decode(query.slice(start, keyEnd)) === name) return keyEnd === end ? '' : decode(query.slice(keyEnd + 1, end));
    start = end + 1;
  }
  return undefined;
}
