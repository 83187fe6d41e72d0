// Locality patterns as Istio matches them, when locality load balancing is in force, and whose
// locality orders the failover priorities (the xDS Node's own, else its first workload's).
import test from 'ava';
import { localityMatches, resolveLocalitySetting } from './locality-lb';
import { MeshTranslator } from './mesh-translator';
import { TypeUrl, endpoint, generateDecoded, model, named, port, resource, service } from './testing';

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

test('a node that states its locality in the xDS Node gets failover priorities ordered from it, without any workload', (t) => {
  const host = 'reviews.default.svc.cluster.local';
  const cluster = `outbound|9080||${host}`;
  const at = (region: string, zone: string) => ({ region, zone, subzone: '' });
  const m = model(
    [service(host, { ports: [port(9080, 'HTTP', 'http')], endpoints: [endpoint('10.0.0.1', { locality: at('eu', 'eu-a') }), endpoint('10.0.0.2', { locality: at('us', 'us-a') })] })],
    [resource('DestinationRule', 'reviews', { host, trafficPolicy: { outlierDetection: { consecutive5xxErrors: 3 } } })],
  );
  const translator = new MeshTranslator();
  const priorities = (locality?: { region: string; zone: string; subzone: string }) => {
    const cla = generateDecoded(translator, m, { id: 'host-1', cluster: 'mesh-agent', metadata: {}, ...(locality ? { locality } : {}) }, TypeUrl.ClusterLoadAssignment, named(cluster)).get(cluster);
    return (cla.endpoints as Array<{ locality: { zone: string }; priority?: number }>).map((e) => [e.locality.zone, e.priority ?? 0]);
  };
  t.deepEqual(priorities(at('us', 'us-a')), [['eu-a', 1], ['us-a', 0]]);
  t.deepEqual(priorities(at('eu', 'eu-a')), [['eu-a', 0], ['us-a', 1]]);
  t.deepEqual(priorities(), [['eu-a', 0], ['us-a', 0]], 'no locality known: one priority');
});
