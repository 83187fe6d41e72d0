// The agent's RBAC evaluation over the config mesh-server really emits: AuthorizationPolicies are
// translated, the virtualInbound chain decoded, and requests/connections decided as Istio would.
import test from 'ava';
import { MeshTranslator } from '../../server/translate/mesh-translator';
import { TypeUrl, endpoint, generateDecoded, model, node, port, resource, service } from '../../server/translate/testing';
import type { AuthorizationPolicySpec } from '../../server/kinds/authorization-policy/schema';
import type { JsonValue } from '../../lib/xds/struct';
import { InboundAuthorization, RbacFilterChain, type RequestView } from './rbac';
import { RouteConfigError } from '../routing/request-matchers';

const web = service('web.shop.svc.cluster.local', { namespace: 'shop', ports: [port(8080, 'HTTP', 'http')], endpoints: [endpoint('10.0.0.1', { node: 'host-a', labels: { app: 'web' } })] });
const db = service('db.shop.svc.cluster.local', { namespace: 'shop', ports: [port(5432, 'TCP', 'tcp')], endpoints: [endpoint('10.0.0.2', { node: 'host-a', labels: { app: 'db' } })] });

function authorization(policies: Array<[string, AuthorizationPolicySpec] | [string, AuthorizationPolicySpec, string]>, targetPort = 8080): InboundAuthorization {
  const resources = policies.map(([name, spec, ns]) => ({ ...resource('AuthorizationPolicy', name, spec, ns ?? 'shop'), apiVersion: 'security.istio.io/v1' }));
  const listener = generateDecoded(new MeshTranslator(), model([web, db], resources), node('host-a'), TypeUrl.Listener).get('virtualInbound');
  const chain = listener.filter_chains.find((c: any) => c.filter_chain_match?.destination_port?.value === targetPort);
  return InboundAuthorization.fromChain(chain);
}

const FRONTEND = 'spiffe://cluster.local/ns/shop/sa/frontend';
const OTHER = 'spiffe://cluster.local/ns/other/sa/robot';

function request(fields: Partial<RequestView> & { claims?: Record<string, JsonValue>; requestPrincipal?: string; headerMap?: Record<string, string> } = {}): RequestView {
  const { claims, requestPrincipal, headerMap, ...rest } = fields;
  const authn: Record<string, JsonValue> = {};
  if (requestPrincipal) authn['request.auth.principal'] = requestPrincipal;
  if (claims) authn['request.auth.claims'] = claims;
  const headers = new Map(Object.entries(headerMap ?? {}));
  return {
    sourcePrincipal: FRONTEND,
    sourceIp: '10.0.9.9',
    destinationPort: 8080,
    destinationIp: '10.0.0.1',
    authority: 'web.shop.svc.cluster.local',
    method: 'GET',
    path: '/',
    scheme: 'http',
    headers,
    metadata: (filter) => (filter === 'istio_authn' ? authn : undefined),
    ...rest,
  };
}

test('no policy allows everything', (t) => {
  const authz = authorization([]);
  t.true(authz.authorizeRequest(request()).allowed);
  t.true(authz.authorizeConnection({ sourceIp: '1.2.3.4', destinationPort: 8080 }).allowed);
});

test('an ALLOW policy admits the frontend identity and refuses another, naming the policy', (t) => {
  const authz = authorization([['frontend', { rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }] }] }]]);
  t.deepEqual(authz.authorizeRequest(request()), { allowed: true, policy: 'ns[shop]-policy[frontend]-rule[0]' });
  t.deepEqual(authz.authorizeRequest(request({ sourcePrincipal: OTHER })), { allowed: false });
  t.false(authz.authorizeRequest(request({ sourcePrincipal: undefined })).allowed, 'plaintext has no principal');
});

test('DENY beats ALLOW', (t) => {
  const authz = authorization([
    ['allow-all', { rules: [{}] }],
    ['deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] }],
  ]);
  t.true(authz.authorizeRequest(request({ path: '/public' })).allowed);
  t.deepEqual(authz.authorizeRequest(request({ path: '/admin/users?x=1' })), { allowed: false, policy: 'ns[shop]-policy[deny-admin]-rule[0]' });
});

test('an ALLOW policy without rules denies everything; with several ALLOW policies one match suffices', (t) => {
  t.false(authorization([['nothing', {}]]).authorizeRequest(request()).allowed);
  const authz = authorization([['nothing', {}], ['get', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }]]);
  t.true(authz.authorizeRequest(request()).allowed);
  t.false(authz.authorizeRequest(request({ method: 'POST' })).allowed);
});

