// Envoy's previous_priorities retry priority (Istio's retryRemoteLocalities): priority loads
// recomputed without the priorities already tried, Envoy's documented sequences for
// update_frequency 1 and Istio's 2, starting over when nothing is left, and every policy honouring it.
import test from 'ava';
import { endpoint, port, service } from '../../server/translate/testing';
import type { Locality } from '../../server/registry/service';
import { createLoadBalancer, lbConfigFromCluster } from './create-load-balancer';
import { EndpointSet, type DecodedLoadAssignment } from './endpoint-set';
import { hashPosition } from './hash64';
import type { LoadBalancer, PickContext } from './load-balancer';
import { PreviousPriorities } from './previous-priorities';
import { seededRandom, translated } from './testing';

const HOST = 'reviews.default.svc.cluster.local';
const CLUSTER = `outbound|9080||${HOST}`;
const loc = (region: string, zone: string): Locality => ({ region, zone, subzone: '' });
const client = service('client.default.svc.cluster.local', { ports: [port(8000)], endpoints: [endpoint('10.9.0.1', { node: 'client-eu-a', locality: loc('eu', 'eu-a') })] });

/** Three healthy localities that Istio's failover (on with outlier detection) puts at priorities 0, 1 and 2 for an eu-a client. */
function failoverSet(trafficPolicy: Record<string, unknown> = {}): { set: EndpointSet; lb: (previous?: LoadBalancer) => LoadBalancer } {
  const reviews = service(HOST, {
    ports: [port(9080, 'HTTP', 'http')],
    endpoints: [endpoint('10.0.0.1', { locality: loc('eu', 'eu-a') }), endpoint('10.0.1.1', { locality: loc('eu', 'eu-b') }), endpoint('10.0.2.1', { locality: loc('us', 'us-a') })],
  });
  const { cluster, cla } = translated([client, reviews], { host: HOST, trafficPolicy: { outlierDetection: { consecutive5xxErrors: 1000 }, ...trafficPolicy } }, CLUSTER, 'client-eu-a');
  const set = EndpointSet.fromLoadAssignment(cla);
  return { set, lb: (previous) => createLoadBalancer(lbConfigFromCluster(cluster), set, previous) };
}

/** A load assignment by hand: per priority, [healthy, unhealthy] endpoint counts; overprovisioning 1.0 so health = healthy share. */
function healthSet(levels: ReadonlyArray<readonly [number, number]>): EndpointSet {
  let n = 0;
  const lbEndpoint = (status: string) => ({ endpoint: { address: { socket_address: { address: `10.0.0.${++n}`, port_value: 80 } } }, health_status: status });
  const cla: DecodedLoadAssignment = {
    cluster_name: 'c',
    policy: { overprovisioning_factor: { value: 100 } },
    endpoints: levels.map(([healthy, unhealthy], priority) => ({
      priority,
      locality: { zone: `z${priority}` },
      lb_endpoints: [...Array.from({ length: healthy }, () => lbEndpoint('HEALTHY')), ...Array.from({ length: unhealthy }, () => lbEndpoint('UNHEALTHY'))],
    })),
  };
  return EndpointSet.fromLoadAssignment(cla);
}

/** The priority each of `picks` picks lands on, with `retry` adjusting the loads. */
function prioritiesPicked(lb: LoadBalancer, retry: PreviousPriorities | undefined, picks: number, hash?: number): Set<number> {
  const random = seededRandom(picks);
  const context: PickContext = { random, priorityLoad: retry, ...(hash !== undefined ? { hash } : {}) };
  const seen = new Set<number>();
  for (let i = 0; i < picks; i++) seen.add(lb.pick(context)!.priority);
  return seen;
}

test('Envoy\'s documented example: healths {100, 50, 50} load {100, 0, 0}; without P0 the load is {0, 50, 50}', (t) => {
  const set = healthSet([[2, 0], [1, 1], [1, 1]]);
  t.deepEqual(set.priorities.map((p) => [p.health, p.load]), [[100, 100], [50, 0], [50, 0]]);
  t.deepEqual(set.priorityLoadsExcluding(new Set()), [100, 0, 0]);
  t.deepEqual(set.priorityLoadsExcluding(new Set([0])), [0, 50, 50]);
  // P2 alone has half the capacity: scaled up to carry all, as at any pick.
  t.deepEqual(set.priorityLoadsExcluding(new Set([0, 1])), [0, 0, 100]);
  t.is(set.priorityLoadsExcluding(new Set([0, 1, 2])), undefined, 'nothing left: the caller starts over');
});

