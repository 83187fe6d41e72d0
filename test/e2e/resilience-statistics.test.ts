// Issue 5's statistics over real traffic between namespaced hosts: unmodified node clients on host a
// call services on b, c and d through the agents, and each test prints what it observed next to
// what was configured: retries, per-try timeout, fault abort and delay shares, pool overflow,
// outlier ejection, mirroring and locality failover.
import { requireNetns } from '../netns/guard';
import type { TestHost } from '../netns/test-network';
import { eventually } from '../support/eventually';
import { meshPerFile } from './mesh-hosts';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'curl'], { serial: true });

type Host = 'cp' | 'a' | 'b' | 'c' | 'd';
type Hosts = Readonly<Record<Host, TestHost>>;

/** Each service: its port (also its VIP's last octet offset) and where its workloads run, in which mode. */
const SERVICES = {
  flaky: { port: 9101, workloads: [{ host: 'b', mode: 'flaky' }] },
  slow: { port: 9102, workloads: [{ host: 'b', mode: 'slow' }] },
  faulty: { port: 9103, workloads: [{ host: 'b', mode: 'ok' }] },
  delayed: { port: 9104, workloads: [{ host: 'b', mode: 'ok' }] },
  pooled: { port: 9105, workloads: [{ host: 'b', mode: 'half-second' }] },
  ejected: { port: 9106, workloads: [{ host: 'b', mode: 'ok' }, { host: 'c', mode: 'fail' }] },
  mirrored: { port: 9107, workloads: [{ host: 'b', mode: 'ok' }] },
  shadow: { port: 9108, workloads: [{ host: 'c', mode: 'shadow' }] },
  // b's workload is down (nothing listens): failover goes to c (same region), never to d.
  failover: { port: 9109, workloads: [{ host: 'b', mode: 'down', locality: 'r1/z1' }, { host: 'c', mode: 'ok', locality: 'r1/z2' }, { host: 'd', mode: 'ok', locality: 'r2/z3' }] },
} as const satisfies Record<string, { port: number; workloads: ReadonlyArray<{ host: Host; mode: string; locality?: string }> }>;
type ServiceName = keyof typeof SERVICES;

const LOCALITY: Readonly<Record<Host, string>> = { cp: 'r1/z1', a: 'r1/z1', b: 'r1/z1', c: 'r1/z2', d: 'r2/z3' };

function vip(hosts: Hosts, name: ServiceName): string {
  return hosts.a.ip.replace(/\.\d+$/, `.${SERVICES[name].port - 9100 + 200}`);
}

function url(hosts: Hosts, name: ServiceName): string {
  return `http://${vip(hosts, name)}:${SERVICES[name].port}`;
}

/**
 * `node -e RESILIENCE_APP HOST PORT:MODE...`: one HTTP server per port. ok answers at once;
 * flaky fails every other request with 500; slow answers after 1 s; half-second after 500 ms;
 * fail always 500; shadow answers after 2 s. fail and shadow log each request (time, host header).
 */
const RESILIENCE_APP = `
const http = require('node:http');
const [host, ...specs] = process.argv.slice(1);
let listening = 0;
for (const spec of specs) {
  const [port, mode] = spec.split(':');
  let n = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({ app: host + '-' + mode, path: req.url });
      const answer = (status) => { if (!res.destroyed) { res.writeHead(status, { 'content-type': 'application/json' }); res.end(body); } };
      if (mode === 'fail' || mode === 'shadow') console.log(JSON.stringify({ msg: 'request', mode, at: Date.now(), host: req.headers.host, path: req.url }));
      if (mode === 'flaky') return answer(n++ % 2 === 0 ? 500 : 200);
      if (mode === 'fail') return answer(500);
      if (mode === 'slow') return setTimeout(() => answer(200), 1000);
      if (mode === 'half-second') return setTimeout(() => answer(200), 500);
      if (mode === 'shadow') return setTimeout(() => answer(200), 2000);
      answer(200);
    });
  });
  server.listen(Number(port), '0.0.0.0', () => { if (++listening === specs.length) console.log(JSON.stringify({ msg: 'listening' })); });
}
`;

/**
 * `node -e LOAD_CLIENT URL COUNT CONCURRENCY PACE_MS`: COUNT GETs of URL/<i>, CONCURRENCY at a time
 * over keep-alive connections, each worker pausing PACE_MS between requests. Prints per request
 * its status, latency, answering app and start time.
 */
