// Tests of the cross-resource analysis: duplicates, undefined subsets and gateways, host
// conflicts (IST0109, ServiceEntry, DestinationRule) and unknown hosts, over hand-built resources.
import test from 'ava';
import type { Service } from '../registry/service';
import { analyzeResources, hostMatches, HostIndex } from './analyze';
import type { ConfigIssue } from '../../lib/config/issue';
import type { ConfigResource } from './resource';

interface Where {
  namespace?: string;
  file?: string;
  document?: number;
}

function resource(kind: string, name: string, spec: unknown, where: Where = {}): ConfigResource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind,
    metadata: { name, namespace: where.namespace ?? 'default', labels: {}, annotations: {} },
    spec,
    origin: { file: where.file ?? `/etc/mesh/${name}.yaml`, document: where.document ?? 1 },
  };
}

function consul(name: string): Service {
  return {
    hostname: `${name}.service.consul`,
    namespace: 'default',
    aliases: [name],
    addresses: [],
    ports: [{ name: 'http', number: 8080, protocol: 'HTTP' }],
    resolution: 'STATIC',
    location: 'MESH_INTERNAL',
    endpoints: [],
    source: 'consul',
    exportTo: ['*'],
    subjectAltNames: [],
  };
}

const route = (host: string, subset?: string) => ({ destination: { host, ...(subset ? { subset } : {}) } });
const vs = (name: string, hosts: string[], routes: unknown[], extra: Record<string, unknown> = {}, where: Where = {}) =>
  resource('VirtualService', name, { hosts, http: [{ route: routes }], ...extra }, where);
const dr = (name: string, host: string, subsets: string[], extra: Record<string, unknown> = {}, where: Where = {}) =>
  resource('DestinationRule', name, { host, subsets: subsets.map((s) => ({ name: s, labels: { version: s } })), ...extra }, where);

function codes(issues: ConfigIssue[]): string[] {
  return issues.map((issue) => `${issue.severity} ${issue.code} ${issue.file} ${issue.path}`);
}

test('a duplicate kind/namespace/name is an error on the later one, naming where the first is', (t) => {
  const first = vs('reviews', ['reviews'], [route('reviews')], {}, { file: '/etc/mesh/a.yaml', document: 2 });
  const second = vs('reviews', ['reviews'], [route('reviews')], {}, { file: '/etc/mesh/b.yaml', document: 1 });
  const otherNamespace = vs('reviews', ['ratings'], [route('reviews')], {}, { namespace: 'shop', file: '/etc/mesh/c.yaml' });
  const issues = analyzeResources([first, second, otherNamespace], [consul('reviews')]);
  t.deepEqual(codes(issues), ['error duplicate-resource /etc/mesh/b.yaml metadata.name']);
  t.is(issues[0]!.message, 'VirtualService default/reviews is already defined in /etc/mesh/a.yaml, document 2');
});

test('a subset that no DestinationRule for the host defines is an IST0101 error at the subset', (t) => {
  const virtual = vs('reviews', ['reviews'], [route('reviews', 'v1'), route('reviews', 'v3')]);
  const issues = analyzeResources([virtual, dr('reviews', 'reviews', ['v1', 'v2'])], [consul('reviews')]);
  t.deepEqual(codes(issues), ['error undefined-subset /etc/mesh/reviews.yaml spec.http[0].route[1].destination.subset']);
  t.is(issues[0]!.value, 'v3');
  t.regex(issues[0]!.message, /"reviews\+v3".*DestinationRule default\/reviews defines only "v1", "v2".*IST0101/);
});

test('a subset with no DestinationRule at all, or one not exported to the namespace, is undefined', (t) => {
  const virtual = vs('reviews', ['reviews'], [route('reviews', 'v1')]);
  t.regex(analyzeResources([virtual], [consul('reviews')])[0]!.message, /no DestinationRule visible in namespace default applies to host "reviews"/);
  const hidden = dr('reviews', 'reviews', ['v1'], { exportTo: ['.'] }, { namespace: 'other' });
  t.deepEqual(codes(analyzeResources([virtual, hidden], [consul('reviews')])), ['error undefined-subset /etc/mesh/reviews.yaml spec.http[0].route[0].destination.subset']);
  const exported = dr('reviews', 'reviews', ['v1'], { exportTo: ['default'] }, { namespace: 'other' });
  t.deepEqual(analyzeResources([virtual, exported], [consul('reviews')]), []);
});

test('Consul names match by hostname and alias on either side', (t) => {
  const virtual = vs('orders', ['orders'], [route('orders', 'v1'), route('orders.service.consul', 'v2')]);
  const rule = dr('orders', 'orders.service.consul', ['v1', 'v2']);
  t.deepEqual(analyzeResources([virtual, rule], [consul('orders')]), []);
  const aliasRule = dr('orders', 'orders', ['v1', 'v2']);
  t.deepEqual(analyzeResources([virtual, aliasRule], [consul('orders')]), []);
});

test('mirrors and TCP/TLS routes are checked too', (t) => {
  const virtual = resource('VirtualService', 'db', {
    hosts: ['db'],
    http: [{ route: [route('db')], mirror: { host: 'db', subset: 'shadow' } }],
    tcp: [{ route: [route('db', 'primary')] }],
  });
  const issues = analyzeResources([virtual], [consul('db')]);
  t.deepEqual(issues.map((i) => i.path), ['spec.http[0].mirror.subset', 'spec.tcp[0].route[0].destination.subset']);
});