test('update_frequency 1, healths {100, 0, 50}: attempts go P0, P2, then P0 again (reset), P2 — Envoy\'s documented sequence', (t) => {
  const set = healthSet([[2, 0], [0, 2], [1, 1]]);
  const lb = createLoadBalancer({ policy: 'ROUND_ROBIN', localityWeighted: false }, set);
  const retry = new PreviousPriorities(1);
  const sequence: number[] = [];
  for (let attempt = 0; attempt < 4; attempt++) {
    const picked = [...prioritiesPicked(lb, retry, 200)];
    t.is(picked.length, 1, `attempt ${attempt + 1} stays in one priority: ${picked.join(',')}`);
    sequence.push(picked[0]!);
    retry.hostAttempted(picked[0]!);
  }
  t.deepEqual(sequence, [0, 2, 0, 2]);
});

test('Istio\'s update_frequency 2: the first two attempts use the original loads, the third and fourth leave out what the first two tried', (t) => {
  const { set, lb } = failoverSet();
  t.deepEqual(set.priorities.map((p) => p.load), [100, 0, 0], 'all healthy: priority 0 takes everything');
  const balancer = lb();
  const retry = new PreviousPriorities(2);
  t.deepEqual([...prioritiesPicked(balancer, retry, 100)], [0], 'first attempt');
  retry.hostAttempted(0);
  t.deepEqual([...prioritiesPicked(balancer, retry, 100)], [0], 'first retry: still the original loads, though P0 was tried');
  retry.hostAttempted(0);
  t.deepEqual(retry.excludedPriorities(), [], 'exclusions are computed at the next pick');
  t.deepEqual([...prioritiesPicked(balancer, retry, 100)], [1], 'second retry: P0 excluded, the next locality takes all');
  t.deepEqual(retry.excludedPriorities(), [0]);
  retry.hostAttempted(1);
  t.deepEqual([...prioritiesPicked(balancer, retry, 100)], [1], 'third retry: the exclusions of the second still stand');
  retry.hostAttempted(1);
  t.deepEqual([...prioritiesPicked(balancer, retry, 100)], [2], 'fourth retry: P0 and P1 excluded');
  retry.hostAttempted(2);
  retry.hostAttempted(2);
  t.deepEqual([...prioritiesPicked(balancer, retry, 100)], [0], 'every priority tried: start over from the original loads');
  t.deepEqual(retry.excludedPriorities(), []);
});

test('no override, or one that keeps the set\'s own loads, picks exactly as before', (t) => {
  const { lb } = failoverSet();
  t.deepEqual([...prioritiesPicked(lb(), undefined, 200)], [0]);
  t.deepEqual([...prioritiesPicked(lb(), new PreviousPriorities(2), 200)], [0]);
});

test('an endpoint set rebuilt between attempts (health change) gets loads recomputed from its own health', (t) => {
  const retry = new PreviousPriorities(1);
  retry.hostAttempted(0);
  const before = healthSet([[1, 0], [1, 0], [1, 0]]);
  t.deepEqual([...retry.thresholdsFor(before)!], [0, 100, 100]);
  // P1 lost its endpoint: what P0 does not take now goes to P2.
  const after = healthSet([[1, 0], [0, 1], [1, 0]]);
  t.deepEqual([...retry.thresholdsFor(after)!], [0, 0, 100]);
});

test('update_frequency must be at least 1', (t) => {
  t.throws(() => new PreviousPriorities(0), { message: /update_frequency must be an integer greater than 0, got 0/ });
});

for (const [name, trafficPolicy, hash] of [
  ['ROUND_ROBIN', { loadBalancer: { simple: 'ROUND_ROBIN' } }, undefined],
  ['LEAST_REQUEST', { loadBalancer: { simple: 'LEAST_REQUEST' } }, undefined],
  ['RANDOM', { loadBalancer: { simple: 'RANDOM' } }, undefined],
  ['RING_HASH', { loadBalancer: { consistentHash: { httpHeaderName: 'x-user', ringHash: { minimumRingSize: 64 } } } }, hashPosition('user-1')],
  ['MAGLEV', { loadBalancer: { consistentHash: { httpHeaderName: 'x-user', maglev: { tableSize: 307 } } } }, hashPosition('user-1')],
] as const) {
  test(`${name} honours the adjusted priority loads on a retry`, (t) => {
    const { lb } = failoverSet(trafficPolicy);
    const balancer = lb();
    const retry = new PreviousPriorities(1);
    t.deepEqual([...prioritiesPicked(balancer, retry, 50, hash)], [0]);
    retry.hostAttempted(0);
    t.deepEqual([...prioritiesPicked(balancer, retry, 50, hash)], [1]);
    t.deepEqual([...prioritiesPicked(balancer, undefined, 50, hash)], [0], 'picks without the override keep the original loads');
  });
}
