// Tests of mesh-server's admin HTTP API over a real socket on 127.0.0.1, with fake inputs whose
// state each test changes to see health, readiness, metrics and debug views follow.
import test, { type ExecutionContext } from 'ava';
import { silentLogger } from '../../lib/log';
import type { ConfigIssue } from '../../lib/config/issue';
import type { ConfigResource } from '../config/resource';
import type { MeshModel } from '../model/mesh-model';
import type { Service } from '../registry/service';
import type { SourceStatus } from '../sources/source';
import type { ClientSyncStatus } from '../xds/sync-status';
import { createAdminServer, type AdminInputs } from './admin-server';
import { ServerMetrics } from './server-metrics';

const reviews: Service = {
  hostname: 'reviews.service.consul',
  namespace: 'default',
  aliases: ['reviews'],
  addresses: [],
  ports: [{ name: 'http', number: 9080, protocol: 'HTTP' }],
  resolution: 'STATIC',
  location: 'MESH_INTERNAL',
  endpoints: [
    {
      address: '10.0.0.7',
      ports: { http: 9080 },
      labels: { version: 'v1' },
      node: 'host-a',
      healthy: true,
      locality: { region: 'eu', zone: 'eu-1', subzone: '' },
      weight: 1,
    },
  ],
  source: 'consul',
  exportTo: ['*'],
  subjectAltNames: [],
};

const virtualService: ConfigResource = {
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name: 'reviews', namespace: 'default', labels: {}, annotations: {} },
  spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] },
  origin: { file: '/etc/mesh/reviews.yaml', document: 1 },
};

const weightIssue: ConfigIssue = {
  severity: 'error',
  code: 'weights-sum',
  message: 'weights must sum to 100, got 90',
  file: '/etc/mesh/ratings.yaml',
  document: 2,
  kind: 'VirtualService',
  namespace: 'default',
  name: 'ratings',
  path: 'spec.http[0].route[1].weight',
  value: 90,
};

const warningIssue: ConfigIssue = {
  severity: 'warning',
  code: 'unused-subset',
  message: 'subset v3 is never routed to',
  kind: 'DestinationRule',
  namespace: 'default',
  name: 'reviews',
  path: 'spec.subsets[2]',
};

function fakeModel(version: number): MeshModel {
  return {
    version,
    resources: new Map([['VirtualService', [virtualService]]]),
    services: new Map([[reviews.hostname, reviews]]),
    issues: [weightIssue, warningIssue],
    rootNamespace: 'mesh-system',
    trustDomain: 'cluster.local',
  };
}

const syncStatuses: ClientSyncStatus[] = [
  {
    node: 'host-a',
    stream: 's1',
    peer: '10.0.0.7:51000',
    connectedAt: '2026-01-01T00:00:00.000Z',
    types: { CDS: { sent: 'v3', acked: 'v3', nonce: 'n1', resources: 4, state: 'SYNCED' } },
  },
  {
    node: 'host-b',
    stream: 's2',
    peer: '10.0.0.8:51000',
    connectedAt: '2026-01-01T00:00:01.000Z',
    types: { LDS: { sent: 'v4', acked: 'v3', nonce: 'n2', resources: 2, state: 'STALE' } },
  },
];

interface Fixture {
  base: string;
  metrics: ServerMetrics;
  state: { model: MeshModel | undefined; sources: Record<string, SourceStatus>; reloads: number };
}

async function start(t: ExecutionContext, options: { withReload?: boolean; reloadFails?: boolean } = {}): Promise<Fixture> {
  const metrics = new ServerMetrics();
  const state: Fixture['state'] = {
    model: undefined,
    sources: {
      files: { ready: true },
      consul: { ready: false, detail: 'consul 127.0.0.1:8500: ECONNREFUSED', stats: { watchedServices: 3, watch: 'backoff' } },
    },
    reloads: 0,
  };
  const inputs: AdminInputs = {
    logger: silentLogger(),
    metrics,
    model: () => state.model,
    sources: () => state.sources,
    syncStatus: () => syncStatuses,
  };
  if (options.withReload) {
    inputs.reload = async () => {
      state.reloads += 1;
      if (options.reloadFails) throw new Error('/etc/mesh is not readable');
      state.model = fakeModel((state.model?.version ?? 0) + 1);
    };
  }
  const server = createAdminServer(inputs);
  t.teardown(() => server.close());
  const address = await server.listen('127.0.0.1', 0);
  t.true(address.port > 0);
  t.is(address.host, '127.0.0.1');
  return { base: address.url, metrics, state };
}

