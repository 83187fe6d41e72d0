// What a node sees: Sidecar selection and egress hosts, exportTo of services, VirtualServices and
// DestinationRules, outbound traffic policy, and DestinationRule precedence by namespace.
import test from 'ava';
import { MeshTranslator } from './mesh-translator';
import { TypeUrl, endpoint, generateDecoded, model, named, node, port, resource, service } from './testing';
import type { SidecarSpec } from './specs';

// Workloads: host-a runs `frontend` (namespace shop), host-b runs `admin` (namespace shop, label role=admin).
const frontend = service('frontend.shop.svc', { namespace: 'shop', ports: [port(8080)], endpoints: [endpoint('10.0.0.1', { node: 'host-a', labels: { app: 'frontend' } })] });
const admin = service('admin.shop.svc', { namespace: 'shop', ports: [port(8081)], endpoints: [endpoint('10.0.0.2', { node: 'host-b', labels: { app: 'admin', role: 'admin' } })] });
const cart = service('cart.shop.svc', { namespace: 'shop', aliases: ['cart'], ports: [port(9000)] });
const payments = service('payments.pay.svc', { namespace: 'pay', ports: [port(9001)] });
const secret = service('secret.pay.svc', { namespace: 'pay', ports: [port(9002)], exportTo: ['.'] });
const external = service('api.example.com', { namespace: 'shop', resolution: 'DNS', location: 'MESH_EXTERNAL', ports: [port(443, 'TLS', 'tls')] });
const all = [frontend, admin, cart, payments, secret, external];

const outboundHosts = (clusters: Map<string, any>) =>
  [...clusters.keys()].filter((n) => n.startsWith('outbound|')).map((n) => n.split('|')[3]).sort();

function clustersOf(sidecars: { name: string; ns: string; spec: SidecarSpec }[], nodeId: string, extra: ReturnType<typeof resource>[] = []) {
  const resources = [...sidecars.map((s) => resource('Sidecar', s.name, s.spec, s.ns)), ...extra];
  return generateDecoded(new MeshTranslator(), model(all, resources), node(nodeId), TypeUrl.Cluster);
}

test('without a Sidecar a node sees every service exported to its namespace', (t) => {
  t.deepEqual(outboundHosts(clustersOf([], 'host-a')), ['admin.shop.svc', 'api.example.com', 'cart.shop.svc', 'frontend.shop.svc', 'payments.pay.svc']);
});

test('a service exported only to its own namespace is visible there', (t) => {
  const payer = service('payer.pay.svc', { namespace: 'pay', ports: [port(8000)], endpoints: [endpoint('10.0.0.9', { node: 'host-p' })] });
  const clusters = generateDecoded(new MeshTranslator(), model([...all, payer]), node('host-p'), TypeUrl.Cluster);
  t.true(outboundHosts(clusters).includes('secret.pay.svc'));
});

test('Sidecar egress hosts narrow the outbound services: ./host, ns/*, wildcards', (t) => {
  const spec: SidecarSpec = { egress: [{ hosts: ['./cart', 'pay/*', '*/*.example.com'] }] };
  t.deepEqual(outboundHosts(clustersOf([{ name: 'default', ns: 'shop', spec }], 'host-a')), ['api.example.com', 'cart.shop.svc', 'payments.pay.svc']);
});

test('an egress listener with a port only exposes that port of its hosts', (t) => {
  const multi = service('multi.shop.svc', { namespace: 'shop', ports: [port(80), port(81)] });
  const m = model([frontend, multi], [resource<SidecarSpec>('Sidecar', 'default', { egress: [{ port: { number: 81 }, hosts: ['./*'] }] }, 'shop')]);
  const clusters = generateDecoded(new MeshTranslator(), m, node('host-a'), TypeUrl.Cluster);
  t.truthy(clusters.get('outbound|81||multi.shop.svc'));
  t.falsy(clusters.get('outbound|80||multi.shop.svc'));
});

test('a Sidecar with a matching workloadSelector wins over the namespace default', (t) => {
  const sidecars = [
    { name: 'default', ns: 'shop', spec: { egress: [{ hosts: ['./cart'] }] } },
    { name: 'admins', ns: 'shop', spec: { workloadSelector: { labels: { role: 'admin' } }, egress: [{ hosts: ['pay/*'] }] } },
  ];
  t.deepEqual(outboundHosts(clustersOf(sidecars, 'host-a')), ['cart.shop.svc']);
  t.deepEqual(outboundHosts(clustersOf(sidecars, 'host-b')), ['payments.pay.svc']);
});

test('the root namespace Sidecar applies where a namespace has none; `.` means the workload\'s namespace', (t) => {
  const sidecars = [{ name: 'default', ns: 'istio-system', spec: { egress: [{ hosts: ['./*'] }] } }];
  t.deepEqual(outboundHosts(clustersOf(sidecars, 'host-a')), ['admin.shop.svc', 'api.example.com', 'cart.shop.svc', 'frontend.shop.svc']);
});

