// The inbound decision points over a whole translated virtualInbound: PeerAuthentication modes per
// workload port (STRICT refuses plaintext, PERMISSIVE and DISABLE admit it), and RBAC and JWT
// reaching the right workload when two share a host.
import test from 'ava';
import { MeshTranslator } from '../../server/translate/mesh-translator';
import { TypeUrl, endpoint, generateDecoded, model, node, port, resource, service } from '../../server/translate/testing';
import type { ConfigResource } from '../../server/config/resource';
import { JwksCache } from './jwks-cache';
import { InboundPolicy } from './inbound-policy';
import { PeerAuthenticationTable } from './peer-authentication';
import { jwksOf, nowSeconds, testSigner } from './jwt-testing';
import { validateResources } from '../mesh-agent';

const web = service('web.shop.svc.cluster.local', { namespace: 'shop', ports: [port(8080, 'HTTP', 'http'), port(9090, 'HTTP', 'http-admin')], endpoints: [endpoint('10.0.0.1', { node: 'host-a', labels: { app: 'web' } })] });
const db = service('db.shop.svc.cluster.local', { namespace: 'shop', ports: [port(5432, 'TCP', 'tcp')], endpoints: [endpoint('10.0.0.2', { node: 'host-a', labels: { app: 'db' } })] });

const sec = (kind: string, name: string, spec: unknown, namespace = 'shop'): ConfigResource => ({ ...resource(kind, name, spec, namespace), apiVersion: 'security.istio.io/v1' });

function virtualInbound(resources: ConfigResource[]): any {
  return generateDecoded(new MeshTranslator(), model([web, db], resources), node('host-a'), TypeUrl.Listener).get('virtualInbound');
}

test('STRICT mesh-wide refuses plaintext everywhere; a workload PERMISSIVE and a port DISABLE reopen it', (t) => {
  const strict = PeerAuthenticationTable.fromListener(virtualInbound([sec('PeerAuthentication', 'default', { mtls: { mode: 'STRICT' } }, 'istio-system')]));
  t.false(strict.admitsPlaintext('10.0.0.1', 8080));
  t.false(strict.admitsPlaintext('10.0.0.2', 5432));
  const mixed = PeerAuthenticationTable.fromListener(virtualInbound([
    sec('PeerAuthentication', 'default', { mtls: { mode: 'STRICT' } }, 'istio-system'),
    sec('PeerAuthentication', 'db', { selector: { matchLabels: { app: 'db' } }, mtls: { mode: 'PERMISSIVE' } }),
    sec('PeerAuthentication', 'web', { selector: { matchLabels: { app: 'web' } }, portLevelMtls: { '9090': { mode: 'DISABLE' } } }),
  ]));
  t.true(mixed.admitsPlaintext('10.0.0.2', 5432));
  t.is(mixed.modeOf('10.0.0.2', 5432), 'PERMISSIVE');
  t.false(mixed.admitsPlaintext('10.0.0.1', 8080), 'the workload policy inherits STRICT for its other ports');
  t.true(mixed.admitsPlaintext('10.0.0.1', 9090));
  t.is(mixed.modeOf('10.0.0.1', 9090), 'DISABLE');
});

test('without PeerAuthentication plaintext is admitted (PERMISSIVE)', (t) => {
  const table = PeerAuthenticationTable.fromListener(virtualInbound([]));
  t.true(table.admitsPlaintext('10.0.0.1', 8080));
  t.is(table.modeOf('10.0.0.1', 8080), 'PERMISSIVE');
});

test('each workload port gets its own policies: RBAC on TCP, JWT and RBAC on HTTP', async (t) => {
  const signer = testSigner('ES256');
  const policy = InboundPolicy.fromListener(virtualInbound([
    sec('AuthorizationPolicy', 'db-frontend-only', { selector: { matchLabels: { app: 'db' } }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }] }] }),
    sec('RequestAuthentication', 'web-jwt', { selector: { matchLabels: { app: 'web' } }, jwtRules: [{ issuer: 'iss', jwks: jwksOf(signer) }] }),
    sec('AuthorizationPolicy', 'web-needs-jwt', { selector: { matchLabels: { app: 'web' } }, rules: [{ from: [{ source: { requestPrincipals: ['iss/*'] } }] }] }),
  ]), new JwksCache());
  const frontend = 'spiffe://cluster.local/ns/shop/sa/frontend';
  t.true(policy.authorizeConnection('10.0.0.2', 5432, { sourcePrincipal: frontend, sourceIp: '10.0.1.1', destinationPort: 5432 }).allowed);
  t.false(policy.authorizeConnection('10.0.0.2', 5432, { sourcePrincipal: 'spiffe://cluster.local/ns/x/sa/y', sourceIp: '10.0.1.1', destinationPort: 5432 }).allowed);

  const token = signer.sign({ iss: 'iss', sub: 'alice', exp: nowSeconds() + 60 });
  const headers = new Map([['authorization', `Bearer ${token}`]]);
  const result = await policy.authenticateRequest('10.0.0.1', 8080, headers, '/');
  t.false('status' in result);
  const view = { sourceIp: '10.0.1.1', destinationPort: 8080, authority: 'web', method: 'GET', path: '/', scheme: 'http', headers, metadata: 'metadata' in result ? result.metadata : undefined };
  t.true(policy.authorizeRequest('10.0.0.1', 8080, view).allowed);
  t.false(policy.authorizeRequest('10.0.0.1', 8080, { ...view, metadata: undefined }).allowed);
  const bad = await policy.authenticateRequest('10.0.0.1', 8080, new Map([['authorization', 'Bearer x.y.z']]), '/');
  t.is((bad as { status?: number }).status, 401);
  // The DB's TCP chain has no JWT, the web port no TCP RBAC.
  t.true(policy.authorizeConnection('10.0.0.1', 8080, { sourceIp: '10.0.1.1', destinationPort: 8080 }).allowed);
});

test('a virtualInbound whose RBAC the agent cannot enforce is NACKed naming the chain and field; the denyAll fallback admits nothing', (t) => {
  const listener = virtualInbound([sec('AuthorizationPolicy', 'db-frontend-only', { selector: { matchLabels: { app: 'db' } }, rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'] } }] }] })]);
  const chain = listener.filter_chains.find((c: any) => c.filter_chain_match?.destination_port?.value === 5432);
  const rbac = chain.filters.find((f: any) => String(f.typed_config?.['@type']).endsWith('network.rbac.v3.RBAC')).typed_config;
  const policyName = Object.keys(rbac.rules.policies)[0];
  rbac.rules.policies[policyName].principals = [{ requested_server_name: { exact: 'x' } }];
  const problem = validateResources(TypeUrl.Listener, new Map([['virtualInbound', listener]]));
  t.regex(problem ?? '', /^listener virtualInbound: .*filter_chains\[\d+\]\.network_rbac\[0\]\.rules\.policies\[".*"\]\.principals\[0\]/);
  t.is(validateResources(TypeUrl.Listener, new Map([['virtualInbound', virtualInbound([])]])), undefined);

  const closed = InboundPolicy.denyAll();
  t.false(closed.admitsPlaintext('10.0.0.1', 8080));
  t.false(closed.authorizeConnection('10.0.0.1', 8080, { sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/frontend', sourceIp: '10.0.1.1', destinationPort: 8080 }).allowed);
  t.deepEqual(closed.portOf('10.0.0.1', 8080), { protocol: 'tcp', rbac: true, upstreamHttp2: false });
});
