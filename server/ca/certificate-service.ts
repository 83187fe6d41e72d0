// The CA over gRPC (lib/ca/ca.proto): authenticates the caller (node certificate, or a join token for
// the first certificate), checks what it may have against the live registry, and signs its CSR.
import * as grpc from '@grpc/grpc-js';
import { AUTHORIZATION_METADATA, certificateServiceDefinition, type CreateCertificateRequest, type CreateCertificateResponse } from '../../lib/ca/ca-service';
import { formatNodeId } from '../../lib/ca/spiffe';
import type { Logger } from '../../lib/log';
import type { MeshModel } from '../model/mesh-model';
import { CaError, type CaErrorCode } from './ca-error';
import type { CaKeys } from './ca-keys';
import { callerNode } from './caller-node';
import { DEFAULT_LEAF_TTL_MS, signCsr } from './csr-signer';
import { entitlementsFromModel } from './entitlements';
import type { JoinTokens } from './join-token';

/** Istio's default cap on workload certificate lifetimes (MAX_WORKLOAD_CERT_TTL, 90 days). */
export const DEFAULT_MAX_LEAF_TTL_MS = 90 * 24 * 3600 * 1000;

export interface CertificateServiceOptions {
  trustDomain: string;
  /** Current signing material; read per call so a root rotation applies at once. */
  keys: () => CaKeys;
  tokens: JoinTokens;
  /** The live registry; undefined before the first model (then only node identities are granted). */
  model: () => MeshModel | undefined;
  logger: Logger;
  defaultTtlMs?: number;
  maxTtlMs?: number;
}

type Grant = { node: string; via: 'certificate' | 'join-token' };

class Refusal extends Error {
  constructor(readonly code: grpc.status, message: string) {
    super(message);
  }
}

const STATUS_OF: Record<CaErrorCode, grpc.status> = {
  'csr-malformed': grpc.status.INVALID_ARGUMENT,
  'csr-too-large': grpc.status.INVALID_ARGUMENT,
  'csr-bad-signature': grpc.status.INVALID_ARGUMENT,
  'csr-unsupported-key': grpc.status.INVALID_ARGUMENT,
  'csr-bad-subject': grpc.status.INVALID_ARGUMENT,
  'csr-bad-san': grpc.status.INVALID_ARGUMENT,
  'csr-wrong-trust-domain': grpc.status.INVALID_ARGUMENT,
  'csr-not-entitled': grpc.status.PERMISSION_DENIED,
  'ca-material-invalid': grpc.status.INTERNAL,
  'token-malformed': grpc.status.UNAUTHENTICATED,
  'token-bad-signature': grpc.status.UNAUTHENTICATED,
  'token-expired': grpc.status.UNAUTHENTICATED,
  'token-not-yet-valid': grpc.status.UNAUTHENTICATED,
  'token-replayed': grpc.status.UNAUTHENTICATED,
  'token-replay-store-full': grpc.status.RESOURCE_EXHAUSTED,
};

const BEARER = /^Bearer (\S+)$/;

/** The PEM parts every answer of one CA shares, encoded once per signing material rather than per call. */
interface SharedPems {
  root: string;
  intermediates: string[];
  trustBundle: string[];
}

const sharedPems = new WeakMap<CaKeys, SharedPems>();

function sharedPemsOf(keys: CaKeys): SharedPems {
  let pems = sharedPems.get(keys);
  if (!pems) {
    pems = {
      root: keys.root.toString('pem'),
      intermediates: keys.chainPem.map((pem) => pem.trim()),
      trustBundle: keys.trustBundle.roots.map((root) => root.toString('pem')),
    };
    sharedPems.set(keys, pems);
  }
  return pems;
}

export class CertificateService {
  private readonly options: CertificateServiceOptions;
  private readonly log: Logger;
  readonly counters = { issued: 0, refused: 0 };

  constructor(options: CertificateServiceOptions) {
    this.options = options;
    this.log = options.logger;
  }

