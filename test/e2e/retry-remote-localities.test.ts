// Istio's retryRemoteLocalities over namespaced hosts: a client in r1/z1 calls a service whose
// r1/z1 endpoint answers 503 while staying healthy (outlier detection far from ejecting it) and
// whose r1/z2 endpoint answers 200. With the field, retries reach r1/z2; without it they stay local.
import { requireNetns } from '../netns/guard';
import type { TestHost } from '../netns/test-network';
import { eventually } from '../support/eventually';
import { meshPerFile } from './mesh-hosts';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'curl'], { serial: true });

type Host = 'cp' | 'a' | 'b' | 'c';
type Hosts = Readonly<Record<Host, TestHost>>;

const LOCALITY: Readonly<Record<Host, string>> = { cp: 'r1/z1', a: 'r1/z1', b: 'r1/z1', c: 'r1/z2' };
/** Both services run on b (503, the client's own locality) and c (200, the next one). */
const SERVICES = { remote: { port: 9201, retryRemoteLocalities: true }, local: { port: 9202, retryRemoteLocalities: false } } as const;
type ServiceName = keyof typeof SERVICES;
/** Istio's update_frequency 2 leaves the local priority out from the third attempt on, so 2 retries are needed. */
const ATTEMPTS = 2;
const REQUESTS = 50;
/** Far above the 5xx answers the tests cause, so the failing endpoint stays healthy throughout. */
const CONSECUTIVE_5XX = 1000;

function vip(hosts: Hosts, name: ServiceName): string {
  return hosts.a.ip.replace(/\.\d+$/, `.${SERVICES[name].port - 9200 + 220}`);
}

/** `node -e STATUS_APP HOST PORT:STATUS...`: each port answers every request with STATUS and `{app: HOST}`, logging it. */
const STATUS_APP = `
const http = require('node:http');
const [host, ...specs] = process.argv.slice(1);
let listening = 0;
for (const spec of specs) {
  const [port, status] = spec.split(':').map(Number);
  http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      console.log(JSON.stringify({ msg: 'request', port, status }));
      const body = JSON.stringify({ app: host });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  }).listen(port, '0.0.0.0', () => { if (++listening === specs.length) console.log(JSON.stringify({ msg: 'listening' })); });
}
`;

/** `node -e SEQUENTIAL_CLIENT URL COUNT`: COUNT GETs one after another; prints each status and answering app. */
const SEQUENTIAL_CLIENT = `
const http = require('node:http');
const [url, count] = process.argv.slice(1);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const deadline = setTimeout(() => { console.log(JSON.stringify({ results, timedOut: true })); process.exit(1); }, 50000);
const results = [];
function one(i) {
  return new Promise((resolve) => {
    http.get(url + '/' + i, { agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        let app = null;
        try { app = JSON.parse(Buffer.concat(chunks)).app; } catch {}
        results.push({ status: res.statusCode, app });
        resolve();
      });
    }).on('error', (e) => { results.push({ status: 0, app: e.code || e.message }); resolve(); });
  });
}
(async () => {
  for (let i = 0; i < Number(count); i++) await one(i);
  clearTimeout(deadline);
  agent.destroy();
  console.log(JSON.stringify({ results }));
})();
`;

function meshConfig(hosts: Hosts): string {
  const docs: string[] = [];
  for (const [name, spec] of Object.entries(SERVICES) as Array<[ServiceName, (typeof SERVICES)[ServiceName]]>) {
    docs.push(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name} }
spec:
  hosts: [${name}]
  addresses: [${vip(hosts, name)}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: ${spec.port}, name: http, protocol: HTTP }
  workloadSelector:
    labels: { app: ${name} }`);
    for (const host of ['b', 'c'] as const) {
      docs.push(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: ${name}-${host}
  annotations: { mesh.io/node: ${host} }
spec:
  address: ${hosts[host].ip}
  labels: { app: ${name} }
  ports: { http: ${spec.port} }
  locality: ${LOCALITY[host]}`);
    }
    docs.push(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name} }
spec:
  hosts: [${name}]
  http:
    - route: [{ destination: { host: ${name} } }]
      retries: { attempts: ${ATTEMPTS}, retryOn: 5xx, retryRemoteLocalities: ${spec.retryRemoteLocalities} }`);
    // Outlier detection turns Istio's locality failover on (priorities by proximity to the caller).
    docs.push(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ${name} }
spec:
  host: ${name}
  trafficPolicy:
    outlierDetection: { consecutive5xxErrors: ${CONSECUTIVE_5XX}, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100 }`);
  }
  return docs.join('\n---\n') + '\n';
}

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b', 'c'],
  server: 'cp',
  agents: ['a', 'b', 'c'],
  config: (hosts) => ({ 'retry-remote-localities.yaml': meshConfig(hosts) }),
  agentConfig: (host) => ({ locality: LOCALITY[host] }),
  apps: () => [
    { host: 'b', name: 'apps-b', source: STATUS_APP, args: ['b', `${SERVICES.remote.port}:503`, `${SERVICES.local.port}:503`] },
    { host: 'c', name: 'apps-c', source: STATUS_APP, args: ['c', `${SERVICES.remote.port}:200`, `${SERVICES.local.port}:200`] },
  ],
});

