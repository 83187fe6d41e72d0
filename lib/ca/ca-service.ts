// The certificate service's gRPC definition (lib/ca/ca.proto) loaded with proto-loader, and the
// message shapes both mesh-server and mesh-agent use.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';

export interface CreateCertificateRequest {
  csr: string;
  /** Seconds; proto-loader hands int64 over as a string (`longs: String`). */
  validity_duration: string;
}

export interface CreateCertificateResponse {
  cert_chain: string[];
  trust_bundle: string[];
}

/** Where the join token travels on a first contact; "Bearer " followed by the token. */
export const AUTHORIZATION_METADATA = 'authorization';

// Compiled code runs from dist/lib/ca, where tsc copies no .proto: fall back to the source tree.
function protoFile(): string {
  const beside = path.join(__dirname, 'ca.proto');
  return existsSync(beside) ? beside : path.join(__dirname, '..', '..', '..', 'lib', 'ca', 'ca.proto');
}

let definition: grpc.ServiceDefinition | undefined;

export function certificateServiceDefinition(): grpc.ServiceDefinition {
  if (definition) return definition;
  const packageDefinition = protoLoader.loadSync(protoFile(), { longs: String, defaults: true, keepCase: true });
  const loaded = grpc.loadPackageDefinition(packageDefinition) as unknown as { mesh: { ca: { v1: { CertificateService: grpc.ServiceClientConstructor } } } };
  definition = loaded.mesh.ca.v1.CertificateService.service;
  return definition;
}

export type CertificateServiceClient = grpc.Client & {
  CreateCertificate(request: CreateCertificateRequest, metadata: grpc.Metadata, options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, response?: CreateCertificateResponse) => void): grpc.ClientUnaryCall;
};

export function createCertificateServiceClient(target: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions): CertificateServiceClient {
  const Client = grpc.makeGenericClientConstructor(certificateServiceDefinition(), 'CertificateService');
  return new Client(target, credentials, options) as unknown as CertificateServiceClient;
}
