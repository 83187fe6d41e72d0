// The endpoint set compiled from load assignments the translator serves: fields and metadata,
// health, Envoy's priority spill-over (overprovisioning 1.4), locality weights and local preference.
import test from 'ava';
import { endpoint, port, service } from '../../server/translate/testing';
import type { Endpoint as RegistryEndpoint, Locality } from '../../server/registry/service';
import { EndpointSet } from './endpoint-set';
import { RoundRobinLoadBalancer } from './round-robin';
import { countPicks, context, share, translated } from './testing';

const HOST = 'reviews.default.svc.cluster.local';
const CLUSTER = `outbound|9080||${HOST}`;
const loc = (region: string, zone: string): Locality => ({ region, zone, subzone: '' });
const client = service('client.default.svc.cluster.local', { ports: [port(8000)], endpoints: [endpoint('10.9.0.1', { node: 'client-eu-a', locality: loc('eu', 'eu-a') })] });
const reviews = (endpoints: RegistryEndpoint[]) => service(HOST, { ports: [port(9080, 'HTTP', 'http')], endpoints });
/** Outlier detection makes the server express Istio's locality failover as priorities. */
const FAILOVER = { host: HOST, trafficPolicy: { outlierDetection: { consecutive5xxErrors: 5 } } };

test('endpoints carry address, port, weight, health, priority, locality and mesh metadata from the load assignment', (t) => {
  const { cla } = translated([client, reviews([
    endpoint('10.0.0.1', { locality: loc('eu', 'eu-a'), weight: 2, node: 'host-a', serviceAccount: 'reviews', labels: { version: 'v1' } }),
    endpoint('10.0.0.2', { locality: loc('us', 'us-a'), healthy: false, ports: { http: 19080 } }),
  ])], undefined, CLUSTER, 'client-eu-a');
  const set = EndpointSet.fromLoadAssignment(cla);
  t.is(set.clusterName, CLUSTER);
  const [a, b] = set.endpoints;
  t.like(a, { index: 0, address: '10.0.0.1', port: 9080, weight: 2, health: 'HEALTHY', healthy: true, priority: 0, locality: { region: 'eu', zone: 'eu-a', subZone: '' } });
  t.deepEqual(a!.mesh, { node: 'host-a', labels: { version: 'v1' }, serviceAccount: 'reviews' });
  t.like(b, { index: 1, address: '10.0.0.2', port: 19080, health: 'UNHEALTHY', healthy: false });
  t.deepEqual(set.healthy.map((e) => e.address), ['10.0.0.1']);
  t.deepEqual(set.priorities[0]!.localities.map((l) => [l.locality.zone, l.weight, l.healthy.length]), [['eu-a', 2, 1], ['us-a', 1, 0]]);
  t.is(set.overprovisioningFactor, 140);
});

test('failover priorities from the server: with every priority-0 endpoint unhealthy all traffic goes to priority 1', (t) => {
  const { cla } = translated([client, reviews([
    endpoint('10.0.0.1', { locality: loc('eu', 'eu-a'), healthy: false }),
    endpoint('10.0.0.2', { locality: loc('eu', 'eu-a'), healthy: false }),
    endpoint('10.0.0.3', { locality: loc('eu', 'eu-b') }),
    endpoint('10.0.0.4', { locality: loc('us', 'us-a') }),
  ])], FAILOVER, CLUSTER, 'client-eu-a');
  const set = EndpointSet.fromLoadAssignment(cla);
  t.deepEqual(set.priorities.map((p) => [p.priority, p.health, p.load]), [[0, 0, 0], [1, 100, 100], [2, 100, 0]]);
  const counts = countPicks(new RoundRobinLoadBalancer(set), context(1), 1000);
  t.deepEqual([...counts], [['10.0.0.3', 1000]]);
});

