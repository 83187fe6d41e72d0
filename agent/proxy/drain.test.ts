// Draining the outbound listener: it stops accepting at once and gives open connections the grace
// period, not more, however long their clients would keep them.
import test from 'ava';
import * as net from 'node:net';
import { silentLogger } from '../../lib/log';
import { eventually } from '../../test/support/eventually';
import { TunnelPool } from '../tunnel/tunnel-pool';
import { Outbound } from './outbound';
import { OutboundTable } from './outbound-table';

test('drain(graceMs) resolves after the grace period while a connection is still open, and resets that connection', async (t) => {
  // An upstream that never closes: the client below would hold its connection forever.
  const held = new Set<net.Socket>();
  const upstream = net.createServer((socket) => {
    held.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of held) socket.destroy();
    upstream.close();
  });
  const upstreamPort = (upstream.address() as net.AddressInfo).port;
  // No config beyond "pass everything through": the connection goes straight to the upstream.
  const table = new OutboundTable(
    {
      listeners: new Map([['virtualOutbound', { name: 'virtualOutbound', filter_chains: [{ filters: [{ name: 'tcp', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', cluster: 'PassthroughCluster' } }] }] }]]),
      clusters: new Map([['PassthroughCluster', { name: 'PassthroughCluster', type: 'ORIGINAL_DST' }]]),
      routes: new Map(),
      endpoints: new Map(),
      versions: {},
      source: 'server',
    },
    { node: 'client' },
  );
  const outbound = new Outbound({ table: () => table, pool: new TunnelPool(), logger: silentLogger(), originalDestination: () => ({ address: '127.0.0.1', port: upstreamPort }) });
  const port = await outbound.listen(0, false);

  const client = net.connect({ host: '127.0.0.1', port });
  client.on('error', () => undefined);
  t.teardown(() => client.destroy());
  const clientClosed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  await eventually('the connection reaching the upstream', () => held.size === 1);

  const started = Date.now();
  await outbound.drain(300);
  const took = Date.now() - started;
  t.true(took >= 250 && took < 5000, `drain took ${took} ms for a 300 ms grace period`);
  await clientClosed;
  t.true(client.destroyed);
  const refused = net.connect({ host: '127.0.0.1', port });
  const error = await new Promise<NodeJS.ErrnoException>((resolve) => refused.once('error', resolve));
  t.is(error.code, 'ECONNREFUSED', 'the listener no longer accepts');
});
