// Tests of SPIFFE ID parsing and formatting against the SPIFFE ID spec's rules, including the
// spellings an attacker would try to make two IDs look alike.
import test from 'ava';
import { formatNodeId, formatWorkloadId, parseNodeId, parseSpiffeId, parseWorkloadId } from './spiffe';

test('a workload ID parses into trust domain, namespace and service account', (t) => {
  const parsed = parseWorkloadId('spiffe://cluster.local/ns/shop/sa/reviews-v1');
  t.deepEqual(parsed, { ok: true, value: { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'reviews-v1' } });
});

test('format and parse are inverse', (t) => {
  const identity = { trustDomain: 'example.org', namespace: 'default', serviceAccount: 'web_1.a' };
  const formatted = formatWorkloadId(identity);
  t.true(formatted.ok);
  if (formatted.ok) t.deepEqual(parseWorkloadId(formatted.value), { ok: true, value: identity });
});

for (const bad of [
  'SPIFFE://cluster.local/ns/a/sa/b',
  'spiffe://Cluster.local/ns/a/sa/b',
  'spiffe://cluster.local:8080/ns/a/sa/b',
  'spiffe://user@cluster.local/ns/a/sa/b',
  'spiffe:///ns/a/sa/b',
  'spiffe://cluster.local/ns/a/sa/b/',
  'spiffe://cluster.local/ns//sa/b',
  'spiffe://cluster.local/ns/../sa/b',
  'spiffe://cluster.local/ns/./sa/b',
  'spiffe://cluster.local/ns/a/sa/b?x=1',
  'spiffe://cluster.local/ns/a/sa/b#frag',
  'spiffe://cluster.local/ns/a%2Fb/sa/c',
  'https://cluster.local/ns/a/sa/b',
  `spiffe://${'a'.repeat(256)}/ns/a/sa/b`,
  `spiffe://cluster.local/ns/a/sa/${'b'.repeat(2048)}`,
]) {
  test(`${bad.slice(0, 60)} is not a valid SPIFFE ID`, (t) => {
    t.false(parseSpiffeId(bad).ok);
  });
}

test('an ID that is valid SPIFFE but not of the ns/sa shape is not a workload ID', (t) => {
  t.true(parseSpiffeId('spiffe://cluster.local/ns/a').ok);
  t.false(parseWorkloadId('spiffe://cluster.local/ns/a').ok);
  t.false(parseWorkloadId('spiffe://cluster.local/sa/b/ns/a').ok);
  t.false(parseWorkloadId('spiffe://cluster.local/ns/a/sa/b/extra').ok);
  t.false(parseWorkloadId('spiffe://cluster.local').ok);
});

test('formatting refuses names that would produce an invalid or ambiguous ID', (t) => {
  t.false(formatWorkloadId({ trustDomain: 'cluster.local', namespace: 'a/sa/admin', serviceAccount: 'b' }).ok);
  t.false(formatWorkloadId({ trustDomain: 'Cluster.local', namespace: 'a', serviceAccount: 'b' }).ok);
  t.false(formatWorkloadId({ trustDomain: 'cluster.local', namespace: '..', serviceAccount: 'b' }).ok);
  t.false(formatWorkloadId({ trustDomain: 'cluster.local', namespace: 'a', serviceAccount: '' }).ok);
});

test('a node identity round-trips and is never mistaken for a workload identity', (t) => {
  const id = formatNodeId('cluster.local', 'host-a.example');
  t.deepEqual(id, { ok: true, value: 'spiffe://cluster.local/node/host-a.example' });
  t.deepEqual(parseNodeId('spiffe://cluster.local/node/host-a.example'), { ok: true, value: { trustDomain: 'cluster.local', node: 'host-a.example' } });
  t.false(parseNodeId('spiffe://cluster.local/ns/node/sa/x').ok);
  t.false(parseWorkloadId('spiffe://cluster.local/node/host-a').ok);
  t.false(formatNodeId('cluster.local', '../x').ok);
});
