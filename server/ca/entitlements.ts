// Which SPIFFE identities each mesh-agent may obtain certificates for, derived from the registry:
// a node is entitled to the identity of every workload the model says runs on it, and nothing else.
import type { MeshModel } from '../model/mesh-model';
import { formatWorkloadId } from '../../lib/ca/spiffe';

export type IdentitiesByNode = ReadonlyMap<string, ReadonlySet<string>>;

// Models are immutable snapshots, so the derived map is computed once per snapshot; the WeakMap
// lets old snapshots (and their maps) be collected when the model moves on.
const cache = new WeakMap<MeshModel, IdentitiesByNode>();

const NONE: ReadonlySet<string> = new Set();

export function identitiesByNode(model: MeshModel): IdentitiesByNode {
  const cached = cache.get(model);
  if (cached) return cached;
  const byNode = new Map<string, Set<string>>();
  for (const service of model.services.values()) {
    for (const endpoint of service.endpoints) {
      // An endpoint without a node is not meshed; without a service account it has declared no
      // identity, and guessing one (Kubernetes' "default") would hand out an identity nobody asked for.
      if (!endpoint.node || !endpoint.serviceAccount) continue;
      const id = formatWorkloadId({
        trustDomain: model.trustDomain,
        namespace: service.namespace,
        serviceAccount: endpoint.serviceAccount,
      });
      // Config validation reports bad names; here an unrepresentable identity is simply not granted.
      if (!id.ok) continue;
      let ids = byNode.get(endpoint.node);
      if (!ids) byNode.set(endpoint.node, (ids = new Set()));
      ids.add(id.value);
    }
  }
  cache.set(model, byNode);
  return byNode;
}

/** The lookup `signCsr` takes: identities a node may request, empty for unknown nodes. */
export function entitlementsFromModel(model: MeshModel): (node: string) => ReadonlySet<string> {
  const byNode = identitiesByNode(model);
  return (node) => byNode.get(node) ?? NONE;
}
