// The agent's calls to mesh-server's certificate service: the first node certificate with a join
// token over a server-authenticated channel, everything after over mTLS with the node certificate.
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { checkServerIdentity as checkDnsOrIp, type PeerCertificate } from 'node:tls';
import { AUTHORIZATION_METADATA, createCertificateServiceClient, type CertificateServiceClient } from '../../lib/ca/ca-service';
import type { CertificateSource } from '../../lib/ca/certificate-source';
import { spiffeIdOf } from '../../lib/ca/peer-identity';
import { createKeyAndCsr } from './key-and-csr';

export interface IssuedCertificate {
  spiffeId: string;
  /** PEM: the leaf, then intermediates (the root is left out: peers have it in their bundle). */
  certificateChainPem: string;
  privateKeyPem: string;
  trustBundlePem: string;
  notBefore: Date;
  notAfter: Date;
}

/**
 * The server is accepted when its certificate chains to the trust bundle and carries the expected
 * SPIFFE ID; failing that, a DNS name or IP matching the dialled host (as any TLS client would).
 */
export function serverIdentityCheck(expectedSpiffeId: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (host, cert) => {
    const id = spiffeIdOf(cert);
    if (id.ok && id.id === expectedSpiffeId) return undefined;
    const dnsOrIp = checkDnsOrIp(host, cert);
    if (!dnsOrIp) return undefined;
    return new Error(`mesh-server's certificate is neither ${expectedSpiffeId} (it is ${id.ok ? id.id : 'without a SPIFFE ID'}) nor valid for ${host}`);
  };
}

export interface CaClientOptions {
  server: string;
  /** The node certificate and the bundle, once there are any; the channel's mTLS identity. */
  source: CertificateSource;
  /** PEM roots to trust before the first certificate (agent.yaml tls.caFile). */
  bootstrapTrustPem: string;
  serverSpiffeId: string;
}

export class CaClient {
  private readonly options: CaClientOptions;
  private mtls: CertificateServiceClient | undefined;

  constructor(options: CaClientOptions) {
    this.options = options;
  }

  /** The first certificate, authenticated by the join token; the channel is closed right after. */
  async bootstrap(spiffeId: string, joinToken: string, ttlSeconds = 0): Promise<IssuedCertificate> {
    const credentials = grpc.credentials.createSsl(Buffer.from(this.options.bootstrapTrustPem), null, null, {
      checkServerIdentity: serverIdentityCheck(this.options.serverSpiffeId),
    });
    const client = createCertificateServiceClient(this.options.server, credentials);
    try {
      const metadata = new grpc.Metadata();
      metadata.set(AUTHORIZATION_METADATA, `Bearer ${joinToken}`);
      return await request(client, spiffeId, metadata, ttlSeconds);
    } finally {
      client.close();
    }
  }

  /** A certificate for `spiffeId` over mTLS, with whatever node certificate the source holds now. */
  issue(spiffeId: string, ttlSeconds = 0): Promise<IssuedCertificate> {
    this.mtls ??= createCertificateServiceClient(this.options.server, this.channelCredentials());
    return request(this.mtls, spiffeId, new grpc.Metadata(), ttlSeconds);
  }

  /** mTLS credentials that follow the source: each new connection presents the latest certificate. */
  channelCredentials(): grpc.ChannelCredentials {
    return grpc.experimental.createCertificateProviderChannelCredentials(this.options.source, this.options.source, {
      checkServerIdentity: serverIdentityCheck(this.options.serverSpiffeId),
    });
  }

  close(): void {
    this.mtls?.close();
    this.mtls = undefined;
  }
}

async function request(client: CertificateServiceClient, spiffeId: string, metadata: grpc.Metadata, ttlSeconds: number): Promise<IssuedCertificate> {
  const { privateKeyPem, csrPem } = await createKeyAndCsr(spiffeId);
  const response = await new Promise<{ cert_chain: string[]; trust_bundle: string[] }>((resolve, reject) => {
    client.CreateCertificate({ csr: csrPem, validity_duration: String(ttlSeconds) }, metadata, { deadline: Date.now() + 30_000 }, (error, value) =>
      error ? reject(error) : resolve(value!));
  });
  if (response.cert_chain.length < 2 || response.trust_bundle.length === 0) {
    throw new Error(`mesh-server answered without a certificate chain and trust bundle (${response.cert_chain.length} certificates, ${response.trust_bundle.length} roots)`);
  }
  const leaf = new X509Certificate(response.cert_chain[0]!);
  return {
    spiffeId,
    certificateChainPem: response.cert_chain.slice(0, -1).map((pem) => pem.trim()).join('\n') + '\n',
    privateKeyPem,
    trustBundlePem: response.trust_bundle.map((pem) => pem.trim()).join('\n') + '\n',
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
  };
}
