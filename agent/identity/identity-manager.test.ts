// The agent's identity end to end in one process against a real mesh-server on its TLS port: join
// token → node certificate → workload certificates → xDS over mTLS → renewal, persistence 0600,
// a restart with the server down, and the half-life ±10% schedule.
import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { promises as fs, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as net from 'node:net';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { AdsClient } from '../../lib/xds/ads-client';
import { TypeUrl } from '../../lib/xds/protos';
import { loadCaKeys } from '../../server/ca/ca-keys';
import { JoinTokens, loadOrCreateJoinSecret } from '../../server/ca/join-token';
import { MeshServer } from '../../server/mesh-server';
import { eventually } from '../../test/support/eventually';
import { IdentityManager, renewalDelayMs, type IdentityManagerOptions } from './identity-manager';

const logger = pino({ level: 'silent' });
const EXAMPLES = path.join(__dirname, '..', '..', 'examples');
const PRODUCTPAGE = 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage';
const SERVER_ID = 'spiffe://cluster.local/ns/istio-system/sa/mesh-server';

async function startServer(t: { teardown(fn: () => unknown): void }, caStateDir: string, port = 0): Promise<{ server: MeshServer; target: string }> {
  const server = new MeshServer({
    logger, configDir: EXAMPLES, adminAddress: '127.0.0.1:0', debounceMs: 10,
    secure: { address: `127.0.0.1:${port}`, caStateDir },
  });
  const addresses = await server.start();
  t.teardown(() => server.stop());
  return { server, target: `127.0.0.1:${addresses.secureXds!.port}` };
}

function managerOptions(dir: string, target: string, token: string | undefined, extra: Partial<IdentityManagerOptions> = {}): IdentityManagerOptions {
  return {
    server: target, trustDomain: 'cluster.local', node: 'host-a', workloadIds: [PRODUCTPAGE],
    stateDir: path.join(dir, 'agent'), bootstrapTrustPem: '', serverSpiffeId: SERVER_ID,
    joinToken: async () => token, logger, retryInitialMs: 100, retryMaxMs: 500, ...extra,
  };
}

test('bootstrap with a join token, workload certificate over mTLS, xDS over mTLS, renewal, 0600 files, restart with the server down', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mesh-identity-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const { server, target } = await startServer(t, path.join(dir, 'ca'));
  const bundle = server.trustBundlePem()!;
  const token = server.issueJoinToken('host-a');

  const manager = new IdentityManager({ ...managerOptions(dir, target, token), bootstrapTrustPem: bundle });
  t.teardown(() => manager.stop());
  await manager.start();
  const node = manager.certificate(manager.nodeId)!;
  t.is(new X509Certificate(node.certificateChainPem).subjectAltName, 'URI:spiffe://cluster.local/node/host-a');
  const workload = manager.certificate(PRODUCTPAGE)!;
  t.is(new X509Certificate(workload.certificateChainPem).subjectAltName, `URI:${PRODUCTPAGE}`);
  t.is(workload.trustBundlePem.trim(), bundle.trim());

  // Keys and certificates are on disk, readable by the agent's user only.
  const files = await fs.readdir(path.join(dir, 'agent', 'identity'));
  t.true(files.length >= 8);
  for (const file of files) t.is((await fs.stat(path.join(dir, 'agent', 'identity', file))).mode & 0o777, 0o600, file);

  // xDS over mTLS with the node certificate, as node host-a.
  const ads = new AdsClient({ target, node: { id: 'host-a' }, credentials: manager.channelCredentials() });
  t.teardown(() => ads.close());
  const update = new Promise<number>((resolve) => ads.once('update', (u) => resolve(u.count)));
  ads.subscribe(TypeUrl.Cluster, '*');
  t.true(await update > 0);

  // Renewal: a new certificate (new key, new serial) over the same mTLS channel.
  const before = new X509Certificate(manager.certificate(PRODUCTPAGE)!.certificateChainPem).serialNumber;
  const nodeBefore = manager.certificate(manager.nodeId)!.privateKeyPem;
  await manager.renewNow(manager.nodeId);
  await manager.renewNow(PRODUCTPAGE);
  t.not(new X509Certificate(manager.certificate(PRODUCTPAGE)!.certificateChainPem).serialNumber, before);
  t.not(manager.certificate(manager.nodeId)!.privateKeyPem, nodeBefore);

  // The same node certificate may not subscribe as another node.
  const impostor = new AdsClient({ target, node: { id: 'host-b' }, credentials: manager.channelCredentials(), backoff: { initialMs: 60_000 } });
  t.teardown(() => impostor.close());
  const denied = new Promise<grpc.StatusObject>((resolve) => impostor.once('disconnected', (status) => resolve(status)));
  impostor.subscribe(TypeUrl.Cluster, '*');
  const status = await denied;
  t.is(status.code, grpc.status.PERMISSION_DENIED);
  t.regex(status.details, /node "host-a"'s; it may not subscribe as node\.id "host-b"/);

  // Restart while the server is down: the stored certificates are used, no token needed.
  manager.stop();
  await server.stop();
  const restarted = new IdentityManager(managerOptions(dir, target, undefined));
  t.teardown(() => restarted.stop());
  await restarted.start();
  t.is(restarted.counters.loadedFromDisk, 2);
  t.is(restarted.certificate(PRODUCTPAGE)!.certificateChainPem, manager.certificate(PRODUCTPAGE)!.certificateChainPem);
});

test('an agent whose token was already used gets nothing and says so; xDS without a client certificate is refused', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mesh-identity-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const { server, target } = await startServer(t, path.join(dir, 'ca'));
  const token = server.issueJoinToken('host-a');
  const first = new IdentityManager({ ...managerOptions(path.join(dir, 'one'), target, token), bootstrapTrustPem: server.trustBundlePem()! });
  t.teardown(() => first.stop());
  await first.start();
  const second = new IdentityManager({ ...managerOptions(path.join(dir, 'two'), target, token), bootstrapTrustPem: server.trustBundlePem()! });
  t.teardown(() => second.stop());
  await second.start();
  t.is(second.certificate(second.nodeId), undefined);
  t.true(second.counters.renewalFailures > 0);

  const anonymous = new AdsClient({ target, node: { id: 'host-a' }, backoff: { initialMs: 60_000 },
    credentials: grpc.credentials.createSsl(Buffer.from(server.trustBundlePem()!)) });
  t.teardown(() => anonymous.close());
  const denied = new Promise<grpc.StatusObject>((resolve) => anonymous.once('disconnected', (status) => resolve(status)));
  anonymous.subscribe(TypeUrl.Cluster, '*');
  const status = await denied;
  t.is(status.code, grpc.status.UNAUTHENTICATED);
  t.regex(status.details, /needs a client certificate issued by this mesh/);
});

