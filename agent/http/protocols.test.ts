// The outbound HTTP path with each protocol it carries: h2c clients, gRPC (unary, bidirectional
// streaming, trailers), WebSocket upgrades, and 8 MB bodies streamed both ways.
import { createHash, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import { endpoint, port, service } from '../../server/translate/testing';
import { request, startHarness, startHttpApp } from './testing';

function webService(appPort: number, node: string | undefined = 'b') {
  return service('web', {
    addresses: ['10.0.0.10'],
    ports: [port(8080, 'HTTP', 'http')],
    endpoints: [endpoint('127.0.0.1', { ports: { http: appPort }, ...(node ? { node } : {}) })],
  });
}

test('an h2c client (prior knowledge) is routed per request to an HTTP/1.1 app', async (t) => {
  const app = await startHttpApp(t, 'v1');
  const harness = await startHarness(t, { destination: { address: '10.0.0.10', port: 8080 } });
  harness.apply([webService(app.port)]);
  const client = http2.connect(`http://127.0.0.1:${harness.port}`);
  t.teardown(() => client.close());
  for (let i = 0; i < 3; i++) {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const stream = client.request({ ':path': `/h2/${i}`, ':authority': 'web:8080' });
      let status = 0;
      let body = '';
      stream.on('response', (headers) => (status = Number(headers[':status'])));
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (body += chunk));
      stream.on('end', () => resolve({ status, body }));
      stream.on('error', reject);
      stream.end();
    });
    t.is(status, 200);
    const seen = JSON.parse(body) as { app: string; url: string; headers: Record<string, string> };
    t.is(seen.app, 'v1');
    t.is(seen.url, `/h2/${i}`);
    t.is(seen.headers.host, 'web:8080');
  }
  t.is(harness.outbound.httpStats().requests, 3);
  t.is(app.connections(), 1);
});

