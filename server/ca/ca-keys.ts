// The CA's signing material: an operator's root or intermediate (PEM files) or, when none is given,
// an ECDSA P-256 root generated on first start and persisted in the state dir; plus the trust bundle.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CaError } from './ca-error';
import { writeFileAtomic } from '../../lib/atomic-file';
import { ensurePrivateDir, exists } from './state-files';
import { oid, TAG, tlv } from './der';
import { ECDSA_P256, subtle, x509, type CryptoKeyPair } from '../../lib/ca/x509';

export const GENERATED_ROOT_CERT_FILE = 'root-cert.pem';
export const GENERATED_ROOT_KEY_FILE = 'root-key.pem';
/** A generated root outlives many leaf rotations; rotating it is a deliberate operator action. */
export const GENERATED_ROOT_VALIDITY_MS = 10 * 365 * 24 * 3600 * 1000;

export interface PluggedInCa {
  /** PEM certificate that signs leaves: the root itself or an intermediate. */
  certFile: string;
  /** PEM (PKCS#8, SEC1 or PKCS#1) private key of `certFile`. */
  keyFile: string;
  /** PEM certificates from the signing certificate's issuer up to and including the root. */
  chainFile?: string;
}

export interface CaKeysOptions {
  trustDomain: string;
  /** Where a generated root lives; used only when `pluggedIn` is absent. */
  stateDir: string;
  pluggedIn?: PluggedInCa;
  /**
   * More PEM files of roots to trust. Root rotation: trust the new root here while the old one still
   * signs, switch signing to the new root and trust the old one here until its leaves expired, then drop it.
   */
  additionalRootFiles?: string[];
  now?: Date;
}

export interface TrustBundle {
  readonly roots: readonly x509.X509Certificate[];
  /** The roots as one PEM document, what agents install as their trust anchors. */
  readonly pem: string;
}

export interface CaKeys {
  readonly signingCertificate: x509.X509Certificate;
  readonly signingKey: SigningKey;
  /** Certificates a leaf's holder presents after its leaf: signing certificate and intermediates, without the root. */
  readonly chainPem: readonly string[];
  /** The root the signing certificate chains up to. */
  readonly root: x509.X509Certificate;
  readonly trustBundle: TrustBundle;
  /** Where the signing material came from, for the startup log line. */
  readonly origin: 'generated' | 'loaded' | 'plugged-in';
}

function invalid(message: string): CaError {
  return new CaError('ca-material-invalid', message);
}

async function readFileOrFail(file: string, what: string): Promise<string> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (error) {
    throw invalid(`cannot read the ${what} ${file}: ${(error as Error).message}`);
  }
}

function parseCertificates(pem: string, source: string): x509.X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw invalid(`${source} contains no PEM certificate`);
  return blocks.map((block, i) => {
    try {
      return new x509.X509Certificate(block);
    } catch (error) {
      throw invalid(`${source}, certificate ${i + 1}: not a valid X.509 certificate (${(error as Error).message})`);
    }
  });
}

/** How leaves are signed with the CA's key type: digest and the DER AlgorithmIdentifier naming it. */
export interface SigningKey {
  readonly key: KeyObject;
  readonly digest: 'sha256' | 'sha384';
  readonly algorithmIdentifier: Buffer;
}

function signingKeyFor(key: KeyObject, source: string): SigningKey {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') {
    return { key, digest: 'sha256', algorithmIdentifier: tlv(TAG.sequence, oid('1.2.840.10045.4.3.2')) };
  }
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'secp384r1') {
    return { key, digest: 'sha384', algorithmIdentifier: tlv(TAG.sequence, oid('1.2.840.10045.4.3.3')) };
  }
  if (key.asymmetricKeyType === 'rsa' && (details?.modulusLength ?? 0) >= 2048) {
    // sha256WithRSAEncryption requires explicit NULL parameters (RFC 4055).
    return { key, digest: 'sha256', algorithmIdentifier: tlv(TAG.sequence, oid('1.2.840.113549.1.1.11'), tlv(TAG.null)) };
  }
  throw invalid(`${source}: the CA key must be ECDSA P-256/P-384 or RSA >= 2048 bits, got ${key.asymmetricKeyType} ${details?.namedCurve ?? details?.modulusLength ?? ''}`.trim());
}

