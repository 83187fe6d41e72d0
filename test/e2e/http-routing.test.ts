// Per-request HTTP routing by the agents across hosts, seen by unmodified clients on host a: curl,
// node's http (keep-alive), a WebSocket client on http.request + Upgrade, and @grpc/grpc-js.
import { requireNetns } from '../netns/guard';
import type { TestHost } from '../netns/test-network';
import { GRPC_GREETER_APP, GRPC_GREETER_CLIENT, HTTP_APP, HTTP_SPLIT_CLIENT, STREAMING_GREETER_PROTO, WEBSOCKET_CLIENT } from './http-apps';
import { meshPerFile } from './mesh-hosts';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'curl'], { serial: true });

type Host = 'cp' | 'a' | 'b' | 'c';

const HTTP_PORT = 9080;
const GRPC_PORT = 50051;
const SPLIT_REQUESTS = 2000;

function vip(hosts: Readonly<Record<Host, TestHost>>, last: number): string {
  return hosts.a.ip.replace(/\.\d+$/, `.${last}`);
}
const reviewsVip = (hosts: Readonly<Record<Host, TestHost>>): string => vip(hosts, 201);
const greeterVip = (hosts: Readonly<Record<Host, TestHost>>): string => vip(hosts, 202);

/** reviews (HTTP) and greeter (gRPC), v1 on b and v2 on c, with Bookinfo-like routes for reviews. */
function meshConfig(hosts: Readonly<Record<Host, TestHost>>): string {
  const workloads = (app: string, portName: string, port: number): string =>
    (['v1', 'v2'] as const).map((version) => `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: ${app}-${version}
  annotations: { mesh.io/node: ${version === 'v1' ? 'b' : 'c'} }
spec:
  address: ${version === 'v1' ? hosts.b.ip : hosts.c.ip}
  labels: { app: ${app}, version: ${version} }
  ports: { ${portName}: ${port} }
`).join('');
  return `apiVersion: networking.istio.io/v1
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
kind: ServiceEntry
metadata:
  name: greeter
spec:
  hosts: [greeter]
  addresses: [${greeterVip(hosts)}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: ${GRPC_PORT}, name: grpc, protocol: GRPC }
  workloadSelector:
    labels: { app: greeter }
${workloads('reviews', 'http', HTTP_PORT)}${workloads('greeter', 'grpc', GRPC_PORT)}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
    - name: jason-on-v2
      match:
        - headers:
            end-user: { exact: jason }
      route:
        - destination: { host: reviews, subset: v2 }
    - name: moved
      match:
        - uri: { exact: /moved }
      redirect: { uri: /new-home, redirectCode: 301 }
    - name: teapot
      match:
        - uri: { exact: /teapot }
      directResponse:
        status: 418
        body: { string: short and stout }
    - name: legacy
      match:
        - uri: { prefix: /legacy/ }
      rewrite: { uri: /api/ }
      route:
        - destination: { host: reviews, subset: v1 }
    - name: canary
      route:
        - destination: { host: reviews, subset: v1 }
          weight: 90
        - destination: { host: reviews, subset: v2 }
          weight: 10
`;
}

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b', 'c'],
  server: 'cp',
  agents: ['a', 'b', 'c'],
  config: (hosts) => ({ 'bookinfo.yaml': meshConfig(hosts) }),
  apps: () => [
    { host: 'b', name: 'reviews-v1', source: HTTP_APP, args: [String(HTTP_PORT), 'v1'] },
    { host: 'c', name: 'reviews-v2', source: HTTP_APP, args: [String(HTTP_PORT), 'v2'] },
    { host: 'b', name: 'greeter-v1', source: GRPC_GREETER_APP, args: [STREAMING_GREETER_PROTO, String(GRPC_PORT), 'v1'] },
    { host: 'c', name: 'greeter-v2', source: GRPC_GREETER_APP, args: [STREAMING_GREETER_PROTO, String(GRPC_PORT), 'v2'] },
  ],
});

interface CurlResult {
  status: number;
  headers: string;
  body: string;
}

/** curl from host a: status, response headers and body. */
async function curl(host: Host, url: string, headers: readonly string[] = []): Promise<CurlResult> {
  const m = await mesh();
  const result = await m.exec(host, ['curl', '-s', '-m', '10', '-D', '-', ...headers.flatMap((h) => ['-H', h]), url], { allowFailure: true, timeoutMs: 30_000 });
  if (result.exitCode !== 0) throw new Error(`curl ${url} exited ${result.exitCode}: ${result.stderr}`);
  const separator = result.stdout.indexOf('\r\n\r\n');
  const head = result.stdout.slice(0, separator);
  return { status: Number(/^HTTP\/\S+ (\d{3})/.exec(head)?.[1]), headers: head, body: result.stdout.slice(separator + 4) };
}

