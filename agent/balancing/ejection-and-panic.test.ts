// Ejected endpoints and Envoy's panic threshold in the endpoint set: ejected endpoints are
// skipped like unhealthy ones with priority spill-over, and below the panic threshold a priority
// uses all of its endpoints while the priorities together cannot carry the load.
import test from 'ava';
import { endpoint, port, service } from '../../server/translate/testing';
import type { Locality } from '../../server/registry/service';
import { DEFAULT_PANIC_THRESHOLD, createLoadBalancer, endpointSetFor, lbConfigFromCluster, panicThresholdFromCluster } from './create-load-balancer';
import { EndpointSet, type DecodedLoadAssignment } from './endpoint-set';
import { RoundRobinLoadBalancer } from './round-robin';
import { countPicks, context, translated } from './testing';

const HOST = 'reviews.default.svc.cluster.local';
const CLUSTER = `outbound|9080||${HOST}`;
const loc = (region: string, zone: string): Locality => ({ region, zone, subzone: '' });
const client = service('client.default.svc.cluster.local', { ports: [port(8000)], endpoints: [endpoint('10.9.0.1', { node: 'client-eu-a', locality: loc('eu', 'eu-a') })] });

function cla(groups: Array<{ priority: number; addresses: string[]; unhealthy?: string[] }>): DecodedLoadAssignment {
  return {
    cluster_name: 'c',
    endpoints: groups.map((g) => ({
      priority: g.priority,
      lb_endpoints: g.addresses.map((address) => ({
        endpoint: { address: { socket_address: { address, port_value: 80 } } },
        health_status: g.unhealthy?.includes(address) ? 'UNHEALTHY' : 'HEALTHY',
      })),
    })),
  };
}

test('an ejected endpoint is skipped like an unhealthy one and its priority\'s load spills over by the 1.4 factor', (t) => {
  const assignment = cla([{ priority: 0, addresses: ['10.0.0.1', '10.0.0.2'] }, { priority: 1, addresses: ['10.0.1.1'] }]);
  const set = EndpointSet.fromLoadAssignment(assignment, { ejected: new Set(['10.0.0.2:80']) });
  t.false(set.endpoints[1]!.healthy);
  t.is(set.endpoints[1]!.health, 'HEALTHY', 'the EDS health stays as sent');
  t.deepEqual(set.priorities.map((p) => p.load), [70, 30]);
  const counts = countPicks(new RoundRobinLoadBalancer(set), context(1), 1000);
  t.false(counts.has('10.0.0.2'));
});

test('with the whole local locality ejected, Istio\'s failover priorities send everything to the next locality in order', (t) => {
  const { cluster, cla: assignment } = translated([client, service(HOST, { ports: [port(9080, 'HTTP', 'http')], endpoints: [
    endpoint('10.0.0.1', { locality: loc('eu', 'eu-a') }),
    endpoint('10.0.0.2', { locality: loc('eu', 'eu-b') }),
    endpoint('10.0.0.3', { locality: loc('us', 'us-a') }),
  ] })], { host: HOST, trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1 } } }, CLUSTER, 'client-eu-a');
  const config = lbConfigFromCluster(cluster);
  const panicThreshold = panicThresholdFromCluster(cluster);
  t.is(panicThreshold, 0, 'Istio\'s minHealthPercent default turns panic off');
  const local = createLoadBalancer(config, endpointSetFor(config, assignment, { panicThreshold }));
  t.deepEqual([...countPicks(local, context(2), 100).keys()], ['10.0.0.1']);
  const sameRegion = createLoadBalancer(config, endpointSetFor(config, assignment, { panicThreshold, ejected: new Set(['10.0.0.1:9080']) }));
  t.deepEqual([...countPicks(sameRegion, context(3), 100).keys()], ['10.0.0.2']);
  const remote = createLoadBalancer(config, endpointSetFor(config, assignment, { panicThreshold, ejected: new Set(['10.0.0.1:9080', '10.0.0.2:9080']) }));
  t.deepEqual([...countPicks(remote, context(4), 100).keys()], ['10.0.0.3']);
  const none = createLoadBalancer(config, endpointSetFor(config, assignment, { panicThreshold, ejected: new Set(['10.0.0.1:9080', '10.0.0.2:9080', '10.0.0.3:9080']) }));
  t.is(none.pick(context(5)), undefined, 'no panic mode at minHealthPercent 0: nothing to pick');
});

test('every policy skips ejected endpoints', (t) => {
  const assignment = cla([{ priority: 0, addresses: ['10.0.0.1', '10.0.0.2', '10.0.0.3'] }]);
  for (const lb_policy of ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH', 'MAGLEV']) {
    const config = lbConfigFromCluster({ name: 'c', lb_policy });
    const balancer = createLoadBalancer(config, endpointSetFor(config, assignment, { ejected: new Set(['10.0.0.2:80']) }));
    const picked = new Set<string>();
    for (let i = 0; i < 300; i++) picked.add(balancer.pick({ random: Math.random, hash: BigInt.asUintN(64, BigInt(i + 1) * 0x9e3779b97f4a7c15n) })!.address);
    t.deepEqual([...picked].sort(), ['10.0.0.1', '10.0.0.3'], lb_policy);
  }
});

