// PeerAuthentication and AuthorizationPolicy enforced by the agents on namespaced hosts with mTLS
// identities from the CA: STRICT against PERMISSIVE for a plaintext client outside the mesh, ALLOW
// by source principal on TCP, and DENY, path and method rules on HTTP, with the agent's counters.
import test from 'ava';
import * as path from 'node:path';
import { requireNetns } from '../netns/guard';
import { eventually } from '../support/eventually';
import type { TestHost } from '../netns/test-network';
import { HTTP_APP } from './http-apps';
import { meshCa } from './mesh-ca';
import { meshPerFile } from './mesh-hosts';
import { TCP_CLIENT, TCP_ECHO_APP, tcpExchange } from './tcp-apps';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'curl'], { serial: true });

type Host = 'cp' | 'a' | 'b' | 'c' | 'x';

/** TCP workloads on b: STRICT, PERMISSIVE (the default), and one only the frontend may call. */
const STRICT_PORT = 7100;
const OPEN_PORT = 7200;
const DB_PORT = 7300;
const API_PORT = 8080;
const FRONTEND = 'spiffe://cluster.local/ns/default/sa/frontend';
const OTHER = 'spiffe://cluster.local/ns/default/sa/other';

const ca = meshCa();

const apiVip = (hosts: Readonly<Record<Host, TestHost>>): string => hosts.a.ip.replace(/\.\d+$/, '.210');

function serviceEntry(name: string, port: number, protocol: 'TCP' | 'HTTP', addresses = ''): string {
  return `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name} }
spec:
  hosts: [${name}.mesh]
  ${addresses ? `addresses: [${addresses}]` : ''}
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: ${port}, name: ${protocol.toLowerCase()}-${name}, protocol: ${protocol} }]
  workloadSelector: { labels: { app: ${name} } }
`;
}

function workloadEntry(name: string, host: TestHost, serviceAccount: string, portName: string, port: number): string {
  return `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ${name}-${host.name}, annotations: { mesh.io/node: ${host.name} } }
spec: { address: ${host.ip}, labels: { app: ${name} }, serviceAccount: ${serviceAccount}, ports: { ${portName}: ${port} } }
`;
}

function meshConfig(hosts: Readonly<Record<Host, TestHost>>): string {
  return [
    serviceEntry('strict', STRICT_PORT, 'TCP'),
    workloadEntry('strict', hosts.b, 'backend', 'tcp-strict', STRICT_PORT),
    serviceEntry('open', OPEN_PORT, 'TCP'),
    workloadEntry('open', hosts.b, 'backend', 'tcp-open', OPEN_PORT),
    serviceEntry('db', DB_PORT, 'TCP'),
    workloadEntry('db', hosts.b, 'backend', 'tcp-db', DB_PORT),
    serviceEntry('api', API_PORT, 'HTTP', apiVip(hosts)),
    workloadEntry('api', hosts.b, 'backend', 'http-api', API_PORT),
    // The callers: their WorkloadEntries are what lets the CA sign their identities on a and c.
    serviceEntry('frontend', 9001, 'TCP'),
    workloadEntry('frontend', hosts.a, 'frontend', 'tcp-frontend', 9001),
    serviceEntry('other', 9002, 'TCP'),
    workloadEntry('other', hosts.c, 'other', 'tcp-other', 9002),
    `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: strict }
spec: { selector: { matchLabels: { app: strict } }, mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: db-frontend-only }
spec:
  selector: { matchLabels: { app: db } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: [cluster.local/ns/default/sa/frontend] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: api-frontend-reads }
spec:
  selector: { matchLabels: { app: api } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: [cluster.local/ns/default/sa/frontend] } }]
      to: [{ operation: { methods: [GET], paths: [/api/*] } }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: api-no-admin }
spec:
  selector: { matchLabels: { app: api } }
  action: DENY
  rules: [{ to: [{ operation: { paths: [/api/admin] } }] }]
`,
  ].join('');
}

const WORKLOADS: Readonly<Record<string, { name: string; serviceAccount: string }>> = {
  a: { name: 'frontend', serviceAccount: 'frontend' },
  b: { name: 'backend', serviceAccount: 'backend' },
  c: { name: 'other', serviceAccount: 'other' },
};

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b', 'c', 'x'],
  server: 'cp',
  // x is outside the mesh: no agent, no certificate, plaintext only.
  agents: ['a', 'b', 'c'],
  serverArgs: [...ca.serverArgs],
  config: (hosts) => ({ 'mesh.yaml': meshConfig(hosts) }),
  apps: () => [
    { host: 'b', name: 'strict', source: TCP_ECHO_APP, args: [String(STRICT_PORT), 'strict'] },
    { host: 'b', name: 'open', source: TCP_ECHO_APP, args: [String(OPEN_PORT), 'open'] },
    { host: 'b', name: 'db', source: TCP_ECHO_APP, args: [String(DB_PORT), 'db'] },
    { host: 'b', name: 'api', source: HTTP_APP, args: [String(API_PORT), 'api'] },
  ],
  // Called once mesh-server runs: its CA has written the root and the join secret by then.
  agentConfig: (host, hosts) => {
    return { ...ca.join(host, hosts.cp.ip), workloads: [WORKLOADS[host]!] };
  },
});

interface CurlResult {
  status: number;
  body: string;
}

async function curl(host: Host, url: string, extra: readonly string[] = []): Promise<CurlResult> {
  const m = await mesh();
  const result = await m.exec(host, ['curl', '-s', '-m', '10', '-w', '\n%{http_code}', ...extra, url], { allowFailure: true, timeoutMs: 30_000 });
  if (result.exitCode !== 0) throw new Error(`curl ${url} from ${host} exited ${result.exitCode}: ${result.stderr}`);
  const newline = result.stdout.lastIndexOf('\n');
  return { status: Number(result.stdout.slice(newline + 1)), body: result.stdout.slice(0, newline) };
}

