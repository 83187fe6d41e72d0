// Route-level resilience on the outbound HTTP path over loopback: retries, per-try timeouts, the
// replay limit, fault injection, mirroring, circuit-breaker overflow and outlier ejection.
import * as http2 from 'node:http2';
import test from 'ava';
import { endpoint, port, resource, service } from '../../server/translate/testing';
import { eventually } from '../../test/support/eventually';
import { request, startHarness, startHttpApp, type Harness, type HttpApp } from './testing';

const VIP = { address: '10.0.0.10', port: 8080 };

function web(...apps: HttpApp[]) {
  return service('web', {
    addresses: ['10.0.0.10'],
    ports: [port(8080, 'HTTP', 'http')],
    endpoints: apps.map((app) => endpoint('127.0.0.1', { ports: { http: app.port }, labels: { app: app.name } })),
  });
}

function shadowService(app: HttpApp) {
  return service('shadow', { addresses: ['10.0.0.20'], ports: [port(8080, 'HTTP', 'http')], endpoints: [endpoint('127.0.0.1', { ports: { http: app.port } })] });
}

function virtualService(http: unknown[]) {
  return resource('VirtualService', 'web', { hosts: ['web'], http });
}

const flagCount = (harness: Harness, flag: string) => (harness.outbound.httpStats() as unknown as Record<string, number>)[`response_flags.${flag}`];
const flagsOf = (harness: Harness, path: string) => harness.lines.find((l) => l.msg === 'http request' && l.path === path)?.response_flags;

test('a backend failing every other request, with 3 retries on 5xx, answers every request 200', async (t) => {
  let n = 0;
  const flaky = await startHttpApp(t, 'flaky', (req, res) => {
    req.resume();
    res.writeHead(n++ % 2 === 0 ? 500 : 200);
    res.end('flaky');
  });
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([web(flaky)], [virtualService([{ route: [{ destination: { host: 'web' } }], retries: { attempts: 3, retryOn: '5xx' } }])]);
  const statuses: number[] = [];
  for (let i = 0; i < 40; i++) statuses.push((await request(harness.port, { authority: 'web:8080', path: `/r${i}`, method: 'POST', body: `body ${i}` })).status);
  t.deepEqual([...new Set(statuses)], [200]);
  t.true(flaky.requests() >= 60, `backend saw ${flaky.requests()} requests for 40`);
  t.true(harness.outbound.httpStats().retries >= 20);
});

test('retries exhausted pass the last 5xx through, flagged URX', async (t) => {
  const broken = await startHttpApp(t, 'broken', (req, res) => {
    req.resume();
    res.writeHead(502);
    res.end('down');
  });
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([web(broken)], [virtualService([{ route: [{ destination: { host: 'web' } }], retries: { attempts: 2, retryOn: 'gateway-error' } }])]);
  const reply = await request(harness.port, { authority: 'web:8080', path: '/exhausted' });
  t.is(reply.status, 502);
  t.is(reply.body, 'down');
  t.is(broken.requests(), 3);
  t.is(await eventually('flags of /exhausted', () => flagsOf(harness, '/exhausted')), 'URX');
  t.is(flagCount(harness, 'URX'), 1);
});

test('a per-try timeout of 100 ms against a 1 s backend fails in about 100 ms × attempts, 504 UT,URX', async (t) => {
  const slow = await startHttpApp(t, 'slow', (req, res) => {
    req.resume();
    const timer = setTimeout(() => res.end('late'), 1000);
    res.once('close', () => clearTimeout(timer));
  });
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([web(slow)], [virtualService([{ route: [{ destination: { host: 'web' } }], retries: { attempts: 2, perTryTimeout: '100ms', retryOn: '5xx' } }])]);
  const started = performance.now();
  const reply = await request(harness.port, { authority: 'web:8080', path: '/per-try' });
  const elapsed = performance.now() - started;
  t.log(`per-try timeout 100 ms × 3 attempts (2 retries, back-off ≤ 25+75 ms): failed after ${Math.round(elapsed)} ms`);
  t.is(reply.status, 504);
  t.is(slow.requests(), 3);
  t.true(elapsed >= 300 && elapsed < 900, `${elapsed} ms`);
  t.is(await eventually('flags of /per-try', () => flagsOf(harness, '/per-try')), 'UT,URX');
});

