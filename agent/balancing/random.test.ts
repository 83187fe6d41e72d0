// The random policy: uniform over healthy endpoints, ignoring endpoint weights as Envoy does,
// and never an unhealthy endpoint.
import test from 'ava';
import { endpoint, port, service } from '../../server/translate/testing';
import { EndpointSet } from './endpoint-set';
import { RandomLoadBalancer } from './random';
import { context, countPicks, share, translated } from './testing';

const HOST = 'reviews.default.svc.cluster.local';

test('random picks spread evenly over healthy endpoints (±3 points over 9 000 picks), weights ignored', (t) => {
  const endpoints = [endpoint('10.0.0.1', { weight: 5 }), endpoint('10.0.0.2'), endpoint('10.0.0.3'), endpoint('10.0.0.4', { healthy: false })];
  const { cluster, cla } = translated([service(HOST, { ports: [port(9080, 'HTTP', 'http')], endpoints })], { host: HOST, trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } }, `outbound|9080||${HOST}`, 'host-x');
  t.is(cluster.lb_policy, 'RANDOM');
  const counts = countPicks(new RandomLoadBalancer(EndpointSet.fromLoadAssignment(cla)), context(21), 9_000);
  for (const address of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) t.true(Math.abs(share(counts, address, 9_000) - 100 / 3) <= 3, `${address} ${share(counts, address, 9_000)}`);
  t.false(counts.has('10.0.0.4'));
});
