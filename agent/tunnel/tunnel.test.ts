// End-to-end tests of the agent-to-agent tunnel over real loopback sockets: TunnelPool on one side,
// TunnelServer on the other, an echo app behind it; pooling, half-close, errors, resets, restarts.
import * as http2 from 'node:http2';
import { randomBytes } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { TunnelError, TunnelPool, type TunnelPoolOptions } from './tunnel-pool';
import { TunnelServer, type TunnelServerOptions, type TunnelStreamEvent, type SourceMetadata } from './tunnel-server';
import {
  SwitchableRelay,
  closedPort,
  exchange,
  readBytes,
  sha256,
  startEcho,
} from './tunnel-test-support';

/** The service address the peer is asked for; the resolver maps it to the echo app's real port. */
const SERVICE = { address: '10.0.0.7', port: 8080 };

async function startServer(t: ExecutionContext, options: TunnelServerOptions): Promise<{ server: TunnelServer; port: number }> {
  const server = new TunnelServer(options);
  t.teardown(() => server.close(100));
  const { port } = await server.listen(0, '127.0.0.1');
  return { server, port };
}

function newPool(t: ExecutionContext, options: TunnelPoolOptions = {}): TunnelPool {
  const pool = new TunnelPool({ connectTimeoutMs: 5000, ...options });
  t.teardown(() => pool.close());
  return pool;
}

/** An echo app behind a tunnel server that serves SERVICE only. */
async function echoTunnel(t: ExecutionContext, replyOnFin?: string) {
  const echo = await startEcho(t, replyOnFin);
  const seen: SourceMetadata[] = [];
  const events: TunnelStreamEvent[] = [];
  const { server, port } = await startServer(t, {
    resolveInbound: (destination, metadata) => {
      seen.push(metadata);
      return destination.address === SERVICE.address && destination.port === SERVICE.port
        ? { host: '127.0.0.1', port: echo.port }
        : { reject: 403, reason: `no local workload for ${destination.address}:${destination.port}` };
    },
    onStream: (event) => events.push(event),
  });
  return { echo, server, peer: { host: '127.0.0.1', port }, seen, events };
}

test('200 sequential and 50 concurrent streams all echo over exactly one session', async (t) => {
  const { peer } = await echoTunnel(t);
  const pool = newPool(t);
  for (let i = 0; i < 200; i++) {
    const stream = await pool.open(peer, SERVICE);
    const reply = await exchange(stream, `sequential ${i}`);
    t.is(reply.toString(), `sequential ${i}`);
  }
  const replies = await Promise.all(
    Array.from({ length: 50 }, async (_, i) => {
      const stream = await pool.open(peer, SERVICE);
      return (await exchange(stream, `concurrent ${i}`)).toString();
    }),
  );
  t.deepEqual(replies, Array.from({ length: 50 }, (_, i) => `concurrent ${i}`));
  const stats = pool.stats();
  t.is(stats.sessionsCreated, 1);
  t.is(stats.streamsOpened, 250);
});

test('a 20 MB payload echoes intact through one stream', async (t) => {
  t.timeout(30_000);
  const { peer } = await echoTunnel(t);
  const pool = newPool(t);
  const payload = randomBytes(20 * 1024 * 1024);
  const stream = await pool.open(peer, SERVICE);
  const reply = await exchange(stream, payload);
  t.is(reply.length, payload.length);
  t.is(sha256(reply), sha256(payload));
});

test('half-close: the app sees FIN from the client and its later reply still arrives before the end', async (t) => {
  const { echo, peer } = await echoTunnel(t, 'reply after FIN');
  const pool = newPool(t);
  const stream = await pool.open(peer, SERVICE);
  const received = exchange(stream, 'hello', true);
  await echo.fins[0];
  t.is((await received).toString(), 'helloreply after FIN');
});

