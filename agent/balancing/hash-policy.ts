// The request hash for RING_HASH and MAGLEV clusters, from a decoded route's hash_policy list
// (header, cookie, source IP, query parameter) with Envoy's rules for combining and `terminal`.
import { hashHigh, hashLow, position } from './hash64';

/** What hashing reads from a request; the HTTP proxy supplies it per request. */
export interface RequestView {
  /** A request header by lower-case name (multiple values already joined with ','). */
  header(name: string): string | undefined;
  /** A query parameter's first value. */
  query(name: string): string | undefined;
  /** The downstream peer's IP, without port. */
  readonly sourceIp: string | undefined;
}

/** The subset of a decoded RouteAction.HashPolicy read here. */
export interface DecodedHashPolicy {
  header?: { header_name?: string; regex_rewrite?: object };
  cookie?: { name?: string; ttl?: object; path?: string };
  connection_properties?: { source_ip?: boolean };
  query_parameter?: { name?: string };
  filter_state?: { key?: string };
  terminal?: boolean;
}

const HEADER = 0;
const COOKIE = 1;
const SOURCE_IP = 2;
const QUERY = 3;

interface CompiledPolicy {
  kind: typeof HEADER | typeof COOKIE | typeof SOURCE_IP | typeof QUERY;
  name: string;
  terminal: boolean;
}

/** The value of cookie `name` in a Cookie header (`a=1; b=2`), or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  let start = 0;
  while (start < header.length) {
    let end = header.indexOf(';', start);
    if (end < 0) end = header.length;
    while (header.charCodeAt(start) === 32) start++;
    const equals = header.indexOf('=', start);
    if (equals > start && equals < end && equals - start === name.length && header.startsWith(name, start)) {
      let value = header.slice(equals + 1, end).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      return value;
    }
    start = end + 1;
  }
  return undefined;
}

/**
 * Compiled once per route. Envoy evaluates every policy in order and folds each produced hash
 * into the running one (rotate left by one, then xor); a `terminal` policy stops the walk once
 * any hash exists, so a later fallback only counts when the earlier policies produced nothing.
 */
export class RequestHasher {
  private readonly policies: readonly CompiledPolicy[];

  constructor(policies: readonly CompiledPolicy[]) {
    this.policies = policies;
  }

  /** The request's hash position (hash64.ts), or undefined when no policy yields a value. */
  hash(request: RequestView): number | undefined {
    let high = 0;
    let low = 0;
    let found = false;
    for (const policy of this.policies) {
      const value = this.valueOf(policy, request);
      if (value !== undefined) {
        const h = hashHigh(value);
        const l = hashLow(value);
        if (found) {
          const rotatedHigh = ((high << 1) | (low >>> 31)) >>> 0;
          const rotatedLow = ((low << 1) | (high >>> 31)) >>> 0;
          high = (rotatedHigh ^ h) >>> 0;
          low = (rotatedLow ^ l) >>> 0;
        } else {
          high = h;
          low = l;
          found = true;
        }
      }
      if (policy.terminal && found) break;
    }
    return found ? position(high, low) : undefined;
  }

  private valueOf(policy: CompiledPolicy, request: RequestView): string | undefined {
    switch (policy.kind) {
      case HEADER:
        return request.header(policy.name);
      case COOKIE:
        // A missing cookie with a ttl makes Envoy generate one; that is the HTTP proxy's job
        // (it must also send Set-Cookie), so here the policy simply yields nothing.
        return cookieValue(request.header('cookie'), policy.name);
      case SOURCE_IP:
        return request.sourceIp;
      case QUERY:
        return request.query(policy.name);
    }
  }
}

/**
 * Compiles a route's hash_policy list; undefined when it is empty. Throws on policies the agent
 * cannot evaluate, with a message for the RDS NACK.
 */
export function compileHashPolicies(list: readonly DecodedHashPolicy[] | undefined, where = 'route'): RequestHasher | undefined {
  if (!list || list.length === 0) return undefined;
  const compiled = list.map((policy, i): CompiledPolicy => {
    const terminal = policy.terminal === true;
    const at = `${where}: hash_policy[${i}]`;
    if (policy.header) {
      if (!policy.header.header_name) throw new Error(`${at}.header.header_name is required`);
      if (policy.header.regex_rewrite) throw new Error(`${at}.header.regex_rewrite is not supported by mesh-agent`);
      return { kind: HEADER, name: policy.header.header_name.toLowerCase(), terminal };
    }
    if (policy.cookie) {
      if (!policy.cookie.name) throw new Error(`${at}.cookie.name is required`);
      return { kind: COOKIE, name: policy.cookie.name, terminal };
    }
    if (policy.connection_properties) {
      if (policy.connection_properties.source_ip !== true) throw new Error(`${at}.connection_properties.source_ip must be true`);
      return { kind: SOURCE_IP, name: '', terminal };
    }
    if (policy.query_parameter) {
      if (!policy.query_parameter.name) throw new Error(`${at}.query_parameter.name is required`);
      return { kind: QUERY, name: policy.query_parameter.name, terminal };
    }
    if (policy.filter_state) throw new Error(`${at}.filter_state is not supported by mesh-agent`);
    throw new Error(`${at} sets no policy (header, cookie, connection_properties or query_parameter)`);
  });
  return new RequestHasher(compiled);
}
