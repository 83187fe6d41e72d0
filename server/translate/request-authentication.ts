// RequestAuthentication to Envoy's jwt_authn HTTP filter, as Istio generates it for an inbound
// chain: one provider per JWT rule (`origins-N`), required as "any provider, or no token at all"
// so a bad token is a 401 and a missing one passes on to authorization (requestPrincipals).
import type { ConfigResource } from '../config/resource';
import type { JWTRule, RequestAuthenticationSpec } from '../kinds/request-authentication/schema';
import { FilterName, ProtoType, splitHostPort, outboundClusterName } from './names';
import { anyOf, durationFromMs, durationFromText, type ProtoObject } from './proto-values';

export type RequestAuthenticationResource = ConfigResource<RequestAuthenticationSpec>;

/** Istio fetches a jwksUri within 5 s unless the rule says otherwise. */
const DEFAULT_JWKS_TIMEOUT_MS = 5000;
/** Envoy's default cache lifetime for a fetched key set (10 min); the agent refreshes on expiry. */
const JWKS_CACHE_MS = 10 * 60 * 1000;
/** Claims Istio always splits on spaces (OAuth scopes), so `scope: "a b"` matches `a`. */
const DEFAULT_SPACE_DELIMITED_CLAIMS = ['scope', 'permission'];

/** The cluster Istio names for a JWKS host: the outbound cluster of its host and port. */
function jwksCluster(uri: URL): string {
  const { host } = splitHostPort(uri.host);
  const port = uri.port !== '' ? Number(uri.port) : uri.protocol === 'https:' ? 443 : 80;
  return outboundClusterName(port, host);
}

function provider(rule: JWTRule): ProtoObject {
  const out: ProtoObject = {
    issuer: rule.issuer,
    // Istio puts the payload under the issuer, where its authn filter reads claims for RBAC.
    payload_in_metadata: rule.issuer,
    normalize_payload_in_metadata: { space_delimited_claims: [...new Set([...DEFAULT_SPACE_DELIMITED_CLAIMS, ...(rule.spaceDelimitedClaims ?? [])])] },
  };
  if (rule.audiences?.length) out.audiences = rule.audiences;
  if (rule.jwks) out.local_jwks = { inline_string: rule.jwks };
  else if (rule.jwksUri) {
    const uri = new URL(rule.jwksUri);
    out.remote_jwks = {
      http_uri: { uri: rule.jwksUri, cluster: jwksCluster(uri), timeout: durationFromText(rule.timeout) ?? durationFromMs(DEFAULT_JWKS_TIMEOUT_MS) },
      cache_duration: durationFromMs(JWKS_CACHE_MS),
    };
  }
  if (rule.fromHeaders?.length) out.from_headers = rule.fromHeaders.map((h) => (h.prefix ? { name: h.name, value_prefix: h.prefix } : { name: h.name }));
  if (rule.fromParams?.length) out.from_params = rule.fromParams;
  if (rule.fromCookies?.length) out.from_cookies = rule.fromCookies;
  if (rule.forwardOriginalToken) out.forward = true;
  if (rule.outputPayloadToHeader) out.forward_payload_header = rule.outputPayloadToHeader;
  if (rule.outputClaimToHeaders?.length) out.claim_to_headers = rule.outputClaimToHeaders.map((c) => ({ header_name: c.header, claim_name: c.claim }));
  return out;
}

/** Provider name Istio uses, by position across every applicable policy's rules. */
export function jwtProviderName(index: number): string {
  return `origins-${index}`;
}

/** The jwt_authn filter for the policies that apply to a workload; undefined when none has a rule. */
export function buildJwtAuthnFilter(policies: readonly RequestAuthenticationResource[]): ProtoObject | undefined {
  const rules = policies.flatMap((p) => p.spec.jwtRules ?? []).filter((r) => r.issuer);
  if (rules.length === 0) return undefined;
  const providers: Record<string, ProtoObject> = {};
  rules.forEach((rule, i) => {
    providers[jwtProviderName(i)] = provider(rule);
  });
  const requirements: ProtoObject[] = rules.map((_, i) => ({ provider_name: jwtProviderName(i) }));
  requirements.push({ allow_missing: {} });
  return {
    name: FilterName.jwtAuthn,
    typed_config: anyOf(ProtoType.jwtAuthn, {
      providers,
      rules: [{ match: { prefix: '/' }, requires: { requires_any: { requirements } } }],
      bypass_cors_preflight: true,
    }),
  };
}