test('partial health spills by the overprovisioning rule: half of priority 0 healthy keeps 70% there', (t) => {
  const { cla } = translated([client, reviews([
    endpoint('10.0.0.1', { locality: loc('eu', 'eu-a') }),
    endpoint('10.0.0.2', { locality: loc('eu', 'eu-a'), healthy: false }),
    endpoint('10.0.0.3', { locality: loc('eu', 'eu-b') }),
  ])], FAILOVER, CLUSTER, 'client-eu-a');
  const set = EndpointSet.fromLoadAssignment(cla);
  t.deepEqual(set.priorities.map((p) => p.load), [70, 30]);
  const counts = countPicks(new RoundRobinLoadBalancer(set), context(2), 10_000);
  t.true(Math.abs(share(counts, '10.0.0.1', 10_000) - 70) <= 3, `${share(counts, '10.0.0.1', 10_000)}`);
  t.true(Math.abs(share(counts, '10.0.0.3', 10_000) - 30) <= 3);
  t.false(counts.has('10.0.0.2'));
});

test('a priority at 72% health or more keeps all traffic (80% × 1.4 > 100)', (t) => {
  const p0 = [1, 2, 3, 4, 5].map((i) => endpoint(`10.0.0.${i}`, { locality: loc('eu', 'eu-a'), healthy: i !== 5 }));
  const { cla } = translated([client, reviews([...p0, endpoint('10.0.1.1', { locality: loc('eu', 'eu-b') })])], FAILOVER, CLUSTER, 'client-eu-a');
  const set = EndpointSet.fromLoadAssignment(cla);
  t.deepEqual(set.priorities.map((p) => [p.health, p.load]), [[100, 100], [100, 0]]);
});

test('when the priorities together are short of 100, their loads are scaled up to carry everything', (t) => {
  // P0: 1 of 4 healthy (health 35), P1: 1 of 5 healthy (health 28): 35/63 and 28/63 of the traffic.
  const p0 = [1, 2, 3, 4].map((i) => endpoint(`10.0.0.${i}`, { locality: loc('eu', 'eu-a'), healthy: i === 1 }));
  const p1 = [1, 2, 3, 4, 5].map((i) => endpoint(`10.0.1.${i}`, { locality: loc('eu', 'eu-b'), healthy: i === 1 }));
  const { cla } = translated([client, reviews([...p0, ...p1])], FAILOVER, CLUSTER, 'client-eu-a');
  const set = EndpointSet.fromLoadAssignment(cla);
  t.deepEqual(set.priorities.map((p) => [p.health, p.load]), [[35, 56], [28, 44]]);
});

test('nothing healthy anywhere: no pool is selected (no panic mode, unhealthy endpoints are never used)', (t) => {
  const { cla } = translated([client, reviews([endpoint('10.0.0.1', { healthy: false })])], undefined, CLUSTER, 'client-eu-a');
  const set = EndpointSet.fromLoadAssignment(cla);
  t.is(set.selectPool(context(3)), undefined);
  t.is(new RoundRobinLoadBalancer(set).pick(context(3)), undefined);
});

test('locality-weighted clusters split by locality weight: distribute 80/20 sends 80% ±3 to eu-a', (t) => {
  const rule = { host: HOST, trafficPolicy: { loadBalancer: { localityLbSetting: { distribute: [{ from: 'eu/eu-a/*', to: { 'eu/eu-a/*': 80, 'eu/eu-b/*': 20 } }] } } } };
  const { cluster, cla } = translated([client, reviews([
    endpoint('10.0.0.1', { locality: loc('eu', 'eu-a') }),
    endpoint('10.0.0.2', { locality: loc('eu', 'eu-b') }),
    endpoint('10.0.0.3', { locality: loc('eu', 'eu-b') }),
  ])], rule, CLUSTER, 'client-eu-a');
  t.truthy(cluster.common_lb_config?.locality_weighted_lb_config, 'the server enables locality-weighted LB for distribute');
  const set = EndpointSet.fromLoadAssignment(cla, { localityWeighted: true });
  const counts = countPicks(new RoundRobinLoadBalancer(set), context(4), 10_000);
  t.true(Math.abs(share(counts, '10.0.0.1', 10_000) - 80) <= 3, `${share(counts, '10.0.0.1', 10_000)}`);
  // Without the flag, every endpoint is equal: eu-b's two endpoints take two thirds.
  const flat = countPicks(new RoundRobinLoadBalancer(EndpointSet.fromLoadAssignment(cla)), context(4), 9_000);
  t.is(flat.get('10.0.0.1'), 3000);
});

