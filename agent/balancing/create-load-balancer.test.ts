// Choosing the policy from the translator's decoded clusters: every lb_policy Istio's
// DestinationRule can produce, their configs, NACK messages, and health respected by all policies.
import test from 'ava';
import { endpoint, port, service } from '../../server/translate/testing';
import type { DestinationRuleSpec } from '../../server/translate/specs';
import { createLoadBalancer, endpointSetFor, lbConfigFromCluster } from './create-load-balancer';
import { LeastRequestLoadBalancer } from './least-request';
import { MaglevLoadBalancer } from './maglev';
import { RandomLoadBalancer } from './random';
import { RingHashLoadBalancer } from './ring-hash';
import { RoundRobinLoadBalancer } from './round-robin';
import { context, countPicks, translated } from './testing';

const HOST = 'reviews.default.svc.cluster.local';
const CLUSTER = `outbound|9080||${HOST}`;
const endpoints = [endpoint('10.0.0.1'), endpoint('10.0.0.2', { healthy: false }), endpoint('10.0.0.3', { weight: 2 })];

function fromRule(loadBalancer: NonNullable<DestinationRuleSpec['trafficPolicy']>['loadBalancer'] | undefined) {
  const rule = loadBalancer ? { host: HOST, trafficPolicy: { loadBalancer } } : undefined;
  return translated([service(HOST, { ports: [port(9080, 'HTTP', 'http')], endpoints })], rule, CLUSTER, 'host-x');
}

const cases = [
  ['no rule (Istio\'s default)', undefined, { policy: 'LEAST_REQUEST', localityWeighted: false, choiceCount: 2, activeRequestBias: 1 }, LeastRequestLoadBalancer],
  ['ROUND_ROBIN', { simple: 'ROUND_ROBIN' as const }, { policy: 'ROUND_ROBIN', localityWeighted: false }, RoundRobinLoadBalancer],
  ['RANDOM', { simple: 'RANDOM' as const }, { policy: 'RANDOM', localityWeighted: false }, RandomLoadBalancer],
  ['consistentHash', { consistentHash: { httpHeaderName: 'x', ringHash: { minimumRingSize: 4096 } } }, { policy: 'RING_HASH', localityWeighted: false, minimumRingSize: 4096, maximumRingSize: 8 * 1024 * 1024 }, RingHashLoadBalancer],
  ['consistentHash maglev', { consistentHash: { httpHeaderName: 'x', maglev: { tableSize: 65537 } } }, { policy: 'MAGLEV', localityWeighted: false, tableSize: 65537 }, MaglevLoadBalancer],
] as const;

for (const [name, lb, expected, type] of cases) {
  test(`${name}: the decoded cluster becomes ${expected.policy} and its balancer never picks the unhealthy endpoint`, (t) => {
    const { cluster, cla } = fromRule(lb);
    const config = lbConfigFromCluster(cluster);
    t.deepEqual(config, expected);
    const balancer = createLoadBalancer(config, endpointSetFor(config, cla));
    t.true(balancer instanceof type);
    const counts = countPicks(balancer, context(31), 3000);
    t.false(counts.has('10.0.0.2'));
    t.deepEqual([...counts.keys()].sort(), ['10.0.0.1', '10.0.0.3']);
  });
}

test('an absent lb_policy is ROUND_ROBIN, the enum\'s zero value', (t) => {
  t.deepEqual(lbConfigFromCluster({ name: 'c' }), { policy: 'ROUND_ROBIN', localityWeighted: false });
});

test('least_request_lb_config and locality_weighted_lb_config are read', (t) => {
  const config = lbConfigFromCluster({
    name: 'c',
    lb_policy: 'LEAST_REQUEST',
    least_request_lb_config: { choice_count: { value: 3 }, active_request_bias: { default_value: 0.5 } },
    common_lb_config: { locality_weighted_lb_config: {} },
  });
  t.deepEqual(config, { policy: 'LEAST_REQUEST', localityWeighted: true, choiceCount: 3, activeRequestBias: 0.5 });
  const set = endpointSetFor(config, {
    endpoints: [
      { locality: { zone: 'a' }, load_balancing_weight: { value: 1 }, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 80 } } } }] },
      { locality: { zone: 'b' }, load_balancing_weight: { value: 3 }, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.2', port_value: 80 } } } }] },
    ],
  });
  t.is(set.priorities[0]!.pools.length, 2, 'one pool per weighted locality');
});

test('unsupported policies and bad configs throw messages fit for a NACK', (t) => {
  t.throws(() => lbConfigFromCluster({ name: 'outbound|80||a', lb_policy: 'CLUSTER_PROVIDED' }), {
    message: 'cluster outbound|80||a: lb_policy CLUSTER_PROVIDED is not supported by mesh-agent (supported: ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV)',
  });
  t.throws(() => lbConfigFromCluster({ name: 'c', lb_policy: 'LOAD_BALANCING_POLICY_CONFIG' }), { message: /lb_policy LOAD_BALANCING_POLICY_CONFIG is not supported/ });
  t.throws(() => lbConfigFromCluster({ name: 'c', lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: { value: '4096' }, maximum_ring_size: { value: '1024' } } }), { message: /cluster c: ring_hash_lb_config.maximum_ring_size must be 4096\.\./ });
  t.throws(() => lbConfigFromCluster({ name: 'c', lb_policy: 'MAGLEV', maglev_lb_config: { table_size: { value: '1000' } } }), { message: /cluster c: maglev_lb_config.table_size must be a prime/ });
  t.throws(() => lbConfigFromCluster({ name: 'c', lb_policy: 'LEAST_REQUEST', least_request_lb_config: { choice_count: { value: 1 } } }), { message: /cluster c: least_request_lb_config.choice_count/ });
});

test('a least-request balancer rebuilt for a new endpoint set keeps the counts of the one it replaces', (t) => {
  const { cluster, cla } = fromRule(undefined);
  const config = lbConfigFromCluster(cluster);
  const first = createLoadBalancer(config, endpointSetFor(config, cla)) as LeastRequestLoadBalancer;
  const busy = first.pick(context(41))!;
  first.started(busy);
  first.started(busy);
  const next = createLoadBalancer(config, endpointSetFor(config, cla), first) as LeastRequestLoadBalancer;
  t.is(next.activeRequests(busy), 2);
  t.is((createLoadBalancer(config, endpointSetFor(config, cla)) as LeastRequestLoadBalancer).activeRequests(busy), 0);
});
