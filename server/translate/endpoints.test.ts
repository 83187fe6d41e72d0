// Load assignments: locality grouping and weights, health, endpoint metadata, subsets, and Istio's
// locality load balancing (failover priorities, distribute, failoverPriority) per client locality.
import test from 'ava';
import { MeshTranslator } from './mesh-translator';
import { fromStruct } from './proto-values';
import { TypeUrl, endpoint, generateDecoded, model, named, node, port, resource, service } from './testing';
import type { DestinationRuleSpec } from './specs';
import type { Locality } from '../registry/service';

const HOST = 'reviews.default.svc.cluster.local';
const ALL = `outbound|9080||${HOST}`;

const loc = (region: string, zone: string, subzone = ''): Locality => ({ region, zone, subzone });

const reviews = service(HOST, {
  ports: [port(9080, 'HTTP', 'http')],
  endpoints: [
    endpoint('10.0.0.1', { labels: { version: 'v1' }, locality: loc('eu', 'eu-a'), node: 'host-a', weight: 2, serviceAccount: 'reviews', network: 'n1' }),
    endpoint('10.0.0.2', { labels: { version: 'v2' }, locality: loc('eu', 'eu-a'), node: 'host-b', weight: 3 }),
    endpoint('10.0.0.3', { labels: { version: 'v2' }, locality: loc('eu', 'eu-b'), weight: 1, healthy: false, ports: { http: 19080 } }),
    endpoint('10.0.0.4', { labels: { version: 'v1' }, locality: loc('us', 'us-a'), weight: 1 }),
  ],
});
const client = service('client.default.svc.cluster.local', { ports: [port(8000)], endpoints: [endpoint('10.9.0.1', { node: 'client-eu-a', locality: loc('eu', 'eu-a') })] });

function assignments(rule: DestinationRuleSpec | undefined, names: string[], nodeId = 'client-eu-a') {
  const resources = rule ? [resource('DestinationRule', 'reviews', rule)] : [];
  return generateDecoded(new MeshTranslator(), model([reviews, client], resources), node(nodeId), TypeUrl.ClusterLoadAssignment, named(...names));
}

const weights = (cla: any) => Object.fromEntries(cla.endpoints.map((e: any) => [`${e.locality.region}/${e.locality.zone}`, e.load_balancing_weight.value]));

test('endpoints are grouped by locality and every locality carries the sum of its endpoint weights', (t) => {
  const cla = assignments(undefined, [ALL]).get(ALL);
  t.is(cla.cluster_name, ALL);
  t.deepEqual(weights(cla), { 'eu/eu-a': 5, 'eu/eu-b': 1, 'us/us-a': 1 });
  const euA = cla.endpoints.find((e: any) => e.locality.zone === 'eu-a');
  t.deepEqual(euA.locality, { region: 'eu', zone: 'eu-a', sub_zone: '' });
  t.deepEqual(euA.lb_endpoints.map((e: any) => [e.endpoint.address.socket_address.address, e.load_balancing_weight.value]), [['10.0.0.1', 2], ['10.0.0.2', 3]]);
});

test('health status, endpoint port and mesh metadata are on each endpoint', (t) => {
  const cla = assignments(undefined, [ALL]).get(ALL);
  const all = cla.endpoints.flatMap((e: any) => e.lb_endpoints);
  const byAddress = Object.fromEntries(all.map((e: any) => [e.endpoint.address.socket_address.address, e]));
  t.is(byAddress['10.0.0.1'].health_status, 'HEALTHY');
  t.is(byAddress['10.0.0.3'].health_status, 'UNHEALTHY');
  t.is(byAddress['10.0.0.3'].endpoint.address.socket_address.port_value, 19080);
  t.is(byAddress['10.0.0.1'].endpoint.address.socket_address.port_value, 9080);
  t.deepEqual(fromStruct(byAddress['10.0.0.1'].metadata.filter_metadata.mesh), { node: 'host-a', labels: { version: 'v1' }, serviceAccount: 'reviews', network: 'n1' });
  t.deepEqual(fromStruct(byAddress['10.0.0.1'].metadata.filter_metadata['envoy.transport_socket_match']), { tlsMode: 'istio' });
  t.is(byAddress['10.0.0.4'].metadata.filter_metadata['envoy.transport_socket_match'], undefined, 'not meshed: no agent to speak mTLS');
});

test('subset load assignments keep only the endpoints carrying the subset labels', (t) => {
  const v2 = `outbound|9080|v2|${HOST}`;
  const cla = assignments({ host: HOST, subsets: [{ name: 'v2', labels: { version: 'v2' } }] }, [v2]).get(v2);
  const addresses = cla.endpoints.flatMap((e: any) => e.lb_endpoints.map((l: any) => l.endpoint.address.socket_address.address));
  t.deepEqual(addresses.sort(), ['10.0.0.2', '10.0.0.3']);
});

test('names that are not EDS clusters of the node are absent', (t) => {
  const clas = assignments(undefined, [ALL, 'outbound|9080|nope|reviews.default.svc.cluster.local', 'outbound|1|x|unknown']);
  t.deepEqual([...clas.keys()], [ALL]);
});

test('with outlier detection, localities get failover priorities by proximity to the client', (t) => {
  const cla = assignments({ host: HOST, trafficPolicy: { outlierDetection: { consecutive5xxErrors: 5 } } }, [ALL]).get(ALL);
  const priorities = Object.fromEntries(cla.endpoints.map((e: any) => [e.locality.zone, e.priority ?? 0]));
  t.deepEqual(priorities, { 'eu-a': 0, 'eu-b': 1, 'us-a': 2 });
});

