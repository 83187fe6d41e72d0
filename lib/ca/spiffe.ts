// SPIFFE IDs (spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT): parsing, formatting and the
// validation rules of the SPIFFE ID specification, so only well-formed identities reach a certificate.

/** The SPIFFE ID spec's limits: URIs up to 2048 bytes, trust domain names up to 255 characters. */
export const MAX_SPIFFE_ID_LENGTH = 2048;
export const MAX_TRUST_DOMAIN_LENGTH = 255;

const SCHEME = 'spiffe://';
// The spec restricts trust domains to lowercase so two spellings can never name the same domain.
const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
const PATH_SEGMENT_CHARS = /^[a-zA-Z0-9._-]+$/;

export interface SpiffeId {
  trustDomain: string;
  /** Path segments without the separating slashes; empty for the trust domain's own ID. */
  segments: string[];
}

export interface WorkloadIdentity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

export type SpiffeResult<T> = { ok: true; value: T } | { ok: false; reason: string };

function fail<T>(reason: string): SpiffeResult<T> {
  return { ok: false, reason };
}

export function validateTrustDomain(trustDomain: string): string | undefined {
  if (trustDomain.length === 0) return 'the trust domain is empty';
  if (trustDomain.length > MAX_TRUST_DOMAIN_LENGTH) {
    return `the trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`;
  }
  if (!TRUST_DOMAIN_CHARS.test(trustDomain)) {
    return `trust domain "${trustDomain}" may only contain lowercase letters, digits, '.', '-' and '_'`;
  }
  return undefined;
}

export function validatePathSegment(segment: string): string | undefined {
  if (segment.length === 0) return 'the path has an empty segment';
  if (segment === '.' || segment === '..') return `the path has a "${segment}" segment`;
  if (!PATH_SEGMENT_CHARS.test(segment)) {
    return `path segment "${segment}" may only contain letters, digits, '.', '-' and '_'`;
  }
  return undefined;
}

/** Parses any SPIFFE ID; percent-encoding, ports, user info, queries and fragments are all refused. */
export function parseSpiffeId(uri: string): SpiffeResult<SpiffeId> {
  if (Buffer.byteLength(uri, 'utf8') > MAX_SPIFFE_ID_LENGTH) {
    return fail(`a SPIFFE ID is at most ${MAX_SPIFFE_ID_LENGTH} bytes`);
  }
  if (!uri.startsWith(SCHEME)) return fail(`"${uri}" does not start with "${SCHEME}" (the scheme must be lowercase)`);
  const rest = uri.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const trustDomainProblem = validateTrustDomain(trustDomain);
  if (trustDomainProblem) return fail(trustDomainProblem);
  if (slash === -1) return { ok: true, value: { trustDomain, segments: [] } };
  const path = rest.slice(slash + 1);
  if (path.length === 0) return fail('a SPIFFE ID must not end with "/"');
  const segments = path.split('/');
  for (const segment of segments) {
    const problem = validatePathSegment(segment);
    if (problem) return fail(problem);
  }
  return { ok: true, value: { trustDomain, segments } };
}

/** Whether a parsed ID's path has a workload's shape, `ns/NAMESPACE/sa/SERVICE_ACCOUNT`. */
export function isWorkloadPath(segments: readonly string[]): boolean {
  return segments.length === 4 && segments[0] === 'ns' && segments[2] === 'sa';
}

/** Whether a parsed ID's path has a mesh-agent's shape, `node/NODE`. */
export function isNodePath(segments: readonly string[]): boolean {
  return segments.length === 2 && segments[0] === 'node';
}

export function notWorkloadShapeReason(uri: string): string {
  return `"${uri}" is not of the form spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`;
}

/** Parses a workload ID of the mesh's shape `spiffe://TD/ns/NAMESPACE/sa/SERVICE_ACCOUNT`. */
export function parseWorkloadId(uri: string): SpiffeResult<WorkloadIdentity> {
  const parsed = parseSpiffeId(uri);
  if (!parsed.ok) return parsed;
  const { trustDomain, segments } = parsed.value;
  if (!isWorkloadPath(segments)) return fail(notWorkloadShapeReason(uri));
  return { ok: true, value: { trustDomain, namespace: segments[1]!, serviceAccount: segments[3]! } };
}

export function formatWorkloadId(identity: WorkloadIdentity): SpiffeResult<string> {
  const problem = validateTrustDomain(identity.trustDomain)
    ?? validatePathSegment(identity.namespace)
    ?? validatePathSegment(identity.serviceAccount);
  if (problem) return fail(problem);
  const uri = `${SCHEME}${identity.trustDomain}/ns/${identity.namespace}/sa/${identity.serviceAccount}`;
  if (Buffer.byteLength(uri, 'utf8') > MAX_SPIFFE_ID_LENGTH) {
    return fail(`a SPIFFE ID is at most ${MAX_SPIFFE_ID_LENGTH} bytes`);
  }
  return { ok: true, value: uri };
}

/**
 * A mesh-agent's own identity, `spiffe://TD/node/NODE`: what its join token and its node certificate
 * prove, and what authenticates it to the CA and to xDS. Two path segments, so it never collides with
 * a workload's four-segment `ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
 */
export function formatNodeId(trustDomain: string, node: string): SpiffeResult<string> {
  const problem = validateTrustDomain(trustDomain) ?? validatePathSegment(node);
  if (problem) return fail(problem);
  return { ok: true, value: `${SCHEME}${trustDomain}/node/${node}` };
}

export function parseNodeId(uri: string): SpiffeResult<{ trustDomain: string; node: string }> {
  const parsed = parseSpiffeId(uri);
  if (!parsed.ok) return parsed;
  const { trustDomain, segments } = parsed.value;
  if (!isNodePath(segments)) return fail(`"${uri}" is not of the form spiffe://TRUST_DOMAIN/node/NODE`);
  return { ok: true, value: { trustDomain, node: segments[1]! } };
}
