// Gateway (networking.istio.io): strict schema of its spec — servers with port, hosts, bind and
// server-side TLS — the server TLS settings Sidecar ingress reuses, and the kind definition.
import { z } from 'zod';
import type { KindDefinition } from '../../config/kind';
import { LabelsSchema, UInt32Schema } from '../common';
import { checkGateway } from './check';

/** A listener port; number 0 is allowed only with a `unix://` bind. */
export const PortSchema = z.strictObject({
  number: UInt32Schema,
  /** HTTP|HTTPS|GRPC|GRPC-WEB|HTTP2|MONGO|TCP|TLS (case-insensitive). */
  protocol: z.string(),
  name: z.string().optional(),
  /** Deprecated in Istio; accepted so copied YAML still loads. */
  targetPort: UInt32Schema.optional(),
});
export type Port = z.infer<typeof PortSchema>;

export const TLSProtocolSchema = z.enum(['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3']);

export const ServerTLSSettingsSchema = z.strictObject({
  httpsRedirect: z.boolean().optional(),
  mode: z.enum(['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL']).optional(),
  serverCertificate: z.string().optional(),
  privateKey: z.string().optional(),
  caCertificates: z.string().optional(),
  caCrl: z.string().optional(),
  credentialName: z.string().optional(),
  credentialNames: z.array(z.string()).optional(),
  tlsCertificates: z
    .array(z.strictObject({ serverCertificate: z.string().optional(), privateKey: z.string().optional(), caCertificates: z.string().optional() }))
    .optional(),
  subjectAltNames: z.array(z.string()).optional(),
  verifyCertificateSpki: z.array(z.string()).optional(),
  verifyCertificateHash: z.array(z.string()).optional(),
  minProtocolVersion: TLSProtocolSchema.optional(),
  maxProtocolVersion: TLSProtocolSchema.optional(),
  cipherSuites: z.array(z.string()).optional(),
});
export type ServerTLSSettings = z.infer<typeof ServerTLSSettingsSchema>;

export const ServerSchema = z.strictObject({
  port: PortSchema,
  bind: z.string().optional(),
  hosts: z.array(z.string()).optional(),
  tls: ServerTLSSettingsSchema.optional(),
  defaultEndpoint: z.string().optional(),
  name: z.string().optional(),
});
export type Server = z.infer<typeof ServerSchema>;

export const GatewaySpecSchema = z.strictObject({
  servers: z.array(ServerSchema).optional(),
  selector: LabelsSchema.optional(),
});
export type GatewaySpec = z.infer<typeof GatewaySpecSchema>;

export const gatewayKind: KindDefinition<GatewaySpec> = {
  group: 'networking.istio.io',
  kind: 'Gateway',
  versions: ['v1alpha3', 'v1beta1', 'v1'],
  spec: GatewaySpecSchema,
  check: checkGateway,
};
