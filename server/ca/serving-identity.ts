// mesh-server's own certificate for its TLS port (:15012, xDS + CA): issued in process from the CA for
// a SPIFFE ID plus the DNS names and IPs agents dial, renewed at half-life, re-issued after a root change.
import { generateKeyPairSync } from 'node:crypto';
import { CertificateSource } from '../../lib/ca/certificate-source';
import type { Logger } from '../../lib/log';
import type { CaKeys } from './ca-keys';
import { DEFAULT_LEAF_TTL_MS, issueServingCertificate, type ServingNames } from './csr-signer';

export interface ServingIdentityOptions {
  keys: () => CaKeys;
  names: ServingNames;
  ttlMs?: number;
  logger: Logger;
}

export class ServingIdentity {
  /** What the TLS server credentials read; every renewal lands here. */
  readonly source = new CertificateSource();
  private readonly options: ServingIdentityOptions;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: ServingIdentityOptions) {
    this.options = options;
  }

  /** Issues (or re-issues, e.g. after the trust bundle changed) and schedules the next renewal. */
  renew(): void {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const keys = this.options.keys();
    const ttlMs = this.options.ttlMs ?? DEFAULT_LEAF_TTL_MS;
    const leaf = issueServingCertificate(keys, publicKey.export({ format: 'der', type: 'spki' }), this.options.names, { ttlMs });
    this.source.update({
      certificateChainPem: [leaf.certificatePem, ...leaf.chainPem.map((pem) => pem.trim())].join('\n') + '\n',
      privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
      trustBundlePem: keys.trustBundle.pem,
    });
    this.options.logger.info({ identity: this.options.names.spiffeId, dns: this.options.names.dnsNames, ips: this.options.names.ipAddresses, notAfter: leaf.notAfter.toISOString() }, 'serving certificate issued');
    if (this.timer) clearTimeout(this.timer);
    const delay = Math.max(1000, (leaf.notAfter.getTime() - Date.now()) / 2);
    this.timer = setTimeout(() => this.renew(), Math.min(delay, 2 ** 31 - 1));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