const LOAD_CLIENT = `
const http = require('node:http');
const [url, count, concurrency, pace] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const results = [];
let sent = 0;
const deadline = setTimeout(() => { console.log(JSON.stringify({ results, timedOut: true })); process.exit(1); }, 170000);
function one(i) {
  return new Promise((resolve) => {
    const at = Date.now();
    const started = performance.now();
    http.get(url + '/' + i, { agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        let app = null;
        try { app = JSON.parse(Buffer.concat(chunks)).app; } catch {}
        results.push({ i, status: res.statusCode, ms: performance.now() - started, app, at });
        resolve();
      });
    }).on('error', (e) => { results.push({ i, status: 0, ms: performance.now() - started, app: e.code || e.message, at }); resolve(); });
  });
}
async function worker() {
  while (sent < count) {
    const i = sent++;
    await one(i);
    if (pace > 0) await new Promise((r) => setTimeout(r, pace));
  }
}
Promise.all(Array.from({ length: concurrency }, worker)).then(() => { clearTimeout(deadline); agent.destroy(); console.log(JSON.stringify({ results })); });
`;

interface Result {
  i: number;
  status: number;
  ms: number;
  app: string | null;
  at: number;
}

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
    for (const workload of spec.workloads) {
      const locality = 'locality' in workload ? `\n  locality: ${workload.locality}` : '';
      docs.push(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: ${name}-${workload.host}
  annotations: { mesh.io/node: ${workload.host} }
spec:
  address: ${hosts[workload.host].ip}
  labels: { app: ${name} }
  ports: { http: ${spec.port} }${locality}`);
    }
  }
  const route = (name: ServiceName, extra: string): string => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name} }
spec:
  hosts: [${name}]
  http:
    - route: [{ destination: { host: ${name} } }]
${extra}`;
  docs.push(route('flaky', '      retries: { attempts: 3, retryOn: 5xx }'));
  docs.push(route('slow', '      retries: { attempts: 2, perTryTimeout: 100ms, retryOn: 5xx }'));
  docs.push(route('faulty', '      fault: { abort: { httpStatus: 500, percentage: { value: 10 } } }'));
  docs.push(route('delayed', '      fault: { delay: { fixedDelay: 200ms, percentage: { value: 20 } } }'));
  docs.push(route('ejected', '      retries: { attempts: 0 }'));
  docs.push(route('mirrored', '      mirror: { host: shadow }\n      mirrorPercentage: { value: 100 }'));
  docs.push(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: pooled }
spec:
  host: pooled
  trafficPolicy:
    connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } }`);
  docs.push(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ejected }
spec:
  host: ejected
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
    outlierDetection: { consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 3s, maxEjectionPercent: 100 }`);
  docs.push(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: failover }
