// Tests of mesh-agent's admin API and readiness probe over real sockets on 127.0.0.1: fake inputs
// holding translator output for the views, and a real MeshAgent and mesh-server for readiness.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, silentLogger, type Logger } from '../../lib/log';
import { MeshServer } from '../../server/mesh-server';
import { parseAgentConfig } from '../config/agent-config';
import { MeshAgent } from '../mesh-agent';
import { createAgentAdmin, createReadinessServer, type AgentReadiness, type AgentStats, type AppliedConfig } from './agent-admin';
import { ECHO_CLUSTER, VERSIONS, WEB_CLUSTER, translatedView } from './testing';
import { eventually } from '../../test/support/eventually';

interface Fake {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  applied: AppliedConfig | undefined;
  stats: AgentStats;
}

function fake(applied: AppliedConfig | undefined): Fake {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return {
    logger: createLogger({ name: 'mesh-agent', level: 'info', destination: sink }),
    lines,
    applied,
    stats: {
      outbound: { accepted: 5, tunnel: 3, direct: 1, passthrough: 1, blackhole: 0, failed: 0, active: 2 },
      inbound: { tunnelAllowed: 4, tunnelRefused: 1, plain: 0, plainRefused: 0 },
    },
  };
}

async function adminUrl(t: ExecutionContext, state: Fake): Promise<string> {
  const admin = createAgentAdmin({ logger: state.logger, config: () => state.applied, stats: () => state.stats });
  t.teardown(() => admin.close());
  return (await admin.listen('127.0.0.1:0')).url;
}

const APPLIED_AT = new Date('2026-01-02T03:04:05.000Z');

test('config_dump has the listeners, routes, clusters and endpoints sections with their names, versions and the source', async (t) => {
  const url = await adminUrl(t, fake({ view: translatedView('snapshot'), appliedAt: APPLIED_AT }));
  const response = await fetch(`${url}/config_dump`);
  t.is(response.status, 200);
  const dump = (await response.json()) as { configs: Array<Record<string, any>>; source: string };
  t.deepEqual(dump.configs.map((c) => c['@type']), [
    'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
    'type.googleapis.com/envoy.admin.v3.RoutesConfigDump',
    'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
    'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump',
  ]);
  t.is(dump.source, 'snapshot');
  const [listeners, routes, clusters, endpoints] = dump.configs as [Record<string, any>, Record<string, any>, Record<string, any>, Record<string, any>];
  const names = listeners.dynamic_listeners.map((l: any) => l.name);
  t.true(names.includes('virtualOutbound') && names.includes('0.0.0.0_8080'), names.join(','));
  const outbound = listeners.dynamic_listeners.find((l: any) => l.name === 'virtualOutbound');
  t.like(outbound.active_state, { version_info: VERSIONS.LDS, last_updated: APPLIED_AT.toISOString(), listener: { '@type': 'type.googleapis.com/envoy.config.listener.v3.Listener', name: 'virtualOutbound' } });
  t.like(routes.dynamic_route_configs[0], { version_info: VERSIONS.RDS, route_config: { name: '8080' } });
  const clusterNames = clusters.dynamic_active_clusters.map((c: any) => c.cluster.name);
  t.true(clusterNames.includes(ECHO_CLUSTER) && clusterNames.includes('PassthroughCluster'), clusterNames.join(','));
  t.true(clusters.dynamic_active_clusters.every((c: any) => c.version_info === VERSIONS.CDS));
  t.deepEqual(endpoints.dynamic_endpoint_configs.map((e: any) => [e.version_info, e.endpoint_config.cluster_name]), [
    [VERSIONS.EDS, ECHO_CLUSTER],
    [VERSIONS.EDS, WEB_CLUSTER],
  ]);
});

test('before any config, config_dump and clusters answer 503 saying none has arrived', async (t) => {
  const url = await adminUrl(t, fake(undefined));
  for (const route of ['/config_dump', '/clusters']) {
    const response = await fetch(`${url}${route}`);
    t.is(response.status, 503);
    t.regex(((await response.json()) as { message: string }).message, /no xDS config has been received/);
  }
});

