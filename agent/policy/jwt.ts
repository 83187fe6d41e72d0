// Verifying one compact JWS token against a provider's rules with Node's crypto: size limit,
// algorithm allow-list (RS/PS/ES 256-512, EdDSA; `none` and HMAC refused), key choice by kid and
// type, signature, exp/nbf with clock skew, issuer and audiences. Failures carry Envoy's wording.
import * as crypto from 'node:crypto';
import type { Jwk, KeySet } from './jwks-cache';

/** Tokens above this size are refused before any parsing (Envoy's header limit is 60 KiB). */
export const MAX_JWT_BYTES = 16 * 1024;
/** Envoy's default allowance for clocks that disagree. */
export const DEFAULT_CLOCK_SKEW_SECONDS = 60;

export type JwtPayload = Record<string, unknown>;

export interface JwtRules {
  /** Empty: any issuer. */
  readonly issuer: string;
  /** Empty: any audience. */
  readonly audiences: readonly string[];
  readonly clockSkewSeconds: number;
}

export type JwtVerification =
  | { readonly ok: true; readonly payload: JwtPayload; readonly payloadSegment: string }
  | { readonly ok: false; readonly reason: string };

/** The parts of a token decoded without verifying anything, to choose its provider. */
export interface DecodedJwt {
  readonly header: Record<string, unknown>;
  readonly payload: JwtPayload;
  readonly signingInput: string;
  readonly payloadSegment: string;
  readonly signature: Buffer;
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

function fail(reason: string): { ok: false; reason: string } {
  return { ok: false, reason };
}

function decodeJson(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Splits and decodes a token, or says why it is not one. */
export function decodeJwt(token: string): DecodedJwt | { reason: string } {
  if (token.length > MAX_JWT_BYTES) return { reason: `Jwt is too long: ${token.length} bytes exceeds ${MAX_JWT_BYTES}` };
  const first = token.indexOf('.');
  const second = first < 0 ? -1 : token.indexOf('.', first + 1);
  if (first < 0 || second < 0 || token.indexOf('.', second + 1) >= 0) return { reason: 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections' };
  const headerSegment = token.slice(0, first);
  const payloadSegment = token.slice(first + 1, second);
  const signatureSegment = token.slice(second + 1);
  if (!BASE64URL.test(headerSegment) || !BASE64URL.test(payloadSegment) || !BASE64URL.test(signatureSegment)) return { reason: 'Jwt is not base64url encoded' };
  const header = decodeJson(headerSegment);
  if (!header) return { reason: 'Jwt header is an invalid JSON' };
  const payload = decodeJson(payloadSegment);
  if (!payload) return { reason: 'Jwt payload is an invalid JSON' };
  return { header, payload, signingInput: token.slice(0, second), payloadSegment, signature: Buffer.from(signatureSegment, 'base64url') };
}

interface Algorithm {
  readonly kty: string;
  readonly hash: string | null;
  readonly curve?: string;
  readonly pss?: boolean;
}

const ALGORITHMS: Readonly<Record<string, Algorithm>> = {
  RS256: { kty: 'RSA', hash: 'sha256' },
  RS384: { kty: 'RSA', hash: 'sha384' },
  RS512: { kty: 'RSA', hash: 'sha512' },
  PS256: { kty: 'RSA', hash: 'sha256', pss: true },
  PS384: { kty: 'RSA', hash: 'sha384', pss: true },
  PS512: { kty: 'RSA', hash: 'sha512', pss: true },
  ES256: { kty: 'EC', hash: 'sha256', curve: 'P-256' },
  ES384: { kty: 'EC', hash: 'sha384', curve: 'P-384' },
  ES512: { kty: 'EC', hash: 'sha512', curve: 'P-521' },
  EdDSA: { kty: 'OKP', hash: null },
};

function keyFits(jwk: Jwk, alg: string, algorithm: Algorithm, kid: unknown): boolean {
  if (typeof kid === 'string' && jwk.kid !== undefined && jwk.kid !== kid) return false;
  if (jwk.alg !== undefined && jwk.alg !== alg) return false;
  if (jwk.kty !== algorithm.kty) return false;
  return algorithm.curve === undefined || jwk.crv === algorithm.curve;
}

function signatureValid(decoded: DecodedJwt, jwk: Jwk, algorithm: Algorithm): boolean {
  const data = Buffer.from(decoded.signingInput, 'ascii');
  try {
    if (algorithm.kty === 'EC') return crypto.verify(algorithm.hash, data, { key: jwk.key, dsaEncoding: 'ieee-p1363' }, decoded.signature);
    if (algorithm.pss) {
      return crypto.verify(algorithm.hash, data, { key: jwk.key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST }, decoded.signature);
    }
    return crypto.verify(algorithm.hash, data, jwk.key, decoded.signature);
  } catch {
    return false;
  }
}

function numericClaim(payload: JwtPayload, name: string): number | undefined | null {
  const value = payload[name];
  if (value === undefined) return undefined;
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** Verifies a decoded token's signature against the key set, then its time and audience claims. */
export function verifyJwt(decoded: DecodedJwt, keys: KeySet, rules: JwtRules, nowSeconds: number): JwtVerification {
  const alg = decoded.header.alg;
  if (typeof alg !== 'string') return fail('Jwt header [alg] field is required');
  if (alg === 'none') return fail('Jwt header [alg] is "none": unsigned tokens are refused');
  const algorithm = ALGORITHMS[alg];
  if (!algorithm) return fail(`Jwt header [alg] field value is invalid or not supported: ${alg}`);
  const candidates = keys.keys.filter((k) => keyFits(k, alg, algorithm, decoded.header.kid));
  if (candidates.length === 0) return fail('Jwks doesn\'t have key to match kid or alg from Jwt');
  if (!candidates.some((k) => signatureValid(decoded, k, algorithm))) return fail('Jwt verification fails');

  const { payload } = decoded;
  const exp = numericClaim(payload, 'exp');
  const nbf = numericClaim(payload, 'nbf');
  if (exp === null || nbf === null) return fail('Jwt exp or nbf claim is not a number');
  if (exp !== undefined && nowSeconds > exp + rules.clockSkewSeconds) return fail('Jwt is expired');
  if (nbf !== undefined && nowSeconds < nbf - rules.clockSkewSeconds) return fail('Jwt not yet valid');
  if (rules.issuer !== '' && payload.iss !== rules.issuer) return fail('Jwt issuer is not configured');
  if (rules.audiences.length > 0) {
    const aud = payload.aud;
    const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    if (!audiences.some((a) => typeof a === 'string' && rules.audiences.includes(a))) return fail('Audiences in Jwt are not allowed');
  }
  return { ok: true, payload, payloadSegment: decoded.payloadSegment };
}
