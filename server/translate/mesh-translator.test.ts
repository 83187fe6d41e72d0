// The generator as the ADS server uses it: sharing of encoded resources across nodes, stable
// hashes across models, subscription handling, and that everything served decodes.
import test from 'ava';
import { MeshTranslator } from './mesh-translator';
import { TypeUrl, endpoint, model, named, node, port, resource, service, WILDCARD } from './testing';
import type { Service } from '../registry/service';
import { RESOURCE_TYPE_URLS, unpackAny } from '../../lib/xds/protos';

function fleet(services: number, nodes: number): Service[] {
  const out: Service[] = [];
  for (let i = 0; i < services; i++) {
    out.push(service(`svc-${i}.ns-${i % 10}.svc`, {
      namespace: `ns-${i % 10}`,
      ports: [port(8000 + (i % 20), i % 3 === 0 ? 'TCP' : 'HTTP', i % 3 === 0 ? 'tcp' : 'http')],
      addresses: [`10.96.${Math.floor(i / 250)}.${i % 250}`],
      // The first `nodes` services each run one workload on node-i; the rest run off-mesh.
      endpoints: [endpoint(`10.${1 + Math.floor(i / 62500)}.${Math.floor(i / 250) % 250}.${i % 250}`, i < nodes ? { node: `node-${i}` } : {})],
    }));
  }
  return out;
}

test('100 nodes x 1000 services share the node-independent encoded resources by identity', (t) => {
  const services = fleet(1000, 100);
  const rules = [resource('DestinationRule', 'svc-1', { host: 'svc-1.ns-1.svc', subsets: [{ name: 'a', labels: {} }] }, 'ns-1')];
  const m = model(services, rules);
  const translator = new MeshTranslator();
  const cds = [] as Map<string, any>[];
  const lds = [] as Map<string, any>[];
  const rds = [] as Map<string, any>[];
  const eds = [] as Map<string, any>[];
  for (let i = 0; i < 100; i++) {
    const n = node(`node-${i}`);
    cds.push(translator.generate(m, n, TypeUrl.Cluster, WILDCARD));
    lds.push(translator.generate(m, n, TypeUrl.Listener, WILDCARD));
    rds.push(translator.generate(m, n, TypeUrl.RouteConfiguration, named('8001', '8002')));
    eds.push(translator.generate(m, n, TypeUrl.ClusterLoadAssignment, named('outbound|8001||svc-1.ns-1.svc', 'outbound|8001|a|svc-1.ns-1.svc')));
  }
  // 1000 service-port clusters + 1 subset + 3 fixed + the node's inbound cluster.
  t.is(cds[0]!.size, 1005);
  for (let i = 1; i < 100; i++) {
    // Nodes of different namespaces (different scopes) still share every cluster object.
    t.is(cds[i]!.get('outbound|8001||svc-1.ns-1.svc'), cds[0]!.get('outbound|8001||svc-1.ns-1.svc'));
    t.is(cds[i]!.get('outbound|8001|a|svc-1.ns-1.svc'), cds[0]!.get('outbound|8001|a|svc-1.ns-1.svc'));
    t.is(cds[i]!.get('PassthroughCluster'), cds[0]!.get('PassthroughCluster'));
    t.is(eds[i]!.get('outbound|8001||svc-1.ns-1.svc'), eds[0]!.get('outbound|8001||svc-1.ns-1.svc'));
    t.is(lds[i]!.get('virtualOutbound'), lds[0]!.get('virtualOutbound'));
    t.is(lds[i]!.get('0.0.0.0_8001'), lds[0]!.get('0.0.0.0_8001'));
    t.is(rds[i]!.get('8001'), rds[0]!.get('8001'));
  }
  // The inbound side is the node's own.
  t.not(lds[1]!.get('virtualInbound'), lds[2]!.get('virtualInbound'));
  t.not(lds[1]!.get('virtualInbound')!.hash, lds[2]!.get('virtualInbound')!.hash);
  t.truthy(cds[7]!.get('inbound|8007||'));
  t.falsy(cds[7]!.get('inbound|8008||'));
  const routes = unpackAny<any>(rds[0]!.get('8001')!.any);
  t.is(routes.virtual_hosts.length, 34, '33 HTTP services on port 8001 plus allow_any');
});

test('equal content hashes equal across models; a change to one service changes only its resources', (t) => {
  const before = fleet(30, 3);
  const after = before.map((s, i) => (i === 4 ? { ...s, endpoints: [...s.endpoints, endpoint('10.200.0.1')] } : s));
  const translator = new MeshTranslator();
  const n = node('node-0');
  const a = translator.generate(model(before), n, TypeUrl.ClusterLoadAssignment, WILDCARD);
  const b = translator.generate(model(after), n, TypeUrl.ClusterLoadAssignment, WILDCARD);
  t.is(a.size, 30);
  const changed = [...a.keys()].filter((name) => a.get(name)!.hash !== b.get(name)!.hash);
  t.deepEqual(changed, ['outbound|8004||svc-4.ns-4.svc']);
  const ca = translator.generate(model(before), n, TypeUrl.Cluster, WILDCARD);
  const cb = translator.generate(model(after), n, TypeUrl.Cluster, WILDCARD);
  t.true([...ca.keys()].every((name) => ca.get(name)!.hash === cb.get(name)!.hash), 'clusters do not carry endpoints');
});