test('clusters lists every endpoint with its health, as Envoy text and as JSON', async (t) => {
  const url = await adminUrl(t, fake({ view: translatedView(), appliedAt: APPLIED_AT }));
  const textResponse = await fetch(`${url}/clusters`);
  t.regex(textResponse.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await textResponse.text();
  t.true(text.includes(`${ECHO_CLUSTER}::10.1.0.2:7000::health_flags::healthy\n`), text);
  t.true(text.includes(`${WEB_CLUSTER}::10.1.0.4:8080::health_flags::/failed_eds_health\n`), text);
  t.true(text.includes('PassthroughCluster::added_via_api::true\n'));

  const json = (await (await fetch(`${url}/clusters?format=json`)).json()) as { cluster_statuses: Array<{ name: string; type: string; endpoints: Array<Record<string, unknown>> }> };
  const web = json.cluster_statuses.find((c) => c.name === WEB_CLUSTER);
  t.like(web, { type: 'EDS' });
  t.like(web?.endpoints, [{ address: '10.1.0.4', port: 8080, health_status: 'UNHEALTHY', health_flags: '/failed_eds_health' }]);
  t.like(json.cluster_statuses.find((c) => c.name === ECHO_CLUSTER)?.endpoints, [{ address: '10.1.0.2', port: 7000, health_status: 'HEALTHY' }]);
});

test('POST /logging?level=debug changes the level at run time, and children of the logger follow it', async (t) => {
  const state = fake(undefined);
  const child = state.logger.child({ component: 'outbound' });
  const url = await adminUrl(t, state);
  t.deepEqual(await (await fetch(`${url}/logging`)).json(), { level: 'info' });
  child.debug('before the change');

  const response = await fetch(`${url}/logging?level=debug`, { method: 'POST' });
  t.is(response.status, 200);
  t.deepEqual(await response.json(), { level: 'debug', previous: 'info' });
  t.is(state.logger.level, 'debug');
  t.deepEqual(await (await fetch(`${url}/logging`)).json(), { level: 'debug' });
  child.debug('after the change');
  t.deepEqual(state.lines.filter((line) => line.component === 'outbound').map((line) => line.msg), ['after the change']);
  t.true(state.lines.some((line) => line.msg === 'log level changed over the admin API' && line.previous === 'info'));
});

test('POST /logging with an unknown level is refused with the levels it accepts, and the level stays', async (t) => {
  const state = fake(undefined);
  const url = await adminUrl(t, state);
  const response = await fetch(`${url}/logging?level=loud`, { method: 'POST' });
  t.is(response.status, 400);
  t.regex(((await response.json()) as { message: string }).message, /level must be one of fatal, error, warn, info, debug, trace, silent, got "loud"/);
  t.is(state.logger.level, 'info');
});

test('stats prints the counters one `name: value` a line', async (t) => {
  const url = await adminUrl(t, fake(undefined));
  const text = await (await fetch(`${url}/stats`)).text();
  const lines = text.trim().split('\n');
  t.true(lines.includes('agent.outbound.tunnel: 3'), text);
  t.true(lines.includes('agent.outbound.active: 2'), text);
  t.true(lines.includes('agent.inbound.tunnelRefused: 1'), text);
  t.deepEqual(lines, [...lines].sort());
});

test('an unknown path is a JSON 404 listing the routes; a wrong method is 405 with Allow', async (t) => {
  const url = await adminUrl(t, fake(undefined));
  const missing = await fetch(`${url}/nope`);
  t.is(missing.status, 404);
  const body = (await missing.json()) as { message: string; routes: string[] };
  t.is(body.message, 'no route GET /nope');
  t.true(body.routes.includes('POST /logging: change the log level at run time: ?level=fatal|error|warn|info|debug|trace|silent'));
  const wrong = await fetch(`${url}/config_dump`, { method: 'DELETE' });
  t.is(wrong.status, 405);
  t.is(wrong.headers.get('allow'), 'GET, HEAD');
});

test('the readiness probe answers 503 with the reason, then 200 once its state says ready', async (t) => {
  let report: AgentReadiness = { ready: false, reason: 'no xDS config yet', redirect: 'pending' };
  const server = createReadinessServer({ logger: silentLogger(), readiness: () => report });
  t.teardown(() => server.close());
  const { url } = await server.listen('127.0.0.1:0');
  const before = await fetch(`${url}/healthz/ready`);
  t.is(before.status, 503);
  t.like(await before.json(), { ready: false, reason: 'no xDS config yet' });
  report = { ready: true, source: 'server', redirect: 'verified' };
  const after = await fetch(`${url}/healthz/ready`);
  t.is(after.status, 200);
  t.deepEqual(await after.json(), { ready: true, source: 'server', redirect: 'verified' });
});

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
metadata: { name: reviews-v1, annotations: { mesh.io/node: host-b } }
spec: { address: 10.77.0.12, labels: { app: reviews }, serviceAccount: reviews, ports: { http: 9081 } }
`;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function tempDir(t: ExecutionContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}


test('a MeshAgent is not ready (503, why) until its server\'s config arrives, then ready (200) and dumps that config', async (t) => {
  t.timeout(60_000);
  const xdsPort = await freePort();
  const stateDir = await tempDir(t, 'agent-admin-state-');
  const parsed = parseAgentConfig({
    server: `127.0.0.1:${xdsPort}`, node: 'host-a', stateDir, admin: '127.0.0.1:1', readiness: '127.0.0.1:1', redirect: { enabled: false },
  }, 'test');
  // Port 0 everywhere: the schema asks for real ports, the test for free ones.
  const config = { ...parsed, admin: '127.0.0.1:0', readiness: '127.0.0.1:0', redirect: { ...parsed.redirect, outboundPort: 0, inboundPort: 0 } };
  const agent = new MeshAgent({ config, logger: silentLogger(), redirect: false, tunnelPort: 0 });
  t.teardown(() => agent.stop(0));
  await agent.start();
  const readyUrl = `${agent.addresses.readiness?.url}/healthz/ready`;

  const before = await fetch(readyUrl);
  t.is(before.status, 503);
  const reason = ((await before.json()) as { reason: string }).reason;
  t.true(reason.startsWith(`no xDS config yet (neither from 127.0.0.1:${xdsPort} nor a snapshot)`), reason);

  const configDir = await tempDir(t, 'agent-admin-config-');
  await writeFile(path.join(configDir, 'reviews.yaml'), REVIEWS);
  const server = new MeshServer({ logger: silentLogger(), configDir, xdsAddress: `127.0.0.1:${xdsPort}`, adminAddress: '127.0.0.1:0' });
  t.teardown(() => server.stop());
  await server.start();

  const ready = await eventually('readiness 200', async () => {
    const response = await fetch(readyUrl);
    return response.status === 200 ? ((await response.json()) as Record<string, unknown>) : undefined;
  });
  t.deepEqual(ready, { ready: true, source: 'server', redirect: 'disabled' });

  const dump = (await (await fetch(`${agent.addresses.admin?.url}/config_dump`)).json()) as { configs: Array<Record<string, any>>; source: string };
  t.is(dump.source, 'server');
  const clusters = dump.configs[2]?.dynamic_active_clusters.map((c: any) => c.cluster.name) as string[];
  t.true(clusters.includes('outbound|9080||reviews'), clusters.join(','));
  t.true(dump.configs.every((section) => typeof section['@type'] === 'string'));
});
