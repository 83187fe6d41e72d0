// PeerAuthentication: Istio's precedence (port-level > workload > namespace > mesh > PERMISSIVE,
// UNSET inherits) and what each mode does to the workload's virtualInbound chains.
import test from 'ava';
import { effectiveMtlsMode, type PeerAuthenticationResource } from './peer-authentication';
import { chainFor, inboundListener, security } from './security-testing';
import type { PeerAuthenticationSpec } from '../kinds/peer-authentication/schema';
import { fromStruct } from './proto-values';

const pa = (name: string, spec: PeerAuthenticationSpec, namespace = 'shop') => security('PeerAuthentication', name, spec, namespace) as PeerAuthenticationResource;
const web = { namespace: 'shop', labels: { app: 'web' }, serviceNames: ['web.shop.svc.cluster.local'] };
const mode = (policies: PeerAuthenticationResource[], port = 8080) => effectiveMtlsMode(policies, web, port, 'istio-system');

test('without policies the mode is PERMISSIVE', (t) => {
  t.is(mode([]), 'PERMISSIVE');
});

test('mesh, then namespace, then workload policy: the most specific wins', (t) => {
  const mesh = pa('default', { mtls: { mode: 'STRICT' } }, 'istio-system');
  const namespace = pa('ns', { mtls: { mode: 'PERMISSIVE' } });
  const workload = pa('web', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'DISABLE' } });
  t.is(mode([mesh]), 'STRICT');
  t.is(mode([mesh, namespace]), 'PERMISSIVE');
  t.is(mode([mesh, namespace, workload]), 'DISABLE');
  // Another namespace's policy and a selector that does not match change nothing.
  t.is(mode([mesh, pa('other', { mtls: { mode: 'DISABLE' } }, 'billing')]), 'STRICT');
  t.is(mode([mesh, pa('db', { selector: { matchLabels: { app: 'db' } }, mtls: { mode: 'DISABLE' } })]), 'STRICT');
});

test('a root-namespace policy with a selector is not mesh-wide', (t) => {
  t.is(mode([pa('sel', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' } }, 'istio-system')]), 'PERMISSIVE');
});

test('port-level mTLS overrides the workload mode for that port only; UNSET inherits', (t) => {
  const workload = pa('web', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'PERMISSIVE' }, '9090': { mode: 'UNSET' } } });
  t.is(mode([workload], 8080), 'PERMISSIVE');
  t.is(mode([workload], 9090), 'STRICT');
  t.is(mode([workload], 7070), 'STRICT');
  const unsetWorkload = pa('web', { selector: { matchLabels: { app: 'web' } }, mtls: { mode: 'UNSET' } });
  t.is(mode([pa('ns', { mtls: { mode: 'STRICT' } }), unsetWorkload]), 'STRICT');
  t.is(mode([pa('default', { mtls: {} }, 'istio-system'), pa('ns', {})]), 'PERMISSIVE');
});

test('STRICT: the chain requires TLS and a raw_buffer chain closes plaintext; PERMISSIVE keeps one open chain', (t) => {
  const strict = inboundListener([pa('default', { mtls: { mode: 'STRICT' } }, 'istio-system')]);
  t.deepEqual(strict.listener_filters.map((f: any) => f.name), ['envoy.filters.listener.original_dst', 'envoy.filters.listener.tls_inspector']);
  const web = chainFor(strict, 8080);
  t.is(web.filter_chain_match.transport_protocol, 'tls');
  t.is(fromStruct(web.metadata.filter_metadata.mesh).mtlsMode, 'STRICT');
  const plaintext = strict.filter_chains.find((c: any) => c.filter_chain_match?.destination_port?.value === 8080 && c.filter_chain_match.transport_protocol === 'raw_buffer');
  t.deepEqual(plaintext.filters.map((f: any) => f.name), ['envoy.filters.network.rbac', 'envoy.filters.network.tcp_proxy']);
  t.is(plaintext.filters[0].typed_config.rules.action, 'ALLOW');
  t.is(plaintext.filters[0].typed_config.rules.policies, undefined);
  t.is(plaintext.filters[1].typed_config.cluster, 'BlackHoleCluster');

  const permissive = inboundListener([pa('default', { mtls: { mode: 'STRICT' } }, 'istio-system'), pa('db', { selector: { matchLabels: { app: 'db' } }, mtls: { mode: 'PERMISSIVE' } })]);
  const db = permissive.filter_chains.filter((c: any) => c.filter_chain_match?.destination_port?.value === 5432);
  t.is(db.length, 1);
  t.is(db[0].filter_chain_match.transport_protocol, undefined);
  t.is(fromStruct(db[0].metadata.filter_metadata.mesh).mtlsMode, 'PERMISSIVE');
  t.is(chainFor(permissive, 8080).filter_chain_match.transport_protocol, 'tls');
});
