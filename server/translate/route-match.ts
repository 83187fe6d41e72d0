// VirtualService HTTPMatchRequest → Envoy RouteMatch, as Istio translates it: uri to path/prefix/
// safe_regex, headers (presence, exact, prefix, regex, inverted for withoutHeaders), method,
// authority and scheme as pseudo-header matches, query parameters, and ignoreUriCase.
import { wrap, type ProtoObject } from './proto-values';
import type { HTTPMatchRequest, StringMatch } from './specs';

export const HeaderName = { method: ':method', authority: ':authority', scheme: ':scheme' } as const;

/** Istio's StringMatch (exact/prefix/regex) as envoy.type.matcher.v3.StringMatcher. */
export function stringMatcher(match: StringMatch): ProtoObject | undefined {
  if (match.exact !== undefined) return { exact: match.exact };
  if (match.prefix !== undefined) return { prefix: match.prefix };
  if (match.regex !== undefined) return { safe_regex: { regex: match.regex } };
  return undefined;
}

/** `{}` or the regex `*` mean "present" (istio/istio#20629), as in Istio's canBeConvertedToPresentMatch. */
function isPresenceMatch(match: StringMatch | undefined): boolean {
  if (!match) return true;
  if (match.regex !== undefined) return match.regex === '*';
  return match.exact === undefined && match.prefix === undefined;
}

export function headerMatcher(name: string, match: StringMatch | undefined, invert = false): ProtoObject {
  const out: ProtoObject = { name };
  if (isPresenceMatch(match)) {
    out.present_match = true;
  } else {
    out.string_match = stringMatcher(match!);
    // A request without the header must still count as "not matching" for withoutHeaders.
    if (invert) out.treat_missing_header_as_empty = true;
  }
  if (invert) out.invert_match = true;
  return out;
}

function queryParameterMatcher(name: string, match: StringMatch | undefined): ProtoObject {
  if (isPresenceMatch(match)) return { name, present_match: true };
  return { name, string_match: stringMatcher(match!) };
}

const byName = (a: ProtoObject, b: ProtoObject): number => {
  const x = a.name as string;
  const y = b.name as string;
  return x < y ? -1 : x > y ? 1 : 0;
};

/** The RouteMatch for one match block; no block means "everything" (`prefix: /`). */
export function translateRouteMatch(match: HTTPMatchRequest | undefined): ProtoObject {
  const out: ProtoObject = { prefix: '/' };
  if (!match) return out;
  const headers: ProtoObject[] = [];
  for (const [name, m] of Object.entries(match.headers ?? {})) headers.push(headerMatcher(name, m));
  for (const [name, m] of Object.entries(match.withoutHeaders ?? {})) headers.push(headerMatcher(name, m, true));
  headers.sort(byName);
  if (match.uri) {
    if (match.uri.exact !== undefined) {
      delete out.prefix;
      out.path = match.uri.exact;
    } else if (match.uri.prefix !== undefined) {
      out.prefix = match.uri.prefix;
    } else if (match.uri.regex !== undefined) {
      delete out.prefix;
      out.safe_regex = { regex: match.uri.regex };
    }
  }
  out.case_sensitive = wrap(!match.ignoreUriCase);
  if (match.method) headers.push(headerMatcher(HeaderName.method, match.method));
  if (match.authority) headers.push(headerMatcher(HeaderName.authority, match.authority));
  if (match.scheme) headers.push(headerMatcher(HeaderName.scheme, match.scheme));
  if (headers.length > 0) out.headers = headers;
  const query = Object.entries(match.queryParams ?? {}).map(([name, m]) => queryParameterMatcher(name, m)).sort(byName);
  if (query.length > 0) out.query_parameters = query;
  return out;
}

/** Istio's IsCatchAllRoute: nothing after it can ever match. */
export function isCatchAllMatch(match: ProtoObject): boolean {
  const pathAll = match.prefix === '/' || (match.safe_regex as { regex?: string } | undefined)?.regex === '.*';
  return pathAll && match.headers === undefined && match.query_parameters === undefined;
}
