// Tests of node entitlements: a node may obtain exactly the identities of the workloads the registry
// places on it, computed once per model snapshot.
import test from 'ava';
import { entitlementsFromModel, identitiesByNode } from './entitlements';
import { modelWith } from './testing';

const model = modelWith('cluster.local', [
  { namespace: 'shop', hostname: 'web.shop', node: 'host-a', serviceAccount: 'web' },
  { namespace: 'shop', hostname: 'web.shop', node: 'host-b', serviceAccount: 'web' },
  { namespace: 'shop', hostname: 'db.shop', node: 'host-b', serviceAccount: 'db' },
  { namespace: 'pay', hostname: 'ledger.pay', node: 'host-b', serviceAccount: 'ledger' },
  { namespace: 'shop', hostname: 'legacy.shop', node: 'host-c' },
  { namespace: 'shop', hostname: 'external.shop', serviceAccount: 'external' },
  { namespace: 'shop', hostname: 'weird.shop', node: 'host-c', serviceAccount: 'a/sa/admin' },
]);

test('each node gets the identities of the workloads it runs', (t) => {
  const byNode = identitiesByNode(model);
  t.deepEqual([...byNode.get('host-a')!], ['spiffe://cluster.local/ns/shop/sa/web']);
  t.deepEqual([...byNode.get('host-b')!].sort(), [
    'spiffe://cluster.local/ns/pay/sa/ledger',
    'spiffe://cluster.local/ns/shop/sa/db',
    'spiffe://cluster.local/ns/shop/sa/web',
  ]);
});

test('workloads without a service account, without a node or with an unrepresentable name grant nothing', (t) => {
  const byNode = identitiesByNode(model);
  t.false(byNode.has('host-c'));
  t.false([...byNode.values()].some((ids) => [...ids].some((id) => id.includes('external') || id.includes('admin'))));
});

test('an unknown node is entitled to nothing', (t) => {
  t.is(entitlementsFromModel(model)('host-z').size, 0);
});

test('the map is computed once per model snapshot and afresh for a new one', (t) => {
  t.is(identitiesByNode(model), identitiesByNode(model));
  const next = modelWith('cluster.local', [{ namespace: 'shop', hostname: 'web.shop', node: 'host-a', serviceAccount: 'web2' }]);
  t.not(identitiesByNode(next), identitiesByNode(model));
  t.deepEqual([...identitiesByNode(next).get('host-a')!], ['spiffe://cluster.local/ns/shop/sa/web2']);
});
