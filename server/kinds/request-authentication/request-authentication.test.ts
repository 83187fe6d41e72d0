// Tests of the RequestAuthentication schema and checks: Istio's documented JWT rule passes, and
// issuer, jwks/jwksUri, token location and claim output rules report the offending path.
import test from 'ava';
import { issueAt, lines, validateYaml } from '../testing';
import { requestAuthenticationKind } from './schema';

const ra = (yaml: string) => validateYaml(requestAuthenticationKind, yaml);

const JWKS = JSON.stringify({ keys: [{ kty: 'RSA', e: 'AQAB', n: 'xAE7eB6qugXyCAG3yhh7pkDkT65pHymX-P7KfIupjf59vsdo91bSP9C8H07pSAGQO1MV_xFj9VswgsCg4R6otmg5PV2He95lZdHtOcU5DXIg_pbhLdKXbi66GlVeK6ABZOUW3WYtnNHD-91gVuoeJT_DwtGGcp4ignkgXfkiEm4sw-4sfb4qdt5oLbyVpmW6x9cfa7vs2WTfURiCrBoUqgBo_-4WTiULmmHSGZHOjzwa8WtrtOQGsAFjIbno85jp6MnGGGZPYZbDAa_b3y5u-YpW7ypZrvD8BgtKVjgtQgZhLAGezMt0ua3DRrWnKqTZ0BJ_EyxOGuHJrLsn00fnMQ' }] });

test('the documented httpbin JWT rule with every token location and output is accepted', (t) => {
  const result = ra(`
selector:
  matchLabels:
    app: httpbin
jwtRules:
- issuer: "issuer-foo"
  audiences: [bookstore_android.apps.example.com, bookstore_web.apps.example.com]
  jwksUri: https://example.com/.well-known/jwks.json
  fromHeaders:
  - name: x-jwt-assertion
    prefix: "Bearer "
  fromParams:
  - "my_token"
  fromCookies:
  - auth-token
  outputPayloadToHeader: x-jwt-payload
  outputClaimToHeaders:
  - header: "x-jwt-claim-foo"
    claim: "foo"
  - header: "x-jwt-claim-group"
    claim: "nested.key.group"
  forwardOriginalToken: true
  timeout: 5s
  spaceDelimitedClaims: [custom_scope]
- issuer: "issuer-bar"
  jwks: '${JWKS}'
`);
  t.deepEqual(lines(result.issues), []);
  t.is(result.spec?.jwtRules?.[0]?.fromHeaders?.[0]?.prefix, 'Bearer ');
});

test('a targetRefs attachment to a Gateway is accepted; selector with targetRefs is not', (t) => {
  t.deepEqual(ra(`{targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: ingress}], jwtRules: [{issuer: a}]}`).issues, []);
  const both = ra(`{selector: {matchLabels: {app: a}}, targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: ingress}]}`);
  t.is(issueAt(both.issues, 'selector')?.code, 'target-conflict');
  const kind = ra(`{targetRef: {kind: Deployment, group: apps, name: web}}`);
  t.is(issueAt(kind.issues, 'targetRef.kind')?.code, 'invalid-target');
});

test('every JWT rule needs an issuer', (t) => {
  const result = ra(`{jwtRules: [{issuer: a}, {jwksUri: "https://example.com/jwks.json"}]}`);
  const issue = issueAt(result.issues, 'jwtRules[1].issuer');
  t.is(issue?.message, 'issuer must be set');
  t.is(issue?.code, 'issuer-required');
});

test('jwks and jwksUri cannot both be set', (t) => {
  const result = ra(`{jwtRules: [{issuer: a, jwksUri: "https://example.com/jwks.json", jwks: '${JWKS}'}]}`);
  t.is(issueAt(result.issues, 'jwtRules[0].jwks')?.message, 'only one of jwks and jwksUri may be set');
});

test('jwksUri must be an http(s) URL and jwks a key set', (t) => {
  const uri = ra(`{jwtRules: [{issuer: a, jwksUri: "ftp://example.com/jwks"}]}`);
  t.is(issueAt(uri.issues, 'jwtRules[0].jwksUri')?.message, 'jwksUri scheme must be http or https');
  const jwks = ra(`{jwtRules: [{issuer: a, jwks: '{"keys": "none"}'}]}`);
  t.regex(issueAt(jwks.issues, 'jwtRules[0].jwks')?.message ?? '', /jwks parse error/);
});

test('token locations and audiences must not be empty strings', (t) => {
  const result = ra(`{jwtRules: [{issuer: a, audiences: [""], fromHeaders: [{name: ""}], fromParams: [""]}]}`);
  t.truthy(issueAt(result.issues, 'jwtRules[0].audiences[0]'));
  t.is(issueAt(result.issues, 'jwtRules[0].fromHeaders[0].name')?.message, 'location header name must be a non-empty string');
  t.is(issueAt(result.issues, 'jwtRules[0].fromParams[0]')?.message, 'location query must be a non-empty string');
});

test('claim output headers must be valid and unique', (t) => {
  const result = ra(`{jwtRules: [{issuer: a, outputClaimToHeaders: [{header: x-group, claim: group}, {header: X-Group, claim: other}, {header: "bad header", claim: c}]}]}`);
  t.is(issueAt(result.issues, 'jwtRules[0].outputClaimToHeaders[1].header')?.message, 'header must be unique within outputClaimToHeaders');
  t.is(issueAt(result.issues, 'jwtRules[0].outputClaimToHeaders[2].header')?.message, 'must be a valid HTTP header name');
});

test('unknown fields and wrong types are reported at their path', (t) => {
  t.is(issueAt(ra(`{jwtRules: [{issuer: a, fromHeader: [{name: x}]}]}`).issues, 'jwtRules[0].fromHeader')?.code, 'unknown-field');
  t.is(issueAt(ra(`{jwtRules: [{issuer: a, fromHeaders: [x-token]}]}`).issues, 'jwtRules[0].fromHeaders[0]')?.code, 'invalid-type');
  t.is(issueAt(ra(`{jwtRules: [{issuer: a, forwardOriginalToken: "yes"}]}`).issues, 'jwtRules[0].forwardOriginalToken')?.code, 'invalid-type');
});