test('destinations of VirtualServices in scope are added so routes never point at missing clusters', (t) => {
  const vs = resource('VirtualService', 'cart', { hosts: ['cart'], http: [{ route: [{ destination: { host: 'payments.pay.svc' } }] }] }, 'shop');
  const hosts = outboundHosts(clustersOf([{ name: 'default', ns: 'shop', spec: { egress: [{ hosts: ['./cart'] }] } }], 'host-a', [vs]));
  t.deepEqual(hosts, ['cart.shop.svc', 'payments.pay.svc']);
});

test('REGISTRY_ONLY blackholes unknown destinations on virtualOutbound and in HTTP route configurations', (t) => {
  const m = model(all, [resource<SidecarSpec>('Sidecar', 'default', { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }, 'shop')]);
  const translator = new MeshTranslator();
  const listener = generateDecoded(translator, m, node('host-a'), TypeUrl.Listener).get('virtualOutbound');
  t.is(listener.filter_chains[0].name, 'virtualOutbound-blackhole');
  t.is(listener.filter_chains[0].filters[0].typed_config.cluster, 'BlackHoleCluster');
  const routes = generateDecoded(translator, m, node('host-a'), TypeUrl.RouteConfiguration, named('9000')).get('9000');
  const last = routes.virtual_hosts.at(-1);
  t.is(last.name, 'block_all');
  t.is(last.routes[0].direct_response.status, 502);
  // Another namespace without a Sidecar keeps ALLOW_ANY.
  const other = service('o.pay.svc', { namespace: 'pay', ports: [port(9000)], endpoints: [endpoint('10.0.0.5', { node: 'host-o' })] });
  const m2 = model([...all, other], [resource<SidecarSpec>('Sidecar', 'default', { outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }, 'shop')]);
  t.is(generateDecoded(translator, m2, node('host-o'), TypeUrl.Listener).get('virtualOutbound').filter_chains[0].filters[0].typed_config.cluster, 'PassthroughCluster');
});

test('a host running workloads of two namespaces sees the union of both scopes', (t) => {
  const shared = service('batch.pay.svc', { namespace: 'pay', ports: [port(7000)], endpoints: [endpoint('10.0.0.1', { node: 'host-a' })] });
  const m = model([...all, shared], [
    resource<SidecarSpec>('Sidecar', 'default', { egress: [{ hosts: ['./cart'] }], outboundTrafficPolicy: { mode: 'REGISTRY_ONLY' } }, 'shop'),
    resource<SidecarSpec>('Sidecar', 'default', { egress: [{ hosts: ['./payments.pay.svc'] }] }, 'pay'),
  ]);
  const translator = new MeshTranslator();
  t.deepEqual(outboundHosts(generateDecoded(translator, m, node('host-a'), TypeUrl.Cluster)), ['cart.shop.svc', 'payments.pay.svc']);
  // One of the two workloads allows any destination, so the host must too.
  t.is(generateDecoded(translator, m, node('host-a'), TypeUrl.Listener).get('virtualOutbound').filter_chains[0].filters[0].typed_config.cluster, 'PassthroughCluster');
});

test('VirtualService and DestinationRule exportTo decide which namespaces they apply to', (t) => {
  const vs = resource('VirtualService', 'cart', { hosts: ['cart.shop.svc'], exportTo: ['.'], http: [{ route: [{ destination: { host: 'cart.shop.svc' } }], timeout: '3s' }] }, 'shop');
  const dr = resource('DestinationRule', 'cart', { host: 'cart.shop.svc', exportTo: ['.'], trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }, 'shop');
  const outsider = service('o.pay.svc', { namespace: 'pay', ports: [port(1)], endpoints: [endpoint('10.0.0.5', { node: 'host-o' })] });
  const m = model([...all, outsider], [vs, dr]);
  const translator = new MeshTranslator();
  const timeoutFor = (id: string) => generateDecoded(translator, m, node(id), TypeUrl.RouteConfiguration, named('9000')).get('9000').virtual_hosts[0].routes[0].route.timeout;
  t.deepEqual(timeoutFor('host-a'), { seconds: '3' });
  t.deepEqual(timeoutFor('host-o'), { seconds: '0' });
  const lbFor = (id: string) => generateDecoded(translator, m, node(id), TypeUrl.Cluster).get('outbound|9000||cart.shop.svc').lb_policy;
  t.is(lbFor('host-a'), 'RANDOM');
  t.is(lbFor('host-o'), 'LEAST_REQUEST');
});

test('the client\'s own namespace DestinationRule takes precedence over the service namespace\'s', (t) => {
  const mine = resource('DestinationRule', 'cart-from-pay', { host: 'cart.shop.svc', trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } }, 'pay');
  const owner = resource('DestinationRule', 'cart', { host: 'cart.shop.svc', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }, 'shop');
  const payer = service('payer.pay.svc', { namespace: 'pay', ports: [port(8000)], endpoints: [endpoint('10.0.0.9', { node: 'host-p' })] });
  const m = model([...all, payer], [owner, mine]);
  const translator = new MeshTranslator();
  t.is(generateDecoded(translator, m, node('host-p'), TypeUrl.Cluster).get('outbound|9000||cart.shop.svc').lb_policy, 'ROUND_ROBIN');
  t.is(generateDecoded(translator, m, node('host-a'), TypeUrl.Cluster).get('outbound|9000||cart.shop.svc').lb_policy, 'RANDOM');
});