test('half-close the other way: the app ends first and the client can still send', async (t) => {
  const echo = await startEcho(t);
  const { port } = await startServer(t, { resolveInbound: () => ({ host: '127.0.0.1', port: echo.port }) });
  const pool = newPool(t);
  const stream = await pool.open({ host: '127.0.0.1', port }, SERVICE);
  stream.write('ping');
  t.is((await readBytes(stream, 4)).toString(), 'ping');
  // Close only the app's sending side; its receiving side stays open.
  const app = echo.connections[0]!;
  app.unpipe(app);
  const received: Buffer[] = [];
  app.on('data', (chunk: Buffer) => received.push(chunk));
  app.resume();
  const clientEnded = new Promise<void>((resolve) => stream.once('end', () => resolve()));
  app.end();
  stream.resume();
  await clientEnded;
  stream.end('after app FIN');
  await echo.fins[0];
  t.is(Buffer.concat(received).toString(), 'after app FIN');
});

test('a refused local connection rejects open() with 503 and the reason', async (t) => {
  const deadPort = await closedPort();
  const { port } = await startServer(t, { resolveInbound: () => ({ host: '127.0.0.1', port: deadPort }) });
  const pool = newPool(t);
  const err = await t.throwsAsync(pool.open({ host: '127.0.0.1', port }, SERVICE), { instanceOf: TunnelError });
  t.is(err?.status, 503);
  t.regex(err?.reason ?? '', new RegExp(`connect to 127\\.0\\.0\\.1:${deadPort} failed: .*ECONNREFUSED`));
});

test('a resolver refusal answers with the status and reason the resolver gave', async (t) => {
  const { peer, events } = await echoTunnel(t);
  const pool = newPool(t);
  const err = await t.throwsAsync(pool.open(peer, { address: '10.0.0.99', port: 8080 }), { instanceOf: TunnelError });
  t.is(err?.status, 403);
  t.is(err?.reason, 'no local workload for 10.0.0.99:8080');
  t.is(events.at(-1)?.status, 403);
  // The session survives a refused stream.
  t.is((await exchange(await pool.open(peer, SERVICE), 'still fine')).toString(), 'still fine');
  t.is(pool.stats().sessionsCreated, 1);
});

test('bad authorities get 400 and other methods 405, without reaching the resolver', async (t) => {
  const { peer, seen } = await echoTunnel(t);
  const client = http2.connect(`http://127.0.0.1:${peer.port}`);
  t.teardown(() => client.destroy());
  client.on('error', () => undefined);
  const ask = (headers: http2.OutgoingHttpHeaders): Promise<{ status: number; reason: string }> =>
    new Promise((resolve, reject) => {
      const stream = client.request(headers, { endStream: false });
      stream.on('error', reject);
      stream.once('response', (response) => {
        resolve({ status: Number(response[':status']), reason: String(response['x-tunnel-reason']) });
        stream.close();
      });
    });
  for (const authority of ['service.example:80', '10.0.0.7', '10.0.0.7:99999', '10.0.0.7:', '[::1:80', '[fe80::zz]:80', '300.1.1.1:80']) {
    const answer = await ask({ ':method': 'CONNECT', ':authority': authority });
    t.is(answer.status, 400, authority);
    t.true(answer.reason.includes(JSON.stringify(authority)), answer.reason);
  }
  t.is((await ask({ ':method': 'GET', ':path': '/', ':authority': '10.0.0.7:8080' })).status, 405);
  t.is(seen.length, 0);

  const pool = newPool(t);
  const err = await t.throwsAsync(pool.open(peer, { address: 'service.example', port: 80 }), { instanceOf: TunnelError });
  t.is(err?.status, 400);
});

test('an IPv6 destination travels as [addr]:port and reaches the resolver parsed', async (t) => {
  const echo = await startEcho(t);
  const asked: string[] = [];
  const { port } = await startServer(t, {
    resolveInbound: (destination) => {
      asked.push(`${destination.address}/${destination.port}`);
      return { host: '127.0.0.1', port: echo.port };
    },
  });
  const pool = newPool(t);
  const stream = await pool.open({ host: '127.0.0.1', port }, { address: 'fd00::7', port: 9090 });
  t.is((await exchange(stream, 'v6')).toString(), 'v6');
  t.deepEqual(asked, ['fd00::7/9090']);
});

