// Turns an agent's CSR into a short-lived X.509-SVID leaf, after checking the CSR's signature, key
// type and its single SPIFFE URI SAN, and that the requesting node runs a workload with that identity.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { CaError } from './ca-error';
import { randomSerial, type CaKeys } from './ca-keys';
import { parseWorkloadId } from './spiffe';
import { x509 } from './x509';

export const DEFAULT_LEAF_TTL_MS = 24 * 3600 * 1000;
/** Leaves start this far in the past so a peer whose clock runs slow accepts them at once. */
export const CLOCK_SKEW_MS = 5 * 60 * 1000;
/** A P-256 CSR with one SAN is well under 1 KiB; anything far larger is not ours and is not parsed. */
export const MAX_CSR_BYTES = 8 * 1024;

export interface SignRequest {
  /** The mesh-agent's node name, as authenticated by its join token or current certificate. */
  requester: { node: string };
  /** Identities the node may obtain (see entitlements.ts); unknown nodes get an empty set. */
  allowedIdentities: (node: string) => ReadonlySet<string>;
  ttlMs?: number;
  now?: Date;
}

export interface SignedLeaf {
  certificatePem: string;
  /** Signing certificate and intermediates, leaf's issuer first, without the root. */
  chainPem: readonly string[];
  notAfter: Date;
  spiffeId: string;
  serialNumber: string;
}

const PEM_CSR = /^-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END (NEW )?CERTIFICATE REQUEST-----\s*$/;

function reject(code: ConstructorParameters<typeof CaError>[0], message: string): never {
  throw new CaError(code, message);
}

function decode(input: string | Uint8Array): Uint8Array {
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (size > MAX_CSR_BYTES) reject('csr-too-large', `the CSR is ${size} bytes, more than the ${MAX_CSR_BYTES} a mesh CSR can need`);
  if (typeof input !== 'string') return input;
  const match = PEM_CSR.exec(input.trim());
  if (!match) reject('csr-malformed', 'the CSR is not one PEM "CERTIFICATE REQUEST" block');
  return Buffer.from(match[2]!, 'base64');
}

function parse(der: Uint8Array): x509.Pkcs10CertificateRequest {
  try {
    const csr = new x509.Pkcs10CertificateRequest(der);
    // Touch the parts we rely on now, so a structurally broken CSR fails here and not halfway through.
    void csr.publicKey.rawData;
    void csr.extensions;
    return csr;
  } catch (error) {
    return reject('csr-malformed', `the CSR is not a valid PKCS#10 request (${(error as Error).message})`);
  }
}

function requireP256(csr: x509.Pkcs10CertificateRequest): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
  } catch (error) {
    return reject('csr-malformed', `the CSR's public key cannot be read (${(error as Error).message})`);
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    reject('csr-unsupported-key', `the CSR's key must be ECDSA P-256, got ${key.asymmetricKeyType}${curve ? ` ${curve}` : ''}`);
  }
  return key;
}

