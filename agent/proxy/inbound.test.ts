// Which destinations the inbound side serves: this host's addresses at workload ports named by
// virtualInbound or by the agent's own workload list; everything else is refused with 403.
import test from 'ava';
import { MeshTranslator } from '../../server/translate/mesh-translator';
import { TypeUrl, endpoint, generateDecoded, model, node, port, service } from '../../server/translate/testing';
import { silentLogger } from '../../lib/log';
import type { AgentXdsConfig } from '../xds/agent-xds';
import { Inbound, InboundTable } from './inbound';

function view(nodeId: string): AgentXdsConfig {
  const echo = service('echo', { ports: [port(7000, 'TCP', 'tcp')], endpoints: [endpoint('127.0.0.1', { node: 'b' })] });
  const listeners = generateDecoded(new MeshTranslator(), model([echo]), node(nodeId), TypeUrl.Listener);
  return { listeners, clusters: new Map(), routes: new Map(), endpoints: new Map(), versions: {}, source: 'server' };
}

test('virtualInbound chains name the workload ports at their addresses', (t) => {
  const table = new InboundTable(view('b'), []);
  t.true(table.isWorkload('127.0.0.1', 7000));
  t.false(table.isWorkload('127.0.0.1', 7001));
  t.false(table.isWorkload('127.0.0.2', 7000));
  t.false(new InboundTable(view('a'), []).isWorkload('127.0.0.1', 7000));
});

test('ports of the agent\'s configured workloads are served on every local address', (t) => {
  t.true(new InboundTable(undefined, [9000]).isWorkload('127.0.0.1', 9000));
});

test('the tunnel is answered 403 for other hosts\' addresses and for ports no local workload serves', (t) => {
  const inbound = new Inbound({ table: () => new InboundTable(view('b'), []), logger: silentLogger() });
  t.deepEqual(inbound.resolveInbound({ address: '127.0.0.1', port: 7000 }, { headers: {} }), { host: '127.0.0.1', port: 7000 });
  t.deepEqual(inbound.resolveInbound({ address: '127.0.0.1', port: 7001 }, { headers: {} }), { reject: 403, reason: 'no local workload serves 127.0.0.1:7001' });
  t.deepEqual(inbound.resolveInbound({ address: '192.0.2.1', port: 7000 }, { headers: {} }), { reject: 403, reason: '192.0.2.1 is not an address of this host' });
  t.like(inbound.counters, { tunnelAllowed: 1, tunnelRefused: 2, plain: 0, plainRefused: 0 });
});
