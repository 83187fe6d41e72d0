// JWT verification: every supported algorithm with keys generated here, and the refusals —
// alg none, HMAC, oversized, malformed, tampered, wrong key, expiry and not-before with skew,
// issuer and audiences.
import test from 'ava';
import { parseJwks, JwksError } from './jwks-cache';
import { decodeJwt, verifyJwt, MAX_JWT_BYTES, type DecodedJwt } from './jwt';
import { jwksOf, nowSeconds, testSigner, unsignedToken, type TestAlgorithm } from './jwt-testing';

const rules = { issuer: 'https://issuer.example', audiences: ['web'], clockSkewSeconds: 60 };
const claims = () => ({ iss: 'https://issuer.example', sub: 'alice', aud: 'web', exp: nowSeconds() + 600 });

function decoded(token: string): DecodedJwt {
  const d = decodeJwt(token);
  if ('reason' in d) throw new Error(d.reason);
  return d;
}

for (const alg of ['RS256', 'RS384', 'PS256', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as TestAlgorithm[]) {
  test(`${alg}: a signed token verifies and a tampered one does not`, (t) => {
    const signer = testSigner(alg);
    const keys = parseJwks(jwksOf(signer), 'test');
    const token = signer.sign(claims());
    const ok = verifyJwt(decoded(token), keys, rules, nowSeconds());
    t.true(ok.ok);
    const [h, , s] = token.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims(), sub: 'mallory' })).toString('base64url')}.${s}`;
    t.deepEqual(verifyJwt(decoded(forged), keys, rules, nowSeconds()), { ok: false, reason: 'Jwt verification fails' });
  });
}

test('alg none and HMAC are refused, whatever the payload', (t) => {
  const keys = parseJwks(jwksOf(testSigner('ES256')), 'test');
  const none = verifyJwt(decoded(unsignedToken(claims())), keys, rules, nowSeconds());
  t.false(none.ok);
  t.regex((none as { reason: string }).reason, /"none": unsigned tokens are refused/);
  const hmac = testSigner('ES256');
  const token = hmac.sign(claims(), { alg: 'HS256' });
  t.regex((verifyJwt(decoded(token), keys, rules, nowSeconds()) as { reason: string }).reason, /not supported: HS256/);
});

test('a key of another signer, or one whose kid does not match, verifies nothing', (t) => {
  const mine = testSigner('ES256', 'mine');
  const theirs = testSigner('ES256', 'theirs');
  const keys = parseJwks(jwksOf(mine), 'test');
  t.deepEqual(verifyJwt(decoded(theirs.sign(claims())), keys, rules, nowSeconds()), { ok: false, reason: "Jwks doesn't have key to match kid or alg from Jwt" });
  t.deepEqual(verifyJwt(decoded(theirs.sign(claims(), { kid: 'mine' })), keys, rules, nowSeconds()), { ok: false, reason: 'Jwt verification fails' });
});

test('exp and nbf are checked with 60 s of skew', (t) => {
  const signer = testSigner('ES256');
  const keys = parseJwks(jwksOf(signer), 'test');
  const now = nowSeconds();
  const check = (extra: Record<string, unknown>) => verifyJwt(decoded(signer.sign({ ...claims(), ...extra })), keys, rules, now);
  t.deepEqual(check({ exp: now - 61 }), { ok: false, reason: 'Jwt is expired' });
  t.true(check({ exp: now - 30 }).ok);
  t.deepEqual(check({ nbf: now + 120 }), { ok: false, reason: 'Jwt not yet valid' });
  t.true(check({ nbf: now + 30 }).ok);
  t.false(check({ exp: 'tomorrow' }).ok);
});

test('issuer and audiences must match the provider', (t) => {
  const signer = testSigner('ES256');
  const keys = parseJwks(jwksOf(signer), 'test');
  const check = (extra: Record<string, unknown>) => verifyJwt(decoded(signer.sign({ ...claims(), ...extra })), keys, rules, nowSeconds());
  t.deepEqual(check({ iss: 'https://evil.example' }), { ok: false, reason: 'Jwt issuer is not configured' });
  t.deepEqual(check({ aud: 'other' }), { ok: false, reason: 'Audiences in Jwt are not allowed' });
  t.true(check({ aud: ['other', 'web'] }).ok);
  t.true(verifyJwt(decoded(signer.sign({ ...claims(), aud: 'anything' })), keys, { ...rules, audiences: [] }, nowSeconds()).ok);
});

test('oversized and malformed tokens are refused before any crypto', (t) => {
  t.regex((decodeJwt('a'.repeat(MAX_JWT_BYTES + 1)) as { reason: string }).reason, /too long/);
  t.regex((decodeJwt('only.two') as { reason: string }).reason, /two dots/);
  t.regex((decodeJwt('a.b.c.d') as { reason: string }).reason, /two dots/);
  t.regex((decodeJwt('!!.e30.x') as { reason: string }).reason, /base64url/);
  t.regex((decodeJwt(`${Buffer.from('not json').toString('base64url')}.e30.x`) as { reason: string }).reason, /header is an invalid JSON/);
});

test('key sets: private, symmetric and broken keys are not used; none usable is an error', (t) => {
  const signer = testSigner('ES256');
  t.is(parseJwks(JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }, signer.jwk] }), 'x').keys.length, 1);
  t.throws(() => parseJwks(JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }), 'inline'), { instanceOf: JwksError, message: /inline: no usable signing key.*not a public key/ });
  t.throws(() => parseJwks('{"keys": 1}', 'inline'), { message: /"keys" array/ });
  t.throws(() => parseJwks('nope', 'inline'), { message: /not JSON/ });
});