async function requireValidSignature(csr: x509.Pkcs10CertificateRequest): Promise<void> {
  // The library types this with the DOM's Algorithm, which this project does not compile against.
  const algorithm = csr.signatureAlgorithm as unknown as { name: string; hash?: { name?: string } };
  if (algorithm.name !== 'ECDSA' || algorithm.hash?.name !== 'SHA-256') {
    reject('csr-bad-signature', `the CSR must be signed with ECDSA and SHA-256, got ${algorithm.name}/${algorithm.hash?.name}`);
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch {
    valid = false;
  }
  // Without proof of possession, anyone who saw an agent's public key could get it certified.
  if (!valid) reject('csr-bad-signature', "the CSR's signature does not verify with its own public key");
}

function requireSpiffeSan(csr: x509.Pkcs10CertificateRequest, trustDomain: string): string {
  // The leaf's subject is always empty (the identity is the URI SAN); a name here would only be a
  // way to get text past verifiers that still look at the common name, so it is refused, not dropped.
  if (csr.subjectName.toJSON().length > 0) {
    reject('csr-bad-subject', `the CSR's subject must be empty, got "${csr.subject}"; the identity goes in a URI SAN`);
  }
  const sans = csr.extensions.filter((e) => e.type === SUBJECT_ALT_NAME_OID);
  if (sans.length !== 1) reject('csr-bad-san', `the CSR must request exactly one subjectAltName extension, got ${sans.length}`);
  let names: readonly x509.GeneralName[];
  try {
    names = new x509.SubjectAlternativeNameExtension(sans[0]!.rawData).names.items;
  } catch (error) {
    return reject('csr-malformed', `the CSR's subjectAltName cannot be read (${(error as Error).message})`);
  }
  if (names.length !== 1 || names[0]!.type !== 'url') {
    const got = names.map((n) => `${n.type}:${n.value}`).join(', ') || 'none';
    reject('csr-bad-san', `the CSR must carry exactly one URI SAN (the SPIFFE ID) and no other name, got ${got}`);
  }
  const uri = names[0]!.value;
  const parsed = parseWorkloadId(uri);
  if (!parsed.ok) reject('csr-bad-san', `the CSR's URI SAN is not a valid workload SPIFFE ID: ${parsed.reason}`);
  if (parsed.value.trustDomain !== trustDomain) {
    reject('csr-wrong-trust-domain', `the CSR asks for ${uri}, but this CA issues only in trust domain "${trustDomain}"`);
  }
  return uri;
}

// Per-CA values that need async work (AKI from the signing certificate) are computed once.
const authorityKeyIds = new WeakMap<CaKeys, Promise<x509.AuthorityKeyIdentifierExtension>>();

function authorityKeyId(keys: CaKeys): Promise<x509.AuthorityKeyIdentifierExtension> {
  let aki = authorityKeyIds.get(keys);
  if (!aki) {
    const ski = keys.signingCertificate.getExtension(x509.SubjectKeyIdentifierExtension);
    aki = ski
      ? Promise.resolve(new x509.AuthorityKeyIdentifierExtension(ski.keyId))
      : x509.AuthorityKeyIdentifierExtension.create(keys.signingCertificate.publicKey);
    authorityKeyIds.set(keys, aki);
  }
  return aki;
}

const SUBJECT_ALT_NAME_OID = '2.5.29.17';
const LEAF_KEY_USAGE = x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment;

export async function signCsr(keys: CaKeys, trustDomain: string, csrInput: string | Uint8Array, request: SignRequest): Promise<SignedLeaf> {
  const now = request.now ?? new Date();
  const ttlMs = request.ttlMs ?? DEFAULT_LEAF_TTL_MS;
  if (!(ttlMs > 0)) throw new RangeError(`ttlMs must be positive, got ${ttlMs}`);
  const csr = parse(decode(csrInput));
  requireP256(csr);
  await requireValidSignature(csr);
  const spiffeId = requireSpiffeSan(csr, trustDomain);
  const { node } = request.requester;
  if (!request.allowedIdentities(node).has(spiffeId)) {
    reject('csr-not-entitled', `node "${node}" runs no workload with identity ${spiffeId} according to the registry`);
  }
  // A leaf must not outlive the certificate that vouches for it.
  const signerNotAfter = keys.signingCertificate.notAfter.getTime();
  const notAfter = new Date(Math.min(now.getTime() + ttlMs, signerNotAfter));
  const serialNumber = randomSerial();
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber,
    issuer: keys.signingCertificate.subjectName,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter,
    publicKey: csr.publicKey,
    signingKey: keys.signingKey,
    signingAlgorithm: keys.signingAlgorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(LEAF_KEY_USAGE, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      // Critical because the subject is empty (RFC 5280 4.2.1.6).
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }], true),
      await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
      await authorityKeyId(keys),
    ],
  });
  return { certificatePem: leaf.toString('pem'), chainPem: keys.chainPem, notAfter, spiffeId, serialNumber };
}