test('a destination host that no service has is a warning, wildcard ServiceEntry hosts count', (t) => {
  const virtual = vs('ext', ['api.example.com'], [route('api.example.com'), route('nowhere')]);
  const external: Service = { ...consul('x'), hostname: '*.example.com', aliases: [], source: 'file' };
  const issues = analyzeResources([virtual], [external]);
  t.deepEqual(codes(issues), ['warning unknown-host /etc/mesh/ext.yaml spec.http[0].route[1].destination.host']);
  t.is(issues[0]!.value, 'nowhere');
});

test('two VirtualServices binding one host on the mesh gateway conflict (IST0109)', (t) => {
  const first = vs('productpage', ['productpage'], [route('productpage')], {}, { namespace: 'team-1', file: '/etc/mesh/1.yaml' });
  const second = vs('custom', ['productpage.service.consul'], [route('productpage')], {}, { namespace: 'team-2', file: '/etc/mesh/2.yaml' });
  const issues = analyzeResources([first, second], [consul('productpage')]);
  t.deepEqual(codes(issues), ['error conflicting-virtual-service-host /etc/mesh/2.yaml spec.hosts[0]']);
  t.regex(issues[0]!.message, /VirtualService team-1\/productpage \(\/etc\/mesh\/1\.yaml, document 1\).*IST0109/);
});

test('exportTo scoping or binding only to a Gateway avoids the IST0109 conflict', (t) => {
  const scoped1 = vs('productpage', ['productpage'], [route('productpage')], { exportTo: ['.'] }, { namespace: 'team-1' });
  const scoped2 = vs('custom', ['productpage'], [route('productpage')], { exportTo: ['.'] }, { namespace: 'team-2' });
  t.deepEqual(analyzeResources([scoped1, scoped2], [consul('productpage')]), []);
  const gateway = resource('Gateway', 'ingress', { selector: { istio: 'ingressgateway' }, servers: [] });
  const mesh = vs('productpage', ['productpage'], [route('productpage')]);
  const ingress = vs('ingress-routes', ['productpage'], [route('productpage')], { gateways: ['ingress'] });
  t.deepEqual(analyzeResources([gateway, mesh, ingress], [consul('productpage')]), []);
  const both = vs('ingress-and-mesh', ['productpage'], [route('productpage')], { gateways: ['ingress', 'mesh'] });
  t.deepEqual(analyzeResources([gateway, mesh, both], [consul('productpage')]).map((i) => i.code), ['conflicting-virtual-service-host']);
});

test('a reference to a Gateway that does not exist is an IST0101 error', (t) => {
  const gateway = resource('Gateway', 'public', { selector: { istio: 'ingressgateway' }, servers: [] }, { namespace: 'edge' });
  const routes = vs('site', ['site.example.com'], [route('site')], { gateways: ['edge/public', 'public', 'mesh'] });
  const issues = analyzeResources([gateway, routes], [consul('site')]);
  t.deepEqual(codes(issues), ['error undefined-gateway /etc/mesh/site.yaml spec.gateways[1]']);
  t.regex(issues[0]!.message, /no Gateway default\/public is defined/);
});

test('ServiceEntries of one namespace defining a host and port differently conflict', (t) => {
  const entry = (name: string, protocol: string, where: Where = {}) =>
    resource('ServiceEntry', name, { hosts: ['db.internal'], ports: [{ number: 5432, name: 'tcp-pg', protocol }], resolution: 'STATIC', location: 'MESH_INTERNAL' }, where);
  const issues = analyzeResources([entry('db-a', 'TCP'), entry('db-b', 'HTTP')], []);
  t.deepEqual(codes(issues), ['error conflicting-service-entry /etc/mesh/db-b.yaml spec.ports[0]']);
  t.regex(issues[0]!.message, /port 5432 is already defined differently by ServiceEntry default\/db-a.*protocol HTTP vs TCP/);
  t.deepEqual(analyzeResources([entry('db-a', 'TCP'), entry('db-b', 'TCP')], []), [], 'identical definitions merge');
  t.deepEqual(analyzeResources([entry('db-a', 'TCP'), entry('db-b', 'HTTP', { namespace: 'other' })], []), [], 'other namespace');
});

test('two DestinationRules for one host in one namespace without workloadSelector conflict', (t) => {
  const issues = analyzeResources([dr('a', 'reviews', ['v1']), dr('b', 'reviews.service.consul', ['v2'])], [consul('reviews')]);
  t.deepEqual(codes(issues), ['error conflicting-destination-rule /etc/mesh/b.yaml spec.host']);
  t.regex(issues[0]!.message, /DestinationRule default\/a .* already applies to this host/);
  const selected = dr('b', 'reviews', ['v2'], { workloadSelector: { matchLabels: { app: 'ratings' } } });
  t.deepEqual(analyzeResources([dr('a', 'reviews', ['v1']), selected], [consul('reviews')]), []);
});

test('host matching: wildcards by suffix, canonical names through aliases', (t) => {
  t.true(hostMatches('*.example.com', 'a.example.com'));
  t.true(hostMatches('*.example.com', 'a.b.example.com'));
  t.false(hostMatches('*.example.com', 'example.com'));
  t.true(hostMatches('*', 'anything'));
  t.false(hostMatches('a.example.com', 'b.example.com'));
  const index = new HostIndex([consul('orders')]);
  t.is(index.canonical('Orders'), 'orders.service.consul');
  t.is(index.canonical('unknown.host'), 'unknown.host');
});
