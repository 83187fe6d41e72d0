// Test support for the CA: CSRs built the way an agent would (or an attacker might), with any key
// type, SANs and subject, and a registry model with workloads placed on nodes.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { MeshModel } from '../model/mesh-model';
import type { Endpoint, Service } from '../registry/service';
import { subtle, x509, type CryptoKeyPair } from '../../lib/ca/x509';

export type TestKeyType = 'p256' | 'p384' | 'rsa';

export async function generateKeys(type: TestKeyType = 'p256'): Promise<CryptoKeyPair> {
  if (type === 'rsa') {
    const rsa = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
    return subtle.generateKey(rsa, true, ['sign', 'verify']);
  }
  return subtle.generateKey({ name: 'ECDSA', namedCurve: type === 'p256' ? 'P-256' : 'P-384' }, true, ['sign', 'verify']);
}

export interface TestCsrOptions {
  keys?: CryptoKeyPair;
  /** Names for the subjectAltName extension; omitted when empty. */
  sans?: x509.JsonGeneralName[];
  /** Several SAN extensions, to test a CSR that asks for more than one. */
  extraSanExtensions?: x509.JsonGeneralName[][];
  subject?: string;
}

export async function makeCsr(options: TestCsrOptions = {}): Promise<string> {
  const keys = options.keys ?? await generateKeys();
  const algorithm = (keys.privateKey.algorithm as { name: string }).name === 'ECDSA'
    ? { name: 'ECDSA', hash: (keys.privateKey.algorithm as unknown as { namedCurve: string }).namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256' }
    : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const extensions: x509.Extension[] = [];
  for (const names of [options.sans ?? [], ...(options.extraSanExtensions ?? [])]) {
    if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  }
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    ...(options.subject ? { name: options.subject } : {}),
    keys,
    signingAlgorithm: algorithm,
    extensions,
  });
  return csr.toString('pem');
}

export function uriSan(value: string): x509.JsonGeneralName[] {
  return [{ type: 'url', value }];
}

function endpoint(node: string | undefined, serviceAccount: string | undefined): Endpoint {
  return {
    address: '10.0.0.1',
    ports: {},
    labels: {},
    ...(node ? { node } : {}),
    ...(serviceAccount ? { serviceAccount } : {}),
    healthy: true,
    locality: { region: '', zone: '', subzone: '' },
    weight: 1,
  };
}

export interface TestWorkload {
  namespace: string;
  hostname: string;
  node?: string;
  serviceAccount?: string;
}

export function modelWith(trustDomain: string, workloads: TestWorkload[]): MeshModel {
  const services = new Map<string, Service>();
  for (const w of workloads) {
    let service = services.get(w.hostname);
    if (!service) {
      service = {
        hostname: w.hostname, namespace: w.namespace, aliases: [], addresses: [], ports: [],
        resolution: 'STATIC', location: 'MESH_INTERNAL', endpoints: [], source: 'file', exportTo: ['*'], subjectAltNames: [],
      };
      services.set(w.hostname, service);
    }
    service.endpoints.push(endpoint(w.node, w.serviceAccount));
  }
  return { version: 1, resources: new Map(), services, issues: [], rootNamespace: 'istio-system', trustDomain };
}

export interface TestCaFiles {
  rootCertPem: string;
  certFile: string;
  keyFile: string;
  chainFile?: string;
}

function pkcs8Pem(der: ArrayBuffer): string {
  const body = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').trim();
  return `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`;
}

async function caCertificate(subject: string, keys: CryptoKeyPair, issuer: { name: string; keys: CryptoKeyPair }, notAfter: Date): Promise<x509.X509Certificate> {
  return x509.X509CertificateGenerator.create({
    subject,
    issuer: issuer.name,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: (issuer.keys.privateKey.algorithm as { name: string }).name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' },
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
}

/** An organisation's CA as PEM files in `dir`: a root and, with `intermediate`, an intermediate that signs. */
export async function writeTestCa(dir: string, options: { intermediate: boolean; name?: string; notAfter?: Date; keyType?: TestKeyType }): Promise<TestCaFiles> {
  const name = options.name ?? 'test';
  const notAfter = options.notAfter ?? new Date(Date.now() + 365 * 24 * 3600_000);
  const rootKeys = await generateKeys(options.keyType);
  const rootName = `CN=${name} root,O=example`;
  const root = await caCertificate(rootName, rootKeys, { name: rootName, keys: rootKeys }, notAfter);
  await fs.mkdir(dir, { recursive: true });
  const rootCertPem = root.toString('pem') + '\n';
  if (!options.intermediate) {
    await fs.writeFile(path.join(dir, 'ca-cert.pem'), rootCertPem);
    await fs.writeFile(path.join(dir, 'ca-key.pem'), pkcs8Pem(await subtle.exportKey('pkcs8', rootKeys.privateKey)), { mode: 0o600 });
    return { rootCertPem, certFile: path.join(dir, 'ca-cert.pem'), keyFile: path.join(dir, 'ca-key.pem') };
  }
  const interKeys = await generateKeys(options.keyType);
  const inter = await caCertificate(`CN=${name} intermediate,O=example`, interKeys, { name: rootName, keys: rootKeys }, notAfter);
  await fs.writeFile(path.join(dir, 'ca-cert.pem'), inter.toString('pem') + '\n');
  await fs.writeFile(path.join(dir, 'ca-key.pem'), pkcs8Pem(await subtle.exportKey('pkcs8', interKeys.privateKey)), { mode: 0o600 });
  await fs.writeFile(path.join(dir, 'chain.pem'), rootCertPem);
  return { rootCertPem, certFile: path.join(dir, 'ca-cert.pem'), keyFile: path.join(dir, 'ca-key.pem'), chainFile: path.join(dir, 'chain.pem') };
}
