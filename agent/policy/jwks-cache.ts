// JSON Web Key Sets for JWT validation: parsed from an inline document or fetched from a URI with a
// timeout, cached for the configured duration and refreshed in the background once stale, so a
// slow or hanging JWKS endpoint delays no request beyond its timeout and never grants anything.
import * as crypto from 'node:crypto';

export interface Jwk {
  readonly kid?: string;
  /** The algorithm the key is restricted to, when the set says. */
  readonly alg?: string;
  readonly kty: string;
  /** EC and OKP curve names (`P-256`, `Ed25519`). */
  readonly crv?: string;
  readonly key: crypto.KeyObject;
}

export interface KeySet {
  readonly keys: readonly Jwk[];
}

export class JwksError extends Error {
  override readonly name = 'JwksError';
}

/** A key set document larger than this is refused: real sets hold a handful of keys. */
export const MAX_JWKS_BYTES = 1024 * 1024;

/** Parses a JWK Set; keys Node cannot import (or private/symmetric ones) are skipped, none left is an error. */
export function parseJwks(text: string, where: string): KeySet {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw new JwksError(`${where}: not JSON: ${(error as Error).message}`);
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new JwksError(`${where}: expected a JSON object with a "keys" array`);
  const out: Jwk[] = [];
  const problems: string[] = [];
  keys.forEach((raw, i) => {
    if (raw === null || typeof raw !== 'object') return void problems.push(`keys[${i}] is not an object`);
    const jwk = raw as Record<string, unknown>;
    if (typeof jwk.kty !== 'string') return void problems.push(`keys[${i}] has no kty`);
    // A symmetric or private key in a public key set is a mistake we will not act on.
    if (jwk.kty === 'oct' || jwk.d !== undefined) return void problems.push(`keys[${i}] is not a public key`);
    if (jwk.use !== undefined && jwk.use !== 'sig') return;
    try {
      const key = crypto.createPublicKey({ key: jwk as crypto.JsonWebKey, format: 'jwk' });
      out.push({
        kid: typeof jwk.kid === 'string' ? jwk.kid : undefined,
        alg: typeof jwk.alg === 'string' ? jwk.alg : undefined,
        kty: jwk.kty,
        crv: typeof jwk.crv === 'string' ? jwk.crv : undefined,
        key,
      });
    } catch (error) {
      problems.push(`keys[${i}]: ${(error as Error).message}`);
    }
  });
  if (out.length === 0) throw new JwksError(`${where}: no usable signing key${problems.length ? ` (${problems.join('; ')})` : ''}`);
  return { keys: out };
}

/** Fetches a key set document; rejects on timeout, a non-2xx status or an oversized body. */
export type JwksFetcher = (uri: string, timeoutMs: number) => Promise<string>;

export const fetchJwks: JwksFetcher = async (uri, timeoutMs) => {
  const response = await fetch(uri, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error', headers: { accept: 'application/json' } });
  if (!response.ok) throw new JwksError(`${uri}: HTTP ${response.status}`);
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > MAX_JWKS_BYTES) throw new JwksError(`${uri}: key set of ${declared} bytes exceeds ${MAX_JWKS_BYTES}`);
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_JWKS_BYTES) {
      await reader.cancel();
      throw new JwksError(`${uri}: key set exceeds ${MAX_JWKS_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
};

export interface RemoteJwks {
  readonly uri: string;
  readonly timeoutMs: number;
  /** How long fetched keys are used before a refresh is started. */
  readonly cacheMs: number;
}

interface Entry {
  keys?: KeySet;
  fetchedAt: number;
  inflight?: Promise<KeySet>;
  /** After a failed fetch, requests fail at once until this time instead of each waiting again. */
  retryAt: number;
  lastError?: string;
}

export interface JwksCacheOptions {
  fetch?: JwksFetcher;
  now?: () => number;
  /** Pause after a failed fetch before the next attempt (default 1 s). */
  failureBackoffMs?: number;
  onError?: (uri: string, message: string) => void;
}

/**
 * Key sets by URI, shared by every provider naming the same URI. `get` returns the keys at once
 * when cached (starting a background refresh when stale), else a promise bounded by the timeout.
 */
export class JwksCache {
  private readonly entries = new Map<string, Entry>();
  private readonly fetcher: JwksFetcher;
  private readonly now: () => number;
  private readonly backoffMs: number;

  constructor(private readonly options: JwksCacheOptions = {}) {
    this.fetcher = options.fetch ?? fetchJwks;
    this.now = options.now ?? Date.now;
    this.backoffMs = options.failureBackoffMs ?? 1000;
  }

  get(remote: RemoteJwks): KeySet | Promise<KeySet> {
    let entry = this.entries.get(remote.uri);
    if (!entry) this.entries.set(remote.uri, (entry = { fetchedAt: 0, retryAt: 0 }));
    const now = this.now();
    if (entry.keys) {
      // Stale keys keep serving while the refresh runs: key rotation adds keys before using them.
      if (now - entry.fetchedAt >= remote.cacheMs && !entry.inflight && now >= entry.retryAt) void this.refresh(entry, remote).catch(() => undefined);
      return entry.keys;
    }
    if (entry.inflight) return entry.inflight;
    if (now < entry.retryAt) return Promise.reject(new JwksError(`${remote.uri}: ${entry.lastError ?? 'fetch failed'}`));
    return this.refresh(entry, remote);
  }

  private refresh(entry: Entry, remote: RemoteJwks): Promise<KeySet> {
    const attempt = (async () => {
      try {
        const keys = parseJwks(await this.fetcher(remote.uri, remote.timeoutMs), remote.uri);
        entry.keys = keys;
        entry.fetchedAt = this.now();
        entry.lastError = undefined;
        return keys;
      } catch (error) {
        const message = error instanceof Error && error.name === 'TimeoutError' ? `no answer within ${remote.timeoutMs} ms` : (error as Error).message;
        entry.lastError = message;
        entry.retryAt = this.now() + this.backoffMs;
        this.options.onError?.(remote.uri, message);
        throw new JwksError(`${remote.uri}: ${message}`);
      } finally {
        entry.inflight = undefined;
      }
    })();
    entry.inflight = attempt;
    return attempt;
  }
}
