// The TCP path honouring a cluster's guard over loopback sockets: max_connections 1 refuses the
// second concurrent connection and counts it as upstream_cx_overflow, and a refused connect to
// one endpoint ejects it so later connections go to the endpoint that answers.
import test, { type ExecutionContext } from 'ava';
import * as net from 'node:net';
import { silentLogger } from '../../lib/log';
import { MeshTranslator } from '../../server/translate/mesh-translator';
import { TypeUrl, endpoint, generateDecoded, model, named, node, port, resource, service } from '../../server/translate/testing';
import { eventually } from '../../test/support/eventually';
import { Outbound } from '../proxy/outbound';
import { OutboundTable } from '../proxy/outbound-table';
import { TunnelPool } from '../tunnel/tunnel-pool';
import type { AgentXdsConfig } from '../xds/agent-xds';

const HOST = 'legacy.default.svc.cluster.local';

async function echoServer(t: ExecutionContext): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return (server.address() as net.AddressInfo).port;
}

function view(servicePort: number, addresses: string[], trafficPolicy: object): AgentXdsConfig {
  const legacy = service(HOST, { ports: [port(servicePort, 'TCP', 'tcp')], endpoints: addresses.map((a) => endpoint(a)) });
  const m = model([legacy], [resource('DestinationRule', 'legacy', { host: HOST, trafficPolicy })]);
  const translator = new MeshTranslator();
  const n = node('client');
  const clusters = generateDecoded(translator, m, n, TypeUrl.Cluster);
  const eds = [...clusters].filter(([, c]) => c.type === 'EDS').map(([name]) => name);
  return {
    listeners: generateDecoded(translator, m, n, TypeUrl.Listener),
    clusters,
    routes: new Map(),
    endpoints: generateDecoded(translator, m, n, TypeUrl.ClusterLoadAssignment, named(...eds)),
    versions: {},
    source: 'server',
  };
}

/** An outbound listener on loopback whose every connection "was going to" 127.0.0.1:servicePort. */
async function outbound(t: ExecutionContext, table: OutboundTable, servicePort: number): Promise<number> {
  const pool = new TunnelPool();
  const proxy = new Outbound({ table: () => table, pool, logger: silentLogger(), originalDestination: () => ({ address: '127.0.0.1', port: servicePort, family: 4 }) });
  const listening = await proxy.listen(0, false);
  t.teardown(() => proxy.drain(0));
  return listening;
}

/** Connects, sends `text`, and resolves with what came back before the connection ended or `text` was echoed. */
function roundTrip(t: ExecutionContext, proxyPort: number, text: string): { socket: net.Socket; reply: Promise<string> } {
  const socket = net.connect({ host: '127.0.0.1', port: proxyPort });
  t.teardown(() => socket.destroy());
  const reply = new Promise<string>((resolve) => {
    let received = '';
    socket.on('data', (chunk) => {
      received += chunk.toString();
      if (received === text) resolve(received);
    });
    socket.on('error', () => undefined);
    socket.once('close', () => resolve(received));
  });
  socket.write(text);
  return { socket, reply };
}

test('maxConnections 1: the second concurrent connection is closed at once and counted as upstream_cx_overflow; the slot frees on close', async (t) => {
  const echoPort = await echoServer(t);
  const table = new OutboundTable(view(echoPort, ['127.0.0.1'], { connectionPool: { tcp: { maxConnections: 1, connectTimeout: '5s' } } }), { node: 'client' });
  const cluster = `outbound|${echoPort}||${HOST}`;
  const guard = table.guard(cluster)!;
  t.is(guard.breaker.thresholds.maxConnections, 1);
  const proxyPort = await outbound(t, table, echoPort);

  const first = roundTrip(t, proxyPort, 'first');
  t.is(await first.reply, 'first', 'the first connection is relayed');
  const second = roundTrip(t, proxyPort, 'second');
  t.is(await second.reply, '', 'the second is closed without reaching the upstream');
  t.is(guard.breaker.stats().upstream_cx_overflow, 1);
  t.is(guard.breaker.stats().cx_open, 1);

  first.socket.end();
  await eventually('the first connection\'s slot to be released', () => guard.breaker.stats().remaining_cx === 1);
  const third = roundTrip(t, proxyPort, 'third');
  t.is(await third.reply, 'third');
  t.is(guard.breaker.stats().upstream_cx_overflow, 1);
});

test('a refused connect counts as a 5xx: after consecutive5xxErrors 1 the endpoint is ejected and connections go to the other one', async (t) => {
  const echoPort = await echoServer(t);
  // 127.0.0.2 is loopback too, but nothing listens there on echoPort: connects are refused.
  const table = new OutboundTable(view(echoPort, ['127.0.0.1', '127.0.0.2'], {
    loadBalancer: { simple: 'ROUND_ROBIN' },
    outlierDetection: { consecutive5xxErrors: 1, interval: '10s', baseEjectionTime: '60s', maxEjectionPercent: 50 },
  }), { node: 'client' });
  const guard = table.guard(`outbound|${echoPort}||${HOST}`)!;
  const proxyPort = await outbound(t, table, echoPort);
  const replies: string[] = [];
  for (let i = 0; i < 6; i++) replies.push(await roundTrip(t, proxyPort, `r${i}`).reply);
  t.is(replies.filter((r) => r === '').length, 1, `only the first connection to 127.0.0.2 fails: ${JSON.stringify(replies)}`);
  t.true(guard.detector!.isEjected(`127.0.0.2:${echoPort}`));
  t.like(guard.stats().outlier_detection, { ejections_active: 1, ejections_enforced_consecutive_5xx: 1 });
});
