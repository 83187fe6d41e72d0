import * as http from 'node:http';
import type * as net from 'node:net';
import { Readable } from 'node:stream';
import test from 'ava';
import { forwardResponse } from './forward-response';
import type { UpstreamResponse } from './upstream-attempt';

const CHUNK = Buffer.alloc(64 * 1024, 'x');
const TOTAL_CHUNKS = 512; // 32 MiB

/** An upstream body made on demand, counting what it produced: a proxy that ignores backpressure reads it all at once. */
function lazyBody(): { body: Readable; produced: () => number } {
  let made = 0;
  const body = new Readable({
    read() {
      if (made === TOTAL_CHUNKS) this.push(null);
      else {
        made++;
        this.push(CHUNK);
      }
    },
  });
  return { body, produced: () => made * CHUNK.length };
}

function upstream(body: Readable): UpstreamResponse {
  return {
    status: 200,
    headers: { 'content-length': String(TOTAL_CHUNKS * CHUNK.length) },
    body,
    endedWithHeaders: false,
    trailers: () => undefined,
    timedOut: () => false,
    abort: () => body.destroy(),
  };
}

test('a client that stops reading holds the upstream body back (backpressure), and the whole body arrives once it reads again', async (t) => {
  const source = lazyBody();
  const server = http.createServer((_req, res) => forwardResponse(res, upstream(source.body), { 'content-length': String(TOTAL_CHUNKS * CHUNK.length) }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as net.AddressInfo).port;
  const response = await new Promise<http.IncomingMessage>((resolve, reject) => http.get({ port, host: '127.0.0.1', path: '/' }, resolve).once('error', reject));
  response.pause();
  // Give the proxy ample time to read what it may; socket buffers hold a few MiB at most.
  const deadline = performance.now() + 5000;
  let last = -1;
  while (performance.now() < deadline && source.produced() !== last) {
    last = source.produced();
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.true(source.produced() < TOTAL_CHUNKS * CHUNK.length / 2, `${source.produced()} bytes read from upstream while the client read nothing`);
  let received = 0;
  response.on('data', (chunk: Buffer) => (received += chunk.length));
  response.resume();
  await new Promise((resolve) => response.once('end', resolve));
  t.is(received, TOTAL_CHUNKS * CHUNK.length);
});