test('a body beyond the replay buffer is sent once and not retried', async (t) => {
  const received: number[] = [];
  const failing = await startHttpApp(t, 'failing', (req, res) => {
    let size = 0;
    req.on('data', (chunk: Buffer) => (size += chunk.length));
    req.once('end', () => {
      received.push(size);
      res.writeHead(503);
      res.end();
    });
  });
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([web(failing)], [virtualService([{ route: [{ destination: { host: 'web' } }], retries: { attempts: 3, retryOn: '5xx' } }])]);
  const small = await request(harness.port, { authority: 'web:8080', path: '/small', method: 'POST', body: Buffer.alloc(10_000, 1) });
  t.is(small.status, 503);
  t.deepEqual(received, [10_000, 10_000, 10_000, 10_000]);
  received.length = 0;
  const big = await request(harness.port, { authority: 'web:8080', path: '/big', method: 'POST', body: Buffer.alloc(2 * 1024 * 1024, 1) });
  t.is(big.status, 503);
  t.deepEqual(received, [2 * 1024 * 1024]);
  t.is(harness.outbound.httpStats().retriesSkippedBodyTooLarge, 1);
});

test('fault injection: an abort answers its status (FI), a delay holds the request (DI), a gRPC abort is a trailers-only status', async (t) => {
  const app = await startHttpApp(t, 'app');
  const harness = await startHarness(t, { destination: VIP });
  harness.apply(
    [web(app)],
    [
      virtualService([
        { match: [{ uri: { prefix: '/abort' } }], fault: { abort: { httpStatus: 418, percentage: { value: 100 } } }, route: [{ destination: { host: 'web' } }] },
        { match: [{ uri: { prefix: '/delay' } }], fault: { delay: { fixedDelay: '200ms', percentage: { value: 100 } } }, route: [{ destination: { host: 'web' } }] },
        { match: [{ uri: { prefix: '/grpc' } }], fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 100 } } }, route: [{ destination: { host: 'web' } }] },
        { route: [{ destination: { host: 'web' } }] },
      ]),
    ],
  );
  const aborted = await request(harness.port, { authority: 'web:8080', path: '/abort' });
  t.is(aborted.status, 418);
  t.is(aborted.body, 'fault filter abort');
  const started = performance.now();
  const delayed = await request(harness.port, { authority: 'web:8080', path: '/delay' });
  t.is(delayed.status, 200);
  t.true(performance.now() - started >= 195);
  t.is(app.requests(), 1);

  const session = http2.connect(`http://127.0.0.1:${harness.port}`);
  t.teardown(() => session.close());
  const grpc = await new Promise<{ headers: http2.IncomingHttpHeaders; ended: boolean }>((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': '/grpc.Svc/Call', ':authority': 'web:8080', 'content-type': 'application/grpc', te: 'trailers' });
    stream.once('response', (headers, flags) => resolve({ headers, ended: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0 }));
    stream.once('error', reject);
    stream.end(Buffer.alloc(5));
  });
  t.is(Number(grpc.headers[':status']), 200);
  t.is(grpc.headers['grpc-status'], '14');
  t.true(grpc.ended);
  t.is(await eventually('flags of /abort', () => flagsOf(harness, '/abort')), 'FI');
  t.is(await eventually('flags of /delay', () => flagsOf(harness, '/delay')), 'DI');
  t.is(app.requests(), 1);
});

test('a mirrored request reaches the shadow with a -shadow host; a shadow that never answers neither delays nor changes the caller\'s response', async (t) => {
  const app = await startHttpApp(t, 'primary');
  const shadowSeen: Array<{ host: string | undefined; body: string }> = [];
  const shadow = await startHttpApp(t, 'shadow', (req) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.once('end', () => shadowSeen.push({ host: req.headers.host, body }));
    // Never answers.
  });
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([web(app), shadowService(shadow)], [virtualService([{ route: [{ destination: { host: 'web' } }], mirror: { host: 'shadow' }, mirrorPercentage: { value: 100 } }])]);
  const started = performance.now();
  const reply = await request(harness.port, { authority: 'web:8080', path: '/mirrored', method: 'POST', body: 'payload' });
  t.true(performance.now() - started < 1000);
  t.is(reply.status, 200);
  t.is((JSON.parse(reply.body) as { app: string }).app, 'primary');
  await eventually('the shadow request', () => shadowSeen.length === 1 || undefined);
  t.deepEqual(shadowSeen[0], { host: 'web-shadow:8080', body: 'payload' });
  t.is(harness.outbound.httpStats().mirrorRequests, 1);
});