  /** Only on the TLS server: over plaintext a join token could be read off the wire. */
  bind(grpcServer: grpc.Server): void {
    grpcServer.addService(certificateServiceDefinition(), {
      CreateCertificate: (call: grpc.ServerUnaryCall<CreateCertificateRequest, CreateCertificateResponse>, callback: grpc.sendUnaryData<CreateCertificateResponse>) => {
        try {
          callback(null, this.createCertificate(call));
        } catch (error) {
          this.counters.refused++;
          const refusal = toRefusal(error);
          this.log.warn({ peer: call.getPeer(), code: grpc.status[refusal.code], reason: refusal.message }, 'certificate refused');
          callback({ code: refusal.code, details: refusal.message });
        }
      },
    });
  }

  private createCertificate(call: grpc.ServerUnaryCall<CreateCertificateRequest, CreateCertificateResponse>): CreateCertificateResponse {
    const grant = this.authenticate(call);
    const request = call.request;
    const ttlMs = this.ttl(request.validity_duration);
    const nodeId = formatNodeId(this.options.trustDomain, grant.node);
    if (!nodeId.ok) throw new Refusal(grpc.status.INVALID_ARGUMENT, `node "${grant.node}" cannot be named in a SPIFFE ID: ${nodeId.reason}`);
    const model = this.options.model();
    const workloads = grant.via === 'certificate' && model ? entitlementsFromModel(model)(grant.node) : new Set<string>();
    const keys = this.options.keys();
    const signed = signCsr(keys, this.options.trustDomain, request.csr, {
      requester: { node: grant.node },
      allowedIdentities: () => new Set([nodeId.value, ...workloads]),
      explainRefusal: (node, id) => grant.via === 'join-token'
        ? `a join token grants only the node identity ${nodeId.value}, not ${id}; ask for workload certificates with the node certificate`
        : `node "${node}" runs no workload with identity ${id} according to the registry`,
      ttlMs,
    });
    this.counters.issued++;
    this.log.info({ node: grant.node, via: grant.via, identity: signed.spiffeId, serial: signed.serialNumber, notAfter: signed.notAfter.toISOString() }, 'certificate issued');
    const pems = sharedPemsOf(keys);
    return { cert_chain: [signed.certificatePem, ...pems.intermediates, pems.root], trust_bundle: pems.trustBundle };
  }

  private authenticate(call: grpc.ServerUnaryCall<CreateCertificateRequest, CreateCertificateResponse>): Grant {
    const caller = callerNode(call, this.options.trustDomain);
    if (caller.kind === 'node') return { node: caller.node, via: 'certificate' };
    if (caller.kind === 'other') throw new Refusal(grpc.status.PERMISSION_DENIED, `the client certificate ${caller.spiffeId} may not request certificates: ${caller.reason}`);
    const values = call.metadata.get(AUTHORIZATION_METADATA);
    if (values.length === 0) {
      throw new Refusal(grpc.status.UNAUTHENTICATED, 'no client certificate issued by this mesh and no join token (metadata "authorization: Bearer TOKEN"); get one with meshctl bootstrap --node NAME');
    }
    const match = values.length === 1 && typeof values[0] === 'string' ? BEARER.exec(values[0]) : null;
    if (!match) throw new Refusal(grpc.status.UNAUTHENTICATED, 'the authorization metadata must be one value "Bearer TOKEN"');
    return { node: this.options.tokens.verify(match[1]!), via: 'join-token' };
  }

  private ttl(validitySeconds: string): number {
    const seconds = Number(validitySeconds || '0');
    const max = this.options.maxTtlMs ?? DEFAULT_MAX_LEAF_TTL_MS;
    if (!Number.isSafeInteger(seconds) || seconds < 0) throw new Refusal(grpc.status.INVALID_ARGUMENT, `validity_duration must be a non-negative number of seconds, got ${validitySeconds}`);
    if (seconds === 0) return this.options.defaultTtlMs ?? DEFAULT_LEAF_TTL_MS;
    if (seconds * 1000 > max) throw new Refusal(grpc.status.INVALID_ARGUMENT, `validity_duration ${seconds}s exceeds the maximum of ${max / 1000}s`);
    return seconds * 1000;
  }
}

function toRefusal(error: unknown): Refusal {
  if (error instanceof Refusal) return error;
  if (error instanceof CaError) return new Refusal(STATUS_OF[error.code], error.message);
  return new Refusal(grpc.status.INTERNAL, `the CA failed: ${(error as Error).message}`);
}
