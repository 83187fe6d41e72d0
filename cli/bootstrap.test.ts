// meshctl bootstrap issues a token that mesh-server's join-token check accepts for exactly that
// node, and says clearly when the secret is missing or the node name is bad.
import test from 'ava';
import { promises as fs, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { JoinTokens, loadOrCreateJoinSecret } from '../server/ca/join-token';
import { bootstrapCommand } from './bootstrap';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (s: string) => out.push(s), stderr: (s: string) => err.push(s) } };
}

test('the printed token verifies with the server secret, for the node named, and only once', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'meshctl-bootstrap-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const secret = await loadOrCreateJoinSecret(dir);
  const { out, io } = capture();
  t.is(await bootstrapCommand({ node: 'host-a', caStateDir: dir, ttlMinutes: 5 }, io), 0);
  const tokens = new JoinTokens(secret);
  t.is(tokens.verify(out[0]!), 'host-a');
  t.throws(() => tokens.verify(out[0]!), { message: /already used/ });
  t.throws(() => new JoinTokens(secret).verify(out[0]!, { now: new Date(Date.now() + 6 * 60_000) }), { message: /expired/ });
});

test('a missing secret and a bad node name are errors that say what to do', async (t) => {
  const { err, io } = capture();
  t.is(await bootstrapCommand({ node: 'host-a', caStateDir: '/nonexistent-mesh-state' }, io), 1);
  t.regex(err[0]!, /join-token\.key does not exist; start mesh-server with its TLS port/);
  t.is(await bootstrapCommand({ node: 'bad/name', caStateDir: '/tmp' }, io), 2);
  t.regex(err[1]!, /not a valid node name/);
});
