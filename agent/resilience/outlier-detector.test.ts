// Outlier detection with a hand-driven clock: ejection after N consecutive 5xx or gateway errors,
// local-origin failures counted as 5xx, growing ejection time, max ejection percent, un-ejection
// on the interval timer, settings read from the translator's clusters, and state across updates.
import test from 'ava';
import { endpoint, port, service } from '../../server/translate/testing';
import { OutlierDetector, outlierSettings, type OutlierSettings } from './outlier-detector';
import { ManualClock, translatedCluster } from './testing';

const HOST = 'reviews.default.svc.cluster.local';
const CLUSTER = `outbound|9080||${HOST}`;
const reviews = service(HOST, { ports: [port(9080, 'HTTP', 'http')], endpoints: [endpoint('10.0.0.1')] });

const SETTINGS: OutlierSettings = {
  consecutive5xx: 3,
  enforcingConsecutive5xx: 100,
  consecutiveGatewayFailure: 0,
  enforcingConsecutiveGatewayFailure: 0,
  intervalMs: 1000,
  baseEjectionTimeMs: 10_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 100,
  splitLocalOrigin: false,
  consecutiveLocalOriginFailure: 5,
  enforcingConsecutiveLocalOriginFailure: 100,
};
const KEYS = ['a:1', 'b:1', 'c:1', 'd:1'];

function detector(settings: Partial<OutlierSettings> = {}, keys = KEYS) {
  const clock = new ManualClock();
  let changes = 0;
  const d = new OutlierDetector({ ...SETTINGS, ...settings }, keys, { clock, onChange: () => changes++ });
  return { d, clock, changes: () => changes };
}

test('Istio\'s outlierDetection arrives as Envoy\'s fields with Envoy\'s defaults for the rest', (t) => {
  const cluster = translatedCluster([reviews], { host: HOST, trafficPolicy: { outlierDetection: { consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, interval: '2s', baseEjectionTime: '15s', maxEjectionPercent: 40 } } }, CLUSTER, 'client');
  t.deepEqual(outlierSettings(cluster, CLUSTER), {
    consecutive5xx: 3,
    enforcingConsecutive5xx: 100,
    consecutiveGatewayFailure: 2,
    enforcingConsecutiveGatewayFailure: 100,
    intervalMs: 2000,
    baseEjectionTimeMs: 15_000,
    maxEjectionTimeMs: 300_000,
    maxEjectionPercent: 40,
    splitLocalOrigin: false,
    consecutiveLocalOriginFailure: 5,
    enforcingConsecutiveLocalOriginFailure: 100,
  });
  const split = outlierSettings(translatedCluster([reviews], { host: HOST, trafficPolicy: { outlierDetection: { splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2 } } }, CLUSTER, 'client'), CLUSTER);
  t.like(split, { splitLocalOrigin: true, consecutiveLocalOriginFailure: 2, enforcingConsecutiveLocalOriginFailure: 100 });
  t.is(outlierSettings({}, 'c'), undefined);
});

test('ejection kinds the agent does not compute are refused naming the field', (t) => {
  t.throws(() => outlierSettings({ outlier_detection: {} }, 'c'), { message: /cluster c: outlier_detection.enforcing_success_rate is not supported .* set it to 0/ });
  t.throws(() => outlierSettings({ outlier_detection: { enforcing_success_rate: {}, enforcing_local_origin_success_rate: { value: 100 } } }, 'c'), { message: /enforcing_local_origin_success_rate is not supported/ });
  t.throws(() => outlierSettings({ outlier_detection: { enforcing_success_rate: {}, interval: {} } }, 'c'), { message: /outlier_detection.interval must be positive/ });
  t.throws(() => outlierSettings({ outlier_detection: { enforcing_success_rate: {}, max_ejection_percent: { value: 120 } } }, 'c'), { message: /max_ejection_percent must be at most 100/ });
});

test('three consecutive 5xx eject; a success in between starts the count again', (t) => {
  const { d, changes } = detector();
  d.recordResponse('a:1', 500);
  d.recordResponse('a:1', 503);
  d.recordResponse('a:1', 200);
  d.recordResponse('a:1', 500);
  d.recordResponse('a:1', 500);
  t.false(d.isEjected('a:1'));
  d.recordResponse('a:1', 500);
  t.true(d.isEjected('a:1'));
  t.is(changes(), 1);
  t.like(d.stats(), { ejections_active: 1, ejections_enforced_total: 1, ejections_enforced_consecutive_5xx: 1 });
  t.deepEqual([...d.ejectedKeys()], ['a:1']);
});

test('local-origin failures count as 5xx; a completed TCP connection counts as a success', (t) => {
  const { d } = detector();
  d.recordFailure('b:1', 'connect-failure');
  d.recordFailure('b:1', 'timeout');
  d.recordConnected('b:1');
  d.recordFailure('b:1', 'reset');
  d.recordFailure('b:1', 'connect-failure');
  t.false(d.isEjected('b:1'));
  d.recordFailure('b:1', 'connect-failure');
  t.true(d.isEjected('b:1'));
});