netnsTest('STRICT refuses a plaintext client on a host outside the mesh, PERMISSIVE admits it; a meshed client reaches the STRICT port over mTLS', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const { b } = m.hosts;
  t.is(await tcpExchange(m, 'x', b.ip, OPEN_PORT), 'hellobye from open');

  const strict = await m.runNode('x', TCP_CLIENT, [b.ip, String(STRICT_PORT)]);
  t.false(strict.stdout.includes('strict'), `the STRICT workload answered a plaintext client: ${strict.stdout}`);
  const refusal = await m.agentLog('b').waitFor('the STRICT refusal on b', (line) => String(line.msg).startsWith('plaintext connection refused'), 10_000);
  t.like(refusal, { port: STRICT_PORT, mode: 'STRICT', destination: `${b.ip}:${STRICT_PORT}` });
  t.false(m.app('strict').lines.some((line) => line.event === 'connection' && line.remote === m.hosts.x.ip), 'the STRICT app never saw x');

  t.is(await tcpExchange(m, 'a', b.ip, STRICT_PORT), 'hellobye from strict');
});

netnsTest('an ALLOW policy on a TCP port admits the frontend\'s identity and refuses another at the tunnel', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const { b } = m.hosts;
  t.is(await tcpExchange(m, 'a', b.ip, DB_PORT), 'hellobye from db');
  const allowed = await m.agentLog('b').waitFor('frontend admitted to db', (line) => line.msg === 'inbound tunnel stream' && line.destination === `${b.ip}:${DB_PORT}`, 10_000);
  t.is(allowed.principal, FRONTEND);

  await t.throwsAsync(tcpExchange(m, 'c', b.ip, DB_PORT), undefined, 'the other identity gets no bytes from db');
  const refused = await m.agentLog('b').waitFor('other refused at db', (line) => line.msg === 'inbound tunnel stream refused' && line.principal === OTHER, 10_000);
  t.like(refused, { destination: `${b.ip}:${DB_PORT}`, reason: 'RBAC: access denied' });
  // c's agent learned why from the CONNECT's answer (403 and the reason header).
  const onC = await m.agentLog('c').waitFor('c told why', (line) => typeof line.err === 'string' && line.err.includes('403'), 10_000);
  t.regex(String(onC.err), /RBAC: access denied/);
});

netnsTest('HTTP: DENY beats ALLOW, path and method rules decide per request, another identity and a plaintext client are refused with 403', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const base = `http://${apiVip(m.hosts)}:${API_PORT}`;

  const read = await curl('a', `${base}/api/items?page=2`);
  t.is(read.status, 200, read.body);
  t.like(JSON.parse(read.body), { app: 'api', method: 'GET', path: '/api/items?page=2' });
  t.deepEqual(await curl('a', `${base}/api/admin`), { status: 403, body: 'RBAC: access denied' }, 'DENY wins over the frontend\'s ALLOW');
  t.deepEqual(await curl('a', `${base}/api/items`, ['-X', 'POST', '--data', 'x']), { status: 403, body: 'RBAC: access denied' }, 'only GET is allowed');
  t.deepEqual(await curl('a', `${base}/health`), { status: 403, body: 'RBAC: access denied' }, 'only /api/* is allowed');

  t.deepEqual(await curl('c', `${base}/api/items`), { status: 403, body: 'RBAC: access denied' });
  // Plaintext from outside the mesh reaches the PERMISSIVE port, and has no principal to be allowed with.
  t.deepEqual(await curl('x', `http://${m.hosts.b.ip}:${API_PORT}/api/items`), { status: 403, body: 'RBAC: access denied' });

  const stats = await m.exec('b', ['curl', '-s', '-m', '5', 'http://127.0.0.1:15000/stats']);
  const counter = (name: string): number => Number(new RegExp(`^agent\\.inbound\\.${name}: (\\d+)$`, 'm').exec(stats.stdout)?.[1] ?? NaN);
  t.true(counter('rbac_allowed') >= 2, stats.stdout);
  t.true(counter('rbac_denied') >= 6, stats.stdout);
  t.true(counter('plaintext_refused') >= 1, stats.stdout);
});

netnsTest('a policy edit reaches requests on connections the agents keep alive: the other identity is admitted, then refused again', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const url = `http://${apiVip(m.hosts)}:${API_PORT}/api/items`;
  t.is((await curl('c', url)).status, 403);
  await m.writeConfig('other-reads.yaml', `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: api-other-reads }
spec:
  selector: { matchLabels: { app: api } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: [cluster.local/ns/default/sa/other] } }]
      to: [{ operation: { methods: [GET] } }]
`);
  const admitted = await eventually('c admitted after the edit', async () => {
    const reply = await curl('c', url);
    return reply.status === 200 ? reply : undefined;
  }, { timeoutMs: 30_000, intervalMs: 200 });
  t.like(JSON.parse(admitted.body), { app: 'api', path: '/api/items' });
  t.deepEqual(await curl('c', `http://${apiVip(m.hosts)}:${API_PORT}/api/admin`), { status: 403, body: 'RBAC: access denied' }, 'the DENY still wins');

  await m.removeConfig('other-reads.yaml');
  await eventually('c refused after the policy is removed', async () => (await curl('c', url)).status === 403, { timeoutMs: 30_000, intervalMs: 200 });
  t.is((await curl('a', url)).status, 200, 'the frontend is unaffected');
});
