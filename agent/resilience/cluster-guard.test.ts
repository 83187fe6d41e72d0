// A cluster's guard end to end on translated config: failures reported to the detector change
// what the balancer picks (locality failover in order, back after the ejection time), and a new
// config keeps breaker counts and outlier state while a removed cluster stops its timer.
import test from 'ava';
import { endpoint, port, service } from '../../server/translate/testing';
import type { Locality } from '../../server/registry/service';
import { countPicks, context, translated } from '../balancing/testing';
import { TypeUrl } from '../../lib/xds/protos';
import { validateResources } from '../mesh-agent';
import { ClusterGuards, clusterResilience } from './cluster-guard';
import { ManualClock } from './testing';

const HOST = 'reviews.default.svc.cluster.local';
const CLUSTER = `outbound|9080||${HOST}`;
const loc = (region: string, zone: string): Locality => ({ region, zone, subzone: '' });
const client = service('client.default.svc.cluster.local', { ports: [port(8000)], endpoints: [endpoint('10.9.0.1', { node: 'client-eu-a', locality: loc('eu', 'eu-a') })] });
const reviews = (addresses: Array<[string, Locality]>) => service(HOST, { ports: [port(9080, 'HTTP', 'http')], endpoints: addresses.map(([a, l]) => endpoint(a, { locality: l })) });
const RULE = { host: HOST, trafficPolicy: { connectionPool: { tcp: { maxConnections: 2 } }, outlierDetection: { consecutive5xxErrors: 2, interval: '1s', baseEjectionTime: '10s', maxEjectionPercent: 100 } } };

function fixture(addresses: Array<[string, Locality]>, rule: object = RULE) {
  const { cluster, cla } = translated([client, reviews(addresses)], rule as never, CLUSTER, 'client-eu-a');
  return { settings: clusterResilience(cluster), cla };
}

const THREE: Array<[string, Locality]> = [['10.0.0.1', loc('eu', 'eu-a')], ['10.0.0.2', loc('eu', 'eu-b')], ['10.0.0.3', loc('us', 'us-a')]];

test('ejecting the local endpoint fails over to the same region, then to the other region, and back after the ejection time', (t) => {
  const clock = new ManualClock();
  const guards = new ClusterGuards(clock);
  const { settings, cla } = fixture(THREE);
  const guard = guards.update(CLUSTER, settings, cla);
  const picks = () => [...countPicks(guard.balancer, context(1), 50).keys()];
  t.deepEqual(picks(), ['10.0.0.1']);
  guard.detector!.recordFailure('10.0.0.1:9080', 'connect-failure');
  guard.detector!.recordResponse('10.0.0.1:9080', 503);
  t.deepEqual(picks(), ['10.0.0.2']);
  guard.detector!.recordResponse('10.0.0.2:9080', 500);
  guard.detector!.recordResponse('10.0.0.2:9080', 500);
  t.deepEqual(picks(), ['10.0.0.3']);
  clock.advance(10_000);
  t.deepEqual(picks(), ['10.0.0.1']);
  t.like(guard.stats().outlier_detection, { ejections_enforced_total: 2, ejections_active: 0 });
  t.like(guards.stats()[`cluster.${CLUSTER}`], { upstream_cx_overflow: 0, 'circuit_breakers.default.remaining_cx': 2, 'outlier_detection.ejections_enforced_total': 2 });
  guards.close();
  t.is(clock.activeTimers, 0);
});

