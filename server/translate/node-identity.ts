// Who is asking: from an xDS node and the model, the node's local workloads, the namespaces and
// labels its config is chosen by, and its locality (for locality-aware load balancing).
import { DEFAULT_NAMESPACE } from '../config/resource';
import type { Locality } from '../registry/service';
import type { XdsNode } from '../xds/generator';
import type { LocalWorkload, ModelIndex } from './model-index';

/** One workload's view of the config: its namespace and labels select Sidecars and routes. */
export interface WorkloadView {
  namespace: string;
  labels: Readonly<Record<string, string>>;
}

export interface NodeIdentity {
  id: string;
  /** Endpoints whose `node` is this node's id: the workloads its agent serves inbound. */
  workloads: readonly LocalWorkload[];
  /** One view per distinct (namespace, labels) of the node's workloads; one from metadata otherwise. */
  views: readonly WorkloadView[];
  /** Sorted, distinct namespaces of the views. */
  namespaces: readonly string[];
  /**
   * The namespace that decides DestinationRule precedence and `sourceNamespace` matches: the
   * first of `namespaces`. A host running workloads of several namespaces follows the first one.
   */
  configNamespace: string;
  /**
   * The locality the node states in its xDS Node (Envoy's and mesh-agent's own), else that of its
   * first workload; undefined when neither is known.
   */
  locality?: Locality;
}

/** Node metadata keys, as Istio's proxies and proxyless gRPC bootstraps send them. */
export const NodeMetadataKey = {
  namespace: 'NAMESPACE',
  labels: 'LABELS',
  generator: 'GENERATOR',
} as const;

function metadataLabels(node: XdsNode): Record<string, string> {
  const raw = node.metadata[NodeMetadataKey.labels];
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return {};
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value === 'string') labels[key] = value;
  }
  return labels;
}

function labelsKey(labels: Readonly<Record<string, string>>): string {
  return JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));
}

/** True when node metadata says the client is a proxyless gRPC client (Istio's `GENERATOR: grpc`). */
export function declaresProxylessGrpc(node: XdsNode): boolean {
  return node.metadata[NodeMetadataKey.generator] === 'grpc';
}

export function nodeIdentity(index: ModelIndex, node: XdsNode): NodeIdentity {
  const workloads = index.workloadsByNode.get(node.id) ?? [];
  const views: WorkloadView[] = [];
  const seen = new Set<string>();
  for (const { service, endpoint } of workloads) {
    const key = `${service.namespace}\u0000${labelsKey(endpoint.labels)}`;
    if (seen.has(key)) continue;
    seen.add(key);
    views.push({ namespace: service.namespace, labels: endpoint.labels });
  }
  if (views.length === 0) {
    const ns = node.metadata[NodeMetadataKey.namespace];
    views.push({ namespace: typeof ns === 'string' && ns !== '' ? ns : DEFAULT_NAMESPACE, labels: metadataLabels(node) });
  }
  const namespaces = [...new Set(views.map((v) => v.namespace))].sort();
  const first = node.locality ?? workloads[0]?.endpoint.locality;
  const locality = first && (first.region !== '' || first.zone !== '' || first.subzone !== '') ? first : undefined;
  return { id: node.id, workloads, views, namespaces, configNamespace: namespaces[0]!, locality };
}

/** A stable string for the parts of an identity that change which routes apply (source matches). */
export function sourceMatchKey(identity: NodeIdentity): string {
  return JSON.stringify(identity.views.map((v) => [v.namespace, labelsKey(v.labels)]).sort());
}
