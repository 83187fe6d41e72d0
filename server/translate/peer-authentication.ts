// PeerAuthentication to the inbound side: the effective mTLS mode of one workload port with
// Istio's precedence (workload selector > namespace > mesh root namespace; a port-level setting
// over its policy's workload-level one; UNSET inherits), and what that mode admits.
import type { ConfigResource } from '../config/resource';
import type { MutualTLSMode, PeerAuthenticationSpec } from '../kinds/peer-authentication/schema';
import { labelsMatch } from './model-index';
import type { PolicyWorkload } from './policy-selection';

export type PeerAuthenticationResource = ConfigResource<PeerAuthenticationSpec>;
export type EffectiveMtlsMode = Exclude<MutualTLSMode, 'UNSET'>;

/** Istio's mesh default when no policy says otherwise. */
export const DEFAULT_MTLS_MODE: EffectiveMtlsMode = 'PERMISSIVE';

function hasSelector(policy: PeerAuthenticationResource): boolean {
  return Object.keys(policy.spec.selector?.matchLabels ?? {}).length > 0;
}

/** Istio resolves ties between policies of one level by age; the model's order stands for it. */
function first<T>(list: readonly T[], test: (item: T) => boolean): T | undefined {
  for (const item of list) if (test(item)) return item;
  return undefined;
}

function definedMode(mode: MutualTLSMode | undefined): EffectiveMtlsMode | undefined {
  return mode === undefined || mode === 'UNSET' ? undefined : mode;
}

/**
 * The mode for traffic to `port` of the workload. A workload policy's port-level entry wins; then
 * its own mode; UNSET (or no mode) falls to the namespace policy, then the mesh policy, then
 * PERMISSIVE. A selector policy in the root namespace is a workload policy for that namespace only.
 */
export function effectiveMtlsMode(policies: readonly PeerAuthenticationResource[], workload: PolicyWorkload, port: number, rootNamespace: string): EffectiveMtlsMode {
  const inNamespace = policies.filter((p) => p.metadata.namespace === workload.namespace);
  const workloadPolicy = first(inNamespace, (p) => hasSelector(p) && labelsMatch(p.spec.selector?.matchLabels, workload.labels));
  const namespacePolicy = first(inNamespace, (p) => !hasSelector(p));
  const meshPolicy = first(policies, (p) => p.metadata.namespace === rootNamespace && !hasSelector(p));
  return (
    definedMode(workloadPolicy?.spec.portLevelMtls?.[String(port)]?.mode) ??
    definedMode(workloadPolicy?.spec.mtls?.mode) ??
    definedMode(namespacePolicy?.spec.mtls?.mode) ??
    definedMode(meshPolicy?.spec.mtls?.mode) ??
    DEFAULT_MTLS_MODE
  );
}

/**
 * Whether plaintext on :15006 reaches the port. mTLS through the :15008 tunnel is always admitted:
 * as in Istio's ambient mode the tunnel is the mesh's transport, and DISABLE only stops requiring it.
 */
export function admitsPlaintext(mode: EffectiveMtlsMode): boolean {
  return mode !== 'STRICT';
}
