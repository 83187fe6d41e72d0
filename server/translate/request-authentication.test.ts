// RequestAuthentication to jwt_authn on HTTP inbound chains: providers per rule, Istio's
// requirement (any provider or no token), token locations and outputs, JWKS inline or by URI.
import test from 'ava';
import { httpFilters, networkFilters, security } from './security-testing';
import type { RequestAuthenticationSpec } from '../kinds/request-authentication/schema';

const ra = (name: string, spec: RequestAuthenticationSpec, namespace = 'shop') => security('RequestAuthentication', name, spec, namespace);
const jwks = JSON.stringify({ keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }] });

test('jwt_authn runs first, before RBAC and the router, with one provider per rule', (t) => {
  const filters = httpFilters([
    ra('jwt', {
      jwtRules: [
        { issuer: 'https://a.example', audiences: ['web'], jwks, fromHeaders: [{ name: 'x-jwt', prefix: 'Token ' }], fromParams: ['t'], forwardOriginalToken: true, outputPayloadToHeader: 'x-jwt-payload' },
        { issuer: 'https://b.example', jwksUri: 'https://keys.example:8443/jwks.json', timeout: '2s', outputClaimToHeaders: [{ header: 'x-sub', claim: 'sub' }] },
      ],
    }),
    security('AuthorizationPolicy', 'needs-jwt', { rules: [{ from: [{ source: { requestPrincipals: ['*'] } }] }] }),
  ]);
  t.deepEqual(filters.map((f) => f.name), ['envoy.filters.http.jwt_authn', 'envoy.filters.http.rbac', 'envoy.filters.http.router']);
  const config = filters[0].typed_config;
  const a = config.providers['origins-0'];
  t.like(a, { issuer: 'https://a.example', audiences: ['web'], forward: true, forward_payload_header: 'x-jwt-payload', payload_in_metadata: 'https://a.example', from_params: ['t'] });
  t.deepEqual(a.from_headers, [{ name: 'x-jwt', value_prefix: 'Token ' }]);
  t.is(a.local_jwks.inline_string, jwks);
  t.deepEqual(a.normalize_payload_in_metadata.space_delimited_claims, ['scope', 'permission']);
  const b = config.providers['origins-1'];
  t.deepEqual(b.remote_jwks.http_uri, { uri: 'https://keys.example:8443/jwks.json', cluster: 'outbound|8443||keys.example', timeout: { seconds: '2' } });
  t.deepEqual(b.claim_to_headers, [{ header_name: 'x-sub', claim_name: 'sub' }]);
  t.deepEqual(config.rules[0].requires.requires_any.requirements, [{ provider_name: 'origins-0' }, { provider_name: 'origins-1' }, { allow_missing: {} }]);
  t.true(config.bypass_cors_preflight);
});

test('a JWKS URI without timeout gets Istio\'s 5 s and a cache duration', (t) => {
  const [filter] = httpFilters([ra('jwt', { jwtRules: [{ issuer: 'i', jwksUri: 'http://keys.example/jwks' }] })]);
  const remote = filter.typed_config.providers['origins-0'].remote_jwks;
  t.deepEqual(remote.http_uri.timeout, { seconds: '5' });
  t.is(remote.http_uri.cluster, 'outbound|80||keys.example');
  t.deepEqual(remote.cache_duration, { seconds: '600' });
});

test('policies of other namespaces or workloads add nothing; TCP chains never get jwt_authn', (t) => {
  t.deepEqual(httpFilters([ra('other', { jwtRules: [{ issuer: 'i', jwks }] }, 'billing')]).map((f) => f.name), ['envoy.filters.http.router']);
  t.deepEqual(httpFilters([ra('db', { selector: { matchLabels: { app: 'db' } }, jwtRules: [{ issuer: 'i', jwks }] })]).map((f) => f.name), ['envoy.filters.http.router']);
  t.deepEqual(httpFilters([ra('mesh', { jwtRules: [{ issuer: 'i', jwks }] }, 'istio-system')]).map((f) => f.name), ['envoy.filters.http.jwt_authn', 'envoy.filters.http.router']);
  t.deepEqual(networkFilters([ra('mesh', { jwtRules: [{ issuer: 'i', jwks }] }, 'istio-system')]).map((f) => f.name), ['envoy.filters.network.tcp_proxy']);
});
