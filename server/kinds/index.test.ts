// Tests of the kind registry: every Istio kind is served at each of its documented API versions,
// and unknown group/version/kind combinations are not.
import test from 'ava';
import { KINDS, findKind, validateSpec } from './index';

test('all nine kinds are registered once', (t) => {
  t.deepEqual(KINDS.map((k) => k.kind).sort(), [
    'AuthorizationPolicy', 'DestinationRule', 'Gateway', 'PeerAuthentication', 'RequestAuthentication',
    'ServiceEntry', 'Sidecar', 'VirtualService', 'WorkloadEntry',
  ]);
});

test('networking kinds are served at v1alpha3, v1beta1 and v1', (t) => {
  for (const kind of ['VirtualService', 'DestinationRule', 'Gateway', 'ServiceEntry', 'Sidecar', 'WorkloadEntry']) {
    for (const version of ['v1alpha3', 'v1beta1', 'v1']) {
      t.is(findKind(`networking.istio.io/${version}`, kind)?.kind, kind, `${kind} ${version}`);
    }
  }
});

test('security kinds are served at v1beta1 and v1, not v1alpha3', (t) => {
  for (const kind of ['PeerAuthentication', 'AuthorizationPolicy', 'RequestAuthentication']) {
    t.is(findKind('security.istio.io/v1', kind)?.group, 'security.istio.io');
    t.is(findKind('security.istio.io/v1beta1', kind)?.kind, kind);
    t.is(findKind('security.istio.io/v1alpha3', kind), undefined);
  }
});

test('wrong group, unknown version, bad apiVersion and unknown kinds are not found', (t) => {
  t.is(findKind('security.istio.io/v1', 'VirtualService'), undefined);
  t.is(findKind('networking.istio.io/v2', 'VirtualService'), undefined);
  t.is(findKind('v1', 'VirtualService'), undefined);
  t.is(findKind('networking.istio.io/v1', 'EnvoyFilter'), undefined);
  t.is(findKind('networking.istio.io/v1', 'virtualservice'), undefined);
});

test('validateSpec runs the schema, then the checks, with severities', (t) => {
  const kind = findKind('networking.istio.io/v1', 'VirtualService')!;
  const bad = validateSpec(kind, { hosts: ['a'], http: [{ route: [{ destination: { host: 'a' } }], timeot: '1s' }] });
  t.deepEqual(bad.issues.map((i) => [i.path, i.code]), [['http[0].timeot', 'unknown-field']]);
  t.is(bad.spec, undefined);
  const warned = validateSpec(kind, { hosts: ['a'], http: [{ route: [{ destination: { host: 'a' } }], timeout: '1s', retries: { attempts: 1, perTryTimeout: '2s' } }] });
  t.deepEqual(warned.issues.map((i) => [i.path, i.severity]), [['http[0].retries.perTryTimeout', 'warning']]);
  t.truthy(warned.spec);
});
