// Request authentication over the jwt_authn config mesh-server emits for RequestAuthentication:
// token locations, 401s with Envoy's reasons, header outputs, JWKS fetched from a real local HTTP
// server (cached, refreshed, a hanging one failing closed), and claims reaching RBAC.
import test from 'ava';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MeshTranslator } from '../../server/translate/mesh-translator';
import { TypeUrl, endpoint, generateDecoded, model, node, port, resource, service } from '../../server/translate/testing';
import type { RequestAuthenticationSpec } from '../../server/kinds/request-authentication/schema';
import type { AuthorizationPolicySpec } from '../../server/kinds/authorization-policy/schema';
import { JwksCache } from './jwks-cache';
import { InboundAuthorization, type RequestView } from './rbac';
import { ISTIO_AUTHN, RequestAuthenticator, type Authenticated, type AuthenticationResult } from './request-authentication';
import { jwksOf, nowSeconds, testSigner, unsignedToken } from './jwt-testing';

const ISSUER = 'https://issuer.example';
const signer = testSigner('ES256');
const web = service('web.shop.svc.cluster.local', { namespace: 'shop', ports: [port(8080, 'HTTP', 'http')], endpoints: [endpoint('10.0.0.1', { node: 'host-a', labels: { app: 'web' } })] });

function inboundChain(jwt: RequestAuthenticationSpec, authz?: AuthorizationPolicySpec): any {
  const resources = [{ ...resource('RequestAuthentication', 'jwt', jwt, 'shop'), apiVersion: 'security.istio.io/v1' }];
  if (authz) resources.push({ ...resource('AuthorizationPolicy', 'authz', authz as any, 'shop'), apiVersion: 'security.istio.io/v1' });
  const listener = generateDecoded(new MeshTranslator(), model([web], resources), node('host-a'), TypeUrl.Listener).get('virtualInbound');
  return listener.filter_chains.find((c: any) => c.filter_chain_match?.destination_port?.value === 8080);
}

function authenticator(jwt: RequestAuthenticationSpec, cache = new JwksCache()): RequestAuthenticator {
  return RequestAuthenticator.fromChain(inboundChain(jwt), cache);
}

const claims = (extra: Record<string, unknown> = {}) => ({ iss: ISSUER, sub: 'alice', aud: 'web', exp: nowSeconds() + 600, ...extra });
const bearer = (token: string) => new Map([['authorization', `Bearer ${token}`]]);
const inline = { issuer: ISSUER, audiences: ['web'], jwks: jwksOf(signer) };

function ok(t: { fail(m: string): void }, result: AuthenticationResult): Authenticated {
  if ('status' in result) {
    t.fail(`expected success, got 401 ${result.reason}`);
    throw new Error(result.reason);
  }
  return result;
}

test('a valid bearer token yields Istio\'s principal, claims metadata, and the token header removed', async (t) => {
  const authn = authenticator({ jwtRules: [{ ...inline, outputPayloadToHeader: 'x-jwt-payload', outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }] }] });
  const token = signer.sign(claims({ groups: ['admins'], scope: 'read write' }));
  const result = ok(t, await authn.authenticateRequest(bearer(token), '/api'));
  t.is(result.principal, `${ISSUER}/alice`);
  const authnMetadata = result.metadata(ISTIO_AUTHN)!;
  t.is(authnMetadata['request.auth.principal'], `${ISSUER}/alice`);
  t.deepEqual((authnMetadata['request.auth.claims'] as any).scope, ['read', 'write'], 'scope is space-delimited');
  t.deepEqual(result.headers.remove, ['authorization']);
  t.deepEqual(result.headers.set, [['x-jwt-payload', token.split('.')[1]], ['x-sub', 'alice']]);
  t.deepEqual(JSON.parse(Buffer.from(result.headers.set[0]![1], 'base64url').toString()).sub, 'alice');
});

test('no token passes without a principal; invalid tokens get 401 with the reason', async (t) => {
  const authn = authenticator({ jwtRules: [inline] });
  const anonymous = ok(t, await authn.authenticateRequest(new Map(), '/'));
  t.is(anonymous.principal, undefined);
  const reason = async (token: string) => ((await authn.authenticateRequest(bearer(token), '/')) as { reason?: string }).reason;
  t.is(await reason(signer.sign(claims({ exp: nowSeconds() - 3600 }))), 'Jwt is expired');
  t.is(await reason(signer.sign(claims({ iss: 'https://other.example' }))), 'Jwt issuer is not configured');
  t.is(await reason(signer.sign(claims({ aud: 'billing' }))), 'Audiences in Jwt are not allowed');
  t.is(await reason(testSigner('ES256', signer.kid).sign(claims())), 'Jwt verification fails');
  t.regex((await reason(unsignedToken(claims())))!, /unsigned tokens are refused/);
  t.regex((await reason('x'.repeat(20_000)))!, /too long/);
  t.regex((await reason('garbage'))!, /two dots/);
  const result = await authn.authenticateRequest(bearer('garbage'), '/');
  t.is((result as { status?: number }).status, 401);
});

test('a verified token is remembered only for its lifetime', async (t) => {
  let now = nowSeconds();
  const authn = RequestAuthenticator.fromChain(inboundChain({ jwtRules: [inline] }), new JwksCache(), { nowSeconds: () => now });
  const token = signer.sign(claims({ exp: now + 120 }));
  const first = ok(t, await authn.authenticateRequest(bearer(token), '/'));
  t.is(ok(t, await authn.authenticateRequest(bearer(token), '/')), first, 'the second request reuses the verification');
  now += 120 + 61;
  t.deepEqual(await authn.authenticateRequest(bearer(token), '/'), { status: 401, reason: 'Jwt is expired' });
});

