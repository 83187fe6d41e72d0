// What goes wrong on the HTTP path and what the client sees: malformed and slow clients are cut off
// without disturbing others; upstream failures become Envoy's 503/504 local replies with their flags.
import * as http from 'node:http';
import * as net from 'node:net';
import test from 'ava';
import { endpoint, port, resource, service } from '../../server/translate/testing';
import { eventually } from '../../test/support/eventually';
import { closedPort } from '../tunnel/tunnel-test-support';
import { request, startHarness, startHttpApp } from './testing';

const VIP = { address: '10.0.0.10', port: 8080 };

function webService(appPort: number, node: string | undefined = 'b') {
  return service('web', {
    addresses: ['10.0.0.10'],
    ports: [port(8080, 'HTTP', 'http')],
    endpoints: [endpoint('127.0.0.1', { ports: { http: appPort }, ...(node ? { node } : {}) })],
  });
}

function rawExchange(portNumber: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(portNumber, '127.0.0.1', () => socket.write(bytes));
    let data = '';
    socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(data));
  });
}

test('garbage bytes and a slowloris client are answered 400/408 and closed while a concurrent client is served', async (t) => {
  const app = await startHttpApp(t, 'v1');
  const harness = await startHarness(t, { destination: VIP, http: { headersTimeoutMs: 1000 } });
  harness.apply([webService(app.port)]);

  // A declared HTTP port is parsed as HTTP whatever arrives.
  t.regex(await rawExchange(harness.port, 'GET / HTTP/1.1\r\nHost web\r\n\r\n'), /^HTTP\/1\.1 400 /);
  t.regex(await rawExchange(harness.port, '\x00\x01\x02 garbage \xff\r\n\r\n'), /^HTTP\/1\.1 400 /);

  const slow = net.connect(harness.port, '127.0.0.1');
  t.teardown(() => slow.destroy());
  let slowData = '';
  slow.on('data', (chunk: Buffer) => (slowData += chunk.toString()));
  const slowClosed = new Promise<number>((resolve) => slow.once('close', () => resolve(Date.now())));
  const started = Date.now();
  slow.write('GET / HTTP/1.1\r\nHost: web:8080\r\n');
  // Trickles a header line every 200 ms: never idle, never finished.
  const trickle = setInterval(() => slow.writable && slow.write('x-slow: 1\r\n'), 200);
  t.teardown(() => clearInterval(trickle));

  const good = await request(harness.port, { authority: 'web:8080', path: '/while-slow' });
  t.is(good.status, 200);
  const closedAt = await slowClosed;
  clearInterval(trickle);
  t.regex(slowData, /^HTTP\/1\.1 408 /);
  t.true(closedAt - started >= 900, `closed after ${closedAt - started} ms`);
  t.is((await request(harness.port, { authority: 'web:8080', path: '/after' })).status, 200);
});

test('an upstream that dies mid-response leaves the client with an incomplete response, flagged UC', async (t) => {
  const app = await startHttpApp(t, 'dying', (req, res) => {
    res.writeHead(200, { 'content-length': '100000' });
    res.write(Buffer.alloc(1000, 97), () => setImmediate(() => req.socket.destroy()));
  });
  const harness = await startHarness(t, { destination: VIP });
  harness.apply([webService(app.port)]);
  const outcome = await new Promise<{ status: number; received: number; complete: boolean }>((resolve) => {
    http
      .get({ host: '127.0.0.1', port: harness.port, path: '/dies', headers: { host: 'web:8080' } }, (res) => {
        let received = 0;
        res.on('data', (chunk: Buffer) => (received += chunk.length));
        res.on('error', () => undefined);
        res.once('close', () => resolve({ status: res.statusCode ?? 0, received, complete: res.complete }));
      })
      .on('error', () => undefined);
  });
  t.is(outcome.status, 200);
  t.false(outcome.complete);
  t.true(outcome.received < 100000);
  const line = await eventually('the access log line of /dies', () => harness.lines.find((l) => l.msg === 'http request' && l.path === '/dies'));
  t.like(line, { response_code: 200, response_flags: 'UC' });
  // The agent itself is fine: the next request is served.
  const app2 = await startHttpApp(t, 'v1');
  harness.apply([webService(app2.port)]);
  t.is((await request(harness.port, { authority: 'web:8080', path: '/next' })).status, 200);
});

test('a route timeout is a 504 "upstream request timeout" (UT); a refused upstream a 503 connection failure (UF) after Istio\'s default retries (URX)', async (t) => {
  const stuck = await startHttpApp(t, 'stuck', () => undefined);
  const harness = await startHarness(t, { destination: VIP });
  const timeout = resource('VirtualService', 'web', { hosts: ['web'], http: [{ timeout: '0.5s', route: [{ destination: { host: 'web' } }] }] });
  harness.apply([webService(stuck.port)], [timeout]);
  const started = Date.now();
  const timedOut = await request(harness.port, { authority: 'web:8080', path: '/slow' });
  t.is(timedOut.status, 504);
  t.is(timedOut.body, 'upstream request timeout');
  t.true(Date.now() - started >= 450);

  const refused = await closedPort();
  harness.apply([webService(refused, undefined)]);
  const failed = await request(harness.port, { authority: 'web:8080', path: '/refused' });
  t.is(failed.status, 503);
  t.is(failed.body, 'upstream connect error or disconnect/reset before headers. reset reason: connection failure');
  const flags = (path: string) => harness.lines.find((l) => l.msg === 'http request' && l.path === path)?.response_flags;
  t.is(flags('/slow'), 'UT');
  // Istio's default retry policy retries connect failures twice; the last failure stands, with URX.
  t.is(flags('/refused'), 'UF,URX');
});