function readSigningKey(keyPem: string, source: string): { signing: SigningKey; spki: Buffer } {
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(keyPem);
  } catch (error) {
    throw invalid(`${source}: not a readable PEM private key (${(error as Error).message})`);
  }
  const signing = signingKeyFor(keyObject, source);
  return { signing, spki: createPublicKey(keyObject).export({ format: 'der', type: 'spki' }) };
}

function isCa(cert: x509.X509Certificate): boolean {
  const constraints = cert.getExtension(x509.BasicConstraintsExtension);
  if (!constraints?.ca) return false;
  const usage = cert.getExtension(x509.KeyUsagesExtension);
  return !usage || (usage.usages & x509.KeyUsageFlags.keyCertSign) !== 0;
}

function describe(cert: x509.X509Certificate): string {
  return `"${cert.subject}"`;
}

/** Checks that `signing` chains through `chain` to a self-signed root and returns that root. */
async function verifyChain(signing: x509.X509Certificate, chain: x509.X509Certificate[], now: Date, source: string): Promise<x509.X509Certificate> {
  const path = [signing, ...chain];
  for (const cert of path) {
    if (now < cert.notBefore || now > cert.notAfter) {
      throw invalid(`${source}: certificate ${describe(cert)} is not valid now (valid ${cert.notBefore.toISOString()} to ${cert.notAfter.toISOString()})`);
    }
    if (!isCa(cert)) throw invalid(`${source}: certificate ${describe(cert)} is not a CA certificate (basicConstraints CA:true, keyCertSign)`);
  }
  for (let i = 0; i + 1 < path.length; i++) {
    const child = path[i]!;
    const parent = path[i + 1]!;
    const ok = child.issuer === parent.subject && await child.verify({ publicKey: parent.publicKey, signatureOnly: true });
    if (!ok) throw invalid(`${source}: certificate ${describe(child)} is not signed by the next one in the chain, ${describe(parent)}`);
  }
  const root = path[path.length - 1]!;
  const selfSigned = root.issuer === root.subject && await root.verify({ publicKey: root.publicKey, signatureOnly: true });
  if (!selfSigned) {
    throw invalid(`${source}: the chain ends at ${describe(root)}, which is not a self-signed root; give the chain up to the root`);
  }
  return root;
}

function certificateMatchesKey(cert: x509.X509Certificate, spki: Buffer): boolean {
  return Buffer.from(cert.publicKey.rawData).equals(spki);
}

async function buildTrustBundle(root: x509.X509Certificate, additionalRootFiles: readonly string[], now: Date): Promise<TrustBundle> {
  const roots = [root];
  const seen = new Set([root.toString('hex')]);
  for (const file of additionalRootFiles) {
    for (const extra of parseCertificates(await readFileOrFail(file, 'additional root file'), file)) {
      await verifyChain(extra, [], now, file);
      const key = extra.toString('hex');
      if (seen.has(key)) continue;
      seen.add(key);
      roots.push(extra);
    }
  }
  return { roots, pem: roots.map((r) => r.toString('pem')).join('\n') + '\n' };
}

async function generateRoot(trustDomain: string, now: Date): Promise<{ certPem: string; keyPem: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyPem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  const keys: CryptoKeyPair = {
    privateKey: await subtle.importKey('pkcs8', privateKey.export({ format: 'der', type: 'pkcs8' }), ECDSA_P256, false, ['sign']),
    publicKey: await subtle.importKey('spki', publicKey.export({ format: 'der', type: 'spki' }), ECDSA_P256, true, ['verify']),
  };
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ O: [trustDomain] }, { CN: ['mesh root CA'] }],
    // Backdated so agents with a slow clock accept the root right after a first start.
    notBefore: new Date(now.getTime() - 3600 * 1000),
    notAfter: new Date(now.getTime() + GENERATED_ROOT_VALIDITY_MS),
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem };
}

const SERIAL_BYTES = 16;
/** Serials are cut from a batch of CSPRNG output: one call into OpenSSL per 256 leaves, not per leaf. */
const SERIALS_PER_BATCH = 256;
let serialBatch = Buffer.alloc(0);
let serialOffset = 0;

