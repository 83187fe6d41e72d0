// DestinationRule connectionPool limits on the outbound HTTP path, over loopback with real sockets:
// idle keep-alive connections counted against maxConnections, HTTP/2 requests waiting for a session
// or a stream counted against http1MaxPendingRequests, and WebSocket upgrades admitted by the
// circuit breaker, retried when refused and counted by outlier detection, as Envoy does.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { endpoint, port, resource, service } from '../../server/translate/testing';
import { eventually } from '../../test/support/eventually';
import { request, startHarness, startHttpApp, type Harness, type HttpApp } from './testing';

const VIP = { address: '10.0.0.10', port: 8080 };
const CLUSTER = 'outbound|8080||web';

const flagCount = (harness: Harness, flag: string) => (harness.outbound.httpStats() as unknown as Record<string, number>)[`response_flags.${flag}`] ?? 0;

function web(protocol: 'HTTP' | 'HTTP2', ...ports: number[]) {
  return service('web', {
    addresses: [VIP.address],
    ports: [port(8080, protocol, protocol.toLowerCase())],
    endpoints: ports.map((p) => endpoint('127.0.0.1', { ports: { [protocol.toLowerCase()]: p } })),
  });
}

function destinationRule(trafficPolicy: unknown) {
  return resource('DestinationRule', 'web', { host: 'web', trafficPolicy });
}

/** The TCP connections an app holds open now. */
function openConnections(app: HttpApp): () => number {
  let open = 0;
  app.server.on('connection', (socket: net.Socket) => {
    open++;
    socket.once('close', () => open--);
  });
  return () => open;
}

test('an idle keep-alive connection counts against maxConnections: with 1 allowed, the idle one to one endpoint is closed before one opens to the other', async (t) => {
  const a = await startHttpApp(t, 'a');
  const b = await startHttpApp(t, 'b');
  const openA = openConnections(a);
  const openB = openConnections(b);
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([web('HTTP', a.port, b.port)], [destinationRule({ loadBalancer: { simple: 'ROUND_ROBIN' }, connectionPool: { tcp: { maxConnections: 1 } } })]);
  for (let i = 0; i < 6; i++) {
    t.is((await request(harness.port, { authority: 'web:8080', path: `/k${i}` })).status, 200);
    // Before the fix the idle connection to the other endpoint stayed open: two connections for a limit of one.
    await eventually(`one upstream connection open after request ${i} (a: ${openA()}, b: ${openB()})`, () => openA() + openB() === 1 || undefined, { timeoutMs: 2000 });
  }
  t.is(a.requests() + b.requests(), 6);
  t.true(a.requests() >= 2 && b.requests() >= 2, `round robin reached both endpoints (a ${a.requests()}, b ${b.requests()})`);
  t.is(a.connections() + b.connections(), 6, 'each switch of endpoint needed a new connection');
  t.is(harness.table()?.guard(CLUSTER)?.breaker.stats().remaining_cx, 0, 'the open connection holds the one slot');
});

test('an idle keep-alive connection to the same endpoint is reused under maxConnections 1', async (t) => {
  const a = await startHttpApp(t, 'a');
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([web('HTTP', a.port)], [destinationRule({ connectionPool: { tcp: { maxConnections: 1 } } })]);
  for (let i = 0; i < 5; i++) t.is((await request(harness.port, { authority: 'web:8080', path: `/r${i}` })).status, 200);
  t.is(a.connections(), 1);
});

