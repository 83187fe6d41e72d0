// Test keys and tokens: a key pair per JWS algorithm generated in the process (nothing committed),
// its public JWK with a kid, and compact tokens signed with it or deliberately broken.
import * as crypto from 'node:crypto';

export type TestAlgorithm = 'RS256' | 'RS384' | 'PS256' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA';

export interface TestSigner {
  readonly alg: TestAlgorithm;
  readonly kid: string;
  readonly jwk: crypto.JsonWebKey & { kid: string; alg: string; use: string };
  sign(payload: Record<string, unknown>, header?: Record<string, unknown>): string;
}

function keyPair(alg: TestAlgorithm): crypto.KeyPairKeyObjectResult {
  if (alg.startsWith('RS') || alg.startsWith('PS')) return crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  if (alg === 'ES256') return crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  if (alg === 'ES384') return crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  if (alg === 'ES512') return crypto.generateKeyPairSync('ec', { namedCurve: 'P-521' });
  return crypto.generateKeyPairSync('ed25519');
}

const segment = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

export function testSigner(alg: TestAlgorithm, kid = `${alg.toLowerCase()}-key`): TestSigner {
  const { publicKey, privateKey } = keyPair(alg);
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  const hash = alg === 'EdDSA' ? null : `sha${alg.slice(2)}`;
  return {
    alg,
    kid,
    jwk,
    sign(payload, header = {}) {
      const input = `${segment({ alg, typ: 'JWT', kid, ...header })}.${segment(payload)}`;
      const options: crypto.SignKeyObjectInput | crypto.SignPrivateKeyInput = alg.startsWith('ES')
        ? { key: privateKey, dsaEncoding: 'ieee-p1363' }
        : alg.startsWith('PS')
          ? { key: privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST }
          : { key: privateKey };
      return `${input}.${crypto.sign(hash, Buffer.from(input), options).toString('base64url')}`;
    },
  };
}

export function jwksOf(...signers: TestSigner[]): string {
  return JSON.stringify({ keys: signers.map((s) => s.jwk) });
}

/** The same token with `alg: none` and no signature, as an attacker would send it. */
export function unsignedToken(payload: Record<string, unknown>): string {
  return `${segment({ alg: 'none', typ: 'JWT' })}.${segment(payload)}.`;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
