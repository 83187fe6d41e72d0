// The outbound listener with workload attribution, in process over real mTLS on loopback: each
// accepted connection's workload (by uid) picks the certificate its tunnel stream presents, so the
// receiving tunnel server records that workload's SPIFFE ID; a uid of no workload goes as the node.
import test, { type ExecutionContext } from 'ava';
import { promises as fs, mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { silentLogger } from '../../lib/log';
import { loadCaKeys, type CaKeys } from '../../server/ca/ca-keys';
import { signCsr } from '../../server/ca/csr-signer';
import type { Service } from '../../server/registry/service';
import { endpoint, port, service } from '../../server/translate/testing';
import { parseAgentConfig } from '../config/agent-config';
import { request, startHttpApp, translatedView } from '../http/testing';
import { Outbound } from '../proxy/outbound';
import { OutboundTable } from '../proxy/outbound-table';
import type { TunnelCertificate, TunnelCredentials } from '../tunnel/tunnel-credentials';
import { TunnelPool } from '../tunnel/tunnel-pool';
import { TunnelServer } from '../tunnel/tunnel-server';
import { exchange, startEcho } from '../tunnel/tunnel-test-support';
import { createKeyAndCsr } from './key-and-csr';
import { WorkloadResolver } from './workload-resolver';

const TD = 'cluster.local';
const ALPHA = 'spiffe://cluster.local/ns/default/sa/alpha';
const BETA = 'spiffe://cluster.local/ns/default/sa/beta';
const NODE_A = 'spiffe://cluster.local/node/a';
const ECHO = 'spiffe://cluster.local/ns/default/sa/echo';
const NODE_B = 'spiffe://cluster.local/node/b';
const VIP = { address: '10.0.0.10', port: 7000 };

async function issue(keys: CaKeys, spiffeId: string): Promise<TunnelCertificate> {
  const { csrPem, privateKeyPem } = await createKeyAndCsr(spiffeId);
  const leaf = signCsr(keys, TD, csrPem, { requester: { node: 'test' }, allowedIdentities: () => new Set([spiffeId]) });
  return { certificateChainPem: [leaf.certificatePem, ...leaf.chainPem].join('\n'), privateKeyPem };
}

async function credentials(keys: CaKeys, ids: readonly string[]): Promise<TunnelCredentials> {
  const certs = new Map<string, TunnelCertificate>();
  for (const id of ids) certs.set(id, await issue(keys, id));
  return { certificate: (id) => certs.get(id), trustBundlePem: () => keys.trustBundle.pem };
}

async function connectAndExchange(t: ExecutionContext, port: number): Promise<string> {
  const client = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  t.teardown(() => client.destroy());
  await new Promise<void>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  return (await exchange(client, 'hello')).toString();
}

interface Rig {
  /** The source principal of every tunnel stream host b accepted, in order. */
  principals: Array<string | undefined>;
  outboundPort: number;
  pool: TunnelPool;
  sources: WorkloadResolver;
  /** What the uid lookup answers for the connection being accepted next. */
  setSenderUid(uid: number): void;
}

/**
 * Host b: a tunnel server in front of the app at `appPort`, recording each stream's principal.
 * Host a: two workloads by uid (alpha 2001, beta 2002) and an outbound listener whose every
 * connection was headed for the VIP of the service `serviceFor` describes.
 */
async function rig(t: ExecutionContext, appPort: number, serviceFor: (appPort: number) => Service): Promise<Rig> {
  const dir = mkdtempSync(path.join(tmpdir(), 'outbound-attribution-ca-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const ca = await loadCaKeys({ trustDomain: TD, stateDir: dir });
  const principals: Array<string | undefined> = [];
  const server = new TunnelServer({
    resolveInbound: (_destination, source) => {
      principals.push(source.principal);
      return { host: '127.0.0.1', port: appPort };
    },
    mtls: { credentials: await credentials(ca, [ECHO, NODE_B]), identities: () => [ECHO], defaultIdentity: () => NODE_B, trustDomain: TD },
  });
  t.teardown(() => server.close(100));
  const tunnelPort = (await server.listen(0, '127.0.0.1')).port;
  // The pool's default (what a caller naming no source gets) is the node.
  const config = parseAgentConfig({
    server: 'cp:15012',
    node: 'a',
    workloads: [{ name: 'alpha', serviceAccount: 'alpha', uid: 2001 }, { name: 'beta', serviceAccount: 'beta', uid: 2002 }],
  }, 'agent.yaml');
  const pool = new TunnelPool({
    mtls: { credentials: await credentials(ca, [ALPHA, BETA, NODE_A]), expectedIdentities: () => [ECHO], defaultSource: () => NODE_A },
    connectTimeoutMs: 20_000,
  });
  t.teardown(() => pool.close(100));
  let senderUid = 0;
  const sources = new WorkloadResolver({ config, logger: silentLogger(), uidOf: () => senderUid });
  const table = new OutboundTable(translatedView([serviceFor(appPort)]), { node: 'a', tunnelPort });
  const outbound = new Outbound({ table: () => table, pool, logger: silentLogger(), originalDestination: () => VIP, sources });
  t.teardown(() => outbound.drain(100));
  const outboundPort = await outbound.listen(0, false);
  return { principals, outboundPort, pool, sources, setSenderUid: (uid) => (senderUid = uid) };
}

test('each connection tunnels as the workload its uid names, and a stranger uid as the node', async (t) => {
  t.timeout(60_000);
  const echo = await startEcho(t, 'bye');
  const r = await rig(t, echo.port, (appPort) =>
    service('echo', {
      addresses: [VIP.address],
      ports: [port(VIP.port, 'TCP', 'tcp-echo')],
      endpoints: [endpoint('127.0.0.1', { ports: { 'tcp-echo': appPort }, node: 'b', serviceAccount: 'echo' })],
    }));
  // One at a time: the fake lookup answers for whichever connection is being accepted.
  for (const uid of [2001, 2002, 2001, 4242, 2002]) {
    r.setSenderUid(uid);
    t.is(await connectAndExchange(t, r.outboundPort), 'hellobye');
  }
  t.deepEqual(r.principals, [ALPHA, BETA, ALPHA, NODE_A, BETA]);
  t.like(r.sources.stats(), { alpha: 2, beta: 2, unknown: 1 });
  // One pooled session per source identity: the workloads never share one.
  t.is(r.pool.stats().sessionsCreated, 3);
});

test('HTTP requests tunnel as the workload whose connection carried them; kept-alive upstream connections are never shared across workloads', async (t) => {
  t.timeout(60_000);
  const app = await startHttpApp(t, 'web');
  const r = await rig(t, app.port, (appPort) =>
    service('web', {
      addresses: [VIP.address],
      ports: [port(VIP.port, 'HTTP', 'http')],
      endpoints: [endpoint('127.0.0.1', { ports: { http: appPort }, node: 'b', serviceAccount: 'echo' })],
    }));
  // A new client connection per request (no client keep-alive), so each is attributed anew.
  for (const uid of [2001, 2002, 2001, 4242, 2002]) {
    r.setSenderUid(uid);
    t.is((await request(r.outboundPort, { authority: `web:${VIP.port}`, path: '/', agent: false })).status, 200);
  }
  // The agent keeps upstream connections alive, so a workload's later request may reuse its own
  // stream; what must hold is that each workload's streams present its own identity, in order.
  t.deepEqual([...new Set(r.principals)], [ALPHA, BETA, NODE_A]);
  t.true(r.principals.length >= 3 && r.principals.length <= 5, JSON.stringify(r.principals));
});