test('split local-origin errors: connect failures have their own count, which a connect success ends, and 5xx responses theirs', (t) => {
  const { d } = detector({ splitLocalOrigin: true, consecutiveLocalOriginFailure: 2 });
  d.recordFailure('a:1', 'connect-failure');
  d.recordConnected('a:1');
  d.recordFailure('a:1', 'timeout');
  t.false(d.isEjected('a:1'), 'the connect success ended the run');
  d.recordFailure('a:1', 'connect-failure');
  t.true(d.isEjected('a:1'));
  d.recordResponse('b:1', 500);
  d.recordFailure('b:1', 'connect-failure');
  d.recordResponse('b:1', 500);
  t.false(d.isEjected('b:1'), 'local failures do not feed the 5xx count');
  d.recordResponse('b:1', 500);
  t.true(d.isEjected('b:1'));
  t.like(d.stats(), { ejections_enforced_consecutive_local_origin_failure: 1, ejections_enforced_consecutive_5xx: 1 });
});

test('gateway errors (502/503/504) eject on their own consecutive count; another 5xx breaks the run', (t) => {
  const { d } = detector({ consecutive5xx: 0, enforcingConsecutive5xx: 0, consecutiveGatewayFailure: 2, enforcingConsecutiveGatewayFailure: 100 });
  d.recordResponse('c:1', 502);
  d.recordResponse('c:1', 500);
  d.recordResponse('c:1', 502);
  t.false(d.isEjected('c:1'), 'a 500 breaks the run');
  d.recordResponse('c:1', 504);
  t.true(d.isEjected('c:1'));
  t.like(d.stats(), { ejections_enforced_consecutive_gateway_failure: 1, ejections_enforced_consecutive_5xx: 0 });
});

test('detected but not enforced (enforcing 0) counts without ejecting', (t) => {
  const { d } = detector({ enforcingConsecutive5xx: 0 });
  for (let i = 0; i < 3; i++) d.recordResponse('a:1', 500);
  t.false(d.isEjected('a:1'));
  t.like(d.stats(), { ejections_detected_consecutive_5xx: 1, ejections_enforced_total: 0 });
});

test('ejection time is base × times ejected in a row, checked on the interval timer', (t) => {
  const { d, clock, changes } = detector();
  const eject = () => { for (let i = 0; i < 3; i++) d.recordResponse('a:1', 500); };
  eject();
  clock.advance(9000);
  t.true(d.isEjected('a:1'), 'still out before 10 s');
  clock.advance(1000);
  t.false(d.isEjected('a:1'), 'back after 1 × 10 s');
  t.is(changes(), 2);
  eject();
  clock.advance(19_000);
  t.true(d.isEjected('a:1'), 'the second ejection lasts 2 × 10 s');
  clock.advance(1000);
  t.false(d.isEjected('a:1'));
  eject();
  clock.advance(29_000);
  t.true(d.isEjected('a:1'), 'the third 3 × 10 s');
  clock.advance(1000);
  t.false(d.isEjected('a:1'));
});

test('healthy intervals shrink the multiplier again, and max_ejection_time caps the growth', (t) => {
  const { d, clock } = detector({ maxEjectionTimeMs: 15_000 });
  const eject = () => { for (let i = 0; i < 3; i++) d.recordResponse('a:1', 500); };
  eject();
  clock.advance(10_000);
  eject();
  clock.advance(14_000);
  t.true(d.isEjected('a:1'));
  clock.advance(1000);
  t.false(d.isEjected('a:1'), 'capped at 15 s instead of 20 s');
  // Two healthy intervals take the multiplier from 2 to 0: the next ejection is 1 × base again.
  clock.advance(2000);
  eject();
  clock.advance(10_000);
  t.false(d.isEjected('a:1'));
});

test('max_ejection_percent: beyond the first ejection, only while the ejected share (with this one) stays within it', (t) => {
  const { d } = detector({ maxEjectionPercent: 50 });
  for (const key of KEYS) for (let i = 0; i < 3; i++) d.recordResponse(key, 500);
  t.deepEqual([...d.ejectedKeys()], ['a:1', 'b:1']);
  t.like(d.stats(), { ejections_active: 2, ejections_overflow: 2 });
  const small = detector({ maxEjectionPercent: 10 }).d;
  for (const key of KEYS) for (let i = 0; i < 3; i++) small.recordResponse(key, 500);
  t.deepEqual([...small.ejectedKeys()], ['a:1'], 'Envoy always allows the first ejection, even above the percent');
});

test('reconfigure keeps ejections and multipliers of endpoints that stay, forgets the others, and restarts the timer', (t) => {
  const { d, clock } = detector();
  for (const key of ['a:1', 'b:1']) for (let i = 0; i < 3; i++) d.recordResponse(key, 500);
  d.recordResponse('c:1', 500);
  d.recordResponse('c:1', 500);
  d.reconfigure({ ...SETTINGS, intervalMs: 500 }, ['a:1', 'c:1', 'e:1']);
  t.is(clock.activeTimers, 1, 'one timer per cluster');
  t.deepEqual([...d.ejectedKeys()], ['a:1']);
  t.is(d.stats().ejections_active, 1);
  d.recordResponse('c:1', 500);
  t.true(d.isEjected('c:1'), 'the consecutive count carried over');
  clock.advance(10_000);
  t.deepEqual([...d.ejectedKeys()], []);
  d.close();
  t.is(clock.activeTimers, 0);
  for (let i = 0; i < 3; i++) d.recordResponse('e:1', 500);
  t.false(d.isEjected('e:1'), 'a closed detector records nothing');
});
