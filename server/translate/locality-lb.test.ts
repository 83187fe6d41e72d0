// Locality patterns as Istio matches them, and when locality load balancing is in force.
import test from 'ava';
import { localityMatches, resolveLocalitySetting } from './locality-lb';

const eu = { region: 'eu', zone: 'eu-a', subzone: 'rack-1' };

test('locality patterns match by region, zone and subzone with wildcards and omitted parts', (t) => {
  t.true(localityMatches(eu, 'eu'));
  t.true(localityMatches(eu, 'eu/*'));
  t.true(localityMatches(eu, 'eu/eu-a/*'));
  t.true(localityMatches(eu, 'eu/eu-a/rack-1'));
  t.true(localityMatches(eu, '*'));
  t.false(localityMatches(eu, 'us/*'));
  t.false(localityMatches(eu, 'eu/eu-b'));
  t.false(localityMatches(undefined, 'eu'));
});

test('locality LB is on by default (Istio\'s mesh default) and off when a rule disables it', (t) => {
  t.deepEqual(resolveLocalitySetting(undefined), {});
  t.is(resolveLocalitySetting({ enabled: false, failover: [{ from: 'eu', to: 'us' }] }), undefined);
  t.deepEqual(resolveLocalitySetting({ failover: [{ from: 'eu', to: 'us' }] }), { failover: [{ from: 'eu', to: 'us' }] });
});
