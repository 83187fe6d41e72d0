// Turns an agent's CSR into a short-lived X.509-SVID leaf, after checking the CSR's signature, key
// type and its single SPIFFE URI SAN, and that the requesting node runs a workload with that identity.
import { createHash, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { CaError, type CaErrorCode } from './ca-error';
import { randomSerialBytes, type CaKeys } from './ca-keys';
import { children, content, DerError, expect, oid, readTlv, TAG, time, tlv, whole, type Tlv } from './der';
import { isNodePath, isWorkloadPath, notWorkloadShapeReason, parseSpiffeId } from '../../lib/ca/spiffe';

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
  /** The refusal's wording when the identity is not allowed; default: the registry's view. */
  explainRefusal?: (node: string, spiffeId: string) => string;
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

const OID = {
  ecPublicKey: oid('1.2.840.10045.2.1'),
  prime256v1: oid('1.2.840.10045.3.1.7'),
  ecdsaWithSha256: oid('1.2.840.10045.4.3.2'),
  extensionRequest: oid('1.2.840.113549.1.9.14'),
  subjectAltName: oid('2.5.29.17'),
};

// GeneralName choices by their context tag (RFC 5280 4.2.1.6), for messages about refused SANs.
const GENERAL_NAME_KINDS: Record<number, string> = {
  0xa0: 'otherName', 0x81: 'email', 0x82: 'DNS', 0xa3: 'x400Address', 0xa4: 'directoryName',
  0xa5: 'ediPartyName', 0x86: 'URI', 0x87: 'IP', 0x88: 'registeredID',
};
const URI_TAG = 0x86;

const PEM_CSR = /^-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END (NEW )?CERTIFICATE REQUEST-----$/;

function reject(code: CaErrorCode, message: string): never {
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

/** The parts of a PKCS#10 request the CA decides on, as slices of the request's bytes. */
interface ParsedCsr {
  info: Uint8Array;
  subjectIsEmpty: boolean;
  subjectPublicKeyInfo: Uint8Array;
  keyAlgorithm: Uint8Array;
  keyParameters: Uint8Array | undefined;
  publicPoint: Uint8Array;
  signatureAlgorithm: Uint8Array;
  signature: Uint8Array;
  /** Every GeneralName of every subjectAltName extension requested, and how many such extensions. */
  sanExtensions: number;
  names: { tag: number; value: Uint8Array }[];
}

function bitStringContent(bytes: Uint8Array, bits: Tlv, what: string): Uint8Array {
  const value = content(bytes, bits);
  if (value.length < 1 || value[0] !== 0) throw new DerError(`${what}: not a whole number of bytes`);
  return value.subarray(1);
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

// CertificationRequest ::= SEQUENCE { CertificationRequestInfo, AlgorithmIdentifier, BIT STRING }
// CertificationRequestInfo ::= SEQUENCE { version 0, subject Name, SubjectPublicKeyInfo, [0] Attributes }
function parseCsr(der: Uint8Array): ParsedCsr {
  const outer = expect(der, 0, der.length, TAG.sequence, 'request');
  if (outer.end !== der.length) throw new DerError('bytes after the request');
  const [info, algorithm, signature, ...rest] = children(der, outer);
  if (!info || !algorithm || !signature || rest.length > 0) throw new DerError('request: expected three elements');
  if (info.tag !== TAG.sequence || algorithm.tag !== TAG.sequence || signature.tag !== TAG.bitString) throw new DerError('request: wrong element types');
  const [version, subject, spki, attributes, ...more] = children(der, info);
  if (!version || !subject || !spki || !attributes || more.length > 0) throw new DerError('request info: expected four elements');
  if (version.tag !== TAG.integer || version.end - version.contentStart !== 1 || der[version.contentStart] !== 0) throw new DerError('request info: version must be 0');
  if (subject.tag !== TAG.sequence || spki.tag !== TAG.sequence || attributes.tag !== TAG.context0) throw new DerError('request info: wrong element types');

  const [keyAlgorithm, publicKey, ...spkiRest] = children(der, spki);
  if (!keyAlgorithm || !publicKey || spkiRest.length > 0 || keyAlgorithm.tag !== TAG.sequence || publicKey.tag !== TAG.bitString) {
    throw new DerError('public key info: wrong structure');
  }
  const [algorithmOid, parameters, ...algorithmRest] = children(der, keyAlgorithm);
  if (!algorithmOid || algorithmOid.tag !== TAG.oid || algorithmRest.length > 0) throw new DerError('public key algorithm: wrong structure');

  const names: ParsedCsr['names'] = [];
  let sanExtensions = 0;
  for (const attribute of children(der, attributes)) {
    if (attribute.tag !== TAG.sequence) throw new DerError('attribute: not a sequence');
    const [type, values, ...attributeRest] = children(der, attribute);
    if (!type || !values || type.tag !== TAG.oid || values.tag !== TAG.set || attributeRest.length > 0) throw new DerError('attribute: wrong structure');
    if (!same(whole(der, type), OID.extensionRequest)) continue;
    for (const extensions of children(der, values)) {
      if (extensions.tag !== TAG.sequence) throw new DerError('extension request: not a sequence');
      for (const extension of children(der, extensions)) {
        const parts = extension.tag === TAG.sequence ? children(der, extension) : [];
        const extnId = parts[0];
        const extnValue = parts[parts.length - 1];
        if (!extnId || !extnValue || extnId.tag !== TAG.oid || extnValue.tag !== TAG.octetString || parts.length > 3) {
          throw new DerError('extension: wrong structure');
        }
        if (!same(whole(der, extnId), OID.subjectAltName)) continue;
        sanExtensions++;
        const generalNames = expect(der, extnValue.contentStart, extnValue.end, TAG.sequence, 'subjectAltName');
        if (generalNames.end !== extnValue.end) throw new DerError('subjectAltName: bytes after the names');
        for (const name of children(der, generalNames)) names.push({ tag: name.tag, value: content(der, name) });
      }
    }
  }
  return {
    info: whole(der, info),
    subjectIsEmpty: subject.contentStart === subject.end,
    subjectPublicKeyInfo: whole(der, spki),
    keyAlgorithm: whole(der, algorithmOid),
    keyParameters: parameters ? whole(der, parameters) : undefined,
    publicPoint: bitStringContent(der, publicKey, 'public key'),
    signatureAlgorithm: content(der, algorithm),
    signature: bitStringContent(der, signature, 'signature'),
    sanExtensions,
    names,
  };
}

function parse(der: Uint8Array): ParsedCsr {
  try {
    return parseCsr(der);
  } catch (error) {
    if (error instanceof DerError) reject('csr-malformed', `the CSR is not a valid PKCS#10 request (${error.message})`);
    throw error;
  }
}

function requireP256(csr: ParsedCsr): KeyObject {
  if (!same(csr.keyAlgorithm, OID.ecPublicKey) || !csr.keyParameters || !same(csr.keyParameters, OID.prime256v1)) {
    reject('csr-unsupported-key', "the CSR's key must be ECDSA P-256; RSA keys and other curves are not issued");
  }
  // Every common library writes uncompressed points; accepting only those keeps the JWK import below simple.
  if (csr.publicPoint.length !== 65 || csr.publicPoint[0] !== 0x04) {
    reject('csr-unsupported-key', "the CSR's P-256 key must be an uncompressed point");
  }
  try {
    // JWK import is ~2x faster than decoding the SPKI with OpenSSL 3, and equally checks the point is on the curve.
    return createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: Buffer.from(csr.publicPoint.subarray(1, 33)).toString('base64url'), y: Buffer.from(csr.publicPoint.subarray(33)).toString('base64url') },
      format: 'jwk',
    });
  } catch {
    return reject('csr-malformed', "the CSR's public key is not a point on P-256");
  }
}