test('renewal is scheduled at half the lifetime, within ±10%', (t) => {
  const receivedAt = new Date(0);
  const notAfter = new Date(24 * 3600_000);
  const half = 12 * 3600_000;
  t.is(renewalDelayMs({ receivedAt, notAfter }, 0, () => 0.5), half);
  t.is(renewalDelayMs({ receivedAt, notAfter }, 0, () => 0), half * 0.9);
  t.true(Math.abs(renewalDelayMs({ receivedAt, notAfter }, 0, () => 0.999999) - half * 1.1) < 100);
  t.is(renewalDelayMs({ receivedAt, notAfter }, 20 * 3600_000, () => 0.5), 0, 'overdue renews at once');
});

test('a short-lived certificate is renewed on its own before it expires', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mesh-identity-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const { server, target } = await startServer(t, path.join(dir, 'ca'));
  const manager = new IdentityManager({ ...managerOptions(dir, target, server.issueJoinToken('host-a'), { ttlSeconds: 6 }), bootstrapTrustPem: server.trustBundlePem()! });
  t.teardown(() => manager.stop());
  const seen: string[] = [];
  manager.on('certificate', (id) => seen.push(id));
  await manager.start();
  await eventually('two renewals of the workload certificate', () => seen.filter((id) => id === PRODUCTPAGE).length >= 3, 40_000);
  t.true(manager.certificate(PRODUCTPAGE)!.notAfter.getTime() > Date.now());
});

test('an agent started before the server has nothing, keeps asking, and gets every certificate once the server is up', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'mesh-identity-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  // A free port for the server that is not there yet.
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));

  // The CA state (root, join secret) exists before the server serves, as after an earlier start.
  const caStateDir = path.join(dir, 'ca');
  const keys = await loadCaKeys({ trustDomain: 'cluster.local', stateDir: caStateDir });
  const token = new JoinTokens(await loadOrCreateJoinSecret(caStateDir)).issue('host-a');
  const manager = new IdentityManager({ ...managerOptions(dir, `127.0.0.1:${port}`, token, { retryInitialMs: 200, retryMaxMs: 1000 }), bootstrapTrustPem: keys.trustBundle.pem });
  t.teardown(() => manager.stop());
  await manager.start();
  t.is(manager.certificate(manager.nodeId), undefined);
  t.is(manager.certificate(PRODUCTPAGE), undefined);

  await startServer(t, caStateDir, port);
  await eventually('node and workload certificates', () => manager.certificate(manager.nodeId) !== undefined && manager.certificate(PRODUCTPAGE) !== undefined, 30_000);
  t.true(manager.counters.renewalFailures >= 2);
});
