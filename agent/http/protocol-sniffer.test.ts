// Protocol detection: the first bytes' verdict, and on an unnamed (sniffed) port HTTP routed per
// request while other bytes, and server-first protocols after the detection timeout, go as TCP.
import * as net from 'node:net';
import test from 'ava';
import { endpoint, port, service } from '../../server/translate/testing';
import { classify } from './protocol-sniffer';
import { request, startHarness, startHttpApp } from './testing';

test('request lines and the HTTP/2 preface are recognised; anything else is not HTTP', (t) => {
  t.is(classify(Buffer.from('GET /index.html HTTP/1.1\r\nHost: a\r\n')), 'http/1.1');
  t.is(classify(Buffer.from('POST /x HTTP/1.0\r\n')), 'http/1.0');
  t.is(classify(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')), 'h2c');
  for (const other of ['\x16\x03\x01\x02\x00', 'SSH-2.0-OpenSSH\r\n', 'GET / HTTP/2.0\r\n', 'hello world\n', '*1\r\n$4\r\nPING\r\n', 'GET  / HTTP/1.1\r\n']) {
    t.is(typeof classify(Buffer.from(other)), 'number', JSON.stringify(other));
    t.not(classify(Buffer.from(other)), classify(Buffer.from('GE')), `${JSON.stringify(other)} is decided, not pending`);
  }
  // Still a possible request: wait for more rather than guess.
  t.is(classify(Buffer.from('GE')), classify(Buffer.from('GET /a')));
  t.is(classify(Buffer.from('PRI * HTTP/2')), classify(Buffer.from('GET / HTTP/1.')));
});

/** A server-first TCP app: greets on connect, then echoes. */
async function startGreetingEcho(t: import('ava').ExecutionContext): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.write('220 ready\r\n');
    socket.pipe(socket);
  });
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return port;
}

function readUntil(socket: net.Socket, text: string): Promise<{ data: string; at: number }> {
  return new Promise((resolve, reject) => {
    let data = '';
    const onData = (chunk: Buffer): void => {
      data += chunk.toString();
      if (data.includes(text)) {
        socket.off('data', onData);
        resolve({ data, at: Date.now() });
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

test('on an unnamed port HTTP is routed per request, other bytes and server-first protocols go as TCP', async (t) => {
  const app = await startHttpApp(t, 'web');
  const echoPort = await startGreetingEcho(t);
  const harness = await startHarness(t, { destination: { address: '10.0.0.30', port: 9000 }, protocolDetectionTimeoutMs: 300 });
  harness.apply([
    service('sniffed-web', { addresses: ['10.0.0.30'], ports: [port(9000, 'UNSPECIFIED', 'web')], endpoints: [endpoint('127.0.0.1', { ports: { web: app.port }, node: 'b' })] }),
    service('sniffed-tcp', { addresses: ['10.0.0.31'], ports: [port(9000, 'UNSPECIFIED', 'db')], endpoints: [endpoint('127.0.0.1', { ports: { db: echoPort }, node: 'b' })] }),
  ]);

  const reply = await request(harness.port, { authority: 'sniffed-web:9000', path: '/sniffed' });
  t.is(reply.status, 200);
  t.like(JSON.parse(reply.body), { app: 'web', url: '/sniffed' });
  t.true(harness.lines.some((l) => l.msg === 'http request' && l.path === '/sniffed' && l.upstream_cluster === 'outbound|9000||sniffed-web'));

  harness.destination = { address: '10.0.0.31', port: 9000 };
  // The client speaks first with non-HTTP bytes: decided at once, relayed as TCP.
  const talker = net.connect(harness.port, '127.0.0.1');
  t.teardown(() => talker.destroy());
  const greetedTalker = readUntil(talker, 'ping');
  talker.write('ping\r\n');
  t.true((await greetedTalker).data.includes('220 ready'));

  // The client waits for the server's greeting: after the detection timeout the connection goes as TCP.
  const start = Date.now();
  const listener = net.connect(harness.port, '127.0.0.1');
  t.teardown(() => listener.destroy());
  const greeting = await readUntil(listener, '220 ready');
  t.true(greeting.at - start >= 250, `greeting after ${greeting.at - start} ms`);
  const echoed = readUntil(listener, 'after greeting');
  listener.write('after greeting');
  await echoed;
  t.is(harness.outbound.stats().http, 1);
  t.is(harness.outbound.stats().tunnel, 2);
});