spec:
  host: failover
  trafficPolicy:
    outlierDetection: { consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100 }`);
  return docs.join('\n---\n') + '\n';
}

function appSpecs(host: Host): string[] {
  const specs: string[] = [];
  for (const spec of Object.values(SERVICES)) for (const workload of spec.workloads) if (workload.host === host && workload.mode !== 'down') specs.push(`${spec.port}:${workload.mode}`);
  return specs;
}

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b', 'c', 'd'],
  server: 'cp',
  agents: ['a', 'b', 'c', 'd'],
  agentLogLevel: 'debug',
  config: (hosts) => ({ 'resilience.yaml': meshConfig(hosts) }),
  agentConfig: (host) => ({ locality: LOCALITY[host] }),
  apps: () => (['b', 'c', 'd'] as const).map((host) => ({ host, name: `apps-${host}`, source: RESILIENCE_APP, args: [host, ...appSpecs(host)] })),
});

async function load(name: ServiceName, count: number, concurrency: number, paceMs = 0): Promise<Result[]> {
  const m = await mesh();
  const run = await m.runNode('a', LOAD_CLIENT, [url(m.hosts, name), String(count), String(concurrency), String(paceMs)], { timeoutMs: 180_000 });
  if (run.code !== 0) throw new Error(`client exited ${run.code}: ${run.stdout.slice(-2000)} ${run.stderr}`);
  return (JSON.parse(run.stdout) as { results: Result[] }).results;
}

function percent(part: number, whole: number): number {
  return (part / whole) * 100;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

netnsTest('a backend failing half its requests, with 3 retries on 5xx, gives at least 95% success', async (t) => {
  t.timeout(300_000);
  // One caller at a time, so that the backend's every-other failure pattern is what each request meets
  // (concurrent callers make its failures look independent: 1 − 0.5⁴ = 93.75% at best with 4 tries).
  const results = await load('flaky', 1000, 1);
  const ok = results.filter((r) => r.status === 200).length;
  t.log(`retries (attempts 3, retryOn 5xx) against a backend failing 50%: ${percent(ok, results.length).toFixed(1)}% success over ${results.length} requests (configured: ≥ 95%)`);
  t.is(results.length, 1000);
  t.true(percent(ok, results.length) >= 95);
  const concurrent = await load('flaky', 1000, 8);
  const concurrentOk = concurrent.filter((r) => r.status === 200).length;
  t.log(`the same with 8 concurrent callers (failures close to independent): ${percent(concurrentOk, concurrent.length).toFixed(1)}% success (1 − 0.5⁴ = 93.75% expected)`);
  t.true(percent(concurrentOk, concurrent.length) >= 90);
});

netnsTest('a per-try timeout of 100 ms against a 1 s backend fails in about 100 ms × attempts', async (t) => {
  t.timeout(300_000);
  const results = await load('slow', 10, 1);
  const times = results.map((r) => r.ms);
  t.log(`per-try timeout 100 ms, 2 retries (3 attempts, back-off ≤ 25 + 75 ms): 504 after median ${median(times).toFixed(0)} ms, min ${Math.min(...times).toFixed(0)}, max ${Math.max(...times).toFixed(0)} (configured: ~300 ms + back-off; backend 1000 ms)`);
  t.deepEqual([...new Set(results.map((r) => r.status))], [504]);
  t.true(Math.min(...times) >= 295);
  t.true(median(times) < 700, `median ${median(times)} ms`);
});

netnsTest('a 10% abort is observed within ±3 points over 2000 requests', async (t) => {
  t.timeout(300_000);
  const results = await load('faulty', 2000, 8);
  const aborted = results.filter((r) => r.status === 500).length;
  const ok = results.filter((r) => r.status === 200).length;
  t.log(`abort 10% (httpStatus 500): ${percent(aborted, results.length).toFixed(1)}% aborted over ${results.length} requests (configured: 10%)`);
  t.is(aborted + ok, 2000);
  t.true(Math.abs(percent(aborted, results.length) - 10) <= 3);
});

netnsTest('a fixed 200 ms delay on 20% adds at least 200 ms to the delayed share only', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const from = m.agentLog('a').mark();
  const results = await load('delayed', 500, 8);
  const flags = new Map<string, string>();
  await eventually('every access log line of /delayed requests', () => {
    for (const line of m.agentLog('a').matching((l) => l.msg === 'http request' && String(l.authority).endsWith(`:${SERVICES.delayed.port}`), from)) flags.set(String(line.path), String(line.response_flags));
    return flags.size >= 500 || undefined;
  });
  const delayed = results.filter((r) => flags.get(`/${r.i}`) === 'DI');
  const others = results.filter((r) => flags.get(`/${r.i}`) !== 'DI');
  t.log(
    `delay 200 ms on 20%: ${percent(delayed.length, results.length).toFixed(1)}% delayed (DI), their min ${Math.min(...delayed.map((r) => r.ms)).toFixed(0)} ms / median ${median(delayed.map((r) => r.ms)).toFixed(0)} ms; the others' median ${median(others.map((r) => r.ms)).toFixed(0)} ms`,
  );
  t.true(results.every((r) => r.status === 200));
  t.true(Math.abs(percent(delayed.length, results.length) - 20) <= 5);
  t.true(delayed.every((r) => r.ms >= 200));
  t.true(median(others.map((r) => r.ms)) + 150 < median(delayed.map((r) => r.ms)));
});

