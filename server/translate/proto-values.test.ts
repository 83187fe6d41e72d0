// The plain-object forms of protobuf well-known values the translator builds: Struct round trips,
// checked Any, durations, percentages and CIDR ranges.
import test from 'ava';
import { TypeUrl, packAny, unpackAny } from '../../lib/xds/protos';
import { anyOf, cidrRange, durationFromText, fractionalPercentFromPercent, fromStruct, toStruct } from './proto-values';

test('JSON survives a round trip through a Struct inside a real message', (t) => {
  const json = { node: 'host-a', labels: { app: 'x' }, weight: 3, meshed: true, tags: ['a', 'b'] };
  const cluster = { name: 'c', metadata: { filter_metadata: { mesh: toStruct({ ...json, dropped: undefined }) } } };
  const back = unpackAny<any>(packAny(TypeUrl.Cluster, cluster));
  t.deepEqual(fromStruct(back.metadata.filter_metadata.mesh), json);
});

test('an Any of a type the protos do not load is refused instead of being encoded empty', (t) => {
  t.throws(() => anyOf('envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate', {}), { message: /no such type/ });
  t.is(anyOf('envoy.extensions.filters.http.router.v3.Router')['@type'], 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router');
});

test('durations, percentages and CIDR ranges in Envoy form', (t) => {
  t.deepEqual(durationFromText('1m30s'), { seconds: 90 });
  t.deepEqual(durationFromText('250ms'), { seconds: 0, nanos: 250_000_000 });
  t.is(durationFromText('soon'), undefined);
  t.deepEqual(fractionalPercentFromPercent(0.0001), { numerator: 1, denominator: 'MILLION' });
  t.deepEqual(fractionalPercentFromPercent(100), { numerator: 1_000_000, denominator: 'MILLION' });
  t.deepEqual(cidrRange('10.0.0.0/8'), { address_prefix: '10.0.0.0', prefix_len: { value: 8 } });
  t.deepEqual(cidrRange('fd00::1'), { address_prefix: 'fd00::1', prefix_len: { value: 128 } });
  t.is(cidrRange('db.example.com'), undefined);
  t.is(cidrRange('10.0.0.0/33'), undefined);
});