test('without outlier detection no failover priorities are applied (traffic could never fail over)', (t) => {
  const cla = assignments({ host: HOST, trafficPolicy: { loadBalancer: { localityLbSetting: { failover: [{ from: 'eu', to: 'us' }] } } } }, [ALL]).get(ALL);
  t.true(cla.endpoints.every((e: any) => e.priority === undefined));
});

test('explicit failover ranks the target region above other remote regions', (t) => {
  const withAsia = service(HOST, { ports: [port(9080)], endpoints: [...reviews.endpoints, endpoint('10.0.0.5', { locality: loc('asia', 'asia-a') })] });
  const m = model([withAsia, client], [resource('DestinationRule', 'reviews', {
    host: HOST,
    trafficPolicy: { outlierDetection: { consecutive5xxErrors: 5 }, loadBalancer: { localityLbSetting: { failover: [{ from: 'eu', to: 'us' }] } } },
  })]);
  const cla = generateDecoded(new MeshTranslator(), m, node('client-eu-a'), TypeUrl.ClusterLoadAssignment, named(ALL)).get(ALL);
  const priorities = Object.fromEntries(cla.endpoints.map((e: any) => [e.locality.region + '/' + e.locality.zone, e.priority ?? 0]));
  t.deepEqual(priorities, { 'eu/eu-a': 0, 'eu/eu-b': 1, 'us/us-a': 2, 'asia/asia-a': 3 });
});

test('distribute rewrites locality weights for clients in the source locality and empties the rest', (t) => {
  const rule: DestinationRuleSpec = {
    host: HOST,
    trafficPolicy: { loadBalancer: { localityLbSetting: { distribute: [{ from: 'eu/eu-a/*', to: { 'eu/eu-a/*': 80, 'eu/eu-b/*': 20 } }] } } },
  };
  const cla = assignments(rule, [ALL]).get(ALL);
  t.deepEqual(weights(cla), { 'eu/eu-a': 80, 'eu/eu-b': 20, 'us/us-a': 1 });
  const us = cla.endpoints.find((e: any) => e.locality.region === 'us');
  t.is(us.lb_endpoints, undefined, 'a locality outside the distribution keeps no endpoints');
  // A client elsewhere is not covered by the rule: weights stay as the endpoints give them.
  const usClient = service('us-client.default.svc.cluster.local', { ports: [port(8000)], endpoints: [endpoint('10.9.1.1', { node: 'client-us', locality: loc('us', 'us-a') })] });
  const m = model([reviews, client, usClient], [resource('DestinationRule', 'reviews', rule)]);
  const far = generateDecoded(new MeshTranslator(), m, node('client-us'), TypeUrl.ClusterLoadAssignment, named(ALL)).get(ALL);
  t.deepEqual(weights(far), { 'eu/eu-a': 5, 'eu/eu-b': 1, 'us/us-a': 1 });
});

test('failoverPriority splits localities by the client\'s labels before proximity', (t) => {
  const labelled = service(HOST, {
    ports: [port(9080)],
    endpoints: [
      endpoint('10.0.0.1', { labels: { tier: 'gold' }, locality: loc('eu', 'eu-a') }),
      endpoint('10.0.0.2', { labels: { tier: 'silver' }, locality: loc('eu', 'eu-a') }),
    ],
  });
  const gold = service('client.default.svc.cluster.local', { ports: [port(8000)], endpoints: [endpoint('10.9.0.1', { node: 'gold-client', labels: { tier: 'gold' }, locality: loc('eu', 'eu-a') })] });
  const m = model([labelled, gold], [resource('DestinationRule', 'reviews', {
    host: HOST,
    trafficPolicy: { outlierDetection: { consecutive5xxErrors: 5 }, loadBalancer: { localityLbSetting: { failoverPriority: ['tier'] } } },
  })]);
  const cla = generateDecoded(new MeshTranslator(), m, node('gold-client'), TypeUrl.ClusterLoadAssignment, named(ALL)).get(ALL);
  const byPriority = cla.endpoints.map((e: any) => [e.priority ?? 0, e.lb_endpoints.map((l: any) => l.endpoint.address.socket_address.address)]);
  t.deepEqual(byPriority, [[0, ['10.0.0.1']], [1, ['10.0.0.2']]]);
});

test('a locality-aware assignment differs per client locality but is shared by clients in the same one', (t) => {
  const other = service('other.default.svc.cluster.local', { ports: [port(8000)], endpoints: [endpoint('10.9.0.2', { node: 'client-us', locality: loc('us', 'us-a') }), endpoint('10.9.0.3', { node: 'client-eu-a-2', locality: loc('eu', 'eu-a') })] });
  const m = model([reviews, client, other], [resource('DestinationRule', 'reviews', { host: HOST, trafficPolicy: { outlierDetection: { consecutive5xxErrors: 5 } } })]);
  const translator = new MeshTranslator();
  const get = (id: string) => translator.generate(m, node(id), TypeUrl.ClusterLoadAssignment, named(ALL)).get(ALL)!;
  t.is(get('client-eu-a'), get('client-eu-a-2'));
  t.not(get('client-eu-a').hash, get('client-us').hash);
});
