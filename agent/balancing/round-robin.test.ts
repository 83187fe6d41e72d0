// Round robin over the translator's load assignments: the exact cycle with and without weights,
// unhealthy endpoints skipped.
import test from 'ava';
import { endpoint, port, service } from '../../server/translate/testing';
import { EndpointSet } from './endpoint-set';
import { RoundRobinLoadBalancer } from './round-robin';
import { context, translated } from './testing';

const HOST = 'reviews.default.svc.cluster.local';
const CLUSTER = `outbound|9080||${HOST}`;
const RR = { host: HOST, trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' as const } } };

function picks(endpoints: ReturnType<typeof endpoint>[], count: number): string[] {
  const { cla } = translated([service(HOST, { ports: [port(9080, 'HTTP', 'http')], endpoints })], RR, CLUSTER, 'host-x');
  const lb = new RoundRobinLoadBalancer(EndpointSet.fromLoadAssignment(cla));
  const ctx = context(1);
  return Array.from({ length: count }, () => lb.pick(ctx)!.address.slice(-1));
}

test('equal weights rotate through the healthy endpoints in order, skipping the unhealthy one', (t) => {
  t.deepEqual(picks([endpoint('10.0.0.1'), endpoint('10.0.0.2', { healthy: false }), endpoint('10.0.0.3'), endpoint('10.0.0.4')], 7), ['1', '3', '4', '1', '3', '4', '1']);
});

test('weights 3:1 give the smooth cycle a a b a, every cycle', (t) => {
  t.deepEqual(picks([endpoint('10.0.0.1', { weight: 3 }), endpoint('10.0.0.2', { weight: 1 })], 8), ['1', '1', '2', '1', '1', '1', '2', '1']);
});

test('weights 5:1:1 give each endpoint exactly its weight in every cycle of 7, never three a in a row', (t) => {
  const seq = picks([endpoint('10.0.0.1', { weight: 5 }), endpoint('10.0.0.2'), endpoint('10.0.0.3')], 70);
  for (let cycle = 0; cycle < 10; cycle++) {
    const window = seq.slice(cycle * 7, cycle * 7 + 7);
    t.deepEqual([window.filter((x) => x === '1').length, window.filter((x) => x === '2').length, window.filter((x) => x === '3').length], [5, 1, 1]);
  }
  t.deepEqual(seq.slice(0, 7), ['1', '1', '2', '1', '3', '1', '1']);
});
