// Join tokens that authenticate a mesh-agent's first contact (`meshctl bootstrap --node NAME`):
// compact, HMAC-SHA256-signed, short-lived and single use.
//
// HMAC rather than an ECDSA signature with the CA key: only mesh-server verifies these tokens, so a
// public-key signature buys nothing; a separate secret keeps the CA key for certificates only (a root
// rotation does not void outstanding tokens) and verification costs microseconds.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CaError } from './ca-error';
import { writeFileAtomic } from '../../lib/atomic-file';
import { ensurePrivateDir, exists } from './state-files';

export const JOIN_SECRET_FILE = 'join-token.key';
export const DEFAULT_JOIN_TOKEN_TTL_MS = 3600 * 1000;
/** Agents may run a little ahead of the server; a token issued "in the future" by that much is fine. */
export const JOIN_TOKEN_CLOCK_SKEW_MS = 60 * 1000;
/** Far above what a real token needs, so verification never does work proportional to attacker input. */
export const MAX_JOIN_TOKEN_LENGTH = 1024;
export const DEFAULT_REPLAY_CAPACITY = 100_000;

const PREFIX = 'mjt1';
const SECRET_BYTES = 32;
const MAC_BYTES = 32;
const NODE_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/;

interface Claims {
  /** Node name the token lets its holder claim. */
  node: string;
  /** Issued at and expiry, milliseconds since the epoch. */
  iat: number;
  exp: number;
  /** Random id, the key of the replay store. */
  jti: string;
}

export interface IssueOptions {
  now?: Date;
  ttlMs?: number;
}

export interface JoinTokensOptions {
  /** How many used token ids are remembered at most; when full of unexpired ids, tokens are refused. */
  replayCapacity?: number;
}

function refuse(code: ConstructorParameters<typeof CaError>[0], message: string): never {
  throw new CaError(code, message);
}

export function validNodeName(node: string): boolean {
  return NODE_NAME.test(node);
}

/** Reads the secret from the state dir, creating it (0600) on first start. */
export async function loadOrCreateJoinSecret(stateDir: string): Promise<Buffer> {
  const file = path.join(stateDir, JOIN_SECRET_FILE);
  if (await exists(file)) {
    const secret = await fs.readFile(file);
    if (secret.length !== SECRET_BYTES) {
      throw new CaError('ca-material-invalid', `${file} must hold ${SECRET_BYTES} bytes, has ${secret.length}; remove it to create a new secret (outstanding join tokens become invalid)`);
    }
    return secret;
  }
  await ensurePrivateDir(stateDir);
  const secret = randomBytes(SECRET_BYTES);
  await writeFileAtomic(file, secret, 0o600);
  return secret;
}

export class JoinTokens {
  readonly #secret: Buffer;
  readonly #capacity: number;
  /** Used token ids and when they expire; after expiry the token is refused as expired anyway. */
  readonly #used = new Map<string, number>();

  constructor(secret: Uint8Array, options: JoinTokensOptions = {}) {
    if (secret.length < SECRET_BYTES) throw new RangeError(`the join-token secret must be at least ${SECRET_BYTES} bytes`);
    this.#secret = Buffer.from(secret);
    this.#capacity = options.replayCapacity ?? DEFAULT_REPLAY_CAPACITY;
  }

  issue(node: string, options: IssueOptions = {}): string {
    if (!validNodeName(node)) throw new RangeError(`"${node}" is not a valid node name (letters, digits, '.', '-', '_', at most 253)`);
    const iat = (options.now ?? new Date()).getTime();
    const claims: Claims = { node, iat, exp: iat + (options.ttlMs ?? DEFAULT_JOIN_TOKEN_TTL_MS), jti: randomBytes(16).toString('base64url') };
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${PREFIX}.${payload}.${this.#mac(payload).toString('base64url')}`;
  }

  /** Returns the node the token was issued for, and marks the token used. */
  verify(token: string, options: { now?: Date } = {}): string {
    const now = (options.now ?? new Date()).getTime();
    if (typeof token !== 'string' || token.length > MAX_JOIN_TOKEN_LENGTH) refuse('token-malformed', 'the join token is not a string of at most 1024 characters');
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] !== PREFIX) refuse('token-malformed', `the join token is not of the form ${PREFIX}.PAYLOAD.MAC`);
    const [, payload, macText] = parts as [string, string, string];
    const mac = Buffer.from(macText, 'base64url');
    // The MAC is checked before the payload is parsed, so unauthenticated input never reaches JSON.parse.
    if (mac.length !== MAC_BYTES || !timingSafeEqual(mac, this.#mac(payload))) {
      refuse('token-bad-signature', 'the join token was not issued by this mesh (signature mismatch); issue a new one with meshctl bootstrap');
    }
    const claims = parseClaims(payload);
    if (now < claims.iat - JOIN_TOKEN_CLOCK_SKEW_MS) {
      refuse('token-not-yet-valid', `the join token is valid from ${new Date(claims.iat).toISOString()}; check the clocks of server and issuer`);
    }
    if (now >= claims.exp) refuse('token-expired', `the join token expired at ${new Date(claims.exp).toISOString()}; issue a new one with meshctl bootstrap`);
    this.#remember(claims, now);
    return claims.node;
  }

  #mac(payload: string): Buffer {
    return createHmac('sha256', this.#secret).update(payload).digest();
  }

  #remember(claims: Claims, now: number): void {
    if (this.#used.has(claims.jti)) refuse('token-replayed', `the join token for node "${claims.node}" was already used; issue a new one with meshctl bootstrap`);
    if (this.#used.size >= this.#capacity) {
      for (const [jti, exp] of this.#used) if (exp <= now) this.#used.delete(jti);
    }
    // Evicting an unexpired id would make its token replayable, so a full store fails closed.
    if (this.#used.size >= this.#capacity) {
      refuse('token-replay-store-full', `${this.#capacity} join tokens were used within their lifetime; retry later or raise the capacity`);
    }
    this.#used.set(claims.jti, claims.exp);
  }
}

function parseClaims(payload: string): Claims {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return refuse('token-malformed', 'the join token payload is not JSON');
  }
  const c = value as Partial<Record<keyof Claims, unknown>>;
  if (typeof c !== 'object' || c === null || typeof c.node !== 'string' || !validNodeName(c.node)
    || !Number.isSafeInteger(c.iat) || !Number.isSafeInteger(c.exp) || typeof c.jti !== 'string' || c.jti.length === 0) {
    refuse('token-malformed', 'the join token payload lacks node, iat, exp or jti');
  }
  return c as Claims;
}
