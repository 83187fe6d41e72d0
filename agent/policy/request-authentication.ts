// Request authentication from Envoy's jwt_authn config (as Istio emits it for RequestAuthentication):
// find the token, verify it with its issuer's provider, and hand back the principal, the claims as
// Istio's `istio_authn` metadata for RBAC, and the header changes the provider asks for.
//
// API:
//   const authn = RequestAuthenticator.fromChain(chain, jwksCache);   // decoded virtualInbound chain
//   const result = await authn.authenticateRequest(headers, url);     // sync when keys are cached
//   'status' in result ? reply 401 with result.reason : continue with result.metadata for RBAC
// No token passes (with no principal); an invalid one is a 401; a key set that cannot be had in
// time fails closed (401), whatever the token.
import { RouteConfigError, checkFields, queryParameter, readHeader, type Decoded, type HeaderLookup } from '../routing/request-matchers';
import type { JsonValue } from '../../lib/xds/struct';
import { JwksCache, parseJwks, type KeySet, type RemoteJwks } from './jwks-cache';
import { DEFAULT_CLOCK_SKEW_SECONDS, decodeJwt, verifyJwt, type JwtPayload } from './jwt';
import type { DynamicMetadata } from './rbac';

export const JWT_AUTHN_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';
export const JWT_AUTHN_FILTER = 'envoy.filters.http.jwt_authn';
export const ISTIO_AUTHN = 'istio_authn';
const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

export interface HeaderChanges {
  readonly set: ReadonlyArray<readonly [name: string, value: string]>;
  readonly remove: readonly string[];
}

export interface Authenticated {
  /** `ISSUER/SUBJECT`, Istio's request principal; undefined when the request carried no token. */
  readonly principal?: string;
  readonly claims?: JwtPayload;
  /** Dynamic metadata for RBAC (`istio_authn`) and for the provider's payload_in_metadata. */
  readonly metadata: DynamicMetadata;
  readonly headers: HeaderChanges;
}

export interface Unauthenticated {
  readonly status: 401;
  readonly reason: string;
}

export type AuthenticationResult = Authenticated | Unauthenticated;

type Location = { readonly kind: 'header'; readonly name: string; readonly prefix: string } | { readonly kind: 'param'; readonly name: string } | { readonly kind: 'cookie'; readonly name: string };

interface Provider {
  readonly name: string;
  readonly issuer: string;
  readonly audiences: readonly string[];
  readonly clockSkewSeconds: number;
  readonly locations: readonly Location[];
  readonly forward: boolean;
  readonly payloadHeader?: string;
  readonly padPayloadHeader: boolean;
  readonly payloadInMetadata?: string;
  readonly claimToHeaders: ReadonlyArray<readonly [header: string, claim: string]>;
  readonly spaceDelimited: ReadonlySet<string>;
  readonly inline?: KeySet;
  readonly remote?: RemoteJwks;
}

type Requirement = { readonly providers: readonly Provider[]; readonly allowMissing: boolean; readonly allowFailed: boolean };

interface Rule {
  readonly prefix?: string;
  readonly path?: string;
  readonly requirement: Requirement;
}

const NO_HEADER_CHANGES: HeaderChanges = { set: [], remove: [] };
const NO_METADATA: DynamicMetadata = () => undefined;
const ANONYMOUS: Authenticated = Object.freeze({ metadata: NO_METADATA, headers: NO_HEADER_CHANGES });

/** Envoy's locations when a provider names none. */
const DEFAULT_LOCATIONS: readonly Location[] = [{ kind: 'header', name: 'authorization', prefix: 'Bearer ' }, { kind: 'param', name: 'access_token' }];

const CONFIG_FIELDS = new Set(['@type', 'providers', 'rules', 'bypass_cors_preflight', 'requirement_map', 'filter_state_rules', 'stat_prefix', 'strip_failure_response']);
const PROVIDER_FIELDS = new Set([
  'issuer', 'audiences', 'remote_jwks', 'local_jwks', 'forward', 'from_headers', 'from_params', 'from_cookies', 'forward_payload_header', 'pad_forward_payload_header',
  'payload_in_metadata', 'clock_skew_seconds', 'claim_to_headers', 'normalize_payload_in_metadata', 'jwks_source_specifier', 'requires_expiration', 'clear_route_cache',
]);