test('a pool of 1 connection and 1 pending request answers 503 UO at once to the rest of 20 concurrent callers', async (t) => {
  const slow = await startHttpApp(t, 'slow', (req, res) => {
    req.resume();
    setTimeout(() => res.end('ok'), 300);
  });
  const harness = await startHarness(t, { destination: VIP });
  const pool = resource('DestinationRule', 'web', { host: 'web', trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } } });
  harness.apply([web(slow)], [pool]);
  const started = performance.now();
  const replies = await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const reply = await request(harness.port, { authority: 'web:8080', path: `/c${i}` });
      return { status: reply.status, ms: performance.now() - started };
    }),
  );
  const ok = replies.filter((r) => r.status === 200);
  const overflow = replies.filter((r) => r.status === 503);
  t.log(`20 callers, 1 connection + 1 pending: ${ok.length} × 200, ${overflow.length} × 503 UO`);
  t.true(ok.length >= 2 && ok.length <= 4, `${ok.length} succeeded`);
  t.is(ok.length + overflow.length, 20);
  // Refused at once: every 503 is back before the queued request, which waits for the slow one, is answered.
  const lastOk = Math.max(...ok.map((r) => r.ms));
  t.true(overflow.every((r) => r.ms < lastOk), `503s at ${overflow.map((r) => Math.round(r.ms)).join(',')} ms, last 200 at ${Math.round(lastOk)} ms`);
  t.is(flagCount(harness, 'UO'), overflow.length);
  t.true(slow.connections() <= 2);
});

test('an endpoint answering 5xx is ejected, receives nothing for the ejection time, then returns', async (t) => {
  let failing = true;
  const bad = await startHttpApp(t, 'bad', (req, res) => {
    req.resume();
    res.writeHead(failing ? 500 : 200);
    res.end('bad');
  });
  const good = await startHttpApp(t, 'good');
  const harness = await startHarness(t, { destination: VIP });
  const outlier = resource('DestinationRule', 'web', {
    host: 'web',
    trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 2, interval: '200ms', baseEjectionTime: '1s', maxEjectionPercent: 100 } },
  });
  harness.apply([web(bad, good)], [outlier, virtualService([{ route: [{ destination: { host: 'web' } }], retries: { attempts: 0 } }])]);
  for (let i = 0; i < 6; i++) await request(harness.port, { authority: 'web:8080', path: `/warm${i}` });
  const ejectedAt = performance.now();
  const badBefore = bad.requests();
  failing = false;
  for (let i = 0; i < 20; i++) t.is((await request(harness.port, { authority: 'web:8080', path: `/e${i}` })).status, 200);
  const elapsed = performance.now() - ejectedAt;
  if (elapsed < 800) t.is(bad.requests(), badBefore, 'the ejected endpoint got requests during its ejection');
  await eventually('the endpoint back after its ejection', async () => {
    await request(harness.port, { authority: 'web:8080', path: '/after' });
    return bad.requests() > badBefore || undefined;
  }, { timeoutMs: 5000 });
  t.pass();
});

test('/stats counts requests per response flag', async (t) => {
  const app = await startHttpApp(t, 'app');
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([web(app)], [virtualService([{ match: [{ uri: { prefix: '/only' } }], route: [{ destination: { host: 'web' } }] }])]);
  t.is((await request(harness.port, { authority: 'web:8080', path: '/nr1' })).status, 404);
  t.is((await request(harness.port, { authority: 'web:8080', path: '/nr2' })).status, 404);
  t.is((await request(harness.port, { authority: 'web:8080', path: '/only' })).status, 200);
  await eventually('NR counted twice', () => flagCount(harness, 'NR') === 2 || undefined);
  t.pass();
});

