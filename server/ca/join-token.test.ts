// Tests of join tokens: a token admits its node exactly once within its lifetime, and forged,
// altered, expired, early or replayed tokens are refused with their code.
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { promises as fs, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CaError, type CaErrorCode } from './ca-error';
import { DEFAULT_JOIN_TOKEN_TTL_MS, JOIN_SECRET_FILE, JoinTokens, loadOrCreateJoinSecret } from './join-token';

const issuedAt = new Date('2026-06-01T12:00:00Z');
const later = (ms: number): Date => new Date(issuedAt.getTime() + ms);

function refused(t: import('ava').ExecutionContext, verify: () => unknown, code: CaErrorCode): void {
  const error = t.throws(verify, { instanceOf: CaError });
  t.is(error?.code, code, error?.message);
}

test('a valid token admits its node once; the replay is refused', (t) => {
  const tokens = new JoinTokens(randomBytes(32));
  const token = tokens.issue('host-a.dc1', { now: issuedAt });
  t.true(token.length < 200);
  t.is(tokens.verify(token, { now: later(1000) }), 'host-a.dc1');
  refused(t, () => tokens.verify(token, { now: later(2000) }), 'token-replayed');
});

test('an expired token is refused, by default after one hour', (t) => {
  const tokens = new JoinTokens(randomBytes(32));
  refused(t, () => tokens.verify(tokens.issue('host-a', { now: issuedAt }), { now: later(DEFAULT_JOIN_TOKEN_TTL_MS) }), 'token-expired');
  refused(t, () => tokens.verify(tokens.issue('host-a', { now: issuedAt, ttlMs: 60_000 }), { now: later(60_001) }), 'token-expired');
});

test('a token issued in the future beyond the clock skew is not yet valid', (t) => {
  const tokens = new JoinTokens(randomBytes(32));
  refused(t, () => tokens.verify(tokens.issue('host-a', { now: later(3600_000) }), { now: issuedAt }), 'token-not-yet-valid');
  t.is(tokens.verify(tokens.issue('host-a', { now: later(30_000) }), { now: issuedAt }), 'host-a');
});

test('a token whose node was changed is refused as a bad signature', (t) => {
  const tokens = new JoinTokens(randomBytes(32));
  const [prefix, payload, mac] = tokens.issue('host-a', { now: issuedAt }).split('.');
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as { node: string };
  claims.node = 'host-b';
  const forged = `${prefix}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${mac}`;
  refused(t, () => tokens.verify(forged, { now: later(1000) }), 'token-bad-signature');
  const flipped = tokens.issue('host-a', { now: issuedAt });
  refused(t, () => tokens.verify(flipped.slice(0, -2) + (flipped.endsWith('AA') ? 'BB' : 'AA'), { now: later(1000) }), 'token-bad-signature');
});

test('a token from another server secret is refused', (t) => {
  const theirs = new JoinTokens(randomBytes(32)).issue('host-a', { now: issuedAt });
  refused(t, () => new JoinTokens(randomBytes(32)).verify(theirs, { now: later(1000) }), 'token-bad-signature');
});

test('malformed tokens are refused, and a well-formed one with a short or wrong MAC is a bad signature', (t) => {
  const tokens = new JoinTokens(randomBytes(32));
  for (const bad of ['', 'mjt1', 'mjt1.a', 'mjt2.a.b', 'mjt1.a.b.c', `mjt1.${'a'.repeat(2000)}.b`]) {
    refused(t, () => tokens.verify(bad, { now: issuedAt }), 'token-malformed');
  }
  refused(t, () => tokens.verify('mjt1.e30.AAAA', { now: issuedAt }), 'token-bad-signature');
  refused(t, () => tokens.verify(`mjt1.e30.${'A'.repeat(43)}`, { now: issuedAt }), 'token-bad-signature');
});

test('when the replay store is full of unexpired ids, tokens are refused rather than made replayable', (t) => {
  const tokens = new JoinTokens(randomBytes(32), { replayCapacity: 2 });
  tokens.verify(tokens.issue('a', { now: issuedAt }), { now: issuedAt });
  tokens.verify(tokens.issue('b', { now: issuedAt }), { now: issuedAt });
  refused(t, () => tokens.verify(tokens.issue('c', { now: issuedAt }), { now: issuedAt }), 'token-replay-store-full');
  // Once the remembered tokens expired they are forgotten and room is made.
  const afterExpiry = later(DEFAULT_JOIN_TOKEN_TTL_MS + 1);
  t.is(tokens.verify(tokens.issue('d', { now: afterExpiry }), { now: afterExpiry }), 'd');
});

test('an invalid node name cannot be put in a token', (t) => {
  const tokens = new JoinTokens(randomBytes(32));
  t.throws(() => tokens.issue('host a'), { instanceOf: RangeError });
  t.throws(() => tokens.issue(''), { instanceOf: RangeError });
});

test('the secret is created once with mode 0600 and read back on the next start', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mesh-ca-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const stateDir = path.join(dir, 'state');
  const first = await loadOrCreateJoinSecret(stateDir);
  t.is((await fs.stat(path.join(stateDir, JOIN_SECRET_FILE))).mode & 0o777, 0o600);
  t.is((await fs.stat(stateDir)).mode & 0o777, 0o700);
  const second = await loadOrCreateJoinSecret(stateDir);
  t.true(first.equals(second));
  const token = new JoinTokens(first).issue('host-a');
  t.is(new JoinTokens(second).verify(token), 'host-a');
});
