// Istio's resource names: clusters, listeners, route configurations, SNI, and gRPC target
// authorities.
import test from 'ava';
import { inboundClusterName, istioMutualSni, isPortRouteConfigName, outboundClusterName, outboundListenerName, parseClusterName, splitHostPort } from './names';

test('cluster names follow Istio: outbound|PORT|SUBSET|HOST and inbound|PORT||', (t) => {
  t.is(outboundClusterName(9080, 'reviews.default.svc.cluster.local'), 'outbound|9080||reviews.default.svc.cluster.local');
  t.is(outboundClusterName(9080, 'reviews.default.svc.cluster.local', 'v2'), 'outbound|9080|v2|reviews.default.svc.cluster.local');
  t.is(inboundClusterName(8080), 'inbound|8080||');
  t.deepEqual(parseClusterName('outbound|9080|v2|reviews'), { direction: 'outbound', port: 9080, subset: 'v2', host: 'reviews' });
  t.deepEqual(parseClusterName('inbound|8080||'), { direction: 'inbound', port: 8080, subset: '', host: '' });
  t.is(parseClusterName('PassthroughCluster'), undefined);
  t.is(parseClusterName('outbound|x||h'), undefined);
});

test('listener, route configuration and SNI names', (t) => {
  t.is(outboundListenerName(9080), '0.0.0.0_9080');
  t.true(isPortRouteConfigName('9080'));
  t.false(isPortRouteConfigName('greeter'));
  t.false(isPortRouteConfigName('70000'));
  t.false(isPortRouteConfigName('080'));
  t.is(istioMutualSni(9080, 'reviews.default.svc.cluster.local', 'v1'), 'outbound_.9080_.v1_.reviews.default.svc.cluster.local');
});

test('gRPC target authorities split into host and optional port', (t) => {
  t.deepEqual(splitHostPort('greeter'), { host: 'greeter' });
  t.deepEqual(splitHostPort('greeter:50051'), { host: 'greeter', port: 50051 });
  t.deepEqual(splitHostPort('[fd00::1]:50051'), { host: 'fd00::1', port: 50051 });
  t.deepEqual(splitHostPort('fd00::1'), { host: 'fd00::1' });
});
