// Least request (power of two choices) over the translator's load assignments: the less loaded
// endpoint is preferred, weights are honoured, unhealthy endpoints never picked.
import test from 'ava';
import { endpoint, port, service } from '../../server/translate/testing';
import { EndpointSet, type Endpoint } from './endpoint-set';
import { LeastRequestLoadBalancer } from './least-request';
import { RandomLoadBalancer } from './random';
import type { LoadBalancer } from './load-balancer';
import { context, countPicks, share, translated } from './testing';

const HOST = 'reviews.default.svc.cluster.local';
const CLUSTER = `outbound|9080||${HOST}`;

function setOf(endpoints: ReturnType<typeof endpoint>[]): EndpointSet {
  // No DestinationRule: LEAST_REQUEST is Istio's default policy.
  const { cluster, cla } = translated([service(HOST, { ports: [port(9080, 'HTTP', 'http')], endpoints })], undefined, CLUSTER, 'host-x');
  if (cluster.lb_policy !== 'LEAST_REQUEST') throw new Error(`expected LEAST_REQUEST, got ${cluster.lb_policy}`);
  return EndpointSet.fromLoadAssignment(cla);
}

test('an endpoint with requests in flight is picked only when both choices land on it (1 in 4 of 2)', (t) => {
  const set = setOf([endpoint('10.0.0.1'), endpoint('10.0.0.2')]);
  const lb = new LeastRequestLoadBalancer(set);
  const busy = set.endpoints[0]!;
  for (let i = 0; i < 5; i++) lb.started(busy);
  t.is(lb.activeRequests(busy), 5);
  const counts = countPicks(lb, context(11), 10_000);
  t.true(Math.abs(share(counts, '10.0.0.1', 10_000) - 25) <= 3, `${share(counts, '10.0.0.1', 10_000)}`);
  for (let i = 0; i < 5; i++) lb.finished(busy);
  t.is(lb.activeRequests(busy), 0);
  const even = countPicks(lb, context(12), 10_000);
  t.true(Math.abs(share(even, '10.0.0.1', 10_000) - 50) <= 3);
});

/** Largest minus smallest in-flight count after `n` requests that never finish. */
function spread(lb: LoadBalancer, set: EndpointSet, n: number): number {
  const active = new Map<Endpoint, number>(set.healthy.map((e) => [e, 0]));
  const ctx = context(13);
  for (let i = 0; i < n; i++) {
    const e = lb.pick(ctx)!;
    lb.started(e);
    active.set(e, active.get(e)! + 1);
  }
  return Math.max(...active.values()) - Math.min(...active.values());
}

test('with requests piling up, two choices keep in-flight counts far tighter than random picks', (t) => {
  const set = setOf([1, 2, 3, 4, 5, 6, 7, 8].map((i) => endpoint(`10.0.0.${i}`)));
  const leastRequest = spread(new LeastRequestLoadBalancer(set), set, 4000);
  const random = spread(new RandomLoadBalancer(set), set, 4000);
  t.true(leastRequest <= 4, `least request spread ${leastRequest}`);
  t.true(random >= 20, `random spread ${random}`);
});

test('unequal weights 1:3 are honoured within ±3 points over 10 000 picks', (t) => {
  const set = setOf([endpoint('10.0.0.1', { weight: 1 }), endpoint('10.0.0.2', { weight: 3 })]);
  const counts = countPicks(new LeastRequestLoadBalancer(set), context(14), 10_000);
  t.true(Math.abs(share(counts, '10.0.0.2', 10_000) - 75) <= 3, `${share(counts, '10.0.0.2', 10_000)}`);
});

test('with unequal weights, active requests lower an endpoint\'s effective weight (weight / (active + 1))', (t) => {
  const set = setOf([endpoint('10.0.0.1', { weight: 1 }), endpoint('10.0.0.2', { weight: 3 })]);
  const lb = new LeastRequestLoadBalancer(set);
  // 3 / (5 + 1) = 0.5 against 1 / 1: the heavier endpoint now gets a third.
  for (let i = 0; i < 5; i++) lb.started(set.endpoints[1]!);
  const counts = countPicks(lb, context(15), 9_000);
  t.true(Math.abs(share(counts, '10.0.0.2', 9_000) - 100 / 3) <= 3, `${share(counts, '10.0.0.2', 9_000)}`);
});

test('unhealthy endpoints are never picked, even when they are the least loaded', (t) => {
  const set = setOf([endpoint('10.0.0.1'), endpoint('10.0.0.2', { healthy: false }), endpoint('10.0.0.3')]);
  const lb = new LeastRequestLoadBalancer(set);
  for (let i = 0; i < 10; i++) lb.started(set.endpoints[0]!);
  const counts = countPicks(lb, context(16), 2000);
  t.false(counts.has('10.0.0.2'));
});

test('choice_count below 2 is refused', (t) => {
  const set = setOf([endpoint('10.0.0.1')]);
  t.throws(() => new LeastRequestLoadBalancer(set, { choiceCount: 1 }), { message: /choice_count must be at least 2/ });
});

test('after an EDS update, in-flight counts carry over for endpoints that stay, and late finishes land on them', (t) => {
  const before = setOf([endpoint('10.0.0.1'), endpoint('10.0.0.2'), endpoint('10.0.0.3')]);
  const old = new LeastRequestLoadBalancer(before);
  for (let i = 0; i < 4; i++) old.started(before.endpoints[1]!);
  old.started(before.endpoints[2]!);
  // 10.0.0.1 leaves, so 10.0.0.2 moves from index 1 to index 0 in the new set.
  const after = setOf([endpoint('10.0.0.2'), endpoint('10.0.0.3'), endpoint('10.0.0.4')]);
  const lb = new LeastRequestLoadBalancer(after, { previous: old });
  t.deepEqual(after.endpoints.map((e) => lb.activeRequests(e)), [4, 1, 0]);
  // A request started before the update finishes against the new balancer with its old endpoint object.
  lb.finished(before.endpoints[1]!);
  t.is(lb.activeRequests(after.endpoints[0]!), 3);
  lb.finished(before.endpoints[0]!);
  t.deepEqual(after.endpoints.map((e) => lb.activeRequests(e)), [3, 1, 0], 'an endpoint that left changes nothing');
});