/**
 * A positive 128-bit serial (CA/B Forum: at least 64 random bits); the top bit is cleared so DER
 * never needs a sign byte, and the low bit of the first byte set so it never starts with a zero byte.
 */
export function randomSerialBytes(): Buffer {
  if (serialOffset + SERIAL_BYTES > serialBatch.length) {
    // A fresh batch each time: serials handed out earlier are views of the old one and must not change.
    serialBatch = randomBytes(SERIAL_BYTES * SERIALS_PER_BATCH);
    serialOffset = 0;
  }
  const bytes = serialBatch.subarray(serialOffset, serialOffset + SERIAL_BYTES);
  serialOffset += SERIAL_BYTES;
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes;
}

/** randomSerialBytes in hex. */
export function randomSerial(): string {
  return randomSerialBytes().toString('hex');
}

async function loadOrGenerateRoot(stateDir: string, trustDomain: string, now: Date): Promise<{ certPem: string; keyPem: string; generated: boolean }> {
  const certFile = path.join(stateDir, GENERATED_ROOT_CERT_FILE);
  const keyFile = path.join(stateDir, GENERATED_ROOT_KEY_FILE);
  const [haveCert, haveKey] = await Promise.all([exists(certFile), exists(keyFile)]);
  if (haveCert && haveKey) {
    return { certPem: await readFileOrFail(certFile, 'root certificate'), keyPem: await readFileOrFail(keyFile, 'root key'), generated: false };
  }
  if (haveCert !== haveKey) {
    // Generating afresh would silently replace the identity of the whole mesh; the operator decides.
    throw invalid(`${stateDir} holds ${haveCert ? GENERATED_ROOT_CERT_FILE : GENERATED_ROOT_KEY_FILE} but not ${haveCert ? GENERATED_ROOT_KEY_FILE : GENERATED_ROOT_CERT_FILE}; restore it or remove both to generate a new root`);
  }
  await ensurePrivateDir(stateDir);
  const generated = await generateRoot(trustDomain, now);
  // Key first: a crash between the two writes leaves a key without certificate, which is refused above.
  await writeFileAtomic(keyFile, generated.keyPem, 0o600);
  await writeFileAtomic(certFile, generated.certPem, 0o644);
  return { ...generated, generated: true };
}

export async function loadCaKeys(options: CaKeysOptions): Promise<CaKeys> {
  const now = options.now ?? new Date();
  let certPem: string;
  let keyPem: string;
  let chainPemText = '';
  let origin: CaKeys['origin'];
  let source: string;
  if (options.pluggedIn) {
    const { certFile, keyFile, chainFile } = options.pluggedIn;
    certPem = await readFileOrFail(certFile, 'CA certificate');
    keyPem = await readFileOrFail(keyFile, 'CA key');
    if (chainFile) chainPemText = await readFileOrFail(chainFile, 'CA chain');
    origin = 'plugged-in';
    source = certFile;
  } else {
    const root = await loadOrGenerateRoot(options.stateDir, options.trustDomain, now);
    certPem = root.certPem;
    keyPem = root.keyPem;
    origin = root.generated ? 'generated' : 'loaded';
    source = path.join(options.stateDir, GENERATED_ROOT_CERT_FILE);
  }
  const certificates = parseCertificates(certPem, source);
  if (certificates.length !== 1) throw invalid(`${source} must hold exactly one certificate, the signing one; put the rest in the chain file`);
  const signingCertificate = certificates[0]!;
  const chain = chainPemText ? parseCertificates(chainPemText, options.pluggedIn!.chainFile!) : [];
  const { signing, spki } = readSigningKey(keyPem, options.pluggedIn?.keyFile ?? path.join(options.stateDir, GENERATED_ROOT_KEY_FILE));
  if (!certificateMatchesKey(signingCertificate, spki)) {
    throw invalid(`${source}: the private key does not belong to this certificate`);
  }
  const root = await verifyChain(signingCertificate, chain, now, source);
  const trustBundle = await buildTrustBundle(root, options.additionalRootFiles ?? [], now);
  const presented = [signingCertificate, ...chain].filter((c) => c !== root);
  return {
    signingCertificate,
    signingKey: signing,
    chainPem: presented.map((c) => c.toString('pem')),
    root,
    trustBundle,
    origin,
  };
}
