// What the tunnel needs from the agent's identity: the certificate of a given SPIFFE ID, the trust
// bundle, and how an expected server identity travels in SNI so the receiving agent, which fronts
// several workloads, presents the certificate of the one the sender wants to reach.
import { createHash } from 'node:crypto';
import * as tls from 'node:tls';
import { spiffeIdOf } from '../../lib/ca/peer-identity';

export interface TunnelCertificate {
  /** PEM: the leaf first, then intermediates. */
  certificateChainPem: string;
  privateKeyPem: string;
}

export interface TunnelCredentials {
  certificate(spiffeId: string): TunnelCertificate | undefined;
  trustBundlePem(): string | undefined;
}

/**
 * SNI naming a SPIFFE ID: a DNS-safe digest (SNI carries host names only, and SPIFFE paths need not be
 * host names). The receiver maps it back by hashing the identities it holds.
 */
export function identitySni(spiffeId: string): string {
  return `${createHash('sha256').update(spiffeId).digest('hex').slice(0, 32)}.id.mesh`;
}

/**
 * A TLS `checkServerIdentity` that accepts exactly the SPIFFE IDs the destination may have; the
 * chain was already verified against the bundle by TLS.
 */
export function expectSpiffeIds(expected: readonly string[]): (host: string, cert: tls.PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const id = spiffeIdOf(cert);
    if (id.ok && expected.includes(id.id)) return undefined;
    return new Error(`peer identity mismatch: the peer presented ${id.ok ? id.id : `no usable identity (${id.reason})`}, the destination may only be ${expected.join(' or ')}`);
  };
}
