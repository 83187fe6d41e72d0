import * as net from 'node:net';
import test from 'ava';
import { HttpConnectionServer } from './http-connection';

/** A listener that hands every accepted connection to `server`, as the agent's listeners do. */
async function feed(server: HttpConnectionServer<string>): Promise<{ port: number; close(): void }> {
  const listener = net.createServer({ pauseOnConnect: true }, (socket) => server.serve(socket, 'http1', 'context'));
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  return { port: (listener.address() as net.AddressInfo).port, close: () => listener.close() };
}

/** Sends one GET on `socket` and resolves with the raw response head and body once the body is in. */
function get(socket: net.Socket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = '';
    const onData = (chunk: Buffer): void => {
      received += chunk.toString('latin1');
      if (received.endsWith('ok')) {
        socket.off('data', onData);
        resolve(received);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(`GET ${path} HTTP/1.1\r\nhost: app\r\n\r\n`);
  });
}

test('a kept-alive connection stays open while requests keep it busy and closes once idle for idleTimeoutMs; responses carry no Keep-Alive header', async (t) => {
  const idleTimeoutMs = 400;
  const server = new HttpConnectionServer<string>(
    {
      request: (_req, res) => {
        res.writeHead(200, { 'content-length': 2 });
        res.end('ok');
      },
      upgrade: (_req, socket) => socket.destroy(),
    },
    { idleTimeoutMs },
  );
  const listener = await feed(server);
  const socket = net.connect(listener.port, '127.0.0.1');
  t.teardown(() => {
    socket.destroy();
    listener.close();
    server.close();
  });
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  let closedAt = 0;
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      closedAt = performance.now();
      resolve();
    }),
  );
  // Requests spaced at a bit over half the idle timeout span more than one timeout in all.
  let lastResponseAt = 0;
  for (let i = 0; i < 4; i++) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, idleTimeoutMs * 0.6));
    t.false(socket.destroyed, `the connection was closed before request ${i} although requests kept arriving`);
    const response = await get(socket, `/${i}`);
    lastResponseAt = performance.now();
    t.regex(response, /^HTTP\/1\.1 200 OK\r\n/);
    t.notRegex(response.toLowerCase(), /\r\nkeep-alive:/);
  }
  await closed;
  const idleFor = closedAt - lastResponseAt;
  t.true(idleFor >= idleTimeoutMs * 0.9 && idleFor < idleTimeoutMs * 5, `closed after ${idleFor.toFixed(0)} ms idle`);
});
