// The tunnel with mesh mTLS over real TLS 1.3 on loopback, certificates signed by the real CA code:
// the right identity is accepted and recorded as the source principal, wrong ones are refused with
// a reason, and leaf rotation and root rotation under load lose no request.
import test, { type ExecutionContext } from 'ava';
import { promises as fs, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { createKeyAndCsr } from '../identity/key-and-csr';
import { loadCaKeys, type CaKeys } from '../../server/ca/ca-keys';
import { signCsr } from '../../server/ca/csr-signer';
import { TunnelError, TunnelPool } from './tunnel-pool';
import { TunnelServer, type SourceMetadata } from './tunnel-server';
import type { TunnelCertificate, TunnelCredentials } from './tunnel-credentials';
import { exchange, startEcho } from './tunnel-test-support';

const TD = 'cluster.local';
const WEB = 'spiffe://cluster.local/ns/shop/sa/web';
const DB = 'spiffe://cluster.local/ns/shop/sa/db';
const NODE_B = 'spiffe://cluster.local/node/host-b';
const DESTINATION = { address: '10.0.0.7', port: 8080 };

async function newCa(t: ExecutionContext): Promise<CaKeys> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tunnel-mtls-ca-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  return loadCaKeys({ trustDomain: TD, stateDir: dir });
}

async function issue(keys: CaKeys, spiffeId: string): Promise<TunnelCertificate> {
  const { csrPem, privateKeyPem } = await createKeyAndCsr(spiffeId);
  const leaf = signCsr(keys, TD, csrPem, { requester: { node: 'test' }, allowedIdentities: () => new Set([spiffeId]) });
  return { certificateChainPem: [leaf.certificatePem, ...leaf.chainPem].join('\n'), privateKeyPem };
}

/** An agent's certificates as the tunnel sees them, replaceable in place like IdentityManager's. */
class TestCredentials implements TunnelCredentials {
  readonly certs = new Map<string, TunnelCertificate>();
  bundle: string;
  constructor(bundle: string) {
    this.bundle = bundle;
  }
  certificate(id: string) {
    return this.certs.get(id);
  }
  trustBundlePem() {
    return this.bundle;
  }
}

interface Mesh {
  server: TunnelServer;
  serverCreds: TestCredentials;
  clientCreds: TestCredentials;
  pool: TunnelPool;
  peer: { host: string; port: number };
  sources: SourceMetadata[];
}

async function startMesh(t: ExecutionContext, ca: CaKeys, options: { expected?: readonly string[]; clientCa?: CaKeys } = {}): Promise<Mesh> {
  const echo = await startEcho(t);
  const serverCreds = new TestCredentials(ca.trustBundle.pem);
  serverCreds.certs.set(NODE_B, await issue(ca, NODE_B));
  serverCreds.certs.set(DB, await issue(ca, DB));
  const sources: SourceMetadata[] = [];
  const server = new TunnelServer({
    resolveInbound: (_destination, source) => {
      sources.push(source);
      return { host: '127.0.0.1', port: echo.port };
    },
    mtls: { credentials: serverCreds, identities: () => [DB], defaultIdentity: () => NODE_B, trustDomain: TD },
  });
  t.teardown(() => server.close(100));
  const { port } = await server.listen(0, '127.0.0.1');
  const clientCa = options.clientCa ?? ca;
  const clientCreds = new TestCredentials(ca.trustBundle.pem);
  clientCreds.certs.set(WEB, await issue(clientCa, WEB));
  const pool = new TunnelPool({
    mtls: { credentials: clientCreds, expectedIdentities: () => options.expected ?? [DB], defaultSource: () => WEB },
    connectTimeoutMs: 20_000,
  });
  t.teardown(() => pool.close(100));
  return { server, serverCreds, clientCreds, pool, peer: { host: '127.0.0.1', port }, sources };
}

/** `total` request/response exchanges, `concurrency` at a time; returns how many failed and why. */
async function load(mesh: Mesh, total: number, concurrency: number, during?: (done: number) => Promise<void> | void): Promise<{ failures: string[] }> {
  let next = 0;
  let done = 0;
  const failures: string[] = [];
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      try {
        const reply = await exchange(await mesh.pool.open(mesh.peer, DESTINATION), `request ${i}`);
        if (reply.toString() !== `request ${i}`) failures.push(`request ${i}: got ${reply.toString()}`);
      } catch (error) {
        failures.push(`request ${i}: ${(error as Error).message}`);
      }
      done++;
      if (during) await during(done);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { failures };
}

test('the right peer identity is accepted over TLS 1.3 and the sender identity reaches the inbound side as source principal', async (t) => {
  const ca = await newCa(t);
  const mesh = await startMesh(t, ca);
  const replies = await Promise.all([1, 2, 3].map(async (i) => (await exchange(await mesh.pool.open(mesh.peer, DESTINATION), `hello ${i}`)).toString()));
  t.deepEqual(replies, ['hello 1', 'hello 2', 'hello 3']);
  t.is(mesh.pool.stats().sessionsCreated, 1, 'three streams, one handshake');
  t.deepEqual(mesh.sources.map((s) => s.principal), [WEB, WEB, WEB]);

  // A forged header does not become the principal.
  await exchange(await mesh.pool.open(mesh.peer, DESTINATION, { principal: DB }), 'forged');
  t.is(mesh.sources.at(-1)!.principal, WEB);

  // TLS 1.2 is refused outright.
  const legacy = tls.connect({ host: '127.0.0.1', port: mesh.peer.port, maxVersion: 'TLSv1.2', ca: ca.trustBundle.pem, ALPNProtocols: ['h2'], rejectUnauthorized: false });
  const error = await new Promise<Error>((resolve) => legacy.once('error', resolve));
  t.regex(error.message, /protocol version|alert/i);
});

