// Tests of the file-based registry: ServiceEntry hosts × ports, inline endpoints, WorkloadEntry
// selection by labels within a namespace, and the fields carried over with Istio's defaults.
import test from 'ava';
import type { ConfigResource } from '../config/resource';
import { NODE_ANNOTATION, servicesFromConfig } from './file-services';

function resource(kind: string, name: string, spec: unknown, metadata: { namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> } = {}): ConfigResource {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind,
    metadata: { name, namespace: metadata.namespace ?? 'default', labels: metadata.labels ?? {}, annotations: metadata.annotations ?? {} },
    spec,
    origin: { file: `/etc/mesh/${name}.yaml`, document: 1 },
  };
}

test('a ServiceEntry selecting WorkloadEntries gives one service per host with their endpoints', (t) => {
  const entry = resource('ServiceEntry', 'details', {
    hosts: ['details.bookinfo.com', 'details.internal'],
    addresses: ['240.0.0.10'],
    ports: [{ number: 80, name: 'http', protocol: 'HTTP', targetPort: 8080 }, { number: 9090, name: 'grpc-admin' }],
    location: 'MESH_INTERNAL',
    resolution: 'STATIC',
    workloadSelector: { labels: { app: 'details' } },
    exportTo: ['.'],
    subjectAltNames: ['spiffe://cluster.local/ns/default/sa/details'],
  });
  const vm1 = resource('WorkloadEntry', 'details-vm1', {
    address: '10.0.0.1',
    ports: { http: 8081, unrelated: 1 },
    labels: { app: 'details', version: 'v1' },
    locality: 'eu-west/eu-west-1a/rack7',
    weight: 3,
    serviceAccount: 'details',
    network: 'dc1',
  }, { annotations: { [NODE_ANNOTATION]: 'host-a.dc1.example.com' } });
  const vm2 = resource('WorkloadEntry', 'details-vm2', { address: '10.0.0.2', labels: { app: 'details' } }, { labels: { version: 'v2' } });
  const otherApp = resource('WorkloadEntry', 'ratings-vm', { address: '10.0.0.3', labels: { app: 'ratings' } });
  const otherNamespace = resource('WorkloadEntry', 'details-elsewhere', { address: '10.0.0.4', labels: { app: 'details' } }, { namespace: 'other' });

  const services = servicesFromConfig([entry, vm1, vm2, otherApp, otherNamespace]);
  t.deepEqual(services.map((s) => s.hostname), ['details.bookinfo.com', 'details.internal']);
  const service = services[0]!;
  t.like(service, {
    namespace: 'default',
    aliases: [],
    addresses: ['240.0.0.10'],
    resolution: 'STATIC',
    location: 'MESH_INTERNAL',
    source: 'file',
    exportTo: ['.'],
    subjectAltNames: ['spiffe://cluster.local/ns/default/sa/details'],
  });
  t.deepEqual(service.ports, [
    { name: 'http', number: 80, protocol: 'HTTP', targetPort: 8080 },
    { name: 'grpc-admin', number: 9090, protocol: 'GRPC' },
  ]);
  t.deepEqual(service.endpoints, [
    {
      address: '10.0.0.1',
      ports: { http: 8081 },
      labels: { app: 'details', version: 'v1' },
      node: 'host-a.dc1.example.com',
      healthy: true,
      locality: { region: 'eu-west', zone: 'eu-west-1a', subzone: 'rack7' },
      weight: 3,
      serviceAccount: 'details',
      network: 'dc1',
    },
    {
      address: '10.0.0.2',
      ports: {},
      labels: { app: 'details', version: 'v2' },
      healthy: true,
      locality: { region: '', zone: '', subzone: '' },
      weight: 1,
    },
  ]);
});

test('inline endpoints serve when there is no workloadSelector; Istio defaults apply', (t) => {
  const entry = resource('ServiceEntry', 'mongo', {
    hosts: ['mongo.internal'],
    ports: [{ number: 27017, name: 'mongo', protocol: 'mongo' }],
    endpoints: [{ address: '2.2.2.2', ports: { mongo: 27018 }, labels: { role: 'primary' }, locality: 'us-east', weight: 0 }],
  });
  const [service] = servicesFromConfig([entry]);
  t.is(service!.resolution, 'NONE');
  t.is(service!.location, 'MESH_EXTERNAL');
  t.deepEqual(service!.exportTo, ['*']);
  t.is(service!.ports[0]!.protocol, 'MONGO');
  t.deepEqual(service!.endpoints, [{ address: '2.2.2.2', ports: { mongo: 27018 }, labels: { role: 'primary' }, healthy: true, locality: { region: 'us-east', zone: '', subzone: '' }, weight: 1 }]);
});

test('a DNS ServiceEntry without endpoints resolves its own non-wildcard hosts', (t) => {
  const entry = resource('ServiceEntry', 'apis', {
    hosts: ['api.example.com', '*.example.org'],
    ports: [{ number: 443, name: 'https', protocol: 'TLS' }],
    resolution: 'DNS',
  });
  const services = servicesFromConfig([entry]);
  t.deepEqual(services.map((s) => [s.hostname, s.endpoints.map((e) => e.address)]), [['api.example.com', ['api.example.com']], ['*.example.org', []]]);
  t.is(services[0]!.ports[0]!.protocol, 'TLS');
});

test('ServiceEntries of one namespace sharing a host are merged; other namespaces stay apart', (t) => {
  const a = resource('ServiceEntry', 'db-a', { hosts: ['db.internal'], ports: [{ number: 5432, name: 'tcp-pg' }], endpoints: [{ address: '10.1.0.1' }] });
  const b = resource('ServiceEntry', 'db-b', { hosts: ['db.internal'], ports: [{ number: 5432, name: 'tcp-pg' }, { number: 9187, name: 'http-metrics' }], endpoints: [{ address: '10.1.0.2' }] });
  const c = resource('ServiceEntry', 'db-c', { hosts: ['db.internal'], ports: [{ number: 5432, name: 'tcp-pg' }], endpoints: [{ address: '10.9.0.1' }] }, { namespace: 'staging' });
  const services = servicesFromConfig([a, b, c]);
  t.is(services.length, 2);
  t.deepEqual(services[0]!.ports.map((p) => [p.number, p.protocol]), [[5432, 'TCP'], [9187, 'HTTP']]);
  t.deepEqual(services[0]!.endpoints.map((e) => e.address), ['10.1.0.1', '10.1.0.2']);
  t.deepEqual([services[1]!.namespace, services[1]!.endpoints.map((e) => e.address)], ['staging', ['10.9.0.1']]);
});

test('a port with neither a known protocol nor a conventional name is UNSPECIFIED (sniffed)', (t) => {
  const entry = resource('ServiceEntry', 'odd', { hosts: ['odd.internal'], ports: [{ number: 7000, name: 'custom' }], endpoints: [{ address: '10.2.0.1' }] });
  t.is(servicesFromConfig([entry])[0]!.ports[0]!.protocol, 'UNSPECIFIED');
});