function record(value: unknown, path: string): Decoded {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new RouteConfigError(path, 'expected a message');
  return value as Decoded;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function durationMs(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const d = value as { seconds?: string | number; nanos?: number };
  return Number(d.seconds ?? 0) * 1000 + Math.round((d.nanos ?? 0) / 1e6);
}

function compileProvider(name: string, message: Decoded, path: string): Provider {
  checkFields(message, PROVIDER_FIELDS, path);
  const locations: Location[] = [];
  for (const h of (message.from_headers as Decoded[] | undefined) ?? []) {
    if (typeof h.name !== 'string' || h.name === '') throw new RouteConfigError(`${path}.from_headers`, 'header name missing');
    locations.push({ kind: 'header', name: h.name.toLowerCase(), prefix: typeof h.value_prefix === 'string' ? h.value_prefix : '' });
  }
  for (const p of strings(message.from_params)) locations.push({ kind: 'param', name: p });
  for (const c of strings(message.from_cookies)) locations.push({ kind: 'cookie', name: c });
  let inline: KeySet | undefined;
  let remote: RemoteJwks | undefined;
  if (message.local_jwks !== undefined) {
    const local = record(message.local_jwks, `${path}.local_jwks`);
    if (typeof local.inline_string !== 'string') throw new RouteConfigError(`${path}.local_jwks`, 'only inline_string key sets are supported');
    try {
      inline = parseJwks(local.inline_string, `${path}.local_jwks`);
    } catch (error) {
      throw new RouteConfigError(`${path}.local_jwks`, (error as Error).message);
    }
  } else if (message.remote_jwks !== undefined) {
    const r = record(message.remote_jwks, `${path}.remote_jwks`);
    const httpUri = record(r.http_uri, `${path}.remote_jwks.http_uri`);
    if (typeof httpUri.uri !== 'string' || !/^https?:\/\//.test(httpUri.uri)) throw new RouteConfigError(`${path}.remote_jwks.http_uri.uri`, 'an http(s) URI is required');
    remote = { uri: httpUri.uri, timeoutMs: durationMs(httpUri.timeout, 5000), cacheMs: durationMs(r.cache_duration, 600_000) };
  } else throw new RouteConfigError(path, 'provider has neither local_jwks nor remote_jwks');
  const normalize = message.normalize_payload_in_metadata as Decoded | undefined;
  return {
    name,
    issuer: typeof message.issuer === 'string' ? message.issuer : '',
    audiences: strings(message.audiences),
    clockSkewSeconds: message.clock_skew_seconds === undefined ? DEFAULT_CLOCK_SKEW_SECONDS : Number(message.clock_skew_seconds),
    locations: locations.length > 0 ? locations : DEFAULT_LOCATIONS,
    forward: message.forward === true,
    payloadHeader: typeof message.forward_payload_header === 'string' && message.forward_payload_header !== '' ? message.forward_payload_header.toLowerCase() : undefined,
    padPayloadHeader: message.pad_forward_payload_header === true,
    payloadInMetadata: typeof message.payload_in_metadata === 'string' && message.payload_in_metadata !== '' ? message.payload_in_metadata : undefined,
    claimToHeaders: ((message.claim_to_headers as Decoded[] | undefined) ?? []).map((c) => [String(c.header_name).toLowerCase(), String(c.claim_name)] as const),
    spaceDelimited: new Set(strings(normalize?.space_delimited_claims)),
    inline,
    remote,
  };
}

function compileRequirement(message: Decoded, providers: ReadonlyMap<string, Provider>, path: string): Requirement {
  const provider = (name: unknown, at: string): Provider => {
    const found = typeof name === 'string' ? providers.get(name) : undefined;
    if (!found) throw new RouteConfigError(at, `unknown provider ${JSON.stringify(name)}`);
    return found;
  };
  if (message.provider_name !== undefined) return { providers: [provider(message.provider_name, `${path}.provider_name`)], allowMissing: false, allowFailed: false };
  if (message.allow_missing !== undefined) return { providers: [...providers.values()], allowMissing: true, allowFailed: false };
  if (message.allow_missing_or_failed !== undefined) return { providers: [...providers.values()], allowMissing: true, allowFailed: true };
  if (message.requires_any !== undefined) {
    const list = (record(message.requires_any, `${path}.requires_any`).requirements as Decoded[] | undefined) ?? [];
    const out: Provider[] = [];
    let allowMissing = false;
    let allowFailed = false;
    list.forEach((r, i) => {
      const at = `${path}.requires_any.requirements[${i}]`;
      if (r.provider_name !== undefined) out.push(provider(r.provider_name, `${at}.provider_name`));
      else if (r.allow_missing !== undefined) allowMissing = true;
      else if (r.allow_missing_or_failed !== undefined) allowMissing = allowFailed = true;
      else throw new RouteConfigError(at, 'only provider_name, allow_missing and allow_missing_or_failed are supported inside requires_any');
    });
    return { providers: out, allowMissing, allowFailed };
  }
  throw new RouteConfigError(path, 'requirement not supported by the mesh agent (requires_all, provider_and_audiences)');
}

function cookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The token at one location, without its prefix; undefined when absent. */
function tokenAt(location: Location, headers: HeaderLookup, query: string): string | undefined {
  if (location.kind === 'param') return query === '' ? undefined : queryParameter(query, location.name);
  if (location.kind === 'cookie') return cookie(readHeader(headers, 'cookie'), location.name);
  const value = readHeader(headers, location.name);
  if (value === undefined) return undefined;
  if (location.prefix === '') return value.trim();
  const at = value.indexOf(location.prefix);
  if (at < 0) return undefined;
  // Envoy takes the token after the prefix up to the next ',' (several schemes in one header).
  const rest = value.slice(at + location.prefix.length);
  const comma = rest.indexOf(',');
  return (comma < 0 ? rest : rest.slice(0, comma)).trim();
}

function sameLocation(a: Location, b: Location): boolean {
  return a.kind === b.kind && a.name === b.name && (a.kind !== 'header' || b.kind !== 'header' || a.prefix === b.prefix);
}

/** Claims as Istio's authn metadata holds them: space-delimited claims become lists. */
function normalizeClaims(payload: JwtPayload, spaceDelimited: ReadonlySet<string>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [key, value] of Object.entries(payload)) {
    out[key] = spaceDelimited.has(key) && typeof value === 'string' ? value.split(' ').filter((s) => s !== '') : (value as JsonValue);
  }
  return out;
}

/** A claim by name, where `a.b` reaches into nested objects (Envoy's claim_to_headers). */
function claimValue(payload: JwtPayload, name: string): string | undefined {
  let current: unknown = payload;
  for (const part of name.split('.')) current = current !== null && typeof current === 'object' ? (current as Record<string, unknown>)[part] : undefined;
  if (typeof current === 'string') return current;
  if (typeof current === 'number' || typeof current === 'boolean') return String(current);
  return undefined;
}

function unauthenticated(reason: string): Unauthenticated {
  return { status: 401, reason };
}

export interface RequestAuthenticatorOptions {
  /** Seconds since the epoch; tests move the clock. */
  nowSeconds?: () => number;
  /** Verified tokens remembered (Envoy's jwt_cache_config); 0 turns the cache off. */
  verifiedTokenCacheSize?: number;
}

/** A token whose signature, issuer and audience were verified; only its lifetime is checked again. */
interface VerifiedToken {
  readonly provider: Provider;
  readonly payload: JwtPayload;
  readonly payloadSegment: string;
  readonly exp?: number;
  readonly nbf?: number;
  /** The outcome for the location it was first found at (the same request shape repeats). */
  readonly location: Location;
  readonly result: Authenticated;
}

const DEFAULT_VERIFIED_TOKEN_CACHE = 1000;

/** jwt_authn of one HTTP chain, compiled once per config. */
export class RequestAuthenticator {
  private readonly nowSeconds: () => number;
  /** By token text, oldest first: a signature check costs ~0.1-0.4 ms, a lookup nothing. */
  private readonly verified = new Map<string, VerifiedToken>();
  private readonly verifiedLimit: number;

  private constructor(
    private readonly rules: readonly Rule[],
    private readonly jwks: JwksCache,
    options: RequestAuthenticatorOptions,
  ) {
    this.nowSeconds = options.nowSeconds ?? (() => Date.now() / 1000);
    this.verifiedLimit = options.verifiedTokenCacheSize ?? DEFAULT_VERIFIED_TOKEN_CACHE;
  }

  /** A cached verification of this token at this location, still within its lifetime. */
  private cached(token: string, location: Location, requirement: Requirement): AuthenticationResult | undefined {
    const hit = this.verified.get(token);
    if (!hit || !requirement.providers.includes(hit.provider) || !hit.provider.locations.some((l) => sameLocation(l, location))) return undefined;
    const now = this.nowSeconds();
    const skew = hit.provider.clockSkewSeconds;
    if ((hit.exp !== undefined && now > hit.exp + skew) || (hit.nbf !== undefined && now < hit.nbf - skew)) {
      this.verified.delete(token);
      return undefined;
    }
    return hit.location === location ? hit.result : this.authenticated(hit.provider, location, hit.payload, hit.payloadSegment);
  }

  private remember(token: string, entry: VerifiedToken): void {
    if (this.verifiedLimit <= 0) return;
    if (this.verified.size >= this.verifiedLimit) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(token, entry);
  }

  /** From a decoded JwtAuthentication typed_config. */
  static compile(config: Decoded, jwks: JwksCache, path = 'jwt_authn', options: RequestAuthenticatorOptions = {}): RequestAuthenticator {
    checkFields(config, CONFIG_FIELDS, path);
    const providers = new Map<string, Provider>();
    const rawProviders = record(config.providers ?? {}, `${path}.providers`);
    for (const name of Object.keys(rawProviders)) providers.set(name, compileProvider(name, record(rawProviders[name], `${path}.providers.${name}`), `${path}.providers.${name}`));
    const rules = ((config.rules as Decoded[] | undefined) ?? []).map((rule, i): Rule => {
      const at = `${path}.rules[${i}]`;
      const match = record(rule.match, `${at}.match`);
      if (typeof match.prefix !== 'string' && typeof match.path !== 'string') throw new RouteConfigError(`${at}.match`, 'only prefix and path matches are supported');
      if (rule.requires === undefined) return { prefix: match.prefix as string | undefined, path: match.path as string | undefined, requirement: { providers: [], allowMissing: true, allowFailed: true } };
      return { prefix: match.prefix as string | undefined, path: match.path as string | undefined, requirement: compileRequirement(record(rule.requires, `${at}.requires`), providers, `${at}.requires`) };
    });
    return new RequestAuthenticator(rules, jwks, options);
  }

  /** From a decoded virtualInbound chain; a chain without jwt_authn authenticates nothing. */
  static fromChain(chain: Decoded, jwks: JwksCache, options: RequestAuthenticatorOptions = {}): RequestAuthenticator {
    for (const filter of (chain.filters as Decoded[] | undefined) ?? []) {
      const config = filter.typed_config as Decoded | undefined;
      if (config?.['@type'] !== HCM_TYPE) continue;
      for (const httpFilter of (config.http_filters as Decoded[] | undefined) ?? []) {
        const typed = httpFilter.typed_config as Decoded | undefined;
        if (typed?.['@type'] === JWT_AUTHN_TYPE) return RequestAuthenticator.compile(typed, jwks, `${String(chain.name)}.${JWT_AUTHN_FILTER}`, options);
      }
    }
    return new RequestAuthenticator([], jwks, options);
  }

  /**
   * Authenticates one request. `url` is the request target (path and query). Returns at once
   * unless a key set must first be fetched (bounded by the provider's timeout).
   */
  authenticateRequest(headers: HeaderLookup, url: string): AuthenticationResult | Promise<AuthenticationResult> {
    if (this.rules.length === 0) return ANONYMOUS;
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const rule = this.rules.find((r) => (r.path !== undefined ? path === r.path : path.startsWith(r.prefix!)));
    if (!rule) return ANONYMOUS;
    const { requirement } = rule;
    const query = q < 0 ? '' : url.slice(q + 1);
    // The first token found, in provider and location order, decides (Envoy's extractor order).
    for (const provider of requirement.providers) {
      for (const location of provider.locations) {
        const token = tokenAt(location, headers, query);
        if (token === undefined || token === '') continue;
        return this.verify(token, location, requirement);
      }
    }
    return requirement.allowMissing ? ANONYMOUS : unauthenticated('Jwt is missing');
  }

  private verify(token: string, location: Location, requirement: Requirement): AuthenticationResult | Promise<AuthenticationResult> {
    const failed = (reason: string): AuthenticationResult => (requirement.allowFailed ? ANONYMOUS : unauthenticated(reason));
    const cached = this.cached(token, location, requirement);
    if (cached) return cached;
    const decoded = decodeJwt(token);
    if ('reason' in decoded) return failed(decoded.reason);
    const issuer = decoded.payload.iss;
    const provider = requirement.providers.find((p) => (p.issuer === '' || p.issuer === issuer) && p.locations.some((l) => sameLocation(l, location)));
    if (!provider) return failed('Jwt issuer is not configured');
    const finish = (keys: KeySet): AuthenticationResult => {
      const result = verifyJwt(decoded, keys, provider, this.nowSeconds());
      if (!result.ok) return failed(result.reason);
      const { exp, nbf } = result.payload;
      const authenticated = this.authenticated(provider, location, result.payload, result.payloadSegment);
      this.remember(token, {
        provider,
        payload: result.payload,
        payloadSegment: result.payloadSegment,
        exp: typeof exp === 'number' ? exp : undefined,
        nbf: typeof nbf === 'number' ? nbf : undefined,
        location,
        result: authenticated,
      });
      return authenticated;
    };
    if (provider.inline) return finish(provider.inline);
    const keys = this.jwks.get(provider.remote!);
    if (!(keys instanceof Promise)) return finish(keys);
    return keys.then(finish, () => failed('Jwks remote fetch is failed'));
  }

  private authenticated(provider: Provider, location: Location, payload: JwtPayload, payloadSegment: string): Authenticated {
    const iss = typeof payload.iss === 'string' ? payload.iss : undefined;
    const sub = typeof payload.sub === 'string' ? payload.sub : undefined;
    const principal = iss !== undefined && sub !== undefined ? `${iss}/${sub}` : undefined;
    const claims = normalizeClaims(payload, provider.spaceDelimited);
    const aud = payload.aud;
    const authn: Record<string, JsonValue> = { 'request.auth.claims': claims, 'request.auth.raw_claims': JSON.stringify(payload) };
    if (principal !== undefined) authn['request.auth.principal'] = principal;
    if (typeof aud === 'string' || Array.isArray(aud)) authn['request.auth.audiences'] = typeof aud === 'string' ? [aud] : (aud as JsonValue[]);
    if (typeof payload.azp === 'string') authn['request.auth.presenter'] = payload.azp;
    const byIssuer = provider.payloadInMetadata ? { [provider.payloadInMetadata]: payload as Record<string, JsonValue> } : undefined;
    const metadata: DynamicMetadata = (filter) => (filter === ISTIO_AUTHN ? authn : filter === JWT_AUTHN_FILTER ? byIssuer : undefined);
    const set: Array<readonly [string, string]> = [];
    if (provider.payloadHeader) {
      const padding = provider.padPayloadHeader ? '='.repeat((4 - (payloadSegment.length % 4)) % 4) : '';
      set.push([provider.payloadHeader, payloadSegment + padding]);
    }
    for (const [header, claim] of provider.claimToHeaders) {
      const value = claimValue(payload, claim);
      if (value !== undefined) set.push([header, value]);
    }
    // Query parameters and cookies keep the token (Envoy removes it only from headers).
    const remove = !provider.forward && location.kind === 'header' ? [location.name] : [];
    return { principal, claims: payload, metadata, headers: set.length === 0 && remove.length === 0 ? NO_HEADER_CHANGES : { set, remove } };
  }
}
