// Bad input on an HTTP port through the agent: garbage gets 400, a slowloris client gets 408 once
// the header timeout passes, unknown destinations follow outboundTrafficPolicy (passthrough under
// ALLOW_ANY, 502 under REGISTRY_ONLY), and good requests keep flowing through all of it.
import { requireNetns } from '../netns/guard';
import type { TestHost } from '../netns/test-network';
import { HTTP_APP } from './http-apps';
import { meshPerFile } from './mesh-hosts';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'curl'], { serial: true });

type Host = 'cp' | 'a' | 'b';

const HTTP_PORT = 9080;
/** mesh-agent's header timeout is 60 s (Node's default; Envoy has none unless configured). */
const SLOWLORIS_DEADLINE_MS = 120_000;
const SIDECAR_FILE = 'mesh-wide-sidecar.yaml';

const reviewsVip = (hosts: Readonly<Record<Host, TestHost>>): string => hosts.a.ip.replace(/\.\d+$/, '.201');

/**
 * `node -e RAW_HTTP_CLIENT HOST PORT garbage|slowloris DEADLINE`: garbage sends bytes that are no
 * HTTP request; slowloris starts a request and adds one header line a second, never finishing.
 * Prints the status line it got (if any) and when the connection ended.
 */
const RAW_HTTP_CLIENT = `
const net = require('node:net');
const [host, port, mode, deadline] = process.argv.slice(1);
const started = Date.now();
let response = '';
let trickle;
const socket = net.connect({ host, port: Number(port) }, () => {
  if (mode === 'garbage') socket.write('\\x00\\x01\\x02 this is not HTTP \\xff\\r\\n\\r\\n');
  else {
    socket.write('GET /slow HTTP/1.1\\r\\nHost: reviews\\r\\n');
    trickle = setInterval(() => socket.write('X-Slow: still-coming\\r\\n'), 1000);
  }
});
const report = (how, code) => {
  clearInterval(trickle);
  console.log(JSON.stringify({ how, ms: Date.now() - started, statusLine: response.split('\\r\\n')[0] }));
  process.exit(code);
};
socket.on('data', (chunk) => { response += chunk; });
socket.on('error', (error) => report(error.code || error.message, 0));
socket.on('close', () => report('closed', 0));
setTimeout(() => report('still open', 1), Number(deadline));
`;

const REGISTRY_ONLY = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
  namespace: istio-system
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
`;

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b'],
  server: 'cp',
  agents: ['a', 'b'],
  config: (hosts) => ({
    'reviews.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts: [reviews]
  addresses: [${reviewsVip(hosts)}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: ${HTTP_PORT}, name: http, protocol: HTTP }
  workloadSelector:
    labels: { app: reviews }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v1
  annotations: { mesh.io/node: b }
spec:
  address: ${hosts.b.ip}
  labels: { app: reviews, version: v1 }
  ports: { http: ${HTTP_PORT} }
`,
  }),
  apps: () => [
    { host: 'b', name: 'reviews-v1', source: HTTP_APP, args: [String(HTTP_PORT), 'v1'] },
    // Not in the registry, on the same port as a mesh service: only the policy decides.
    { host: 'cp', name: 'outside', source: HTTP_APP, args: [String(HTTP_PORT), 'outside'] },
  ],
});

async function curl(host: Host, url: string): Promise<{ status: number; body: string }> {
  const m = await mesh();
  const result = await m.exec(host, ['curl', '-s', '-m', '10', '-w', '\n%{http_code}', url], { allowFailure: true, timeoutMs: 30_000 });
  const newline = result.stdout.lastIndexOf('\n');
  return { status: Number(result.stdout.slice(newline + 1)), body: result.stdout.slice(0, Math.max(newline, 0)) };
}

netnsTest('garbage on an HTTP port gets 400 and a slowloris client 408, while good requests flow', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const vip = reviewsVip(m.hosts);
  const raw = async (mode: 'garbage' | 'slowloris'): Promise<{ how: string; ms: number; statusLine: string }> => {
    const result = await m.runNode('a', RAW_HTTP_CLIENT, [vip, String(HTTP_PORT), mode, String(SLOWLORIS_DEADLINE_MS)], { timeoutMs: SLOWLORIS_DEADLINE_MS + 30_000 });
    t.is(result.code, 0, `${mode}: ${result.stdout}${result.stderr}`);
    return JSON.parse(result.stdout) as { how: string; ms: number; statusLine: string };
  };
  const slow = raw('slowloris');
  const garbage = await raw('garbage');
  t.regex(garbage.statusLine, /^HTTP\/1\.1 400 /);

  // While the slow client holds its connection, others are served.
  const good = [];
  for (let i = 0; i < 5; i++) good.push(await curl('a', `http://${vip}:${HTTP_PORT}/reviews`));
  for (const reply of good) t.like({ status: reply.status, app: (JSON.parse(reply.body) as { app: string }).app }, { status: 200, app: 'v1' });

  const slowOutcome = await slow;
  t.regex(slowOutcome.statusLine, /^HTTP\/1\.1 408 /);
  t.log(`slowloris closed after ${slowOutcome.ms} ms with "${slowOutcome.statusLine}"`);
  t.is(m.agentLog('a').child.exitCode, null);
  t.is((await curl('a', `http://${vip}:${HTTP_PORT}/reviews`)).status, 200);
});

netnsTest('an HTTP request to a destination outside the registry passes through under ALLOW_ANY and gets 502 under REGISTRY_ONLY', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const outsideUrl = `http://${m.hosts.cp.ip}:${HTTP_PORT}/anything`;
  const allowed = await curl('a', outsideUrl);
  t.is(allowed.status, 200);
  t.like(JSON.parse(allowed.body), { app: 'outside', path: '/anything' });

  const agentA = m.agentLog('a');
  let mark = agentA.mark();
  await m.writeConfig(SIDECAR_FILE, REGISTRY_ONLY);
  await agentA.waitFor('a-agent applying REGISTRY_ONLY', (line) => line.msg === 'config applied' && line.source === 'server', 20_000, mark);
  const blocked = await curl('a', outsideUrl);
  t.is(blocked.status, 502);
  t.log(`REGISTRY_ONLY answer: 502 "${blocked.body}"`);
  // The registered service on the same port is unaffected.
  t.is((await curl('a', `http://${reviewsVip(m.hosts)}:${HTTP_PORT}/reviews`)).status, 200);

  mark = agentA.mark();
  await m.removeConfig(SIDECAR_FILE);
  await agentA.waitFor('a-agent back on ALLOW_ANY', (line) => line.msg === 'config applied' && line.source === 'server', 20_000, mark);
  t.is((await curl('a', outsideUrl)).status, 200);
});