netnsTest('a pool of 1 connection and 1 pending request returns 503 UO under 20 concurrent callers', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const results = await load('pooled', 20, 20);
  const ok = results.filter((r) => r.status === 200);
  const overflow = results.filter((r) => r.status === 503);
  const stats = await m.exec('a', ['curl', '-s', 'http://127.0.0.1:15000/stats'], { timeoutMs: 30_000 });
  const uo = Number(/agent\.outboundHttp\.response_flags\.UO: (\d+)/.exec(stats.stdout)?.[1] ?? 0);
  t.log(`maxConnections 1, http1MaxPendingRequests 1, 20 concurrent callers of a 500 ms backend: ${ok.length} × 200, ${overflow.length} × 503 (median ${median(overflow.map((r) => r.ms)).toFixed(0)} ms), UO counted ${uo}`);
  t.is(ok.length + overflow.length, 20);
  t.true(ok.length >= 2 && ok.length <= 4);
  t.true(uo >= overflow.length);
  // Refused at once: long before the backend could have answered the queued request.
  t.true(median(overflow.map((r) => r.ms)) < 500);
});

netnsTest('an endpoint returning 5xx is ejected, receives nothing for the ejection time, then returns', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const from = m.app('apps-c').mark();
  const started = Date.now();
  const results = await load('ejected', 400, 1, 20);
  const arrivals = m.app('apps-c').matching((l) => l.msg === 'request' && l.mode === 'fail', from).map((l) => Number(l.at)).filter((at) => at >= started);
  const gaps: Array<{ after: number; ms: number }> = [];
  for (let i = 1; i < arrivals.length; i++) if (arrivals[i]! - arrivals[i - 1]! > 1000) gaps.push({ after: arrivals[i - 1]! - started, ms: arrivals[i]! - arrivals[i - 1]! });
  const first = gaps[0];
  t.log(`consecutive5xxErrors 3, baseEjectionTime 3 s, interval 1 s: failing endpoint got ${arrivals.length} of ${results.length} requests; silent for ${first ? `${first.ms} ms from ${first.after} ms` : 'never'}; ${gaps.length > 1 ? `second ejection ${gaps[1]!.ms} ms (base × 2)` : ''}`);
  t.truthy(first, 'the failing endpoint was never ejected');
  t.true(first!.ms >= 2900 && first!.ms <= 5500, `ejected for ${first!.ms} ms`);
  t.true(arrivals.some((at) => at - started > first!.after + first!.ms - 1), 'the endpoint never came back');
  t.true(results.filter((r) => r.status === 200).length > results.length / 2);
});

netnsTest('mirrored traffic reaches the shadow (host -shadow) without changing or delaying the caller\'s response', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const from = m.app('apps-c').mark();
  const results = await load('mirrored', 100, 4);
  const shadowHost = `${vip(m.hosts, 'mirrored')}-shadow:${SERVICES.mirrored.port}`;
  const shadowed = await eventually('100 shadow requests', () => {
    const seen = m.app('apps-c').matching((l) => l.msg === 'request' && l.mode === 'shadow', from);
    return seen.length >= 100 ? seen : undefined;
  });
  const times = results.map((r) => r.ms);
  t.log(`mirrorPercentage 100: shadow saw ${shadowed.length} of ${results.length} requests; callers all answered by ${[...new Set(results.map((r) => r.app))].join(',')}, median ${median(times).toFixed(0)} ms, max ${Math.max(...times).toFixed(0)} ms (shadow answers after 2000 ms)`);
  t.true(results.every((r) => r.status === 200 && r.app === 'b-ok'));
  t.true(shadowed.every((l) => l.host === shadowHost), String(shadowed[0]?.host));
  t.true(Math.max(...times) < 2000);
});

netnsTest('with the local endpoint down, traffic fails over to the next locality in order (same region before another)', async (t) => {
  t.timeout(300_000);
  // Until the down endpoint is ejected, requests to it fail (and retries stay in its priority).
  await eventually('requests served while the local endpoint is down', async () => {
    const probe = await load('failover', 10, 1);
    return probe.every((r) => r.status === 200) || undefined;
  }, { timeoutMs: 60_000, intervalMs: 200 });
  const results = await load('failover', 300, 4);
  const byApp: Record<string, number> = {};
  for (const r of results) byApp[String(r.app)] = (byApp[String(r.app)] ?? 0) + 1;
  t.log(`client r1/z1; endpoints r1/z1 (down), r1/z2, r2/z3: ${JSON.stringify(byApp)} over ${results.length} requests (configured: all to r1/z2)`);
  t.deepEqual(byApp, { 'c-ok': 300 });
});
