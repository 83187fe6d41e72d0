import { PassThrough } from 'node:stream';
import test from 'ava';
import { eventually } from '../../test/support/eventually';
import type { TunnelPool } from '../tunnel/tunnel-pool';
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