test('a peer proving another identity than the destination may have fails the stream with the reason', async (t) => {
  const ca = await newCa(t);
  const mesh = await startMesh(t, ca, { expected: ['spiffe://cluster.local/ns/shop/sa/payments'] });
  const error = await t.throwsAsync(mesh.pool.open(mesh.peer, DESTINATION), { instanceOf: TunnelError });
  t.regex(error!.message, /peer identity mismatch: the peer presented spiffe:\/\/cluster\.local\/node\/host-b, the destination may only be spiffe:\/\/cluster\.local\/ns\/shop\/sa\/payments/);
  t.is(mesh.sources.length, 0, 'nothing reached the inbound side');
});

test('a destination without a known identity or a sender without a certificate opens nothing', async (t) => {
  const ca = await newCa(t);
  const mesh = await startMesh(t, ca, { expected: [] });
  const unknown = await t.throwsAsync(mesh.pool.open(mesh.peer, DESTINATION), { instanceOf: TunnelError });
  t.regex(unknown!.message, /no mesh identity is known for 10\.0\.0\.7:8080/);
  const mesh2 = await startMesh(t, ca);
  mesh2.clientCreds.certs.clear();
  const missing = await t.throwsAsync(mesh2.pool.open(mesh2.peer, DESTINATION), { instanceOf: TunnelError });
  t.regex(missing!.message, /no certificate for spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web yet/);
  t.is(mesh2.pool.stats().sessionsCreated, 0);
});

test('a client certificate from another CA is refused by the receiving agent', async (t) => {
  const ca = await newCa(t);
  const other = await newCa(t);
  const mesh = await startMesh(t, ca, { clientCa: other });
  const error = await t.throwsAsync(mesh.pool.open(mesh.peer, DESTINATION), { instanceOf: TunnelError });
  t.regex(error!.message, /unknown ca|certificate|closed/i);
  t.is(mesh.sources.length, 0);
});

test('leaf rotation on both ends during 2000 requests: zero failures, new sessions for new certificates', async (t) => {
  const ca = await newCa(t);
  const mesh = await startMesh(t, ca);
  let rotated = false;
  const { failures } = await load(mesh, 2000, 16, async (done) => {
    if (rotated || done < 700) return;
    rotated = true;
    mesh.serverCreds.certs.set(DB, await issue(ca, DB));
    mesh.server.refreshCredentials();
    mesh.clientCreds.certs.set(WEB, await issue(ca, WEB));
    mesh.pool.rotate(WEB);
  });
  t.deepEqual(failures, []);
  t.true(rotated);
  const { sessionsCreated, streamsOpened } = mesh.pool.stats();
  t.is(streamsOpened, 2000);
  t.true(sessionsCreated >= 2 && sessionsCreated <= 4, `sessions ${sessionsCreated}`);
});

test('root rotation during 2000 requests: trust the new root, move leaves to it, retire the old root, zero failures', async (t) => {
  const oldCa = await newCa(t);
  const newRoot = await newCa(t);
  const mesh = await startMesh(t, oldCa);
  const both = oldCa.trustBundle.pem + newRoot.trustBundle.pem;
  const steps: Array<() => Promise<void>> = [
    async () => {
      // 1. Every agent trusts both roots.
      mesh.serverCreds.bundle = both;
      mesh.clientCreds.bundle = both;
      mesh.server.refreshCredentials();
      mesh.pool.rotate();
    },
    async () => {
      // 2. Leaves move to the new root, one end first, the other later.
      mesh.serverCreds.certs.set(DB, await issue(newRoot, DB));
      mesh.serverCreds.certs.set(NODE_B, await issue(newRoot, NODE_B));
      mesh.server.refreshCredentials();
    },
    async () => {
      mesh.clientCreds.certs.set(WEB, await issue(newRoot, WEB));
      mesh.pool.rotate(WEB);
    },
    async () => {
      // 3. The old root is retired everywhere.
      mesh.serverCreds.bundle = newRoot.trustBundle.pem;
      mesh.clientCreds.bundle = newRoot.trustBundle.pem;
      mesh.server.refreshCredentials();
      mesh.pool.rotate();
    },
  ];
  let step = 0;
  let busy = false;
  const { failures } = await load(mesh, 2000, 16, async (done) => {
    if (busy || step >= steps.length || done < 300 * (step + 1)) return;
    busy = true;
    await steps[step++]!();
    busy = false;
  });
  t.deepEqual(failures, []);
  t.is(step, steps.length);
  // After retiring the old root, a client still holding an old-root leaf is refused by the receiver
  // (the client itself trusts both roots, so only the receiver's check can stop it).
  const stale = new TestCredentials(both);
  stale.certs.set(WEB, await issue(oldCa, WEB));
  const pool = new TunnelPool({ mtls: { credentials: stale, expectedIdentities: () => [DB], defaultSource: () => WEB }, connectTimeoutMs: 20_000 });
  t.teardown(() => pool.close(100));
  const refused = await t.throwsAsync(pool.open(mesh.peer, DESTINATION), { instanceOf: TunnelError });
  t.regex(refused!.message, /unknown ca|certificate|closed/i);
});