test('fromHeaders with a prefix and fromParams; forwardOriginalToken keeps the header', async (t) => {
  const authn = authenticator({ jwtRules: [{ ...inline, fromHeaders: [{ name: 'x-token', prefix: 'Token ' }], fromParams: ['jwt'], forwardOriginalToken: true }] });
  const token = signer.sign(claims());
  const fromHeader = ok(t, await authn.authenticateRequest(new Map([['x-token', `Token ${token}`]]), '/'));
  t.is(fromHeader.principal, `${ISSUER}/alice`);
  t.deepEqual(fromHeader.headers.remove, []);
  t.is(ok(t, await authn.authenticateRequest(new Map(), `/q?a=1&jwt=${token}`)).principal, `${ISSUER}/alice`);
  // The default Authorization location is not used once locations are configured.
  t.is(ok(t, await authn.authenticateRequest(bearer(token), '/')).principal, undefined);
});

test('no token passes authentication but is refused by a policy requiring requestPrincipals', async (t) => {
  const chain = inboundChain({ jwtRules: [inline] }, { rules: [{ from: [{ source: { requestPrincipals: ['*'] } }], when: [{ key: 'request.auth.claims[realm][role]', values: ['ops'] }] }] });
  const authn = RequestAuthenticator.fromChain(chain, new JwksCache());
  const authz = InboundAuthorization.fromChain(chain);
  const decide = async (headers: Map<string, string>) => {
    const result = ok(t, await authn.authenticateRequest(headers, '/'));
    const view: RequestView = { sourceIp: '10.0.0.9', destinationPort: 8080, authority: 'web', method: 'GET', path: '/', scheme: 'http', headers, metadata: result.metadata };
    return authz.authorizeRequest(view).allowed;
  };
  t.false(await decide(new Map()));
  t.true(await decide(bearer(signer.sign(claims({ realm: { role: 'ops' } })))));
  t.false(await decide(bearer(signer.sign(claims({ realm: { role: 'dev' } })))), 'nested claim must match');
});

async function jwksServer(t: { teardown(fn: () => unknown): void }, handler: http.RequestListener): Promise<string> {
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer(handler);
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
}

test('jwksUri: fetched once, served from cache, refreshed in the background when stale', async (t) => {
  let hits = 0;
  let body = jwksOf(signer);
  const uri = await jwksServer(t, (_req, res) => {
    hits++;
    res.setHeader('content-type', 'application/json');
    res.end(body);
  });
  let now = Date.now();
  const cache = new JwksCache({ now: () => now });
  const authn = authenticator({ jwtRules: [{ issuer: ISSUER, jwksUri: uri }] }, cache);
  const token = signer.sign(claims());
  t.is(ok(t, await authn.authenticateRequest(bearer(token), '/')).principal, `${ISSUER}/alice`);
  for (let i = 0; i < 50; i++) {
    const result = authn.authenticateRequest(bearer(token), '/');
    t.false(result instanceof Promise, 'cached keys answer synchronously');
  }
  t.is(hits, 1);
  // A rotated key: after the cache duration the next request starts a refresh and old keys serve meanwhile.
  const rotated = testSigner('ES256', 'rotated');
  body = jwksOf(signer, rotated);
  now += 11 * 60 * 1000;
  ok(t, await authn.authenticateRequest(bearer(token), '/'));
  const deadline = Date.now() + 10_000;
  let principal: string | undefined;
  while (Date.now() < deadline) {
    const result = await authn.authenticateRequest(bearer(rotated.sign(claims())), '/');
    if (!('status' in result)) {
      principal = result.principal;
      break;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  t.is(principal, `${ISSUER}/alice`);
  t.is(hits, 2);
});

test('a hanging JWKS endpoint fails closed within the timeout and does not hold later requests', async (t) => {
  let fetches = 0;
  const uri = await jwksServer(t, () => {
    fetches++;
  });
  const authn = authenticator({ jwtRules: [{ issuer: ISSUER, jwksUri: uri, timeout: '300ms' }] });
  const started = Date.now();
  const result = await authn.authenticateRequest(bearer(signer.sign(claims())), '/');
  const elapsed = Date.now() - started;
  t.deepEqual(result, { status: 401, reason: 'Jwks remote fetch is failed' });
  t.true(elapsed >= 250 && elapsed < 5000, `took ${elapsed} ms`);
  // During the back-off the answer comes without asking the endpoint again; requests without a
  // token are unaffected.
  t.is(((await authn.authenticateRequest(bearer(signer.sign(claims())), '/')) as { status?: number }).status, 401);
  t.is(fetches, 1);
  t.is(ok(t, await authn.authenticateRequest(new Map(), '/')).principal, undefined);
});

test('a JWKS endpoint answering garbage or an error status fails closed', async (t) => {
  const uri = await jwksServer(t, (req, res) => {
    if (req.url?.includes('bad')) res.end('not json');
    else {
      res.statusCode = 500;
      res.end();
    }
  });
  for (const target of [uri.replace('jwks.json', 'bad'), uri]) {
    const authn = authenticator({ jwtRules: [{ issuer: ISSUER, jwksUri: target }] });
    t.deepEqual(await authn.authenticateRequest(bearer(signer.sign(claims())), '/'), { status: 401, reason: 'Jwks remote fetch is failed' });
  }
});

test('a chain without RequestAuthentication authenticates nothing and never rejects', async (t) => {
  const listener = generateDecoded(new MeshTranslator(), model([web]), node('host-a'), TypeUrl.Listener).get('virtualInbound');
  const authn = RequestAuthenticator.fromChain(listener.filter_chains[0], new JwksCache());
  t.is(ok(t, await authn.authenticateRequest(bearer('garbage'), '/')).principal, undefined);
});
