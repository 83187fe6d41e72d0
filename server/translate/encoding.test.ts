// The server encodes without verification; these tests hold it to the verified path: for every
// resource the translator emits, over a model that uses each kind of resource, the same bytes.
import test from 'ava';
import { RESOURCE_TYPE_URLS } from '../../lib/xds/protos';
import { MeshTranslator } from './mesh-translator';
import { encodeResource, verifyEncodedResources } from './hash';
import { TypeUrl, endpoint, model, named, node, port, resource, service, WILDCARD } from './testing';
import type { EncodedResource } from '../xds/generator';

function fixture() {
  const located = (zone: string) => ({ region: 'r', zone, subzone: '' });
  return model(
    [
      service('web', {
        ports: [port(80, 'HTTP', 'http'), port(81, 'UNSPECIFIED', 'web')],
        endpoints: [
          endpoint('10.0.0.1', { node: 'a', labels: { version: 'v1' }, locality: located('z1'), serviceAccount: 'web' }),
          endpoint('10.0.0.2', { node: 'b', labels: { version: 'v2' }, locality: located('z2'), healthy: false }),
        ],
      }),
      service('db', { ports: [port(5432, 'TCP', 'tcp')], endpoints: [endpoint('10.0.1.1', { node: 'b' })] }),
      service('greeter', { ports: [port(50051, 'GRPC', 'grpc')], addresses: ['10.96.0.9'], endpoints: [endpoint('10.0.2.1', { node: 'a' })] }),
      service('api.example.com', { ports: [port(443, 'TLS', 'tls')], resolution: 'DNS', location: 'MESH_EXTERNAL', endpoints: [endpoint('api.example.com')] }),
    ],
    [
      resource('VirtualService', 'web', {
        hosts: ['web'],
        http: [
          { match: [{ headers: { 'x-canary': { exact: 'yes' } } }], route: [{ destination: { host: 'web', subset: 'v2' } }], retries: { attempts: 3, perTryTimeout: '1s' } },
          { route: [{ destination: { host: 'web', subset: 'v1' }, weight: 80 }, { destination: { host: 'web', subset: 'v2' }, weight: 20 }], timeout: '5s', fault: { abort: { percentage: { value: 10 }, httpStatus: 503 } } },
        ],
      }),
      resource('DestinationRule', 'web', {
        host: 'web',
        trafficPolicy: {
          loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } },
          connectionPool: { tcp: { maxConnections: 10, connectTimeout: '2s' } },
          outlierDetection: { consecutive5xxErrors: 3, interval: '10s', baseEjectionTime: '30s' },
        },
        subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } }],
      }),
      resource('VirtualService', 'db', { hosts: ['db'], tcp: [{ route: [{ destination: { host: 'db' } }] }] }),
    ],
  );
}

function emitted(): EncodedResource[] {
  const translator = new MeshTranslator();
  const m = fixture();
  const out: EncodedResource[] = [];
  for (const n of [node('a'), node('b'), node('c'), node('grpc-1', { GENERATOR: 'grpc' })]) {
    const proxyless = n.id.startsWith('grpc');
    const listeners = translator.generate(m, n, TypeUrl.Listener, proxyless ? named('greeter:50051', 'web:80') : WILDCARD);
    const clusters = translator.generate(m, n, TypeUrl.Cluster, WILDCARD);
    const routes = translator.generate(m, n, TypeUrl.RouteConfiguration, proxyless ? named('greeter:50051', 'web:80') : named('80', '81', '443', '5432', '50051'));
    const loads = translator.generate(m, n, TypeUrl.ClusterLoadAssignment, named(...clusters.keys()));
    for (const set of [listeners, clusters, routes, loads]) out.push(...set.values());
  }
  return out;
}

test('unverified encoding gives the verified bytes for every resource the translator emits', (t) => {
  verifyEncodedResources(true);
  const strict = emitted();
  verifyEncodedResources(false);
  const fast = emitted();
  verifyEncodedResources(true);
  t.true(strict.length > 20);
  t.deepEqual([...new Set(strict.map((r) => r.any.type_url))].sort(), [...RESOURCE_TYPE_URLS].sort());
  t.deepEqual(
    fast.map((r) => `${r.any.type_url} ${r.name} ${r.hash}`),
    strict.map((r) => `${r.any.type_url} ${r.name} ${r.hash}`),
  );
});

test('enum names and numbers encode to the same bytes on both paths', (t) => {
  const names = { name: 'c', type: 'STRICT_DNS', lb_policy: 'RING_HASH', load_assignment: { cluster_name: 'c', endpoints: [{ lb_endpoints: [{ health_status: 'UNHEALTHY' }] }] } };
  verifyEncodedResources(false);
  const fast = encodeResource(TypeUrl.Cluster, 'c', names);
  verifyEncodedResources(true);
  const strict = encodeResource(TypeUrl.Cluster, 'c', names);
  t.is(fast.hash, strict.hash);
});