test('source metadata headers reach the resolver and the onStream observer', async (t) => {
  const { peer, seen, events } = await echoTunnel(t);
  const pool = newPool(t);
  const metadata = {
    baggage: 'k8s.namespace.name=shop,k8s.deployment.name=frontend,service.name=frontend',
    forwarded: 'for=10.0.0.3',
    traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    'X-Source-Identity': 'spiffe://mesh.local/ns/shop/sa/frontend',
  };
  const stream = await pool.open(peer, SERVICE, metadata);
  await exchange(stream, 'x');
  t.is(seen.length, 1);
  const source = seen[0]!;
  t.is(source.baggage, metadata.baggage);
  t.is(source.forwarded, metadata.forwarded);
  t.is(source.traceparent, metadata.traceparent);
  t.is(source.headers['x-source-identity'], metadata['X-Source-Identity']);
  t.is(source.peerAddress, '127.0.0.1');
  t.is(events.length, 1);
  t.like(events[0], { status: 200, authority: '10.0.0.7:8080', destination: SERVICE, source: { traceparent: metadata.traceparent } });
  await t.throwsAsync(pool.open(peer, SERVICE, { connection: 'close' }), { message: /not allowed/ });
});

test('resetting one stream closes its app connection and leaves the others on the session working', async (t) => {
  const { echo, peer } = await echoTunnel(t);
  const pool = newPool(t);
  const doomed = await pool.open(peer, SERVICE);
  const survivor = await pool.open(peer, SERVICE);
  doomed.write('a');
  survivor.write('b');
  t.is((await readBytes(doomed, 1)).toString(), 'a');
  t.is((await readBytes(survivor, 1)).toString(), 'b');
  // The doomed stream was answered 200 (its app connection made) before the survivor was opened.
  const doomedApp = echo.connections[0]!;
  const appReset = new Promise<string | undefined>((resolve) => doomedApp.once('error', (err: NodeJS.ErrnoException) => resolve(err.code)));
  (doomed as http2.ClientHttp2Stream).close(http2.constants.NGHTTP2_CANCEL);
  t.is(await appReset, 'ECONNRESET');
  t.is((await exchange(survivor, 'c')).toString(), 'c');
  t.is(pool.stats().sessionsCreated, 1);
});

test('an app reset reaches the client as a stream error, not a clean end', async (t) => {
  const { echo, peer } = await echoTunnel(t);
  const pool = newPool(t);
  const stream = await pool.open(peer, SERVICE);
  stream.write('x');
  await readBytes(stream, 1);
  // Node ends the readable side before reporting the reset, so the verdict is the error and code.
  const failure = new Promise<Error>((resolve) => stream.once('error', resolve));
  const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  stream.resume();
  echo.connections[0]!.resetAndDestroy();
  t.regex((await failure).message, /NGHTTP2_CONNECT_ERROR/);
  await closed;
  t.is((stream as http2.ClientHttp2Stream).rstCode, http2.constants.NGHTTP2_CONNECT_ERROR);
});

test('after the peer restarts the pool reconnects and new streams work', async (t) => {
  const echo = await startEcho(t);
  const resolveInbound = () => ({ host: '127.0.0.1', port: echo.port });
  const first = await startServer(t, { resolveInbound });
  const relay = new SwitchableRelay();
  await relay.start(t, first.port);
  const peer = { host: '127.0.0.1', port: relay.port };
  const pool = newPool(t);
  t.is((await exchange(await pool.open(peer, SERVICE), 'before')).toString(), 'before');

  const gone = relay.nextClose();
  await first.server.close(1000);
  await gone;
  const second = await startServer(t, { resolveInbound });
  relay.backendPort = second.port;

  t.is((await exchange(await pool.open(peer, SERVICE), 'after')).toString(), 'after');
  t.is(pool.stats().sessionsCreated, 2);
});

test('an abruptly dropped connection is replaced on the next open', async (t) => {
  const { server } = await echoTunnel(t);
  const relay = new SwitchableRelay();
  await relay.start(t, server.address().port);
  const peer = { host: '127.0.0.1', port: relay.port };
  const pool = newPool(t);
  t.is((await exchange(await pool.open(peer, SERVICE), 'one')).toString(), 'one');
  const gone = relay.nextClose();
  relay.dropAll();
  await gone;
  t.is((await exchange(await pool.open(peer, SERVICE), 'two')).toString(), 'two');
  t.is(pool.stats().sessionsCreated, 2);
});