test('Envoy\'s default panic threshold is 50%; with one priority below it, picks ignore health', (t) => {
  t.is(panicThresholdFromCluster({ name: 'c' }), DEFAULT_PANIC_THRESHOLD);
  t.is(panicThresholdFromCluster({ name: 'c', common_lb_config: { healthy_panic_threshold: {} } }), 0, 'a stated 0 decodes as {}');
  t.throws(() => panicThresholdFromCluster({ name: 'c', common_lb_config: { healthy_panic_threshold: { value: 120 } } }), { message: /cluster c: common_lb_config.healthy_panic_threshold must be 0..100/ });
  const assignment = cla([{ priority: 0, addresses: ['10.0.0.1', '10.0.0.2', '10.0.0.3'], unhealthy: ['10.0.0.2', '10.0.0.3'] }]);
  const panicking = EndpointSet.fromLoadAssignment(assignment, { panicThreshold: 50 });
  t.true(panicking.priorities[0]!.panic);
  t.deepEqual([...countPicks(new RoundRobinLoadBalancer(panicking), context(6), 300).keys()].sort(), ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
  const calm = EndpointSet.fromLoadAssignment(assignment, { panicThreshold: 30 });
  t.false(calm.priorities[0]!.panic, '33% healthy is above a 30% threshold');
  t.deepEqual([...countPicks(new RoundRobinLoadBalancer(calm), context(7), 300).keys()], ['10.0.0.1']);
});

test('panic is disregarded while lower priorities can take the load (normalized total health 100)', (t) => {
  // P0 at 25% healthy (below 50) but P1 fully healthy: P0 gets 35%, P1 65%, P0 stays out of panic.
  const assignment = cla([
    { priority: 0, addresses: ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'], unhealthy: ['10.0.0.2', '10.0.0.3', '10.0.0.4'] },
    { priority: 1, addresses: ['10.0.1.1'] },
  ]);
  const set = EndpointSet.fromLoadAssignment(assignment, { panicThreshold: 50 });
  t.deepEqual(set.priorities.map((p) => [p.load, p.panic]), [[35, false], [65, false]]);
});

test('every priority in panic: the load is split by endpoint counts and each priority uses all its endpoints', (t) => {
  const assignment = cla([
    { priority: 0, addresses: ['10.0.0.1', '10.0.0.2', '10.0.0.3'], unhealthy: ['10.0.0.1', '10.0.0.2', '10.0.0.3'] },
    { priority: 1, addresses: ['10.0.1.1'], unhealthy: ['10.0.1.1'] },
  ]);
  const set = EndpointSet.fromLoadAssignment(assignment, { panicThreshold: 50 });
  t.deepEqual(set.priorities.map((p) => [p.load, p.panic]), [[75, true], [25, true]]);
  const counts = countPicks(new RoundRobinLoadBalancer(set), context(8), 4000);
  t.true(Math.abs((counts.get('10.0.1.1') ?? 0) / 40 - 25) <= 3, `${counts.get('10.0.1.1')}`);
});

test('locality-weighted (distribute): an ejected endpoint lowers its locality\'s effective weight like an unhealthy one', (t) => {
  const assignment: DecodedLoadAssignment = {
    cluster_name: 'c',
    endpoints: ['a', 'b'].map((zone, z) => ({
      locality: { zone },
      load_balancing_weight: { value: 50 },
      lb_endpoints: [1, 2].map((i) => ({ endpoint: { address: { socket_address: { address: `10.0.${z}.${i}`, port_value: 80 } } } })),
    })),
  };
  // Zone a: 50 × min(1, 1/2 × 1.4) = 35 against zone b's 50.
  const counts = countPicks(new RoundRobinLoadBalancer(EndpointSet.fromLoadAssignment(assignment, { localityWeighted: true, ejected: new Set(['10.0.0.1:80']) })), context(9), 8500);
  t.false(counts.has('10.0.0.1'));
  t.true(Math.abs((counts.get('10.0.0.2') ?? 0) / 85 - (35 * 100) / 85) <= 3, `${counts.get('10.0.0.2')}`);
  const gone = EndpointSet.fromLoadAssignment(assignment, { localityWeighted: true, ejected: new Set(['10.0.0.1:80', '10.0.0.2:80']) });
  t.deepEqual([...countPicks(new RoundRobinLoadBalancer(gone), context(10), 100).keys()].sort(), ['10.0.1.1', '10.0.1.2']);
});