/** A gRPC service with raw-bytes messages: no proto needed to exercise streaming and statuses. */
const raw = (b: Buffer): Buffer => b;
const echoService: grpc.ServiceDefinition = {
  Chat: { path: '/mesh.test.Echo/Chat', requestStream: true, responseStream: true, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
  Hello: { path: '/mesh.test.Echo/Hello', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
  Fail: { path: '/mesh.test.Echo/Fail', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
};
const EchoClient = grpc.makeGenericClientConstructor(echoService, 'Echo');

test('gRPC through the agent: unary calls, a bidirectional stream, and error statuses with their messages', async (t) => {
  t.timeout(60_000);
  const server = new grpc.Server();
  server.addService(echoService, {
    Hello: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const metadata = new grpc.Metadata();
      metadata.set('x-trailer', 'kept');
      callback(null, Buffer.concat([Buffer.from('hello '), call.request]), metadata);
    },
    Fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback({ code: grpc.status.NOT_FOUND, details: 'no such greeting' }),
    Chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (message: Buffer) => call.write(Buffer.concat([Buffer.from('echo '), message])));
      call.on('end', () => call.end());
    },
  });
  const grpcPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  t.teardown(() => server.forceShutdown());
  const harness = await startHarness(t, { destination: { address: '10.0.0.20', port: 50051 } });
  harness.apply([
    service('greeter', { addresses: ['10.0.0.20'], ports: [port(50051, 'GRPC', 'grpc')], endpoints: [endpoint('127.0.0.1', { ports: { grpc: grpcPort }, node: 'b' })] }),
  ]);
  const client = new EchoClient(`127.0.0.1:${harness.port}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'greeter:50051' });
  t.teardown(() => client.close());

  const trailers = new Promise<grpc.Metadata>((resolve) => {
    const call = client.makeUnaryRequest('/mesh.test.Echo/Hello', raw, raw, Buffer.from('mesh'), (error: grpc.ServiceError | null, reply?: Buffer) => {
      t.is(error, null);
      t.is(reply?.toString(), 'hello mesh');
    });
    call.on('status', (status: grpc.StatusObject) => resolve(status.metadata));
  });
  t.deepEqual((await trailers).get('x-trailer'), ['kept']);

  const failure = await new Promise<grpc.ServiceError>((resolve) =>
    client.makeUnaryRequest('/mesh.test.Echo/Fail', raw, raw, Buffer.from('x'), (error: grpc.ServiceError | null) => resolve(error!)),
  );
  t.is(failure.code, grpc.status.NOT_FOUND, failure.details);
  t.is(failure.details, 'no such greeting');

  const chat = client.makeBidiStreamRequest('/mesh.test.Echo/Chat', raw, raw);
  const replies: string[] = [];
  const ended = new Promise<void>((resolve, reject) => {
    chat.on('data', (message: Buffer) => {
      replies.push(message.toString());
      // Each reply triggers the next message: the stream is really interactive, not batched.
      if (replies.length < 5) chat.write(Buffer.from(`m${replies.length}`));
      else chat.end();
    });
    chat.on('end', () => resolve());
    chat.on('error', reject);
  });
  chat.write(Buffer.from('m0'));
  await ended;
  t.deepEqual(replies, ['echo m0', 'echo m1', 'echo m2', 'echo m3', 'echo m4']);
});

test('a WebSocket upgrade is routed like a request, then both directions are relayed as bytes', async (t) => {
  const app = await startHttpApp(t, 'ws');
  app.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const key = String(req.headers['sec-websocket-key']);
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\nx-path: ${req.url}\r\n\r\n`);
    if (head.length > 0) socket.write(head);
    socket.pipe(socket);
  });
  const harness = await startHarness(t, { destination: { address: '10.0.0.10', port: 8080 } });
  harness.apply([webService(app.port)]);
  const key = randomBytes(16).toString('base64');
  const { res, socket } = await new Promise<{ res: http.IncomingMessage; socket: net.Socket }>((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port: harness.port,
      path: '/chat',
      headers: { host: 'web:8080', connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13' },
    });
    req.on('upgrade', (response: http.IncomingMessage, upgraded: net.Socket) => resolve({ res: response, socket: upgraded }));
    req.on('response', (response) => reject(new Error(`no upgrade: ${response.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
  t.teardown(() => socket.destroy());
  t.is(res.statusCode, 101);
  t.is(res.headers.upgrade, 'websocket');
  t.is(res.headers['sec-websocket-accept'], createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64'));
  t.is(res.headers['x-path'], '/chat');
  const frames = [Buffer.from([0x81, 0x02, 0x68, 0x69]), randomBytes(64 * 1024)];
  for (const frame of frames) {
    const echoed = new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      let length = 0;
      const onData = (chunk: Buffer): void => {
        chunks.push(chunk);
        length += chunk.length;
        if (length >= frame.length) {
          socket.off('data', onData);
          resolve(Buffer.concat(chunks));
        }
      };
      socket.on('data', onData);
    });
    socket.write(frame);
    t.true((await echoed).equals(frame));
  }
  t.is(harness.outbound.httpStats().upgrades, 1);
});

test('8 MB bodies stream both ways, chunked upload and download, without being buffered whole', async (t) => {
  t.timeout(120_000);
  const size = 8 * 1024 * 1024;
  const payload = randomBytes(size);
  const digest = createHash('sha256').update(payload).digest('hex');
  const app = await startHttpApp(t, 'bulk', (req, res) => {
    if (req.method === 'POST') {
      const hash = createHash('sha256');
      let length = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        length += chunk.length;
      });
      req.on('end', () => res.end(JSON.stringify({ length, digest: hash.digest('hex'), chunked: req.headers['transfer-encoding'] === 'chunked' })));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    // Written in 64 KB slices honouring backpressure, so the app itself never queues 8 MB.
    let offset = 0;
    const pump = (): void => {
      while (offset < size) {
        const slice = payload.subarray(offset, offset + 65536);
        offset += slice.length;
        if (!res.write(slice)) return void res.once('drain', pump);
      }
      res.end();
    };
    pump();
  });
  const harness = await startHarness(t, { destination: { address: '10.0.0.10', port: 8080 } });
  harness.apply([webService(app.port)]);

  const uploaded = await new Promise<{ length: number; digest: string; chunked: boolean }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: harness.port, method: 'POST', path: '/upload', headers: { host: 'web:8080' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(JSON.parse(body) as { length: number; digest: string; chunked: boolean }));
    });
    req.on('error', reject);
    let offset = 0;
    const pump = (): void => {
      while (offset < size) {
        const slice = payload.subarray(offset, offset + 65536);
        offset += slice.length;
        if (!req.write(slice)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  t.deepEqual(uploaded, { length: size, digest, chunked: true });

  const downloaded = await new Promise<{ length: number; digest: string }>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: harness.port, path: '/download', headers: { host: 'web:8080' } }, (res) => {
        const hash = createHash('sha256');
        let length = 0;
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          length += chunk.length;
        });
        res.on('end', () => resolve({ length, digest: hash.digest('hex') }));
      })
      .on('error', reject);
  });
  t.deepEqual(downloaded, { length: size, digest });
  const simple = await request(harness.port, { authority: 'web:8080', method: 'POST', path: '/small', body: 'x' });
  t.is(simple.status, 200, simple.body);
  t.like(JSON.parse(simple.body), { length: 1 });
});
