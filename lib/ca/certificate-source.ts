// A grpc-js CertificateProvider whose certificate, key and trust bundle are replaced in process: the
// TLS credentials of mesh-server's :15012 and of the agent's channel to it. New connections use the
// latest material; connections already open keep theirs.
import type { experimental } from '@grpc/grpc-js';

type CertificateProvider = experimental.CertificateProvider;
type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

export interface CertificateMaterial {
  /** PEM: the leaf first, then intermediates. */
  certificateChainPem: string;
  privateKeyPem: string;
  /** PEM roots to verify peers with. */
  trustBundlePem: string;
}

export class CertificateSource implements CertificateProvider {
  private material: CertificateMaterial | undefined;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();

  constructor(material?: CertificateMaterial) {
    this.material = material;
  }

  current(): CertificateMaterial | undefined {
    return this.material;
  }

  update(material: CertificateMaterial): void {
    this.material = material;
    for (const listener of this.caListeners) listener(this.caUpdate());
    for (const listener of this.identityListeners) listener(this.identityUpdate());
  }

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    // grpc-js waits for a first update before it connects; without material it keeps waiting. The
    // first update is delivered later: grpc-js registers its own watcher only after adding this listener.
    process.nextTick(() => {
      if (this.material && this.caListeners.has(listener)) listener(this.caUpdate());
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    process.nextTick(() => {
      if (this.material && this.identityListeners.has(listener)) listener(this.identityUpdate());
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  private caUpdate() {
    return { caCertificate: Buffer.from(this.material!.trustBundlePem) };
  }

  private identityUpdate() {
    return { certificate: Buffer.from(this.material!.certificateChainPem), privateKey: Buffer.from(this.material!.privateKeyPem) };
  }
}