test("the peer's max concurrent streams makes the pool open more sessions", async (t) => {
  const echo = await startEcho(t);
  const { port } = await startServer(t, {
    resolveInbound: () => ({ host: '127.0.0.1', port: echo.port }),
    maxConcurrentStreams: 2,
  });
  const pool = newPool(t);
  const peer = { host: '127.0.0.1', port };
  // Learn the limit first; until the first SETTINGS arrive HTTP/2 allows unlimited streams.
  await exchange(await pool.open(peer, SERVICE), 'warm-up');
  const streams = await Promise.all(Array.from({ length: 5 }, () => pool.open(peer, SERVICE)));
  t.is(pool.stats().streamsActive, 5);
  t.is(pool.stats().sessionsCreated, 3);
  const replies = await Promise.all(streams.map((stream, i) => exchange(stream, `s${i}`)));
  t.deepEqual(replies.map(String), ['s0', 's1', 's2', 's3', 's4']);
});

test('an idle session is closed after the idle timeout and a new one is made on demand', async (t) => {
  const { server } = await echoTunnel(t);
  const relay = new SwitchableRelay();
  await relay.start(t, server.address().port);
  const peer = { host: '127.0.0.1', port: relay.port };
  const pool = newPool(t, { idleTimeoutMs: 50 });
  const gone = relay.nextClose();
  t.is((await exchange(await pool.open(peer, SERVICE), 'one')).toString(), 'one');
  await gone;
  t.is(pool.stats().sessionsActive, 0);
  t.is((await exchange(await pool.open(peer, SERVICE), 'two')).toString(), 'two');
  t.is(pool.stats().sessionsCreated, 2);
});

test('a peer that stops answering pings is dropped and replaced', async (t) => {
  const { server } = await echoTunnel(t);
  const relay = new SwitchableRelay();
  await relay.start(t, server.address().port);
  const peer = { host: '127.0.0.1', port: relay.port };
  const pool = newPool(t, { pingIntervalMs: 20, pingTimeoutMs: 1000 });
  t.is((await exchange(await pool.open(peer, SERVICE), 'one')).toString(), 'one');
  const gone = relay.nextClose();
  relay.freeze();
  await gone;
  t.is(pool.stats().sessionsActive, 0);
  relay.frozen = false;
  t.is((await exchange(await pool.open(peer, SERVICE), 'two')).toString(), 'two');
  t.is(pool.stats().sessionsCreated, 2);
});

test('close() lets a running stream finish, then resolves; the grace bound resets what is left', async (t) => {
  const { server, peer } = await echoTunnel(t);
  const pool = newPool(t);
  const running = await pool.open(peer, SERVICE);
  running.write('a');
  await readBytes(running, 1);
  const closed = server.close(10_000);
  // GOAWAY has not cut the stream: it still echoes and ends cleanly.
  t.is((await exchange(running, 'b')).toString(), 'b');
  await closed;

  const { server: other, peer: otherPeer, echo: otherEcho } = await echoTunnel(t);
  const stuck = (await pool.open(otherPeer, SERVICE)) as http2.ClientHttp2Stream;
  const stuckClosed = new Promise<void>((resolve) => stuck.once('close', () => resolve()));
  const appClosed = new Promise<void>((resolve) => otherEcho.connections[0]!.once('close', () => resolve()));
  stuck.resume();
  await other.close(50);
  await stuckClosed;
  await appClosed;
  // Cut off, not completed: the client can tell the two apart.
  t.true(stuck.aborted);
});

test('pool close() waits for running streams only up to its bound, and refuses new opens', async (t) => {
  const { echo, peer } = await echoTunnel(t);
  const pool = newPool(t);
  const held = (await pool.open(peer, SERVICE)) as http2.ClientHttp2Stream;
  const heldClosed = new Promise<void>((resolve) => held.once('close', () => resolve()));
  const appClosed = new Promise<void>((resolve) => echo.connections[0]!.once('close', () => resolve()));
  held.resume();
  await pool.close(50);
  await heldClosed;
  await appClosed;
  t.true(held.aborted);
  t.is(pool.stats().sessionsActive, 0);
  await t.throwsAsync(pool.open(peer, SERVICE), { instanceOf: TunnelError, message: /pool is closed/ });
});
