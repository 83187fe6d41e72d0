// The inbound side enforcing the translated security policy on loopback, with real sockets: tunnel
// streams (HTTP/1, h2c, TCP) through a real TunnelServer and plain connections on the :15006
// listener. The source principal mTLS would prove is given to resolveInbound directly here; the
// mTLS tunnel itself is tested in agent/tunnel and end to end in test/e2e/security-*.test.ts.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import type { ConfigResource } from '../../server/config/resource';
import { security } from '../../server/translate/security-testing';
import { endpoint, port, service } from '../../server/translate/testing';
import { InboundPolicy } from '../policy/inbound-policy';
import { JwksCache } from '../policy/jwks-cache';
import { jwksOf, nowSeconds, testSigner } from '../policy/jwt-testing';
import { Inbound, InboundTable } from '../proxy/inbound';
import { exchange, startEcho } from '../tunnel/tunnel-test-support';
import { TunnelError, TunnelPool } from '../tunnel/tunnel-pool';
import { TunnelServer } from '../tunnel/tunnel-server';
import { capturingLogger, startHttpApp, translatedView, type HttpApp } from './testing';

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const OTHER = 'spiffe://cluster.local/ns/shop/sa/other';

interface Node {
  app: HttpApp;
  echoPort: number;
  inbound: Inbound;
  /** What the next tunnel streams present as their source principal (mTLS's verified peer). */
  source: { principal?: string };
  /** A CONNECT stream through the tunnel server to a local port. */
  open(port: number): Promise<Duplex>;
  /** The :15006 listener; every connection there claims to be for `plainTarget`. */
  plainPort: number;
  plainTarget: { port: number };
  lines: Array<Record<string, unknown>>;
}