function requireValidSignature(csr: ParsedCsr, key: KeyObject): void {
  // ecdsa-with-SHA256 has absent parameters (RFC 5758), so the AlgorithmIdentifier is the OID alone.
  if (!same(csr.signatureAlgorithm, OID.ecdsaWithSha256)) reject('csr-bad-signature', 'the CSR must be signed with ECDSA and SHA-256');
  let valid: boolean;
  try {
    valid = verify('sha256', csr.info, { key, dsaEncoding: 'der' }, csr.signature);
  } catch {
    valid = false;
  }
  // Without proof of possession, anyone who saw an agent's public key could get it certified.
  if (!valid) reject('csr-bad-signature', "the CSR's signature does not verify with its own public key");
}

function requireSpiffeSan(csr: ParsedCsr, trustDomain: string): string {
  // The leaf's subject is always empty (the identity is the URI SAN); a name here would only be a
  // way to get text past verifiers that still look at the common name, so it is refused, not dropped.
  if (!csr.subjectIsEmpty) reject('csr-bad-subject', "the CSR's subject must be empty; the identity goes in a URI SAN");
  if (csr.sanExtensions !== 1) reject('csr-bad-san', `the CSR must request exactly one subjectAltName extension, got ${csr.sanExtensions}`);
  const only = csr.names[0];
  if (csr.names.length !== 1 || only!.tag !== URI_TAG) {
    const got = csr.names.map((n) => GENERAL_NAME_KINDS[n.tag] ?? `tag 0x${n.tag.toString(16)}`).join(', ') || 'none';
    reject('csr-bad-san', `the CSR must carry exactly one URI SAN (the SPIFFE ID) and no other name, got ${got}`);
  }
  const value = only!.value;
  for (let i = 0; i < value.length; i++) {
    if (value[i]! > 0x7e || value[i]! < 0x21) reject('csr-bad-san', "the CSR's URI SAN is not printable ASCII");
  }
  const uri = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('ascii');
  // Parsed once; a node identity (spiffe://TD/node/NODE) is the other shape the mesh issues, and which
  // one a caller may have is the entitlement check's business.
  const parsed = parseSpiffeId(uri);
  if (!parsed.ok) reject('csr-bad-san', `the CSR's URI SAN is not a valid workload SPIFFE ID: ${parsed.reason}`);
  if (!isNodePath(parsed.value.segments) && !isWorkloadPath(parsed.value.segments)) {
    reject('csr-bad-san', `the CSR's URI SAN is not a valid workload SPIFFE ID: ${notWorkloadShapeReason(uri)}`);
  }
  if (parsed.value.trustDomain !== trustDomain) {
    reject('csr-wrong-trust-domain', `the CSR asks for ${uri}, but this CA issues only in trust domain "${trustDomain}"`);
  }
  return uri;
}