/** An h2c app allowing `maxConcurrentStreams` streams, answering each after `holdMs`. */
async function startHttp2App(t: ExecutionContext, maxConcurrentStreams: number, holdMs: number): Promise<{ port: number; server: http2.Http2Server; streams: () => number }> {
  let streams = 0;
  const server = http2.createServer({ settings: { maxConcurrentStreams } });
  server.on('stream', (stream) => {
    streams++;
    stream.resume();
    const timer = setTimeout(() => {
      if (!stream.closed) stream.respond({ ':status': 200 }, { endStream: true });
    }, holdMs);
    stream.once('close', () => clearTimeout(timer));
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  const listening = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: listening, server, streams: () => streams };
}

test('HTTP/2: requests waiting for a stream the peer does not allow yet are pending requests; beyond http1MaxPendingRequests they get 503 UO at once', async (t) => {
  const app = await startHttp2App(t, 1, 300);
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([web('HTTP2', app.port)], [destinationRule({ connectionPool: { http: { http1MaxPendingRequests: 1 } } })]);
  // The session is up and the app's SETTINGS (one stream at a time) are known before the burst.
  t.is((await request(harness.port, { authority: 'web:8080', path: '/warm' })).status, 200);
  const started = performance.now();
  const replies = await Promise.all(
    Array.from({ length: 5 }, async (_, i) => {
      const reply = await request(harness.port, { authority: 'web:8080', path: `/s${i}` });
      return { status: reply.status, body: reply.body, ms: performance.now() - started };
    }),
  );
  const ok = replies.filter((r) => r.status === 200);
  const overflow = replies.filter((r) => r.status === 503);
  t.log(`5 callers, 1 stream + 1 pending: ${ok.length} × 200, ${overflow.length} × 503 (${replies.map((r) => Math.round(r.ms)).join(', ')} ms)`);
  // One on the stream, one waiting for it; before the fix nghttp2 queued all five and each got 200.
  t.is(ok.length, 2);
  t.is(overflow.length, 3);
  t.true(overflow.every((r) => r.ms < 250), 'refused at once, not after waiting');
  t.true(overflow.every((r) => r.body === 'upstream connect error or disconnect/reset before headers. reset reason: overflow'), overflow[0]?.body);
  t.is(flagCount(harness, 'UO'), 3);
  t.is(app.streams(), 3);
});

test('HTTP/2: a pending request whose client leaves gives its place back at once and is never sent', async (t) => {
  const app = await startHttp2App(t, 1, 400);
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([web('HTTP2', app.port)], [destinationRule({ connectionPool: { http: { http1MaxPendingRequests: 1 } } })]);
  t.is((await request(harness.port, { authority: 'web:8080', path: '/warm' })).status, 200);
  const breaker = () => harness.table()!.guard(CLUSTER)!.breaker.stats();
  let firstDone = false;
  const first = request(harness.port, { authority: 'web:8080', path: '/first' }).then((reply) => ((firstDone = true), reply));
  await eventually('the first request on the only stream', () => app.streams() === 2 || undefined);
  const leaving = http.request({ host: '127.0.0.1', port: harness.port, path: '/leaving', headers: { host: 'web:8080' }, agent: false });
  leaving.on('error', () => undefined);
  leaving.end();
  await eventually('the second request pending', () => breaker().remaining_pending === 0 || undefined);
  leaving.destroy();
  await eventually('the pending place given back', () => breaker().remaining_pending === 1 || undefined);
  t.false(firstDone, 'given back only once the stream was free');
  const third = await request(harness.port, { authority: 'web:8080', path: '/third' });
  t.is(third.status, 200);
  t.is((await first).status, 200);
  t.is(app.streams(), 3, 'the abandoned request never reached the app');
  t.is(flagCount(harness, 'UO'), 0);
});

test('HTTP/2: requests arriving while the session is still connecting are pending requests; beyond http1MaxPendingRequests they get 503 UO', async (t) => {
  const app = await startHttp2App(t, 100, 0);
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([web('HTTP2', app.port)], [destinationRule({ connectionPool: { http: { http1MaxPendingRequests: 2 } } })]);
  // Four requests in one burst on one client connection: the agent reads them together, before its upstream session can connect.
  const client = http2.connect(`http://127.0.0.1:${harness.port}`);
  t.teardown(() => client.close());
  await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  const burst = () =>
    Promise.all(
      Array.from(
        { length: 4 },
        (_, i) =>
          new Promise<number>((resolve, reject) => {
            const stream = client.request({ ':path': `/c${i}`, ':authority': 'web:8080' });
            stream.once('response', (headers) => resolve(Number(headers[':status'])));
            stream.once('error', reject);
            stream.resume();
            stream.end();
          }),
      ),
    );
  const cold = await burst();
  t.log(`cold session, 2 pending allowed: ${cold.join(', ')}`);
  t.deepEqual([...cold].sort(), [200, 200, 503, 503]);
  // Once the session is up, nothing waits: the same burst passes whole.
  t.deepEqual(await burst(), [200, 200, 200, 200]);
  t.is(flagCount(harness, 'UO'), 2);
});

test('HTTP/2: maxRequestsPerConnection retires a session after that many streams; requests then go on a new one', async (t) => {
  const app = await startHttp2App(t, 100, 0);
  let sessions = 0;
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([web('HTTP2', app.port)], [destinationRule({ connectionPool: { http: { maxRequestsPerConnection: 2 } } })]);
  app.server.on('session', () => sessions++);
  for (let i = 0; i < 5; i++) t.is((await request(harness.port, { authority: 'web:8080', path: `/m${i}` })).status, 200);
  // Five concurrent ones: each session still takes two at most.
  const burst = await Promise.all(Array.from({ length: 5 }, (_, i) => request(harness.port, { authority: 'web:8080', path: `/b${i}` })));
  t.deepEqual(burst.map((r) => r.status), [200, 200, 200, 200, 200], burst.map((r) => r.body).join(' / '));
  t.is(app.streams(), 10);
  t.true(sessions >= 5 && sessions <= 6, `${sessions} sessions for 10 requests, 2 each`);
});

/** An HTTP/1.1 app answering upgrades: 101 and an echo, or `refuse` with its status. */
async function startUpgradeApp(t: ExecutionContext, name: string, refuse?: number): Promise<HttpApp & { upgrades: () => number }> {
  let upgrades = 0;
  const app = await startHttpApp(t, name);
  app.server.on('upgrade', (_req: http.IncomingMessage, socket: net.Socket) => {
    upgrades++;
    if (refuse !== undefined) {
      socket.end(`HTTP/1.1 ${refuse} Refused\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
      return;
    }
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
    socket.on('data', (chunk: Buffer) => socket.write(Buffer.concat([Buffer.from(`${name}:`), chunk])));
    // The server socket is half-open capable: close when the client side ends, as WebSocket servers do.
    socket.once('end', () => socket.end());
    socket.on('error', () => undefined);
  });
  return { ...app, upgrades: () => upgrades };
}

interface Upgrade {
  readonly socket: net.Socket;
  /** The status line's code, once the head arrived. */
  readonly status: Promise<number>;
  /** Everything read after the head. */
  readonly received: () => string;
}

/** A WebSocket-style upgrade request on a new client connection to the outbound listener. */
function upgrade(t: ExecutionContext, harnessPort: number, path: string): Upgrade {
  const socket = net.connect(harnessPort, '127.0.0.1');
  t.teardown(() => socket.destroy());
  socket.on('error', () => undefined);
  let buffered = '';
  let headEnd = -1;
  const status = new Promise<number>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      if (headEnd < 0 && (headEnd = buffered.indexOf('\r\n\r\n')) >= 0) resolve(Number(buffered.slice(9, 12)));
    });
    socket.once('close', () => reject(new Error(`connection closed before a response to ${path}: ${JSON.stringify(buffered)}`)));
  });
  status.catch(() => undefined);
  socket.write(`GET ${path} HTTP/1.1\r\nhost: web:8080\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n`);
  return { socket, status, received: () => (headEnd < 0 ? '' : buffered.slice(headEnd + 4)) };
}

test('WebSocket upgrades hold a connection under maxConnections: the second waits pending, beyond http1MaxPendingRequests one gets 503 UO before the upgrade', async (t) => {
  const app = await startUpgradeApp(t, 'ws');
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([web('HTTP', app.port)], [destinationRule({ connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } })]);
  const first = upgrade(t, harness.port, '/first');
  t.is(await first.status, 101);
  first.socket.write('hello');
  await eventually('the echo through the first upgrade', () => first.received() === 'ws:hello' || undefined);
  const second = upgrade(t, harness.port, '/second');
  let secondAnswered = false;
  void second.status.then(() => (secondAnswered = true));
  // The third finds the one connection held and the one pending place taken.
  await eventually('the second upgrade waiting as a pending request', () => harness.table()?.guard(CLUSTER)?.breaker.stats().remaining_pending === 0 || undefined);
  const third = upgrade(t, harness.port, '/third');
  t.is(await third.status, 503);
  t.regex(third.received(), /overflow/);
  t.false(secondAnswered, 'the second upgrade was answered while the first still held the only connection');
  t.is(app.upgrades(), 1);
  // Closing the first frees its connection for the waiting second.
  first.socket.destroy();
  t.is(await second.status, 101);
  second.socket.write('again');
  await eventually('the echo through the second upgrade', () => second.received() === 'ws:again' || undefined);
  t.is(app.upgrades(), 2);
  t.is(flagCount(harness, 'UO'), 1);
});

test('WebSocket upgrades count against http2MaxRequests: with 1 allowed, a second concurrent upgrade gets 503 UO', async (t) => {
  const app = await startUpgradeApp(t, 'ws');
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([web('HTTP', app.port)], [destinationRule({ connectionPool: { http: { http2MaxRequests: 1 } } })]);
  const first = upgrade(t, harness.port, '/first');
  t.is(await first.status, 101);
  t.is(await upgrade(t, harness.port, '/second').status, 503);
  first.socket.destroy();
  // The request slot comes back when the upgraded connection closes.
  await eventually('an upgrade admitted again', async () => (await upgrade(t, harness.port, '/third').status) === 101 || undefined, { timeoutMs: 5000 });
  t.is(app.upgrades(), 2);
});

test('a refused upgrade (503) is retried on another endpoint, and the refusing endpoint is ejected by outlier detection', async (t) => {
  const bad = await startUpgradeApp(t, 'bad', 503);
  const good = await startUpgradeApp(t, 'good');
  const harness = await startHarness(t, { destination: VIP });
  harness.apply(
    [web('HTTP', bad.port, good.port)],
    [
      destinationRule({ loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 2, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 100 } }),
      resource('VirtualService', 'web', { hosts: ['web'], http: [{ route: [{ destination: { host: 'web' } }], retries: { attempts: 3, retryOn: '5xx' } }] }),
    ],
  );
  for (let i = 0; i < 8; i++) {
    const ws = upgrade(t, harness.port, `/u${i}`);
    t.is(await ws.status, 101, `upgrade ${i}`);
    ws.socket.write(`m${i}`);
    await eventually(`the echo of upgrade ${i}`, () => ws.received() === `good:m${i}` || undefined);
    ws.socket.destroy();
  }
  // Two consecutive refusals eject the endpoint; later upgrades never reach it.
  t.is(bad.upgrades(), 2);
  t.is(good.upgrades(), 8);
  t.true(harness.outbound.httpStats().retries >= 2);
});
