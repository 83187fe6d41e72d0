// Sidecar (networking.istio.io): strict schema of its spec — which workloads it selects, inbound
// listeners, the outbound hosts they may reach, connection pools and the outbound traffic policy.
import { z } from 'zod';
import type { KindDefinition } from '../../config/kind';
import { NetworkingWorkloadSelectorSchema, UInt32Schema } from '../common';
import { ConnectionPoolSettingsSchema } from '../destination-rule/schema';
import { ServerTLSSettingsSchema } from '../gateway/schema';
import { DestinationSchema } from '../virtual-service/schema';
import { checkSidecar } from './check';

/** Listener port; number 0 is only valid for an egress listener bound to `unix://`. */
export const SidecarPortSchema = z.strictObject({
  number: UInt32Schema,
  protocol: z.string().optional(),
  name: z.string().optional(),
  targetPort: UInt32Schema.optional(),
});
export type SidecarPort = z.infer<typeof SidecarPortSchema>;

export const CaptureModeSchema = z.enum(['DEFAULT', 'IPTABLES', 'NONE']);
export type CaptureMode = z.infer<typeof CaptureModeSchema>;

export const IstioIngressListenerSchema = z.strictObject({
  port: SidecarPortSchema,
  bind: z.string().optional(),
  captureMode: CaptureModeSchema.optional(),
  /** `127.0.0.1:PORT`, `0.0.0.0:PORT`, `:PORT` or `unix:///path`. */
  defaultEndpoint: z.string().optional(),
  tls: ServerTLSSettingsSchema.optional(),
  connectionPool: ConnectionPoolSettingsSchema.optional(),
});
export type IstioIngressListener = z.infer<typeof IstioIngressListenerSchema>;

export const IstioEgressListenerSchema = z.strictObject({
  port: SidecarPortSchema.optional(),
  bind: z.string().optional(),
  captureMode: CaptureModeSchema.optional(),
  /** `namespace/dnsName` entries; namespace may be `*`, `.` or `~`. */
  hosts: z.array(z.string()),
});
export type IstioEgressListener = z.infer<typeof IstioEgressListenerSchema>;

export const OutboundTrafficPolicySchema = z.strictObject({
  mode: z.enum(['REGISTRY_ONLY', 'ALLOW_ANY']).optional(),
  egressProxy: DestinationSchema.optional(),
});
export type OutboundTrafficPolicy = z.infer<typeof OutboundTrafficPolicySchema>;

export const SidecarSpecSchema = z.strictObject({
  workloadSelector: NetworkingWorkloadSelectorSchema.optional(),
  ingress: z.array(IstioIngressListenerSchema).optional(),
  egress: z.array(IstioEgressListenerSchema).optional(),
  inboundConnectionPool: ConnectionPoolSettingsSchema.optional(),
  outboundTrafficPolicy: OutboundTrafficPolicySchema.optional(),
});
export type SidecarSpec = z.infer<typeof SidecarSpecSchema>;

export const sidecarKind: KindDefinition<SidecarSpec> = {
  group: 'networking.istio.io',
  kind: 'Sidecar',
  versions: ['v1alpha3', 'v1beta1', 'v1'],
  spec: SidecarSpecSchema,
  check: checkSidecar,
};
