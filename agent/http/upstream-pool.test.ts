import * as http from 'node:http';
import type * as net from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import test from 'ava';
import { CircuitBreaker } from '../resilience/circuit-breaker';
import { eventually } from '../../test/support/eventually';
import type { TunnelPool } from '../tunnel/tunnel-pool';
import { attemptUpstream } from './upstream-attempt';
import { UpstreamConnectError, UpstreamPool } from './upstream-pool';

test('a tunnel stream slower than the cluster\'s connect timeout fails the connect, and is closed when it opens after all', async (t) => {
  const late = new PassThrough();
  let open: (stream: PassThrough) => void = () => undefined;
  // Stands in for a peer agent that answers CONNECT only when the test says so.
  const tunnels = { open: () => new Promise<PassThrough>((resolve) => (open = resolve)) } as unknown as TunnelPool;
  const pool = new UpstreamPool({ tunnels });
  const started = performance.now();
  await t.throwsAsync(pool.connect({ kind: 'tunnel', peer: { host: '127.0.0.1', port: 15008 }, address: '127.0.0.1', port: 9080 }, 100), {
    instanceOf: UpstreamConnectError,
    message: /127\.0\.0\.1:9080 through the tunnel timed out after 100 ms/,
  });
  t.true(performance.now() - started >= 95);
  open(late);
  await eventually('the late stream closed', () => late.destroyed || undefined);
  t.is(pool.stats().http1Connections, 0);
});

test('a new HTTP/1.1 connection finding no room under max_connections (none idle to close) waits up to the connect timeout, then overflows rather than failing the endpoint', async (t) => {
  const app = http.createServer((req, res) => res.end('ok'));
  const appPort = await new Promise<number>((resolve) => app.listen(0, '127.0.0.1', () => resolve((app.address() as net.AddressInfo).port)));
  t.teardown(() => app.close());
  const pool = new UpstreamPool({ tunnels: {} as TunnelPool });
  t.teardown(() => pool.close());
  const breaker = new CircuitBreaker({ maxConnections: 1, maxPendingRequests: 1, maxRequests: 10, maxRetries: 1 });
  // Another user of the cluster (a TCP proxy connection) holds its only connection slot.
  t.true(breaker.tryAcquireConnection());
  const send = () =>
    attemptUpstream(pool, { target: { kind: 'tcp', address: '127.0.0.1', port: appPort }, http2: false, method: 'GET', path: '/', authority: 'app', headers: {}, body: Readable.from([]), timeoutMs: undefined, settings: { breaker, connectTimeoutMs: 100 } });
  const started = performance.now();
  const refused = await send();
  t.is(refused.kind, 'overflow');
  t.true(performance.now() - started >= 95);
  t.is(pool.stats().http1Connections, 0);
  // With the slot given back, the connection opens.
  breaker.releaseConnection();
  const served = await send();
  t.is(served.kind, 'response');
  t.is(breaker.stats().remaining_cx, 0, 'the kept-alive connection holds the slot');
});