test('named subscriptions return only known names; wildcard LDS and CDS return everything the node sees', (t) => {
  const m = model(fleet(5, 1));
  const translator = new MeshTranslator();
  const n = node('node-0');
  const clusters = translator.generate(m, n, TypeUrl.Cluster, WILDCARD);
  t.true(clusters.has('outbound|8001||svc-1.ns-1.svc'));
  const listeners = translator.generate(m, n, TypeUrl.Listener, WILDCARD);
  t.deepEqual([...listeners.keys()], ['virtualOutbound', '0.0.0.0_8000', '0.0.0.0_8001', '0.0.0.0_8002', '0.0.0.0_8003', '0.0.0.0_8004', 'virtualInbound']);
  const routes = translator.generate(m, n, TypeUrl.RouteConfiguration, named('8001', '8000', '9999', 'not-a-service'));
  t.deepEqual([...routes.keys()], ['8001'], '8000 is a TCP port and has no route configuration');
  const endpoints = translator.generate(m, n, TypeUrl.ClusterLoadAssignment, named('outbound|8001||svc-1.ns-1.svc', 'outbound|1||nowhere'));
  t.deepEqual([...endpoints.keys()], ['outbound|8001||svc-1.ns-1.svc']);
});

test('every resource of every type is a verified, decodable message whose hash matches its bytes', (t) => {
  const m = model(fleet(12, 4), [
    resource('VirtualService', 'svc-1', { hosts: ['svc-1.ns-1.svc'], http: [{ route: [{ destination: { host: 'svc-1.ns-1.svc' } }], fault: { delay: { fixedDelay: '1s', percentage: { value: 5 } } }, retries: { attempts: 2, perTryTimeout: '1s' } }] }, 'ns-1'),
    resource('DestinationRule', 'svc-1', { host: 'svc-1.ns-1.svc', trafficPolicy: { outlierDetection: { consecutive5xxErrors: 3 }, connectionPool: { http: { idleTimeout: '10s' } } } }, 'ns-1'),
  ]);
  const translator = new MeshTranslator();
  let count = 0;
  for (const typeUrl of RESOURCE_TYPE_URLS) {
    const subscription = typeUrl === TypeUrl.Listener || typeUrl === TypeUrl.Cluster ? WILDCARD : named('8001', '8002', '8004', '8005', 'outbound|8001||svc-1.ns-1.svc', 'outbound|8002||svc-2.ns-2.svc');
    for (const [name, r] of translator.generate(m, node('node-1'), typeUrl, subscription)) {
      t.is(r.any.type_url, typeUrl);
      const decoded = unpackAny<any>(r.any);
      t.is(decoded.name ?? decoded.cluster_name, name);
      t.is(r.hash, require('node:crypto').createHash('sha1').update(r.any.value).digest('base64url'));
      count++;
    }
  }
  t.true(count > 20);
});

test('nodes with the same scope and inbound shape get the identical result, so the ADS server encodes it once', (t) => {
  // Workloads of different services on the same port: the inbound side is built alike.
  const services = Array.from({ length: 20 }, (_, i) =>
    service(`svc-${i}.default.svc`, { ports: [port(8080)], addresses: [`10.96.0.${i}`], endpoints: [endpoint(`10.1.0.${i}`, { node: `node-${i}` })] }));
  const m = model(services);
  const translator = new MeshTranslator();
  const edsNames = named('outbound|8080||svc-1.default.svc', 'outbound|8080||svc-2.default.svc');
  const results = (id: string, m2 = m, locality?: { region: string; zone: string; subzone: string }) => {
    const n = { ...node(id), ...(locality ? { locality } : {}) };
    return {
      lds: translator.generate(m2, n, TypeUrl.Listener, WILDCARD),
      cds: translator.generate(m2, n, TypeUrl.Cluster, WILDCARD),
      rds: translator.generate(m2, n, TypeUrl.RouteConfiguration, named('8080')),
      eds: translator.generate(m2, n, TypeUrl.ClusterLoadAssignment, edsNames),
    };
  };
  const a = results('node-1');
  const b = results('node-2');
  t.is(a.cds, b.cds);
  t.is(a.eds, b.eds);
  t.is(a.rds.get('8080'), b.rds.get('8080'));
  // The inbound listener names the node's own services: LDS is the node's, the rest shared.
  t.not(a.lds, b.lds);
  t.is(a.lds.get('virtualOutbound'), b.lds.get('virtualOutbound'));
  t.is(translator.generate(m, node('node-1'), TypeUrl.Listener, WILDCARD), a.lds);
  // A node without workloads has no inbound cluster: another result.
  const idle = results('node-without-workloads');
  t.not(idle.cds, a.cds);
  t.is(idle.cds.size, a.cds.size - 1);
  // Another subscription object is another result (the ADS server shares one per name list).
  t.not(translator.generate(m, node('node-1'), TypeUrl.RouteConfiguration, named('8080')), a.rds);
  // A node stating its locality may get locality-dependent endpoints: not shared with the others.
  const located = results('node-3', m, { region: 'r', zone: 'z', subzone: '' });
  t.not(located.eds, a.eds);
  // A new model is a new result, with the unchanged resources' objects kept.
  const next = results('node-1', model(services));
  t.not(next.eds, a.eds);
  t.is(next.eds.get('outbound|8080||svc-1.default.svc'), a.eds.get('outbound|8080||svc-1.default.svc'));
});