interface Result {
  status: number;
  app: string | null;
}

async function call(name: ServiceName, count: number): Promise<Result[]> {
  const m = await mesh();
  const run = await m.runNode('a', SEQUENTIAL_CLIENT, [`http://${vip(m.hosts, name)}:${SERVICES[name].port}`, String(count)], { timeoutMs: 60_000 });
  if (run.code !== 0) throw new Error(`client exited ${run.code}: ${run.stdout.slice(-2000)} ${run.stderr}`);
  return (JSON.parse(run.stdout) as { results: Result[] }).results;
}

/** Agent a's count of retries sent (all routes). */
async function retriesSent(): Promise<number> {
  const m = await mesh();
  const stats = await m.exec('a', ['curl', '-s', 'http://127.0.0.1:15000/stats'], { timeoutMs: 30_000 });
  const match = /agent\.outboundHttp\.retries: (\d+)/.exec(stats.stdout);
  if (!match) throw new Error(`agent a's /stats has no agent.outboundHttp.retries:\n${stats.stdout.slice(0, 2000)}`);
  return Number(match[1]);
}

/** Runs REQUESTS calls and returns them with the attempts each app saw and the retries agent a counted. */
async function measure(name: ServiceName): Promise<{ results: Result[]; atB: number; atC: number; retries: number }> {
  const m = await mesh();
  // The route is in force once an answer comes from an app rather than from a missing route.
  await eventually(`agent a routes ${name}`, async () => ['b', 'c'].includes(String((await call(name, 1))[0]!.app)) || undefined, { timeoutMs: 60_000, intervalMs: 200 });
  const port = SERVICES[name].port;
  const fromB = m.app('apps-b').mark();
  const fromC = m.app('apps-c').mark();
  const retriesBefore = await retriesSent();
  const results = await call(name, REQUESTS);
  const retries = (await retriesSent()) - retriesBefore;
  const seen = (app: 'apps-b' | 'apps-c', from: number) => m.app(app).matching((l) => l.msg === 'request' && l.port === port, from).length;
  // Every attempt was answered before the client got its response, but the app's log line may
  // trail it: wait for the expected count, and let the tests' assertions report a shortfall.
  const expectedAtB = name === 'remote' ? REQUESTS * ATTEMPTS : REQUESTS * (ATTEMPTS + 1);
  await eventually(`apps logged ${name}'s attempts`, () => seen('apps-b', fromB) >= expectedAtB || undefined, { timeoutMs: 10_000, intervalMs: 50 }).catch(() => undefined);
  return { results, atB: seen('apps-b', fromB), atC: seen('apps-c', fromC), retries };
}

netnsTest('retryRemoteLocalities true: with the local endpoint answering 503 but healthy, every request succeeds in the next locality after the retries Istio allows locally', async (t) => {
  t.timeout(300_000);
  const { results, atB, atC, retries } = await measure('remote');
  const ok = results.filter((r) => r.status === 200 && r.app === 'c').length;
  t.log(
    `retryRemoteLocalities true, attempts ${ATTEMPTS}, retryOn 5xx, update_frequency 2: ${ok}/${results.length} answered 200 by c (r1/z2); ` +
      `b (r1/z1, 503) saw ${atB} attempts, c ${atC}; agent a counted ${retries} retries (configured: each request tries b twice, then c once: ${REQUESTS * ATTEMPTS} / ${REQUESTS} / ${REQUESTS * ATTEMPTS})`,
  );
  t.is(ok, REQUESTS, JSON.stringify(results.filter((r) => r.status !== 200).slice(0, 5)));
  t.is(atC, REQUESTS);
  t.is(atB, REQUESTS * ATTEMPTS);
  t.is(retries, REQUESTS * ATTEMPTS);
});

netnsTest('retryRemoteLocalities false: retries stay in the local locality while its endpoint is healthy, and the 503 stands', async (t) => {
  t.timeout(300_000);
  const { results, atB, atC, retries } = await measure('local');
  const failed = results.filter((r) => r.status === 503 && r.app === 'b').length;
  t.log(
    `retryRemoteLocalities false, attempts ${ATTEMPTS}, retryOn 5xx: ${failed}/${results.length} answered 503 by b (r1/z1); ` +
      `b saw ${atB} attempts, c ${atC}; agent a counted ${retries} retries (configured: ${ATTEMPTS + 1} attempts per request, all local: ${REQUESTS * (ATTEMPTS + 1)} / 0 / ${REQUESTS * ATTEMPTS})`,
  );
  t.is(failed, REQUESTS, JSON.stringify(results.filter((r) => r.status !== 503).slice(0, 5)));
  t.is(atC, 0);
  t.is(atB, REQUESTS * (ATTEMPTS + 1));
  t.is(retries, REQUESTS * ATTEMPTS);
});
