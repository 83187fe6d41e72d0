// Route policy details: retryOn parsing, mirror percentages, faults Istio cannot express, and
// authority header operations.
import test from 'ava';
import { faultFilterConfig, grpcStatusCode, headerOperations, mirrorFraction, parseRetryOn } from './route-policies';

test('retryOn status codes become retriable_status_codes and add retriable-status-codes once', (t) => {
  t.deepEqual(parseRetryOn('5xx, 503 ,gateway-error,429'), { retryOn: '5xx,gateway-error,retriable-status-codes', codes: [503, 429] });
  t.deepEqual(parseRetryOn('retriable-status-codes,502'), { retryOn: 'retriable-status-codes', codes: [502] });
  t.deepEqual(parseRetryOn('connect-failure'), { retryOn: 'connect-failure', codes: [] });
});

test('an explicit zero mirror percentage disables mirroring; none given means all requests', (t) => {
  t.is(mirrorFraction({ value: 0 }), undefined);
  t.is(mirrorFraction(undefined, 0), undefined);
  t.deepEqual(mirrorFraction(undefined), { default_value: { numerator: 100, denominator: 'HUNDRED' } });
  t.deepEqual(mirrorFraction(undefined, 30), { default_value: { numerator: 30, denominator: 'HUNDRED' } });
});

test('faults Istio cannot express are dropped; a delay without percentage injects nothing', (t) => {
  t.is(faultFilterConfig({ delay: { exponentialDelay: '1s' } }), undefined);
  t.is(faultFilterConfig({ abort: { http2Error: 'x' } }), undefined);
  t.deepEqual(faultFilterConfig({ delay: { fixedDelay: '1s' } }), { delay: { fixed_delay: { seconds: 1 }, percentage: { numerator: 0, denominator: 'HUNDRED' } } });
  t.deepEqual(faultFilterConfig({ delay: { fixedDelay: '1s', percent: 20 } })?.delay, { fixed_delay: { seconds: 1 }, percentage: { numerator: 20, denominator: 'HUNDRED' } });
  t.is(grpcStatusCode('unavailable'), 14);
  t.is(grpcStatusCode('4'), 4);
});

test('setting :authority or host turns into a host rewrite instead of a header', (t) => {
  const ops = headerOperations({ request: { set: { host: 'a.example', 'x-a': '1' }, add: { ':authority': 'b.example' }, remove: [':path', 'x-b'] } });
  t.is(ops.authority, 'a.example');
  t.deepEqual(ops.requestHeadersToAdd.map((h: any) => h.header.key), ['x-a']);
  t.deepEqual(ops.requestHeadersToRemove, ['x-b']);
});
