// AgentXds against the real mesh-server (in process, loopback): what host-a receives, edits reaching
// it, NACKs seen by the server with the previous config kept, and a restart served from the snapshot.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { adsService, packAny, TypeUrl, typed } from '../../lib/xds/protos';
import { startMeshFixture, type MeshFixture } from '../../test/conformance/mesh-fixture';
import { SnapshotStore } from './snapshot-store';
import { AgentXds, referencedEndpointNames, referencedRouteNames, type AgentXdsConfig, type AgentXdsOptions } from './agent-xds';
import { eventually } from '../../test/support/eventually';

const REVIEWS = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews }
spec:
  hosts: [reviews]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: reviews } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-v1, annotations: { mesh.io/node: host-a } }
spec: { address: 10.77.0.12, labels: { app: reviews, version: v1 }, serviceAccount: reviews, ports: { http: 9081 } }
`;

const RATINGS = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ratings }
spec:
  hosts: [ratings]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: ratings } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ratings-v1, annotations: { mesh.io/node: host-c } }
spec: { address: 10.77.0.13, labels: { app: ratings, version: v1 }, serviceAccount: ratings, ports: { http: 9085 } }
`;

const REVIEWS_CLUSTER = 'outbound|9080||reviews';
const RATINGS_CLUSTER = 'outbound|9080||ratings';

async function fixture(t: ExecutionContext): Promise<MeshFixture> {
  const started = await startMeshFixture({ files: { 'reviews.yaml': REVIEWS } });
  let closing: Promise<void> | undefined;
  // close() may also be called by the test itself (the server going away); it runs once.
  const close = () => (closing ??= started.close());
  t.teardown(close);
  return { ...started, close };
}

async function stateDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'agent-xds-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function agent(t: ExecutionContext, options: Omit<AgentXdsOptions, 'node'>): AgentXds {
  const created = new AgentXds({ node: { id: 'host-a' }, backoff: { initialMs: 50, maxMs: 500 }, ...options });
  t.teardown(() => created.close());
  return created;
}

/** The view already held or the next one emitted that satisfies `predicate`; rejects at the deadline. */
function configWhere(xds: AgentXds, predicate: (config: AgentXdsConfig) => boolean, timeoutMs = 10_000): Promise<AgentXdsConfig> {
  const current = xds.config();
  if (current && predicate(current)) return Promise.resolve(current);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      xds.off('config', onConfig);
      reject(new Error(`no config satisfying the test within ${timeoutMs} ms; last: ${JSON.stringify(xds.config()?.versions)}`));
    }, timeoutMs);
    const onConfig = (config: AgentXdsConfig) => {
      if (!predicate(config)) return;
      clearTimeout(timer);
      xds.off('config', onConfig);
      resolve(config);
    };
    xds.on('config', onConfig);
  });
}


function typeStatus(mesh: MeshFixture, short: 'LDS' | 'RDS' | 'CDS' | 'EDS') {
  return mesh.server.syncStatus().find((client) => client.node === 'host-a')?.types[short];
}