test('gRPC: an UNAVAILABLE trailers-only answer is retried under Istio\'s default policy, INVALID_ARGUMENT is not', async (t) => {
  let calls = 0;
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    calls++;
    stream.resume();
    const wanted = headers[':path'] === '/svc/Flaky' ? (calls % 2 === 1 ? 14 : 0) : 3;
    if (wanted === 0) {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    } else stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(wanted) }, { endStream: true });
  });
  const grpcPort = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const harness = await startHarness(t, { destination: { address: '10.0.0.20', port: 50051 } });
  harness.apply([service('greeter', { addresses: ['10.0.0.20'], ports: [port(50051, 'GRPC', 'grpc')], endpoints: [endpoint('127.0.0.1', { ports: { grpc: grpcPort } })] })]);
  const session = http2.connect(`http://127.0.0.1:${harness.port}`);
  t.teardown(() => session.close());
  const call = (path: string) =>
    new Promise<string>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': path, ':authority': 'greeter:50051', 'content-type': 'application/grpc', te: 'trailers' });
      let status: string | undefined;
      stream.once('response', (headers) => (status = headers['grpc-status'] as string | undefined));
      stream.once('trailers', (trailers) => (status = trailers['grpc-status'] as string));
      stream.resume();
      stream.once('close', () => resolve(status ?? 'none'));
      stream.once('error', reject);
      stream.end(Buffer.from([0, 0, 0, 0, 0]));
    });
  t.is(await call('/svc/Flaky'), '0');
  t.is(calls, 2);
  t.is(await call('/svc/Bad'), '3');
  t.is(calls, 3);
});

test('retries beyond the cluster\'s maxRetries budget (one active retry) are not sent', async (t) => {
  const gates: Array<() => void> = [];
  const failing = await startHttpApp(t, 'failing', (req, res) => {
    req.resume();
    // The first attempts are held until all are in flight, so that their retries compete for the budget.
    gates.push(() => {
      res.writeHead(503);
      res.end();
    });
    if (gates.length === 4) for (const open of gates.splice(0)) open();
    else if (gates.length > 4 || failing.requests() > 4) gates.splice(0).forEach((open) => open());
  });
  const harness = await startHarness(t, { destination: VIP });
  const budget = resource('DestinationRule', 'web', { host: 'web', trafficPolicy: { connectionPool: { http: { maxRetries: 1 } } } });
  harness.apply([web(failing)], [budget, virtualService([{ route: [{ destination: { host: 'web' } }], retries: { attempts: 1, retryOn: '5xx' } }])]);
  const replies = await Promise.all(Array.from({ length: 4 }, (_, i) => request(harness.port, { authority: 'web:8080', path: `/b${i}` })));
  t.deepEqual(replies.map((r) => r.status), [503, 503, 503, 503]);
  // Four first attempts; retries only while the budget of one active retry allows.
  t.true(failing.requests() >= 5 && failing.requests() < 8, `${failing.requests()} upstream requests (8 without the budget)`);
  t.true(harness.outbound.httpStats().retries >= 1);
});

test('the cluster\'s maxRequestsPerConnection closes an upstream connection after that many requests; its idleTimeout closes idle ones', async (t) => {
  let closed = 0;
  const app = await startHttpApp(t, 'app');
  app.server.on('connection', (socket: import('node:net').Socket) => socket.once('close', () => closed++));
  const harness = await startHarness(t, { destination: VIP });
  const pool = resource('DestinationRule', 'web', { host: 'web', trafficPolicy: { connectionPool: { http: { maxRequestsPerConnection: 2, idleTimeout: '300ms' } } } });
  harness.apply([web(app)], [pool]);
  for (let i = 0; i < 5; i++) t.is((await request(harness.port, { authority: 'web:8080', path: `/m${i}` })).status, 200);
  const lastRequest = performance.now();
  t.is(app.requests(), 5);
  t.is(app.connections(), 3, 'two requests per upstream connection');
  // The third connection carried one request: only the idle timeout (300 ms, not the agent's 60 s) closes it.
  await eventually('the idle upstream connection closed by the agent', () => closed === 3 || undefined, { timeoutMs: 5000 });
  t.true(performance.now() - lastRequest >= 250);
});