test('path forms: exact, prefix, suffix, presence, templates and notPaths', (t) => {
  const authz = authorization([['paths', { rules: [{ to: [{ operation: { paths: ['/exact', '/api/*', '*.png', '/items/{*}/detail', '/files/{**}'], notPaths: ['/api/private*'] } }] }] }]]);
  const allowed = (path: string): boolean => authz.authorizeRequest(request({ path })).allowed;
  t.true(allowed('/exact'));
  t.false(allowed('/exact/more'));
  t.true(allowed('/api/v1'));
  t.false(allowed('/api/private/x'));
  t.true(allowed('/img/logo.png?size=2'));
  t.true(allowed('/items/42/detail'));
  t.false(allowed('/items/4/2/detail'));
  t.true(allowed('/files/a/b/c'));
  t.false(allowed('/other'));
});

test('methods, hosts (ignoring case), ports and their not forms', (t) => {
  const authz = authorization([['ops', { rules: [{ to: [{ operation: { methods: ['GET', 'POST'], notMethods: ['POST'], hosts: ['web.shop.svc.cluster.local', '*.example.com'], ports: ['8080'] } }] }] }]]);
  t.true(authz.authorizeRequest(request()).allowed);
  t.true(authz.authorizeRequest(request({ authority: 'WEB.example.com' })).allowed);
  t.false(authz.authorizeRequest(request({ method: 'POST' })).allowed);
  t.false(authz.authorizeRequest(request({ authority: 'evil.test' })).allowed);
  t.false(authz.authorizeRequest(request({ destinationPort: 9090 })).allowed);
});

test('serviceAccounts match NAMESPACE/SERVICE_ACCOUNT of the peer identity', (t) => {
  const authz = authorization([['sa', { rules: [{ from: [{ source: { serviceAccounts: ['shop/frontend'] } }] }] }]]);
  t.true(authz.authorizeRequest(request()).allowed);
  t.false(authz.authorizeRequest(request({ sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/frontend-admin' })).allowed);
  t.false(authz.authorizeRequest(request({ sourcePrincipal: 'spiffe://other.domain/ns/shop/sa/frontend' })).allowed, 'another trust domain');
});

test('sources: namespaces, ipBlocks, remoteIpBlocks and not forms', (t) => {
  const authz = authorization([['src', { rules: [{ from: [{ source: { namespaces: ['shop'], ipBlocks: ['10.0.0.0/16'], notIpBlocks: ['10.0.9.1'], remoteIpBlocks: ['192.0.2.0/24'] } }] }] }]]);
  t.true(authz.authorizeRequest(request({ remoteIp: '192.0.2.7' })).allowed);
  t.false(authz.authorizeRequest(request({ remoteIp: '198.51.100.1' })).allowed, 'remote ip outside');
  t.false(authz.authorizeRequest(request({ remoteIp: '192.0.2.7', sourceIp: '10.0.9.1' })).allowed, 'notIpBlocks');
  t.false(authz.authorizeRequest(request({ remoteIp: '192.0.2.7', sourceIp: '10.1.0.1' })).allowed, 'ip outside block');
  t.false(authz.authorizeRequest(request({ remoteIp: '192.0.2.7', sourcePrincipal: OTHER })).allowed, 'other namespace');
  // Without x-forwarded-for the remote address is the peer's.
  t.false(authz.authorizeRequest(request()).allowed);
});

test('requestPrincipals need a validated token; claims match nested and list values', (t) => {
  const authz = authorization([['jwt', {
    rules: [{
      from: [{ source: { requestPrincipals: ['https://issuer.example/*'] } }],
      when: [{ key: 'request.auth.claims[groups]', values: ['admins'] }, { key: 'request.auth.claims[realm][role]', values: ['ops'] }, { key: 'request.headers[x-tenant]', notValues: ['blocked'] }],
    }],
  }]]);
  const claims = { groups: ['users', 'admins'], realm: { role: 'ops' } };
  t.true(authz.authorizeRequest(request({ requestPrincipal: 'https://issuer.example/alice', claims, headerMap: { 'x-tenant': 'a' } })).allowed);
  t.false(authz.authorizeRequest(request({ claims })).allowed, 'no request principal');
  t.false(authz.authorizeRequest(request({ requestPrincipal: 'https://issuer.example/alice', claims: { ...claims, groups: ['users'] }, headerMap: { 'x-tenant': 'a' } })).allowed);
  t.true(authz.authorizeRequest(request({ requestPrincipal: 'https://issuer.example/alice', claims: { ...claims, groups: 'admins' }, headerMap: { 'x-tenant': 'a' } })).allowed, 'a string claim is a one-element list');
  t.false(authz.authorizeRequest(request({ requestPrincipal: 'https://issuer.example/alice', claims, headerMap: { 'x-tenant': 'blocked' } })).allowed);
});

test('AUDIT policies are reported and never decide', (t) => {
  const authz = authorization([['audit-delete', { action: 'AUDIT', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] }]]);
  t.deepEqual(authz.authorizeRequest(request({ method: 'DELETE' })), { allowed: true, audit: 'ns[shop]-policy[audit-delete]-rule[0]' });
  t.deepEqual(authz.authorizeRequest(request()), { allowed: true });
});

test('TCP: connections are decided on principals, IPs and ports; HTTP-only ALLOW rules never match', (t) => {
  const authz = authorization([['db', { rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }], to: [{ operation: { ports: ['5432'] } }] }, { to: [{ operation: { methods: ['GET'] } }] }] }]], 5432);
  t.true(authz.authorizeConnection({ sourcePrincipal: FRONTEND, sourceIp: '10.0.9.9', destinationPort: 5432 }).allowed);
  t.false(authz.authorizeConnection({ sourcePrincipal: OTHER, sourceIp: '10.0.9.9', destinationPort: 5432 }).allowed);
  const httpOnly = authorization([['get-only', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }] }]], 5432);
  t.false(httpOnly.authorizeConnection({ sourcePrincipal: FRONTEND, sourceIp: '10.0.9.9', destinationPort: 5432 }).allowed);
  const deny = authorization([['deny-post', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] }]], 5432);
  t.false(deny.authorizeConnection({ sourcePrincipal: FRONTEND, sourceIp: '10.0.9.9', destinationPort: 5432 }).allowed, 'DENY ignores HTTP-only fields on TCP');
});