netnsTest('curl: header routing, prefix rewrite, 301 redirect and a direct response', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const base = `http://${reviewsVip(m.hosts)}:${HTTP_PORT}`;

  const jason = await curl('a', `${base}/reviews/1`, ['end-user: jason']);
  t.is(jason.status, 200);
  t.like(JSON.parse(jason.body), { app: 'v2', path: '/reviews/1', endUser: 'jason' });

  const rewritten = await curl('a', `${base}/legacy/reviews/1?x=1`);
  t.is(rewritten.status, 200);
  t.like(JSON.parse(rewritten.body), { app: 'v1', path: '/api/reviews/1?x=1' });

  const moved = await curl('a', `${base}/moved`);
  t.is(moved.status, 301);
  t.regex(moved.headers, new RegExp(`^location: http://${reviewsVip(m.hosts).replace(/\./g, '\\.')}:${HTTP_PORT}/new-home\r?$`, 'im'));
  t.notRegex(moved.body, /"app"/, 'the agent answers the redirect itself');

  const teapot = await curl('a', `${base}/teapot`);
  t.is(teapot.status, 418);
  t.is(teapot.body, 'short and stout');
});

netnsTest('node http with keep-alive: a 90/10 split sends 10% ±3 points to v2 over 2000 requests', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const result = await m.runNode('a', HTTP_SPLIT_CLIENT, [`http://${reviewsVip(m.hosts)}:${HTTP_PORT}/reviews`, String(SPLIT_REQUESTS)], { timeoutMs: 180_000 });
  t.is(result.code, 0, result.stdout + result.stderr);
  const { byApp, failures } = JSON.parse(result.stdout) as { byApp: Record<string, number>; failures: unknown[] };
  t.deepEqual(failures, []);
  t.is((byApp.v1 ?? 0) + (byApp.v2 ?? 0), SPLIT_REQUESTS);
  const v2Percent = ((byApp.v2 ?? 0) / SPLIT_REQUESTS) * 100;
  t.log(`split over ${SPLIT_REQUESTS} requests: v1 ${(100 - v2Percent).toFixed(1)}%, v2 ${v2Percent.toFixed(1)}%`);
  t.true(Math.abs(v2Percent - 10) <= 3, `v2 got ${v2Percent.toFixed(1)}%`);
});

netnsTest('a WebSocket client upgrades through both agents and gets its frames echoed', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const result = await m.runNode('a', WEBSOCKET_CLIENT, [reviewsVip(m.hosts), String(HTTP_PORT), '/chat', 'hello'], { timeoutMs: 60_000 });
  t.is(result.code, 0, result.stdout + result.stderr);
  const ws = JSON.parse(result.stdout) as { status: number; acceptOk: boolean; messages: string[]; closed?: boolean };
  t.is(ws.status, 101);
  t.true(ws.acceptOk);
  t.is(ws.messages.length, 1);
  t.regex(ws.messages[0]!, /^v[12]: hello$/);
  t.true(ws.closed);
});

netnsTest('@grpc/grpc-js: unary, server-streaming and bidi calls with their trailers', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const result = await m.runNode('a', GRPC_GREETER_CLIENT, [STREAMING_GREETER_PROTO, `${greeterVip(m.hosts)}:${GRPC_PORT}`], { timeoutMs: 60_000 });
  t.is(result.code, 0, result.stdout + result.stderr);
  interface Reply { message: string; backend: string }
  interface Status { code: number; details: string; backend: string | null }
  const out = JSON.parse(result.stdout) as {
    unary: { error: string | null; reply: Reply }; unaryStatus: Status;
    serverStream: { replies: Reply[]; status: Status }; bidi: { replies: Reply[]; status: Status };
  };
  t.is(out.unary.error, null);
  t.is(out.unary.reply.message, 'hello unary');
  t.like(out.unaryStatus, { code: 0, backend: out.unary.reply.backend });
  t.deepEqual(out.serverStream.replies.map((r) => r.message), [0, 1, 2, 3, 4].map((i) => `hello stream #${i}`));
  t.like(out.serverStream.status, { code: 0, backend: out.serverStream.replies[0]!.backend });
  t.deepEqual(out.bidi.replies.map((r) => r.message), ['hi ann', 'hi bob', 'hi cy']);
  t.like(out.bidi.status, { code: 0, backend: out.bidi.replies[0]!.backend });
  for (const backend of [out.unary.reply.backend, out.serverStream.status.backend, out.bidi.status.backend]) t.regex(String(backend), /^v[12]$/);
});