/** The value of one sample line, e.g. `mesh_xds_pushes_total{type="CDS"}`. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('/healthz answers ok while the process serves', async (t) => {
  const { base } = await start(t);
  const response = await fetch(`${base}/healthz`);
  t.is(response.status, 200);
  t.is(await response.text(), 'ok');
});

test('/ready is 503 naming the missing source and why, then 200 once sources and model are there', async (t) => {
  const { base, state } = await start(t);

  let response = await fetch(`${base}/ready`);
  t.is(response.status, 503);
  let body = (await response.json()) as { ready: boolean; missing: Array<{ source: string; detail: string }>; reason?: string };
  t.false(body.ready);
  t.deepEqual(body.missing, [{ source: 'consul', detail: 'consul 127.0.0.1:8500: ECONNREFUSED' }]);
  t.regex(body.reason ?? '', /no config model/);

  state.sources = { files: { ready: true }, consul: { ready: true } };
  response = await fetch(`${base}/ready`);
  t.is(response.status, 503, 'sources ready but no model yet is still not ready');
  body = (await response.json()) as typeof body;
  t.deepEqual(body.missing, []);
  t.regex(body.reason ?? '', /no config model/);

  state.model = fakeModel(1);
  response = await fetch(`${base}/ready`);
  t.is(response.status, 200);
  body = (await response.json()) as typeof body;
  t.true(body.ready);
  t.is(body.reason, undefined);
});

test('/metrics reflects observer calls, model issues and source status', async (t) => {
  const { base, metrics, state } = await start(t);
  state.model = fakeModel(7);
  metrics.streamOpened('host-a');
  metrics.streamOpened('host-b');
  metrics.streamClosed('host-b');
  metrics.pushed('host-a', 'CDS', 4, 0.003);
  metrics.pushed('host-a', 'CDS', 5, 0.2);
  metrics.pushed('host-a', 'LDS', 1, 0);
  metrics.acked('host-a', 'CDS');
  metrics.nacked('host-a', 'RDS', 'route_config: unknown cluster');
  metrics.rejectedRequest('host-a', 'stale nonce');
  metrics.configReloaded();

  const response = await fetch(`${base}/metrics`);
  t.is(response.status, 200);
  t.regex(response.headers.get('content-type') ?? '', /^text\/plain/);
  const text = await response.text();

  t.is(sample(text, 'mesh_xds_connected_clients'), 1);
  t.is(sample(text, 'mesh_xds_pushes_total{type="CDS"}'), 2);
  t.is(sample(text, 'mesh_xds_pushes_total{type="LDS"}'), 1);
  t.is(sample(text, 'mesh_xds_pushed_resources_total{type="CDS"}'), 9);
  t.is(sample(text, 'mesh_xds_push_time_seconds_count{type="CDS"}'), 2);
  t.is(sample(text, 'mesh_xds_push_time_seconds_bucket{le="0.005",type="CDS"}'), 1, 'only the 3 ms push is under 5 ms');
  t.is(sample(text, 'mesh_xds_push_time_seconds_bucket{le="10",type="CDS"}'), 2);
  t.is(sample(text, 'mesh_xds_acks_total{type="CDS"}'), 1);
  t.is(sample(text, 'mesh_xds_nacks_total{type="RDS"}'), 1);
  t.is(sample(text, 'mesh_xds_rejected_requests_total'), 1);
  t.is(sample(text, 'mesh_config_reloads_total'), 1);
  t.is(sample(text, 'mesh_config_errors{severity="error"}'), 1);
  t.is(sample(text, 'mesh_config_errors{severity="warning"}'), 1);
  t.is(sample(text, 'mesh_config_resources{kind="VirtualService"}'), 1);
  t.is(sample(text, 'mesh_services'), 1);
  t.is(sample(text, 'mesh_model_version'), 7);
  t.is(sample(text, 'mesh_source_ready{source="files"}'), 1);
  t.is(sample(text, 'mesh_source_ready{source="consul"}'), 0);
  t.is(sample(text, 'mesh_source_stat{source="consul",stat="watchedServices"}'), 3);
  t.is(sample(text, 'mesh_source_state{source="consul",stat="watch",value="backoff"}'), 1);
  t.not(sample(text, 'process_cpu_seconds_total'), undefined, 'default process metrics are unprefixed');

  // A state change replaces the old label value instead of adding a second series.
  state.sources = { files: { ready: true }, consul: { ready: true, stats: { watch: 'watching' } } };
  const after = await (await fetch(`${base}/metrics`)).text();
  t.is(sample(after, 'mesh_source_ready{source="consul"}'), 1);
  t.is(sample(after, 'mesh_source_state{source="consul",stat="watch",value="watching"}'), 1);
  t.is(sample(after, 'mesh_source_state{source="consul",stat="watch",value="backoff"}'), undefined);
  t.is(sample(after, 'mesh_source_stat{source="consul",stat="watchedServices"}'), undefined);
});

test('two ServerMetrics in one process do not share series', async (t) => {
  const first = new ServerMetrics();
  const second = new ServerMetrics();
  first.pushed('host-a', 'EDS', 1, 0.01);
  t.is(sample(await first.metricsText(), 'mesh_xds_pushes_total{type="EDS"}'), 1);
  t.is(sample(await second.metricsText(), 'mesh_xds_pushes_total{type="EDS"}'), undefined);
});

test('/debug/syncz returns what syncStatus returns, and ?node= picks one node', async (t) => {
  const { base } = await start(t);
  const all = await fetch(`${base}/debug/syncz`);
  t.is(all.status, 200);
  t.deepEqual(await all.json(), syncStatuses);
  const one = await fetch(`${base}/debug/syncz?node=host-b`);
  t.deepEqual(await one.json(), [syncStatuses[1]]);
});

test('/debug/config dumps resources by kind with origin, services with endpoints, and issues', async (t) => {
  const { base, state } = await start(t);
  const before = await fetch(`${base}/debug/config`);
  t.is(before.status, 503);
  t.regex(((await before.json()) as { message: string }).message, /no config model/);

  state.model = fakeModel(3);
  for (const path of ['/debug/config', '/debug/configz']) {
    const response = await fetch(`${base}${path}`);
    t.is(response.status, 200, path);
    const dump = (await response.json()) as {
      version: number;
      trustDomain: string;
      rootNamespace: string;
      resources: Record<string, ConfigResource[]>;
      services: Service[];
      issues: ConfigIssue[];
    };
    t.is(dump.version, 3);
    t.is(dump.trustDomain, 'cluster.local');
    t.is(dump.rootNamespace, 'mesh-system');
    t.deepEqual(Object.keys(dump.resources), ['VirtualService']);
    t.deepEqual(dump.resources.VirtualService?.[0]?.metadata, virtualService.metadata);
    t.deepEqual(dump.resources.VirtualService?.[0]?.origin, { file: '/etc/mesh/reviews.yaml', document: 1 });
    t.is(dump.services[0]?.hostname, 'reviews.service.consul');
    t.is(dump.services[0]?.endpoints[0]?.address, '10.0.0.7');
    t.deepEqual(dump.issues.map((issue) => issue.code), ['weights-sum', 'unused-subset']);
  }
});

test('/debug/issues lists issues with their formatted line, and as text', async (t) => {
  const { base, state } = await start(t);
  const empty = (await (await fetch(`${base}/debug/issues`)).json()) as { issues: unknown[]; modelVersion: number | null };
  t.deepEqual(empty.issues, []);
  t.is(empty.modelVersion, null);

  state.model = fakeModel(2);
  const report = (await (await fetch(`${base}/debug/issues`)).json()) as {
    errors: number;
    warnings: number;
    issues: Array<ConfigIssue & { text: string }>;
  };
  t.is(report.errors, 1);
  t.is(report.warnings, 1);
  t.is(
    report.issues[0]?.text,
    '/etc/mesh/ratings.yaml, document 2 (VirtualService default/ratings), spec.http[0].route[1].weight: weights must sum to 100, got 90',
  );
  const text = await (await fetch(`${base}/debug/issues?format=text`)).text();
  t.deepEqual(text.trimEnd().split('\n'), [
    `error: ${report.issues[0]?.text}`,
    `warning: ${report.issues[1]?.text}`,
  ]);
});

test('unknown routes get a JSON 404 listing the routes', async (t) => {
  const { base } = await start(t);
  const response = await fetch(`${base}/debug/nope`);
  t.is(response.status, 404);
  t.regex(response.headers.get('content-type') ?? '', /application\/json/);
  const body = (await response.json()) as { message: string; routes: string[] };
  t.regex(body.message, /GET \/debug\/nope/);
  t.true(body.routes.some((route) => route.startsWith('GET /debug/syncz')));
});

test('a known path with the wrong method is 405 with Allow', async (t) => {
  const { base } = await start(t, { withReload: true });
  const getReload = await fetch(`${base}/debug/reload`);
  t.is(getReload.status, 405);
  t.is(getReload.headers.get('allow'), 'POST');
  const postHealth = await fetch(`${base}/healthz`, { method: 'POST' });
  t.is(postHealth.status, 405);
  t.is(postHealth.headers.get('allow'), 'GET, HEAD');
});

test('POST /debug/reload runs reload and reports the new model version, even with an empty JSON body', async (t) => {
  const { base, state } = await start(t, { withReload: true });
  const response = await fetch(`${base}/debug/reload`, { method: 'POST', headers: { 'content-type': 'application/json' } });
  t.is(response.status, 200);
  t.deepEqual(await response.json(), { reloaded: true, modelVersion: 1 });
  t.is(state.reloads, 1);
});

test('POST /debug/reload reports a failed reload as 500 with its reason, and the server keeps serving', async (t) => {
  const { base } = await start(t, { withReload: true, reloadFails: true });
  const response = await fetch(`${base}/debug/reload`, { method: 'POST' });
  t.is(response.status, 500);
  t.regex(((await response.json()) as { message: string }).message, /reload failed: \/etc\/mesh is not readable/);
  t.is((await fetch(`${base}/healthz`)).status, 200);
});

test('POST /debug/reload does not exist without a reload function', async (t) => {
  const { base } = await start(t);
  const response = await fetch(`${base}/debug/reload`, { method: 'POST' });
  t.is(response.status, 404);
});

test('a malformed URL is answered with a 4xx, not a crash', async (t) => {
  const { base } = await start(t);
  const response = await fetch(`${base}/debug/%E0%A4%A`);
  t.true(response.status >= 400 && response.status < 500);
  t.is((await fetch(`${base}/healthz`)).status, 200);
});