test('a config the engine cannot honour is refused naming the field', (t) => {
  const error = t.throws(() => RbacFilterChain.compile([{ rules: { action: 'DENY', policies: { p: { permissions: [{ any: true }], principals: [{ filter_state: { key: 'k' } }] } } } }], 'rbac'), { instanceOf: RouteConfigError });
  t.regex(error!.message, /rbac\[0\]\.rules\.policies\["p"\]\.principals\[0\]\.filter_state/);
  t.throws(() => RbacFilterChain.compile([{ rules: { action: 'ALLOW', policies: { p: { permissions: [{ destination_ip: { address_prefix: 'nope', prefix_len: { value: 8 } } }], principals: [{ any: true }] } } } }], 'rbac'), { message: /destination_ip.*not an IP address/ });
});

test('a dry-run ALLOW policy reports what it would deny and lets everything through', (t) => {
  const dry = { ...resource('AuthorizationPolicy', 'dry', { rules: [{ to: [{ operation: { paths: ['/ok'] } }] }] }, 'shop'), apiVersion: 'security.istio.io/v1' };
  dry.metadata.annotations = { 'istio.io/dry-run': 'true' };
  const listener = generateDecoded(new MeshTranslator(), model([web, db], [dry]), node('host-a'), TypeUrl.Listener).get('virtualInbound');
  const authz = InboundAuthorization.fromChain(listener.filter_chains.find((c: any) => c.filter_chain_match?.destination_port?.value === 8080));
  t.deepEqual(authz.authorizeRequest(request({ path: '/other' })), { allowed: true, shadow: { allowed: false } });
  t.deepEqual(authz.authorizeRequest(request({ path: '/ok' })), { allowed: true, shadow: { allowed: true, policy: 'ns[shop]-policy[dry]-rule[0]' } });
});

test('shadow rules report what they would decide without enforcing it', (t) => {
  const chain = RbacFilterChain.compile([{ shadow_rules: { action: 'DENY', policies: { dry: { permissions: [{ destination_port: 8080 }], principals: [{ any: true }] } } } }], 'rbac');
  t.deepEqual(chain.evaluate(request()), { allowed: true, shadow: { allowed: false, policy: 'dry' } });
});

test('a compiled policy set decides the same way on every one of 100000 evaluations', (t) => {
  const authz = authorization([
    ['deny', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin*'] } }] }] }],
    ['allow', { rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'], ipBlocks: ['10.0.0.0/8'] } }], to: [{ operation: { methods: ['GET'], paths: ['/api/*'] } }] }] }],
  ]);
  const view = request({ path: '/api/items' });
  let allowed = 0;
  const n = 100_000;
  for (let i = 0; i < n; i++) if (authz.authorizeRequest(view).allowed) allowed++;
  t.is(allowed, n);
});
