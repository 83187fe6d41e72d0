// Certificates, keys and the trust bundle on disk under the agent's stateDir (/var/lib/mesh/identity),
// mode 0600, so a restart while mesh-server is down still has valid credentials (static stability).
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../lib/atomic-file';
import type { IssuedCertificate } from './ca-client';

export const IDENTITY_DIR = 'identity';

/** What is kept beside the PEM files: when the certificate was received, which sets its half-life. */
interface StoredMeta {
  spiffeId: string;
  receivedAt: string;
  notAfter: string;
}

export interface StoredCertificate extends IssuedCertificate {
  receivedAt: Date;
}

/** A file-name-safe key for an identity: the SPIFFE path with '/' turned into '_'. */
function slug(spiffeId: string): string {
  return spiffeId.replace(/^spiffe:\/\//, '').replace(/[^A-Za-z0-9._-]/g, '_');
}

export class IdentityStore {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = path.join(stateDir, IDENTITY_DIR);
  }

  async save(cert: StoredCertificate): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await fs.chmod(this.dir, 0o700);
    const base = path.join(this.dir, slug(cert.spiffeId));
    // Key before certificate: a crash in between leaves an old certificate with a new key, which load
    // refuses as a mismatch, never a new certificate whose key is missing.
    await writeFileAtomic(`${base}.key.pem`, cert.privateKeyPem, 0o600);
    await writeFileAtomic(`${base}.cert.pem`, cert.certificateChainPem, 0o600);
    await writeFileAtomic(`${base}.bundle.pem`, cert.trustBundlePem, 0o600);
    const meta: StoredMeta = { spiffeId: cert.spiffeId, receivedAt: cert.receivedAt.toISOString(), notAfter: cert.notAfter.toISOString() };
    await writeFileAtomic(`${base}.json`, JSON.stringify(meta), 0o600);
  }

  /** The stored certificate for `spiffeId`, or undefined when there is none or it is unusable (with why). */
  async load(spiffeId: string, now = new Date()): Promise<{ cert?: StoredCertificate; problem?: string }> {
    const base = path.join(this.dir, slug(spiffeId));
    let meta: StoredMeta;
    let certificateChainPem: string;
    let privateKeyPem: string;
    let trustBundlePem: string;
    try {
      meta = JSON.parse(await fs.readFile(`${base}.json`, 'utf8')) as StoredMeta;
      [certificateChainPem, privateKeyPem, trustBundlePem] = await Promise.all(['cert', 'key', 'bundle'].map((kind) => fs.readFile(`${base}.${kind}.pem`, 'utf8')));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
      return { problem: `cannot read the stored certificate of ${spiffeId} in ${this.dir}: ${(error as Error).message}` };
    }
    try {
      const leaf = new X509Certificate(certificateChainPem);
      if (!leaf.checkPrivateKey(createPrivateKey(privateKeyPem))) return { problem: `the stored key of ${spiffeId} does not match its certificate` };
      if (leaf.subjectAltName !== `URI:${spiffeId}`) return { problem: `the stored certificate is for ${leaf.subjectAltName}, not ${spiffeId}` };
      const notAfter = new Date(leaf.validTo);
      if (notAfter <= now) return { problem: `the stored certificate of ${spiffeId} expired at ${notAfter.toISOString()}` };
      return { cert: { spiffeId, certificateChainPem, privateKeyPem, trustBundlePem, notBefore: new Date(leaf.validFrom), notAfter, receivedAt: new Date(meta.receivedAt) } };
    } catch (error) {
      return { problem: `the stored certificate of ${spiffeId} is unreadable: ${(error as Error).message}` };
    }
  }
}
