// RequestAuthentication rules beyond the schema, following Istio's validation: an issuer per rule,
// jwks or jwksUri (not both), usable key sets and URIs, non-empty token locations, header outputs.
import type { ReportIssue } from '../../config/kind';
import { checkDuration, checkPolicyTargets, reportAt, type Segments } from '../common';
import type { JWTRule, RequestAuthenticationSpec } from './schema';

// RFC 7230 token characters: what an HTTP header name may contain.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export function checkRequestAuthentication(spec: RequestAuthenticationSpec, report: ReportIssue): void {
  checkPolicyTargets(report, spec);
  spec.jwtRules?.forEach((rule, i) => checkJwtRule(report, ['jwtRules', i], rule));
}

function checkJwtRule(report: ReportIssue, at: Segments, rule: JWTRule): void {
  if (!rule.issuer) reportAt(report, [...at, 'issuer'], 'issuer must be set', rule.issuer, 'issuer-required');
  rule.audiences?.forEach((audience, i) => {
    if (audience === '') reportAt(report, [...at, 'audiences', i], 'audience must be a non-empty string', audience, 'invalid-jwt-rule');
  });
  if (rule.jwks && rule.jwksUri) {
    reportAt(report, [...at, 'jwks'], 'only one of jwks and jwksUri may be set', rule.jwks, 'jwks-conflict');
  }
  if (rule.jwksUri) {
    const problem = jwksUriProblem(rule.jwksUri);
    if (problem) reportAt(report, [...at, 'jwksUri'], problem, rule.jwksUri, 'invalid-jwks-uri');
  }
  if (rule.jwks) {
    const problem = jwksProblem(rule.jwks);
    if (problem) reportAt(report, [...at, 'jwks'], `jwks parse error: ${problem}`, undefined, 'invalid-jwks');
  }
  rule.fromHeaders?.forEach((header, i) => {
    if (header.name === '') reportAt(report, [...at, 'fromHeaders', i, 'name'], 'location header name must be a non-empty string', header.name, 'invalid-jwt-rule');
  });
  rule.fromParams?.forEach((param, i) => {
    if (param === '') reportAt(report, [...at, 'fromParams', i], 'location query must be a non-empty string', param, 'invalid-jwt-rule');
  });
  rule.fromCookies?.forEach((cookie, i) => {
    if (cookie === '') reportAt(report, [...at, 'fromCookies', i], 'cookie name must be a non-empty string', cookie, 'invalid-jwt-rule');
  });
  if (rule.outputPayloadToHeader !== undefined && !HEADER_NAME.test(rule.outputPayloadToHeader)) {
    reportAt(report, [...at, 'outputPayloadToHeader'], 'must be a valid HTTP header name', rule.outputPayloadToHeader, 'invalid-header');
  }
  const headers = new Set<string>();
  rule.outputClaimToHeaders?.forEach((output, i) => {
    const where: Segments = [...at, 'outputClaimToHeaders', i];
    if (!HEADER_NAME.test(output.header)) reportAt(report, [...where, 'header'], 'must be a valid HTTP header name', output.header, 'invalid-header');
    else if (headers.has(output.header.toLowerCase())) reportAt(report, [...where, 'header'], 'header must be unique within outputClaimToHeaders', output.header, 'invalid-header');
    headers.add(output.header.toLowerCase());
    if (output.claim === '') reportAt(report, [...where, 'claim'], 'claim must be a non-empty string', output.claim, 'invalid-jwt-rule');
  });
  checkDuration(report, [...at, 'timeout'], rule.timeout);
}

function jwksUriProblem(uri: string): string | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'jwksUri must be an absolute http(s) URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'jwksUri scheme must be http or https';
  if (url.hostname === '') return 'jwksUri must name a host';
  return undefined;
}

/** A JWK Set document: JSON with a non-empty `keys` array of objects that each name a `kty`. */
function jwksProblem(text: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    return (error as Error).message;
  }
  if (doc === null || typeof doc !== 'object' || !Array.isArray((doc as { keys?: unknown }).keys)) return 'expected a JSON object with a "keys" array';
  const keys = (doc as { keys: unknown[] }).keys;
  if (keys.length === 0) return 'the key set has no keys';
  const bad = keys.findIndex((k) => k === null || typeof k !== 'object' || typeof (k as { kty?: unknown }).kty !== 'string');
  if (bad >= 0) return `keys[${bad}] has no "kty"`;
  return undefined;
}
