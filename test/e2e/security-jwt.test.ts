// RequestAuthentication enforced by the serving agent on namespaced hosts: keys generated here, the
// JWKS inline in the resource, tokens sent by curl through the caller's agent and the tunnel. Valid
// tokens reach the app (token removed or forwarded, payload header added); expired, wrong issuer,
// wrong audience and bad signature get Envoy's 401; no token is refused by the AuthorizationPolicy.
import { jwksOf, nowSeconds, testSigner } from '../../agent/policy/jwt-testing';
import { requireNetns } from '../netns/guard';
import type { TestHost } from '../netns/test-network';
import { meshPerFile } from './mesh-hosts';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'curl'], { serial: true });

type Host = 'cp' | 'a' | 'b';

const PROFILE_PORT = 8090;
const ISSUER = 'https://issuer.test';
const PARTNER = 'https://partner.test';

const issuerKey = testSigner('RS256');
const partnerKey = testSigner('ES256');
/** Same kid and algorithm as the issuer's key, another private key: what a forger would have. */
const forgedKey = testSigner('RS256', issuerKey.kid);

/** `node -e HEADER_ECHO_APP PORT`: answers JSON with the request line and every header the app received. */
const HEADER_ECHO_APP = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  const body = JSON.stringify({ method: req.method, path: req.url, headers: req.headers });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
server.listen(Number(process.argv[1]), '0.0.0.0', () => console.log(JSON.stringify({ msg: 'listening' })));
`;

const profileVip = (hosts: Readonly<Record<Host, TestHost>>): string => hosts.a.ip.replace(/\.\d+$/, '.211');

function meshConfig(hosts: Readonly<Record<Host, TestHost>>): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: profile }
spec:
  hosts: [profile.mesh]
  addresses: [${profileVip(hosts)}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: ${PROFILE_PORT}, name: http-profile, protocol: HTTP }]
  workloadSelector: { labels: { app: profile } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: profile-b, annotations: { mesh.io/node: b } }
spec: { address: ${hosts.b.ip}, labels: { app: profile }, ports: { http-profile: ${PROFILE_PORT} } }
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: profile-jwt }
spec:
  selector: { matchLabels: { app: profile } }
  jwtRules:
    - issuer: ${ISSUER}
      audiences: [profile]
      jwks: ${JSON.stringify(jwksOf(issuerKey))}
      outputPayloadToHeader: x-jwt-payload
    - issuer: ${PARTNER}
      jwks: ${JSON.stringify(jwksOf(partnerKey))}
      forwardOriginalToken: true
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: profile-needs-token }
spec:
  selector: { matchLabels: { app: profile } }
  action: ALLOW
  rules: [{ from: [{ source: { requestPrincipals: ["${ISSUER}/*", "${PARTNER}/*"] } }] }]
`;
}

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b'],
  server: 'cp',
  agents: ['a', 'b'],
  config: (hosts) => ({ 'mesh.yaml': meshConfig(hosts) }),
  apps: () => [{ host: 'b', name: 'profile', source: HEADER_ECHO_APP, args: [String(PROFILE_PORT)] }],
});

interface CurlResult {
  status: number;
  headers: string;
  body: string;
}

/** curl from host a to the profile service, with `Authorization: Bearer TOKEN` when given. */
async function get(path: string, token?: string): Promise<CurlResult> {
  const m = await mesh();
  const auth = token === undefined ? [] : ['-H', `authorization: Bearer ${token}`];
  const url = `http://${profileVip(m.hosts)}:${PROFILE_PORT}${path}`;
  const result = await m.exec('a', ['curl', '-s', '-m', '10', '-D', '-', ...auth, url], { allowFailure: true, timeoutMs: 30_000 });
  if (result.exitCode !== 0) throw new Error(`curl ${url} exited ${result.exitCode}: ${result.stderr}`);
  const separator = result.stdout.indexOf('\r\n\r\n');
  const head = result.stdout.slice(0, separator);
  return { status: Number(/^HTTP\/\S+ (\d{3})/.exec(head)?.[1]), headers: head, body: result.stdout.slice(separator + 4) };
}

const claims = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ iss: ISSUER, sub: 'alice', aud: 'profile', exp: nowSeconds() + 600, ...extra });

netnsTest('a valid token reaches the app without the token and with its payload header; a partner token is forwarded as sent', async (t) => {
  t.timeout(300_000);
  const ok = await get('/me?view=full', issuerKey.sign(claims()));
  t.is(ok.status, 200, ok.body);
  const seen = JSON.parse(ok.body) as { path: string; headers: Record<string, string | undefined> };
  t.is(seen.path, '/me?view=full');
  t.is(seen.headers.authorization, undefined, 'forwardOriginalToken is off: the token stops at the agent');
  t.like(JSON.parse(Buffer.from(seen.headers['x-jwt-payload'] ?? '', 'base64url').toString()), { iss: ISSUER, sub: 'alice' });

  const partnerToken = partnerKey.sign({ iss: PARTNER, sub: 'bob', exp: nowSeconds() + 600 });
  const partner = await get('/me', partnerToken);
  t.is(partner.status, 200, partner.body);
  t.is((JSON.parse(partner.body) as { headers: Record<string, string> }).headers.authorization, `Bearer ${partnerToken}`);
});

netnsTest('expired, wrong issuer, wrong audience and bad signature get 401 with Envoy\'s body and challenge; no token gets 403 from the policy', async (t) => {
  t.timeout(300_000);
  const cases: ReadonlyArray<readonly [string, string, string]> = [
    ['expired', issuerKey.sign(claims({ exp: nowSeconds() - 3600 })), 'Jwt is expired'],
    ['wrong issuer', issuerKey.sign(claims({ iss: 'https://elsewhere.test' })), 'Jwt issuer is not configured'],
    ['wrong audience', issuerKey.sign(claims({ aud: 'billing' })), 'Audiences in Jwt are not allowed'],
    ['bad signature', forgedKey.sign(claims()), 'Jwt verification fails'],
  ];
  for (const [what, token, body] of cases) {
    const reply = await get('/me', token);
    t.is(reply.status, 401, `${what}: ${reply.body}`);
    t.is(reply.body, body, what);
    t.regex(reply.headers, /^www-authenticate: Bearer realm="http:\/\/[^"]+\/me", error="invalid_token"\r?$/im, what);
  }
  const anonymous = await get('/me');
  t.is(anonymous.status, 403);
  t.is(anonymous.body, 'RBAC: access denied');

  const m = await mesh();
  const stats = await m.exec('b', ['curl', '-s', '-m', '5', 'http://127.0.0.1:15000/stats']);
  const rejected = Number(/^agent\.inbound\.jwt_rejected: (\d+)$/m.exec(stats.stdout)?.[1]);
  t.true(rejected >= cases.length, stats.stdout);
});