test('a locality with too few healthy endpoints loses weight in proportion (weight × health × 1.4)', (t) => {
  const cla = {
    cluster_name: 'c',
    endpoints: [
      { locality: { zone: 'a' }, load_balancing_weight: { value: 50 }, lb_endpoints: [1, 2, 3, 4].map((i) => ({ endpoint: { address: { socket_address: { address: `10.0.0.${i}`, port_value: 80 } } }, health_status: i === 1 ? 'HEALTHY' : 'UNHEALTHY' })) },
      { locality: { zone: 'b' }, load_balancing_weight: { value: 50 }, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.1.1', port_value: 80 } } } }] },
    ],
  };
  // Zone a: 50 × min(1, 0.25 × 1.4) = 17.5 against zone b's 50.
  const counts = countPicks(new RoundRobinLoadBalancer(EndpointSet.fromLoadAssignment(cla, { localityWeighted: true })), context(5), 10_000);
  t.true(Math.abs(share(counts, '10.0.0.1', 10_000) - (17.5 * 100) / 67.5) <= 3, `${share(counts, '10.0.0.1', 10_000)}`);
});

test('the caller\'s own locality is preferred while healthy, and shares traffic by its health when it is not', (t) => {
  const local = { region: 'eu', zone: 'eu-a', subZone: '' };
  const healthyCla = translated([client, reviews([
    endpoint('10.0.0.1', { locality: loc('eu', 'eu-a') }),
    endpoint('10.0.0.2', { locality: loc('eu', 'eu-a') }),
    endpoint('10.0.1.1', { locality: loc('us', 'us-a') }),
    endpoint('10.0.1.2', { locality: loc('us', 'us-a') }),
  ])], undefined, CLUSTER, 'client-eu-a').cla;
  const all = countPicks(new RoundRobinLoadBalancer(EndpointSet.fromLoadAssignment(healthyCla, { localLocality: local })), context(6), 2000);
  t.deepEqual([...all.keys()].sort(), ['10.0.0.1', '10.0.0.2']);

  const halfCla = translated([client, reviews([
    endpoint('10.0.0.1', { locality: loc('eu', 'eu-a') }),
    endpoint('10.0.0.2', { locality: loc('eu', 'eu-a'), healthy: false }),
    endpoint('10.0.1.1', { locality: loc('us', 'us-a') }),
  ])], undefined, CLUSTER, 'client-eu-a').cla;
  const half = countPicks(new RoundRobinLoadBalancer(EndpointSet.fromLoadAssignment(halfCla, { localLocality: local })), context(7), 10_000);
  t.true(Math.abs(share(half, '10.0.0.1', 10_000) - 70) <= 3, `${share(half, '10.0.0.1', 10_000)}`);
});

test('malformed load assignments are rejected with the field that is wrong', (t) => {
  const bad = (lb: object) => () => EndpointSet.fromLoadAssignment({ cluster_name: 'c', endpoints: [{ lb_endpoints: [lb] }] });
  t.throws(bad({ endpoint: {} }), { message: /c: endpoints\[0\]\.lb_endpoints\[0\] has no socket address/ });
  t.throws(bad({ endpoint: { address: { socket_address: { address: '10.0.0.1' } } }, load_balancing_weight: { value: 0 } }), { message: /load_balancing_weight must be at least 1/ });
  t.throws(bad({ endpoint: { address: { socket_address: { address: '10.0.0.1' } } }, health_status: 'SICK' }), { message: /health_status SICK/ });
});