test('host-a receives its inbound listener and cluster, the route config its listeners name and the endpoints its clusters name', async (t) => {
  const mesh = await fixture(t);
  const dir = await stateDir(t);
  const xds = agent(t, { server: mesh.xdsTarget, stateDir: dir });
  const persisted: AgentXdsConfig['versions'][] = [];
  xds.on('persisted', (versions) => persisted.push(versions));
  await xds.start();
  const config = await configWhere(xds, (c) => c.source === 'server');

  t.true(config.listeners.has('virtualInbound'));
  t.true(config.clusters.has('inbound|9081||'), 'the local workload port is an inbound cluster');
  t.true(config.clusters.has(REVIEWS_CLUSTER));
  t.deepEqual([...config.routes.keys()], referencedRouteNames(config.listeners));
  t.true(config.routes.size > 0, 'an RDS route config arrived');
  t.regex(JSON.stringify(config.routes.get('9080')), /"reviews/);
  t.deepEqual([...config.endpoints.keys()], referencedEndpointNames(config.clusters));
  t.regex(JSON.stringify(config.endpoints.get(REVIEWS_CLUSTER)), /10\.77\.0\.12/);
  t.deepEqual(Object.keys(config.versions).sort(), ['CDS', 'EDS', 'LDS', 'RDS']);
  t.like(xds.state(), { haveConfig: true, source: 'server', connected: true, lastError: undefined });
  // Every type is ACKed: the server sees the agent in sync.
  for (const short of ['LDS', 'RDS', 'CDS', 'EDS'] as const) {
    await eventually(`${short} SYNCED`, () => (typeStatus(mesh, short)?.state === 'SYNCED' ? true : undefined));
  }
  await eventually('the view on disk', () => (persisted.some((versions) => JSON.stringify(versions) === JSON.stringify(config.versions)) ? true : undefined));
  const stored = await new SnapshotStore({ stateDir: dir }).load();
  t.deepEqual([...stored!.get(TypeUrl.Cluster)!.resources.keys()], [...config.clusters.keys()]);
});

test('a config edit on the server reaches the agent, with the new cluster\'s endpoints subscribed', async (t) => {
  const mesh = await fixture(t);
  const xds = agent(t, { server: mesh.xdsTarget, stateDir: await stateDir(t) });
  await xds.start();
  const before = await configWhere(xds, (c) => c.source === 'server');
  t.false(before.clusters.has(RATINGS_CLUSTER));

  await mesh.writeConfig('ratings.yaml', RATINGS);
  const after = await configWhere(xds, (c) => c.clusters.has(RATINGS_CLUSTER) && c.endpoints.has(RATINGS_CLUSTER));
  t.regex(JSON.stringify(after.endpoints.get(RATINGS_CLUSTER)), /10\.77\.0\.13/);
  t.not(after.versions.CDS, before.versions.CDS);
  t.true(after.endpoints.has(REVIEWS_CLUSTER), 'the other assignments are still held');
});

test('a resource the validator refuses is NACKed, the server sees the NACK, and the previous config stays', async (t) => {
  const mesh = await fixture(t);
  const dir = await stateDir(t);
  const xds = agent(t, {
    server: mesh.xdsTarget,
    stateDir: dir,
    validate: (typeUrl, resources) => {
      if (typeUrl !== TypeUrl.Cluster || !resources.has(RATINGS_CLUSTER)) return undefined;
      return `cluster ${RATINGS_CLUSTER}: not supported by this data plane`;
    },
  });
  const nacks: string[] = [];
  xds.on('nack', (nack) => nacks.push(nack.message));
  await xds.start();
  const before = await configWhere(xds, (c) => c.source === 'server');
  await eventually('CDS SYNCED', () => (typeStatus(mesh, 'CDS')?.state === 'SYNCED' ? true : undefined));

  await mesh.writeConfig('ratings.yaml', RATINGS);
  const status = await eventually('CDS NACKED', () => {
    const cds = typeStatus(mesh, 'CDS');
    return cds?.state === 'NACKED' ? cds : undefined;
  });
  t.regex(status.lastNack?.message ?? '', /not supported by this data plane/);
  t.is(status.acked, before.versions.CDS, 'the server records the version still in force');
  t.true(nacks.length > 0);
  const held = xds.config()!;
  t.false(held.clusters.has(RATINGS_CLUSTER));
  t.is(held.versions.CDS, before.versions.CDS);
  t.deepEqual([...held.clusters.keys()], [...before.clusters.keys()]);
  t.like(xds.state(), { haveConfig: true, source: 'server', connected: true });
  t.regex(xds.state().lastError ?? '', /rejected CDS .*not supported/);

  // What is on disk is what was accepted: the refused clusters never reach the snapshot.
  await xds.close();
  const stored = await new SnapshotStore({ stateDir: dir }).load();
  t.is(stored?.get(TypeUrl.Cluster)?.version, before.versions.CDS);
  t.false(stored?.get(TypeUrl.Cluster)?.resources.has(RATINGS_CLUSTER));
});

test('after a restart with the server gone the persisted config is served at once, and a server answering replaces it', async (t) => {
  const dir = await stateDir(t);
  const first = await fixture(t);
  const before = agent(t, { server: first.xdsTarget, stateDir: dir });
  await before.start();
  const served = await configWhere(before, (c) => c.source === 'server');
  await before.close();
  const deadTarget = first.xdsTarget;
  await first.close();

  const after = agent(t, { server: deadTarget, stateDir: dir });
  const seen: AgentXdsConfig[] = [];
  after.on('config', (config) => seen.push(config));
  await after.start();
  t.is(seen.length, 1, 'the snapshot is emitted during start(), before any server answer');
  const snapshot = seen[0]!;
  t.is(snapshot.source, 'snapshot');
  t.deepEqual(snapshot.versions, served.versions);
  t.deepEqual(snapshot.listeners, served.listeners);
  t.deepEqual(snapshot.routes, served.routes);
  t.deepEqual(snapshot.clusters, served.clusters);
  t.deepEqual(snapshot.endpoints, served.endpoints);
  t.like(after.state(), { haveConfig: true, source: 'snapshot', connected: false });
  // It keeps trying the dead address and keeps serving the snapshot meanwhile.
  await new Promise<void>((resolve) => after.once('disconnected', () => resolve()));
  t.like(after.state(), { haveConfig: true, source: 'snapshot', connected: false });

  const second = await fixture(t);
  after.setServer(second.xdsTarget);
  const fresh = await configWhere(after, (c) => c.source === 'server');
  t.true(fresh.clusters.has('inbound|9081||'));
  t.like(after.state(), { haveConfig: true, source: 'server', connected: true, lastError: undefined });
});

test('a persisted snapshot the data plane no longer accepts is not served', async (t) => {
  const dir = await stateDir(t);
  const mesh = await fixture(t);
  const before = agent(t, { server: mesh.xdsTarget, stateDir: dir });
  await before.start();
  await configWhere(before, (c) => c.source === 'server');
  await before.close();
  await mesh.close();

  const after = agent(t, { server: mesh.xdsTarget, stateDir: dir, validate: (typeUrl) => (typeUrl === TypeUrl.Listener ? 'listeners of the old format' : undefined) });
  await after.start();
  t.like(after.state(), { haveConfig: false, connected: false });
  t.regex(after.state().lastError ?? '', /persisted LDS is no longer accepted: listeners of the old format/);
});

interface Request { type_url?: string; resource_names?: string[]; response_nonce?: string }

test('a view waits for the route config its listeners name, and is served without it once the warming time is over', async (t) => {
  // A scripted server, because the real one always sends what it references.
  const requests: Request[] = [];
  const server = new grpc.Server();
  server.addService(adsService().service, {
    StreamAggregatedResources: (call: grpc.ServerDuplexStream<Request, object>) => {
      call.on('error', () => {});
      call.on('data', (request: Request) => {
        requests.push(request);
        if (request.response_nonce) return;
        if (request.type_url === TypeUrl.Listener) {
          const hcm = typed('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
            stat_prefix: 'out',
            rds: { route_config_name: 'never-sent', config_source: { ads: {} } },
          });
          const listener = packAny(TypeUrl.Listener, { name: 'out', filter_chains: [{ filters: [{ name: 'hcm', typed_config: hcm }] }] });
          call.write({ version_info: 'l1', type_url: TypeUrl.Listener, nonce: 'n1', resources: [listener] });
        } else if (request.type_url === TypeUrl.Cluster) {
          call.write({ version_info: 'c1', type_url: TypeUrl.Cluster, nonce: 'n2', resources: [] });
        }
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  t.teardown(() => server.forceShutdown());

  const xds = agent(t, { server: `127.0.0.1:${port}`, stateDir: await stateDir(t), warmingTimeoutMs: 300 });
  const startedAt = Date.now();
  await xds.start();
  await eventually('the RDS subscription', () => requests.find((r) => r.type_url === TypeUrl.RouteConfiguration));
  t.deepEqual(requests.find((r) => r.type_url === TypeUrl.RouteConfiguration)?.resource_names, ['never-sent']);
  t.is(xds.config(), undefined, 'listeners without their routes are not served at once');
  const config = await configWhere(xds, (c) => c.source === 'server');
  t.true(Date.now() - startedAt >= 300);
  t.deepEqual([...config.listeners.keys()], ['out']);
  t.is(config.routes.size, 0);
  t.deepEqual(config.versions, { LDS: 'l1', CDS: 'c1' });
});