test('a new config keeps open connections, ejections and the consecutive counts of endpoints that stay', (t) => {
  const clock = new ManualClock();
  const guards = new ClusterGuards(clock);
  const first = fixture(THREE);
  const guard = guards.update(CLUSTER, first.settings, first.cla);
  t.true(guard.breaker.tryAcquireConnection());
  t.true(guard.breaker.tryAcquireConnection());
  for (let i = 0; i < 2; i++) guard.detector!.recordResponse('10.0.0.1:9080', 500);
  guard.detector!.recordResponse('10.0.0.2:9080', 500);
  const second = fixture([...THREE, ['10.0.0.4', loc('eu', 'eu-a')]], { ...RULE, trafficPolicy: { ...RULE.trafficPolicy, connectionPool: { tcp: { maxConnections: 3 } } } });
  t.is(guards.update(CLUSTER, second.settings, second.cla), guard, 'the same guard object lives on');
  t.is(clock.activeTimers, 1);
  t.true(guard.breaker.tryAcquireConnection(), 'the third fits the new limit of 3');
  t.false(guard.breaker.tryAcquireConnection(), 'the two opened before still count');
  // 10.0.0.1 is still ejected: half of eu-a is healthy, so 70% stays on 10.0.0.4 and 30% spills to eu-b.
  const counts = countPicks(guard.balancer, context(2), 1000);
  t.false(counts.has('10.0.0.1'));
  t.true(Math.abs((counts.get('10.0.0.4') ?? 0) / 10 - 70) <= 5, `${counts.get('10.0.0.4')}`);
  guard.detector!.recordResponse('10.0.0.2:9080', 500);
  t.true(guard.detector!.isEjected('10.0.0.2:9080'));
});

test('a cluster that leaves the config stops its timer; one that loses outlier detection drops its ejections', (t) => {
  const clock = new ManualClock();
  const guards = new ClusterGuards(clock);
  const { settings, cla } = fixture(THREE);
  const guard = guards.update(CLUSTER, settings, cla);
  for (let i = 0; i < 2; i++) guard.detector!.recordResponse('10.0.0.1:9080', 500);
  const plain = fixture(THREE, { host: HOST });
  guards.update(CLUSTER, plain.settings, plain.cla);
  t.is(guard.detector, undefined);
  t.is(clock.activeTimers, 0);
  t.true(countPicks(guard.balancer, context(3), 300).has('10.0.0.1'));
  const grown = fixture([...THREE, ['10.0.0.4', loc('eu', 'eu-a')]]);
  guards.update(CLUSTER, grown.settings, grown.cla);
  t.is(clock.activeTimers, 1);
  for (let i = 0; i < 2; i++) guard.detector!.recordResponse('10.0.0.4:9080', 500);
  t.true(guard.detector!.isEjected('10.0.0.4:9080'), 'a detector created by an update watches the update\'s endpoints');
  guards.retain(new Set());
  t.is(clock.activeTimers, 0);
  t.is(guards.get(CLUSTER), undefined);
});

test('the agent NACKs a cluster whose resilience settings it cannot honour, naming cluster and field, and accepts Istio\'s usual ones', (t) => {
  const bad = translated([client, reviews(THREE)], { host: HOST, trafficPolicy: { connectionPool: { tcp: { tcpKeepalive: { time: '60s', interval: '10s' } } } } } as never, CLUSTER, 'client-eu-a').cluster as Record<string, unknown>;
  const message = validateResources(TypeUrl.Cluster, new Map<string, Record<string, unknown>>([[CLUSTER, bad]]));
  t.regex(message ?? '', /^cluster outbound\|9080\|\|reviews\.default\.svc\.cluster\.local: upstream_connection_options\.tcp_keepalive\.keepalive_interval cannot be honoured/);
  const unsupported = { ...translated([client, reviews(THREE)], RULE as never, CLUSTER, 'client-eu-a').cluster, outlier_detection: { enforcing_success_rate: { value: 100 } } };
  t.regex(validateResources(TypeUrl.Cluster, new Map<string, Record<string, unknown>>([[CLUSTER, unsupported]])) ?? '', /outlier_detection\.enforcing_success_rate is not supported/);
  const good = translated([client, reviews(THREE)], RULE as never, CLUSTER, 'client-eu-a').cluster as Record<string, unknown>;
  t.is(validateResources(TypeUrl.Cluster, new Map<string, Record<string, unknown>>([[CLUSTER, good]])), undefined);
});
