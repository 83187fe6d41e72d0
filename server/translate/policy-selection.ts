// Which security policies (PeerAuthentication, AuthorizationPolicy, RequestAuthentication) apply to
// one local workload, with Istio's scoping: the root namespace for the mesh, the workload's own
// namespace, a `selector` on labels, or `targetRef(s)` naming the workload's Service/ServiceEntry.
import type { ConfigResource } from '../config/resource';
import type { PolicyTargetReference, WorkloadSelector } from '../kinds/common';
import { labelsMatch } from './model-index';

/** The workload an inbound chain delivers to, as policies select it. */
export interface PolicyWorkload {
  namespace: string;
  labels: Readonly<Record<string, string>>;
  /** The service (hostname and aliases) the chain serves, for targetRef selection. */
  serviceNames: readonly string[];
}

interface Selectable {
  selector?: WorkloadSelector;
  targetRef?: PolicyTargetReference;
  targetRefs?: PolicyTargetReference[];
}

function refNamesService(ref: PolicyTargetReference, workload: PolicyWorkload): boolean {
  const group = ref.group ?? '';
  // Gateway kinds select gateways, which this mesh does not run; they never select a workload.
  const serviceKind = (ref.kind === 'Service' && (group === '' || group === 'core')) || (ref.kind === 'ServiceEntry' && group === 'networking.istio.io');
  if (!serviceKind) return false;
  return workload.serviceNames.some((name) => name === ref.name || name.split('.')[0] === ref.name);
}

/**
 * Istio's AuthorizationPolicy/RequestAuthentication scoping: a policy in the root namespace applies
 * mesh-wide, one elsewhere to its own namespace; a selector narrows either to matching labels;
 * targetRefs (which exclude a selector) apply to the named service in the policy's namespace.
 */
export function appliesToWorkload(policy: ConfigResource<Selectable>, workload: PolicyWorkload, rootNamespace: string): boolean {
  const ns = policy.metadata.namespace;
  const refs = [...(policy.spec.targetRef ? [policy.spec.targetRef] : []), ...(policy.spec.targetRefs ?? [])];
  if (refs.length > 0) return ns === workload.namespace && refs.some((ref) => (ref.namespace ?? ns) === ns && refNamesService(ref, workload));
  if (ns !== rootNamespace && ns !== workload.namespace) return false;
  return labelsMatch(policy.spec.selector?.matchLabels, workload.labels);
}
