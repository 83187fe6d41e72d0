// PeerAuthentication (security.istio.io): strict schema of its spec — the mTLS mode for selected
// workloads, optionally per port — and the kind definition.
import { z } from 'zod';
import type { KindDefinition } from '../../config/kind';
import { WorkloadSelectorSchema } from '../common';
import { checkPeerAuthentication } from './check';

export const MutualTLSModeSchema = z.enum(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']);
export type MutualTLSMode = z.infer<typeof MutualTLSModeSchema>;

export const MutualTLSSchema = z.strictObject({
  /** UNSET inherits from the parent (namespace, then mesh); Istio's mesh default is PERMISSIVE. */
  mode: MutualTLSModeSchema.optional(),
});
export type MutualTLS = z.infer<typeof MutualTLSSchema>;

export const PeerAuthenticationSpecSchema = z.strictObject({
  selector: WorkloadSelectorSchema.optional(),
  mtls: MutualTLSSchema.optional(),
  /** Keyed by workload port number (YAML keys arrive as strings). */
  portLevelMtls: z.record(z.string().regex(/^[0-9]+$/, 'port keys must be port numbers'), MutualTLSSchema).optional(),
});
export type PeerAuthenticationSpec = z.infer<typeof PeerAuthenticationSpecSchema>;

export const peerAuthenticationKind: KindDefinition<PeerAuthenticationSpec> = {
  group: 'security.istio.io',
  kind: 'PeerAuthentication',
  versions: ['v1beta1', 'v1'],
  spec: PeerAuthenticationSpecSchema,
  check: checkPeerAuthentication,
};
