// Istio's traffic policy merge: port-level settings replace, subsets override by component, and
// the route hash policy follows the same merge as the cluster.
import test from 'ava';
import { consistentHashFor, effectivePolicy } from './traffic-policy';
import type { DestinationRuleSpec } from './specs';

const rule: DestinationRuleSpec = {
  host: 'reviews',
  trafficPolicy: {
    loadBalancer: { simple: 'RANDOM' },
    connectionPool: { tcp: { maxConnections: 10 } },
    tls: { mode: 'ISTIO_MUTUAL' },
    portLevelSettings: [{ port: { number: 9443 }, tls: { mode: 'SIMPLE' } }],
  },
  subsets: [
    { name: 'sticky', labels: { v: '1' }, trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } },
    { name: 'ports', labels: { v: '2' }, trafficPolicy: { portLevelSettings: [{ port: { number: 80 }, outlierDetection: { consecutive5xxErrors: 1 } }] } },
  ],
};

test('top-level components apply to every port without port-level settings', (t) => {
  const p = effectivePolicy(rule, undefined, 80);
  t.is(p.loadBalancer?.simple, 'RANDOM');
  t.is(p.tls?.mode, 'ISTIO_MUTUAL');
});

test('a port-level entry replaces all four components for its port', (t) => {
  const p = effectivePolicy(rule, undefined, 9443);
  t.is(p.tls?.mode, 'SIMPLE');
  t.is(p.loadBalancer, undefined);
  t.is(p.connectionPool, undefined);
});

test('a subset overrides only the components it sets; its port-level entry replaces them all', (t) => {
  const sticky = effectivePolicy(rule, rule.subsets![0], 80);
  t.is(sticky.loadBalancer?.consistentHash?.httpHeaderName, 'x-user');
  t.is(sticky.connectionPool?.tcp?.maxConnections, 10);
  const ports = effectivePolicy(rule, rule.subsets![1], 80);
  t.is(ports.outlierDetection?.consecutive5xxErrors, 1);
  t.is(ports.loadBalancer, undefined);
  t.is(ports.tls, undefined);
  t.is(effectivePolicy(rule, rule.subsets![1], 81).loadBalancer?.simple, 'RANDOM');
});

test('the route hash policy comes from the same merge as the cluster', (t) => {
  t.is(consistentHashFor(rule, 'sticky', 80)?.httpHeaderName, 'x-user');
  t.is(consistentHashFor(rule, undefined, 80), undefined);
  t.is(consistentHashFor(undefined, 'sticky', 80), undefined);
});