/** Host `b` with an HTTP workload (app `web`) and a TCP echo workload (app `db`) on 127.0.0.1, under `resources`. */
async function startNode(t: ExecutionContext, resources: (ports: { http: number; tcp: number }) => ConfigResource[], appHandler?: http.RequestListener): Promise<Node> {
  const app = await startHttpApp(t, 'web', appHandler);
  const echo = await startEcho(t, 'bye');
  const web = service('web.shop.svc.cluster.local', { namespace: 'shop', ports: [port(app.port, 'HTTP', 'http')], endpoints: [endpoint('127.0.0.1', { node: 'b', labels: { app: 'web' } })] });
  const db = service('db.shop.svc.cluster.local', { namespace: 'shop', ports: [port(echo.port, 'TCP', 'tcp')], endpoints: [endpoint('127.0.0.1', { node: 'b', labels: { app: 'db' } })] });
  const view = translatedView([web, db], resources({ http: app.port, tcp: echo.port }), 'b');
  const table = new InboundTable(view, []);
  const policy = InboundPolicy.fromListener(view.listeners.get('virtualInbound'), new JwksCache());
  const { logger, lines } = capturingLogger();
  const plainTarget = { port: app.port };
  const inbound = new Inbound({ table: () => table, policy: () => policy, logger, originalDestination: () => ({ address: '127.0.0.1', port: plainTarget.port }) });
  const source: { principal?: string } = {};
  const tunnel = new TunnelServer({ resolveInbound: (destination, metadata) => inbound.resolveInbound(destination, { ...metadata, ...source }) });
  const tunnelPort = (await tunnel.listen(0, '127.0.0.1')).port;
  const pool = new TunnelPool();
  const plainPort = await inbound.listen(0, false);
  t.teardown(async () => {
    await pool.close(100);
    await tunnel.close(100);
    await inbound.drain(100);
  });
  return {
    app,
    echoPort: echo.port,
    inbound,
    source,
    open: (p) => pool.open({ host: '127.0.0.1', port: tunnelPort }, { address: '127.0.0.1', port: p }),
    plainPort,
    plainTarget,
    lines,
  };
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** HTTP/1.1 requests over one connection (a tunnel stream or a socket), kept alive between them. */
function http1Over(connection: Duplex): (options: { method?: string; path?: string; headers?: http.OutgoingHttpHeaders }) => Promise<Reply> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  // The one connection serves every request; node's agent asks for it once while it stays alive.
  Object.assign(agent, { createConnection: () => Object.assign(connection, { ref() {}, unref() {}, setKeepAlive() {}, _writev: null }) });
  return (options) =>
    new Promise((resolve, reject) => {
      const req = http.request({ agent, host: 'web', method: options.method ?? 'GET', path: options.path ?? '/', headers: options.headers }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.once('error', reject);
      req.end();
    });
}

test('an HTTP port decides each request: ALLOW by principal, DENY beats ALLOW, path and method rules; allowed requests share one kept-alive app connection', async (t) => {
  const node = await startNode(t, () => [
    security('AuthorizationPolicy', 'web-frontend', { selector: { matchLabels: { app: 'web' } }, action: 'ALLOW', rules: [
      { from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }], to: [{ operation: { methods: ['GET'], paths: ['/api/*'] } }] },
      { from: [{ source: { principals: ['cluster.local/ns/shop/sa/other'] } }], to: [{ operation: { methods: ['POST'] } }] },
    ] }),
    security('AuthorizationPolicy', 'web-no-admin', { selector: { matchLabels: { app: 'web' } }, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/api/admin'] } }] }] }),
  ]);
  node.source.principal = FRONTEND;
  const frontend = http1Over(await node.open(node.app.port));
  const allowed = await frontend({ path: '/api/items?x=1' });
  t.is(allowed.status, 200);
  t.like(JSON.parse(allowed.body), { app: 'web', method: 'GET', url: '/api/items?x=1' });
  t.like(await frontend({ path: '/api/admin' }), { status: 403, body: 'RBAC: access denied' }, 'DENY wins over the matching ALLOW');
  t.like(await frontend({ method: 'POST', path: '/api/items' }), { status: 403, body: 'RBAC: access denied' }, 'method not allowed for frontend');
  t.like(await frontend({ path: '/other' }), { status: 403 }, 'path outside /api/*');
  t.is((await frontend({ path: '/api/again' })).status, 200, 'the connection stays usable after refusals');

  node.source.principal = OTHER;
  const other = http1Over(await node.open(node.app.port));
  t.like(await other({ path: '/api/items' }), { status: 403, body: 'RBAC: access denied' });
  t.is((await other({ method: 'POST', path: '/anything' })).status, 200);

  t.is(node.app.requests(), 3, 'refused requests never reach the app');
  t.is(node.app.connections(), 1, 'requests from both tunnel streams share one kept-alive connection to the app');
  t.like(node.inbound.counters, { rbac_allowed: 3, rbac_denied: 4, http_requests: 7, http_connections: 2 });
});

test('JWT on a tunnel stream: a valid token passes with the token removed and its payload forwarded; expired, wrong issuer, wrong audience and bad signature get Envoy\'s 401', async (t) => {
  const signer = testSigner('ES256');
  const forger = testSigner('ES256', signer.kid);
  const node = await startNode(t, () => [
    security('RequestAuthentication', 'web-jwt', { selector: { matchLabels: { app: 'web' } }, jwtRules: [{ issuer: 'https://issuer.test', audiences: ['web'], jwks: jwksOf(signer), outputPayloadToHeader: 'x-jwt-payload' }] }),
    security('AuthorizationPolicy', 'web-needs-token', { selector: { matchLabels: { app: 'web' } }, rules: [{ from: [{ source: { requestPrincipals: ['https://issuer.test/*'] } }] }] }),
  ]);
  const client = http1Over(await node.open(node.app.port));
  const claims = { iss: 'https://issuer.test', sub: 'alice', aud: 'web', exp: nowSeconds() + 300 };
  const bearer = (token: string): http.OutgoingHttpHeaders => ({ authorization: `Bearer ${token}` });

  const ok = await client({ path: '/me', headers: bearer(signer.sign(claims)) });
  t.is(ok.status, 200);
  const seen = JSON.parse(ok.body) as { headers: Record<string, string | undefined> };
  t.is(seen.headers.authorization, undefined, 'forwardOriginalToken is off: the token does not reach the app');
  t.like(JSON.parse(Buffer.from(seen.headers['x-jwt-payload']!, 'base64url').toString()), { sub: 'alice' });

  const expired = await client({ path: '/me', headers: bearer(signer.sign({ ...claims, exp: nowSeconds() - 600 })) });
  t.like(expired, { status: 401, body: 'Jwt is expired' });
  t.is(expired.headers['www-authenticate'], 'Bearer realm="http://web/me", error="invalid_token"');
  t.like(await client({ path: '/me', headers: bearer(signer.sign({ ...claims, iss: 'https://other.test' })) }), { status: 401, body: 'Jwt issuer is not configured' });
  t.like(await client({ path: '/me', headers: bearer(signer.sign({ ...claims, aud: 'billing' })) }), { status: 401, body: 'Audiences in Jwt are not allowed' });
  t.like(await client({ path: '/me', headers: bearer(forger.sign(claims)) }), { status: 401, body: 'Jwt verification fails' });
  t.like(await client({ path: '/me' }), { status: 403, body: 'RBAC: access denied' }, 'no token: authenticated as nobody, then refused by the policy');
  t.is(node.app.requests(), 1);
  t.like(node.inbound.counters, { jwt_rejected: 4, rbac_denied: 1, rbac_allowed: 1 });
});

test('h2c on a tunnel stream is parsed too: the policy decides each HTTP/2 request', async (t) => {
  const node = await startNode(t, () => [
    security('AuthorizationPolicy', 'web-frontend', { selector: { matchLabels: { app: 'web' } }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }], to: [{ operation: { paths: ['/ok'] } }] }] }),
  ]);
  node.source.principal = FRONTEND;
  const stream = await node.open(node.app.port);
  const session = http2.connect('http://web', { createConnection: () => stream as net.Socket });
  t.teardown(() => session.destroy());
  const get = (path: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = session.request({ ':path': path });
      let status = 0;
      let body = '';
      req.setEncoding('utf8');
      req.once('response', (headers) => (status = Number(headers[':status'])));
      req.on('data', (chunk: string) => (body += chunk));
      req.once('end', () => resolve({ status, body }));
      req.once('error', reject);
    });
  const [ok, refused] = await Promise.all([get('/ok'), get('/nope')]);
  t.is(ok.status, 200);
  t.like(JSON.parse(ok.body), { app: 'web', url: '/ok' });
  t.deepEqual(refused, { status: 403, body: 'RBAC: access denied' });
});