/** What every leaf of one CA shares, encoded once. */
interface IssuerTemplate {
  /** signature AlgorithmIdentifier and issuer Name, adjacent in every TBSCertificate. */
  algorithmAndIssuer: Buffer;
  notAfterMs: number;
  fixedExtensions: Buffer;
  /** The last validity encoded: leaves issued within the same second share it. */
  validity: { notBeforeMs: number; notAfterMs: number; encoded: Buffer } | undefined;
}

const templates = new WeakMap<CaKeys, IssuerTemplate>();
const TRUE = tlv(TAG.boolean, Buffer.from([0xff]));
const VERSION_3 = tlv(TAG.context0, tlv(TAG.integer, Buffer.from([2])));
const EMPTY_NAME = tlv(TAG.sequence);
const SAN_OID = oid('2.5.29.17');
/** The leading byte of a BIT STRING whose bits fill whole bytes (zero unused bits). */
const BIT_STRING_WHOLE_BYTES = Buffer.from([0]);
const SKI_OID = oid('2.5.29.14');

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? tlv(TAG.sequence, oid(id), TRUE, tlv(TAG.octetString, value)) : tlv(TAG.sequence, oid(id), tlv(TAG.octetString, value));
}

/** The subjectPublicKey bits of a SubjectPublicKeyInfo (for an EC key, the point). */
function subjectPublicKeyBits(spki: Uint8Array): Uint8Array {
  const outer = expect(spki, 0, spki.length, TAG.sequence, 'key');
  return bitStringContent(spki, children(spki, outer)[1]!, 'key');
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
function keyIdentifier(publicKeyBits: Uint8Array): Buffer {
  return createHash('sha1').update(publicKeyBits).digest();
}

function issuerTemplate(keys: CaKeys): IssuerTemplate {
  let template = templates.get(keys);
  if (template) return template;
  const cert = new Uint8Array(keys.signingCertificate.rawData);
  const tbs = children(cert, readTlv(cert, 0, cert.length))[0]!;
  const fields = children(cert, tbs);
  // TBSCertificate: [0] version (present in v3), serial, signature, issuer, validity, subject, ...
  const subject = fields[fields[0]!.tag === TAG.context0 ? 5 : 4]!;
  const ski = keys.signingCertificate.getExtension('2.5.29.14');
  const authorityKeyId = ski
    ? Buffer.from(content(new Uint8Array(ski.value), readTlv(new Uint8Array(ski.value), 0, ski.value.byteLength)))
    : keyIdentifier(subjectPublicKeyBits(new Uint8Array(keys.signingCertificate.publicKey.rawData)));
  const fixedExtensions = Buffer.concat([
    extension('2.5.29.19', true, tlv(TAG.sequence)),
    // digitalSignature (bit 0) and keyEncipherment (bit 2): one byte 1010 0000 with 5 unused bits.
    extension('2.5.29.15', true, tlv(TAG.bitString, Buffer.from([5, 0xa0]))),
    extension('2.5.29.37', false, tlv(TAG.sequence, oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2'))),
    extension('2.5.29.35', false, tlv(TAG.sequence, tlv(0x80, authorityKeyId))),
  ]);
  template = {
    algorithmAndIssuer: Buffer.concat([keys.signingKey.algorithmIdentifier, whole(cert, subject)]),
    notAfterMs: keys.signingCertificate.notAfter.getTime(),
    fixedExtensions,
    validity: undefined,
  };
  templates.set(keys, template);
  return template;
}

function toPem(der: Buffer): string {
  const base64 = der.toString('base64');
  let body = '';
  for (let at = 0; at < base64.length; at += 64) body += `${base64.slice(at, at + 64)}\n`;
  return `-----BEGIN CERTIFICATE-----\n${body}-----END CERTIFICATE-----`;
}

export function signCsr(keys: CaKeys, trustDomain: string, csrInput: string | Uint8Array, request: SignRequest): SignedLeaf {
  const now = request.now ?? new Date();
  const ttlMs = request.ttlMs ?? DEFAULT_LEAF_TTL_MS;
  if (!(ttlMs > 0)) throw new RangeError(`ttlMs must be positive, got ${ttlMs}`);
  const csr = parse(decode(csrInput));
  const publicKey = requireP256(csr);
  requireValidSignature(csr, publicKey);
  const spiffeId = requireSpiffeSan(csr, trustDomain);
  const { node } = request.requester;
  if (!request.allowedIdentities(node).has(spiffeId)) {
    reject('csr-not-entitled', request.explainRefusal?.(node, spiffeId) ?? `node "${node}" runs no workload with identity ${spiffeId} according to the registry`);
  }
  const leaf = issueLeaf(keys, csr.subjectPublicKeyInfo, csr.publicPoint, tlv(URI_TAG, csr.names[0]!.value), now, ttlMs);
  return { ...leaf, spiffeId };
}

/** The names of a serving certificate: one SPIFFE URI plus DNS names and IP addresses clients dial. */
export interface ServingNames {
  spiffeId: string;
  dnsNames: readonly string[];
  ipAddresses: readonly string[];
}

/**
 * A leaf for mesh-server's own TLS port, signed in-process (the server holds the CA key, so a CSR
 * round trip would prove nothing). Clients may check it by SPIFFE ID, DNS name or IP.
 */
export function issueServingCertificate(keys: CaKeys, subjectPublicKeyInfo: Uint8Array, names: ServingNames, options: { ttlMs?: number; now?: Date } = {}): Omit<SignedLeaf, 'spiffeId'> {
  const generalNames = [tlv(URI_TAG, Buffer.from(names.spiffeId, 'ascii'))];
  for (const dns of names.dnsNames) generalNames.push(tlv(0x82, Buffer.from(dns, 'ascii')));
  for (const ip of names.ipAddresses) generalNames.push(tlv(0x87, ipBytes(ip)));
  return issueLeaf(keys, subjectPublicKeyInfo, subjectPublicKeyBits(subjectPublicKeyInfo), Buffer.concat(generalNames), options.now ?? new Date(), options.ttlMs ?? DEFAULT_LEAF_TTL_MS);
}

function ipBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) throw new RangeError(`"${ip}" is not an IP address`);
  const [head = '', tail = ''] = ip.split('::');
  const groups = (part: string) => (part ? part.split(':') : []);
  const h = groups(head);
  const t = groups(tail);
  const all = ip.includes('::') ? [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const bytes = Buffer.alloc(16);
  all.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}

/** The encoded validity from `notBeforeMs` to `notAfterMs` (whole seconds), reused within the same second. */
function validity(template: IssuerTemplate, notBeforeMs: number, notAfterMs: number): Buffer {
  const last = template.validity;
  if (last && last.notBeforeMs === notBeforeMs && last.notAfterMs === notAfterMs) return last.encoded;
  const encoded = tlv(TAG.sequence, time(new Date(notBeforeMs)), time(new Date(notAfterMs)));
  template.validity = { notBeforeMs, notAfterMs, encoded };
  return encoded;
}

function issueLeaf(keys: CaKeys, subjectPublicKeyInfo: Uint8Array, subjectPublicKey: Uint8Array, generalNames: Buffer, now: Date, ttlMs: number): Omit<SignedLeaf, 'spiffeId'> {
  const template = issuerTemplate(keys);
  // A leaf must not outlive the certificate that vouches for it; X.509 times have whole seconds.
  const notAfterMs = Math.floor(Math.min(now.getTime() + ttlMs, template.notAfterMs) / 1000) * 1000;
  const notBeforeMs = Math.floor((now.getTime() - CLOCK_SKEW_MS) / 1000) * 1000;
  const serial = randomSerialBytes();
  const tbs = tlv(TAG.sequence,
    VERSION_3,
    tlv(TAG.integer, serial),
    template.algorithmAndIssuer,
    validity(template, notBeforeMs, notAfterMs),
    EMPTY_NAME,
    subjectPublicKeyInfo,
    tlv(TAG.context3, tlv(TAG.sequence,
      template.fixedExtensions,
      // Critical because the subject is empty (RFC 5280 4.2.1.6).
      tlv(TAG.sequence, SAN_OID, TRUE, tlv(TAG.octetString, tlv(TAG.sequence, generalNames))),
      tlv(TAG.sequence, SKI_OID, tlv(TAG.octetString, tlv(TAG.octetString, keyIdentifier(subjectPublicKey)))),
    )),
  );
  const signature = sign(keys.signingKey.digest, tbs, keys.signingKey.key);
  const certificate = tlv(TAG.sequence, tbs, keys.signingKey.algorithmIdentifier, tlv(TAG.bitString, BIT_STRING_WHOLE_BYTES, signature));
  return { certificatePem: toPem(certificate), chainPem: keys.chainPem, notAfter: new Date(notAfterMs), serialNumber: serial.toString('hex') };
}
