// Encoding of resources: enum names survive packAny's verification and the content hash follows
// the encoded bytes exactly.
import test from 'ava';
import { TypeUrl, unpackAny } from '../../lib/xds/protos';
import { encodeResource, verifyEncodedResources } from './hash';

verifyEncodedResources(true);

test('enum names are encoded (packAny verifies numbers only) and decode back to the same names', (t) => {
  const r = encodeResource(TypeUrl.Cluster, 'c', { name: 'c', type: 'STRICT_DNS', lb_policy: 'RING_HASH', dns_lookup_family: 'V4_ONLY', load_assignment: { cluster_name: 'c', endpoints: [{ lb_endpoints: [{ health_status: 'UNHEALTHY' }] }] } });
  const back = unpackAny<any>(r.any);
  t.is(back.type, 'STRICT_DNS');
  t.is(back.lb_policy, 'RING_HASH');
  t.is(back.load_assignment.endpoints[0].lb_endpoints[0].health_status, 'UNHEALTHY');
});

test('the hash follows the bytes: equal content equal hash, any change a different one', (t) => {
  const a = encodeResource(TypeUrl.Cluster, 'c', { name: 'c', connect_timeout: { seconds: 10 } });
  const b = encodeResource(TypeUrl.Cluster, 'c', { name: 'c', connect_timeout: { seconds: 10 } });
  const c = encodeResource(TypeUrl.Cluster, 'c', { name: 'c', connect_timeout: { seconds: 11 } });
  t.is(a.hash, b.hash);
  t.not(a.hash, c.hash);
  t.is(a.name, 'c');
});

test('verified, an object that does not fit the message is rejected', (t) => {
  t.throws(() => encodeResource(TypeUrl.Cluster, 'c', { name: 'c', lb_policy: 'FASTEST' }), { message: /lb_policy/ });
});