test('a TCP port: network RBAC answers a refused CONNECT with 403 and the reason, an allowed one reaches the app', async (t) => {
  const node = await startNode(t, (ports) => [
    security('AuthorizationPolicy', 'db-frontend', { selector: { matchLabels: { app: 'db' } }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }], to: [{ operation: { ports: [String(ports.tcp)] } }] }] }),
  ]);
  node.source.principal = OTHER;
  const refused = await t.throwsAsync(node.open(node.echoPort), { instanceOf: TunnelError });
  t.is(refused?.status, 403);
  t.regex(refused?.message ?? '', /RBAC: access denied/);
  node.source.principal = FRONTEND;
  t.is((await exchange(await node.open(node.echoPort), 'hello')).toString(), 'hellobye');
  t.like(node.inbound.counters, { rbac_denied: 1, rbac_allowed: 1, tunnelRefused: 1, tunnelAllowed: 1 });
});

/** Connects to the plain listener and resolves with what came back before the close ('' when closed at once). */
function plainExchange(portNumber: number, payload: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(portNumber, '127.0.0.1', () => socket.write(payload));
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(received));
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

test('plaintext on :15006: a STRICT port is closed with a log line naming port and mode, a PERMISSIVE port is served and its HTTP policy applies', async (t) => {
  const node = await startNode(t, () => [
    security('PeerAuthentication', 'db-strict', { selector: { matchLabels: { app: 'db' } }, mtls: { mode: 'STRICT' } }),
    security('AuthorizationPolicy', 'web-no-secret', { selector: { matchLabels: { app: 'web' } }, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/secret'] } }] }] }),
  ]);
  node.plainTarget.port = node.echoPort;
  t.is(await plainExchange(node.plainPort, 'hello'), '', 'closed without reaching the echo app');
  const line = node.lines.find((l) => String(l.msg).startsWith('plaintext connection refused'));
  t.like(line, { port: node.echoPort, mode: 'STRICT' });
  t.is(node.inbound.counters.plaintext_refused, 1);

  node.plainTarget.port = node.app.port;
  const served = await plainExchange(node.plainPort, 'GET /hello HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n');
  t.regex(served, /^HTTP\/1\.1 200 /);
  t.regex(served, /"url":"\/hello"/);
  const refused = await plainExchange(node.plainPort, 'GET /secret HTTP/1.1\r\nhost: web\r\nconnection: close\r\n\r\n');
  t.regex(refused, /^HTTP\/1\.1 403 /);
  t.regex(refused, /RBAC: access denied$/);
});

test('AUDIT policies are logged without deciding, and a dry-run DENY is counted and logged while the request passes', async (t) => {
  const dryRun = security('AuthorizationPolicy', 'web-would-deny', { selector: { matchLabels: { app: 'web' } }, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/maybe'] } }] }] });
  dryRun.metadata.annotations = { 'istio.io/dry-run': 'true' };
  const node = await startNode(t, () => [
    security('AuthorizationPolicy', 'web-audit', { selector: { matchLabels: { app: 'web' } }, action: 'AUDIT', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] }),
    dryRun,
  ]);
  const client = http1Over(await node.open(node.app.port));
  t.is((await client({ method: 'DELETE', path: '/x' })).status, 200);
  t.like(node.lines.find((l) => l.msg === 'request audited'), { policy: 'ns[shop]-policy[web-audit]-rule[0]', allowed: true, method: 'DELETE', path: '/x' });
  t.is((await client({ path: '/maybe' })).status, 200, 'dry-run never enforces');
  t.is(node.inbound.counters.rbac_shadow_denied, 1);
  t.like(node.lines.find((l) => l.msg === 'request would be denied by a dry-run policy'), { path: '/maybe' });
  t.is(node.app.requests(), 2);
});

test('a WebSocket upgrade the policy denies is answered 403 and closed before reaching the app', async (t) => {
  const node = await startNode(t, () => [
    security('AuthorizationPolicy', 'web-frontend', { selector: { matchLabels: { app: 'web' } }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }] }] }),
  ]);
  node.source.principal = OTHER;
  const stream = await node.open(node.app.port);
  const reply = await exchange(stream, 'GET /chat HTTP/1.1\r\nhost: web\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', false);
  t.regex(reply.toString(), /^HTTP\/1\.1 403 Forbidden\r\n/);
  t.regex(reply.toString(), /\r\n\r\nRBAC: access denied$/);
  t.is(node.app.requests(), 0);
  t.is(node.inbound.counters.rbac_denied, 1);
});

test('a response on a tunnel stream leaves as one DATA frame: its head and body are joined, not written one after the other', async (t) => {
  const body = JSON.stringify({ app: 'web', text: 'x'.repeat(1000) });
  const node = await startNode(t, () => [], (req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  node.source.principal = FRONTEND;
  const stream = await node.open(node.app.port);
  const chunks: Buffer[] = [];
  const response = await new Promise<string>((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const text = Buffer.concat(chunks).toString('latin1');
      const headEnd = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)\r\n/i.exec(text);
      if (headEnd >= 0 && length && text.length - headEnd - 4 >= Number(length[1])) resolve(text);
    });
    stream.once('error', reject);
    stream.write('GET /one-frame HTTP/1.1\r\nhost: web\r\n\r\n');
  });
  t.regex(response, /^HTTP\/1\.1 200 OK\r\n/);
  t.true(response.endsWith(body));
  t.is(chunks.length, 1, `the response came in ${chunks.length} DATA frames`);
  stream.destroy();
});
