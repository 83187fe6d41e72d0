// A fresh ECDSA P-256 key pair made on the agent (the private key never leaves the host) and the
// PKCS#10 request for one SPIFFE ID that the CA signs: empty subject, the ID as the only URI SAN.
import { webcrypto } from 'node:crypto';
import { ECDSA_P256, x509 } from '../../lib/ca/x509';

export interface KeyAndCsr {
  /** PKCS#8 PEM. */
  privateKeyPem: string;
  csrPem: string;
}

function pkcs8Pem(der: ArrayBuffer): string {
  const body = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').trim();
  return `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`;
}

export async function createKeyAndCsr(spiffeId: string): Promise<KeyAndCsr> {
  const keys = await webcrypto.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])],
  });
  return { privateKeyPem: pkcs8Pem(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), csrPem: csr.toString('pem') };
}
