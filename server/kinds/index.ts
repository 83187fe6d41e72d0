// The registry of Istio resource kinds the mesh understands: the config loader looks a document's
// apiVersion/kind up here to find the strict spec schema and the per-resource checks.
import type { KindDefinition } from '../config/kind';
import { authorizationPolicyKind } from './authorization-policy/schema';
import { destinationRuleKind } from './destination-rule/schema';
import { gatewayKind } from './gateway/schema';
import { peerAuthenticationKind } from './peer-authentication/schema';
import { requestAuthenticationKind } from './request-authentication/schema';
import { serviceEntryKind } from './service-entry/schema';
import { sidecarKind } from './sidecar/schema';
import { virtualServiceKind } from './virtual-service/schema';
import { workloadEntryKind } from './workload-entry/schema';

export { WARNING_CODES, severityOf } from './common';
export { validateSpec, type SpecIssue, type SpecValidation } from './validate';

/** Every kind, in the order the docs list them (networking first, then security). */
export const KINDS: readonly KindDefinition[] = [
  virtualServiceKind,
  destinationRuleKind,
  gatewayKind,
  serviceEntryKind,
  sidecarKind,
  workloadEntryKind,
  peerAuthenticationKind,
  authorizationPolicyKind,
  requestAuthenticationKind,
];

/** The definition for `group/version` + kind, or undefined when the pair is not served. */
export function findKind(apiVersion: string, kind: string): KindDefinition | undefined {
  const slash = apiVersion.indexOf('/');
  if (slash <= 0) return undefined;
  const group = apiVersion.slice(0, slash);
  const version = apiVersion.slice(slash + 1);
  return KINDS.find((k) => k.group === group && k.kind === kind && k.versions.includes(version));
}
