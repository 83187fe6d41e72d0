// Outbound decisions over what the real translator sends an agent: meshed endpoints are tunnelled,
// others reached directly, unknown destinations passed through or blackholed by policy.
import test from 'ava';
import { MeshTranslator } from '../../server/translate/mesh-translator';
import { TypeUrl, endpoint, generateDecoded, model, named, node, port, resource, service } from '../../server/translate/testing';
import type { Service } from '../../server/registry/service';
import type { ConfigResource } from '../../server/config/resource';
import type { AgentXdsConfig } from '../xds/agent-xds';
import { seededRandom } from '../balancing/testing';
import { OutboundTable } from './outbound-table';

function view(services: readonly Service[], resources: readonly ConfigResource[] = [], nodeId = 'a'): AgentXdsConfig {
  const m = model(services, resources);
  const translator = new MeshTranslator();
  const n = node(nodeId);
  const listeners = generateDecoded(translator, m, n, TypeUrl.Listener);
  const clusters = generateDecoded(translator, m, n, TypeUrl.Cluster);
  const eds = [...clusters].filter(([, c]) => c.type === 'EDS').map(([name]) => name);
  const routeNames = services.flatMap((s) => s.ports.filter((p) => p.protocol === 'HTTP').map((p) => String(p.number)));
  return {
    listeners,
    clusters,
    routes: generateDecoded(translator, m, n, TypeUrl.RouteConfiguration, named(...routeNames)),
    endpoints: generateDecoded(translator, m, n, TypeUrl.ClusterLoadAssignment, named(...eds)),
    versions: {},
    source: 'server',
  };
}

const pick = { random: seededRandom(7) };
const meshed = service('echo', { ports: [port(7000, 'TCP', 'tcp')], endpoints: [endpoint('10.1.0.2', { node: 'b' })] });
const plain = service('legacy', { ports: [port(7001, 'TCP', 'tcp')], endpoints: [endpoint('10.1.0.3')] });
const web = service('web', { ports: [port(8080, 'HTTP', 'http')], endpoints: [endpoint('10.1.0.4', { node: 'c' })] });

test('a meshed endpoint (mesh.node set) is reached through its node agent\'s tunnel port', (t) => {
  const table = new OutboundTable(view([meshed, plain]), { node: 'a' });
  const decision = table.decide({ address: '10.1.0.2', port: 7000 }, pick);
  t.like(decision, { action: 'tunnel', cluster: 'outbound|7000||echo', chain: 'echo:7000/tcp', node: 'b', peer: { host: '10.1.0.2', port: 15008 } });
  if (decision.action === 'tunnel') t.is(decision.endpoint.key, '10.1.0.2:7000');
});

test('an endpoint without a node is connected to directly', (t) => {
  const table = new OutboundTable(view([meshed, plain]), { node: 'a' });
  t.like(table.decide({ address: '10.1.0.3', port: 7001 }, pick), { action: 'direct', cluster: 'outbound|7001||legacy' });
});

test('a destination no service claims passes through under ALLOW_ANY, on a service port or not', (t) => {
  const table = new OutboundTable(view([meshed]), { node: 'a' });
  t.like(table.decide({ address: '10.9.9.9', port: 7000 }, pick), { action: 'passthrough', cluster: 'PassthroughCluster', chain: '0.0.0.0_7000/passthrough' });
  t.like(table.decide({ address: '10.9.9.9', port: 9999 }, pick), { action: 'passthrough', cluster: 'PassthroughCluster', chain: 'virtualOutbound-catchall-tcp' });
});

test('REGISTRY_ONLY blackholes destinations outside the registry', (t) => {
  const sidecar = resource('Sidecar', 'default', { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }, 'istio-system');
  const table = new OutboundTable(view([meshed], [sidecar]), { node: 'a' });
  t.like(table.decide({ address: '10.9.9.9', port: 9999 }, pick), { action: 'blackhole', cluster: 'BlackHoleCluster' });
  t.like(table.decide({ address: '10.1.0.2', port: 7000 }, pick), { action: 'tunnel' });
});

test('an HTTP port hands the connection to the HTTP path with its route configuration, without sniffing', (t) => {
  const table = new OutboundTable(view([web]), { node: 'a' });
  t.is(table.inspection({ address: '10.1.0.4', port: 8080 }), 'http');
  t.like(table.decide({ address: '10.1.0.4', port: 8080 }, pick), { action: 'http', routeConfig: '8080', chain: '0.0.0.0_8080/http' });
  t.truthy(table.httpRoutes.table('8080'));
});

test('a cluster without endpoints fails the connection with a reason', (t) => {
  // Not merely unhealthy ones: under Envoy's default 50% panic threshold those still take traffic.
  const down = service('down', { addresses: ['10.1.0.5'], ports: [port(7002, 'TCP', 'tcp')], endpoints: [] });
  const table = new OutboundTable(view([down]), { node: 'a' });
  t.like(table.decide({ address: '10.1.0.5', port: 7002 }, pick), { action: 'fail', cluster: 'outbound|7002||down', reason: 'cluster outbound|7002||down has no healthy endpoint' });
});

test('without any config from the server, unknown destinations are refused rather than let through', (t) => {
  const empty: AgentXdsConfig = { listeners: new Map(), clusters: new Map(), routes: new Map(), endpoints: new Map(), versions: {}, source: 'server' };
  t.like(new OutboundTable(empty, { node: 'a' }).decide({ address: '10.9.9.9', port: 80 }, pick), { action: 'fail', reason: 'unknown cluster BlackHoleCluster' });
});

test('on an HTTP port, a destination no service has an endpoint at is still routed per request by the "*" host', (t) => {
  const table = new OutboundTable(view([web]), { node: 'a' });
  t.like(table.decide({ address: '10.9.9.9', port: 8080 }, pick), { action: 'http', routeConfig: '8080' });
  const decision = table.httpRoutes.table('8080')!.match({ authority: '10.9.9.9:8080', method: 'GET', path: '/', headers: new Map(), scheme: 'http' });
  t.like(decision?.action, { kind: 'cluster', cluster: 'PassthroughCluster' });
});
