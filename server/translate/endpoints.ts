// ClusterLoadAssignments: a cluster's endpoints grouped by locality, each locality weighted (gRPC
// ignores localities without load_balancing_weight), with health, weight and the metadata the
// agent uses (node, labels, identity, and Istio's tlsMode marker for meshed endpoints).
import { endpointPort, type Endpoint, type Locality, type Service, type ServicePort } from '../registry/service';
import { labelsMatch } from './model-index';
import { applyLocalityLoadBalancing, isClientDependent, type LocalityClient, type LocalityGroup } from './locality-lb';
import { MESH_METADATA_KEY, TRANSPORT_SOCKET_MATCH_KEY } from './names';
import { socketAddress, toStruct, wrap, type ProtoObject } from './proto-values';
import type { LocalityLoadBalancerSetting } from './specs';

/** Everything a load assignment depends on besides the client. */
export interface LoadAssignmentSpec {
  clusterName: string;
  service: Service;
  port: ServicePort;
  /** A DestinationRule subset's labels; endpoints must carry all of them. */
  subsetLabels?: Readonly<Record<string, string>>;
  /** Locality LB in force for the cluster (undefined when disabled). */
  localitySetting?: LocalityLoadBalancerSetting;
  /** Outlier detection is configured, so failover priorities may be applied (Istio's rule). */
  failoverEnabled: boolean;
}

/** The tlsMode value Istio's sidecars put on endpoints that terminate mesh mTLS. */
export const ISTIO_TLS_MODE = 'istio';

export function selectEndpoints(service: Service, subsetLabels: Readonly<Record<string, string>> | undefined): Endpoint[] {
  return service.endpoints.filter((e) => labelsMatch(subsetLabels, e.labels));
}

function localityKey(locality: Locality): string {
  return `${locality.region}/${locality.zone}/${locality.subzone}`;
}

function compareEndpoints(port: ServicePort) {
  return (a: Endpoint, b: Endpoint): number => {
    if (a.address !== b.address) return a.address < b.address ? -1 : 1;
    return endpointPort(a, port) - endpointPort(b, port);
  };
}

export function endpointWeight(endpoint: Endpoint): number {
  return Math.max(1, Math.floor(endpoint.weight));
}

/** Endpoints grouped by locality, localities and endpoints in a stable order (hashes stay equal). */
export function groupByLocality(endpoints: readonly Endpoint[], port: ServicePort): LocalityGroup[] {
  const groups = new Map<string, LocalityGroup>();
  for (const endpoint of endpoints) {
    const key = localityKey(endpoint.locality);
    let group = groups.get(key);
    if (!group) groups.set(key, (group = { locality: endpoint.locality, weight: 0, priority: 0, endpoints: [] }));
    group.endpoints.push(endpoint);
    group.weight += endpointWeight(endpoint);
  }
  const sorted = [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, g]) => g);
  for (const group of sorted) group.endpoints.sort(compareEndpoints(port));
  return sorted;
}

function endpointMetadata(endpoint: Endpoint): ProtoObject {
  const filterMetadata: Record<string, ProtoObject> = {
    [MESH_METADATA_KEY]: toStruct({
      node: endpoint.node,
      labels: endpoint.labels,
      serviceAccount: endpoint.serviceAccount,
      network: endpoint.network,
    }),
  };
  // A workload on a mesh node has an agent in front of it that speaks mesh mTLS; Envoy's
  // transport_socket_matches (and the agent) key on this marker, as with Istio's sidecars.
  if (endpoint.node !== undefined) filterMetadata[TRANSPORT_SOCKET_MATCH_KEY] = toStruct({ tlsMode: ISTIO_TLS_MODE });
  return { filter_metadata: filterMetadata };
}

export function lbEndpoint(endpoint: Endpoint, port: ServicePort): ProtoObject {
  return {
    endpoint: { address: socketAddress(endpoint.address, endpointPort(endpoint, port)) },
    health_status: endpoint.healthy ? 'HEALTHY' : 'UNHEALTHY',
    load_balancing_weight: wrap(endpointWeight(endpoint)),
    metadata: endpointMetadata(endpoint),
  };
}

export function localityLbEndpoints(group: LocalityGroup, port: ServicePort): ProtoObject {
  const out: ProtoObject = {
    locality: { region: group.locality.region, zone: group.locality.zone, sub_zone: group.locality.subzone },
    lb_endpoints: group.endpoints.map((e) => lbEndpoint(e, port)),
    load_balancing_weight: wrap(Math.max(1, group.weight)),
  };
  if (group.priority > 0) out.priority = group.priority;
  return out;
}

/** Whether `client` changes the load assignment of `spec` (so it cannot be shared by every node). */
export function dependsOnClient(spec: LoadAssignmentSpec): boolean {
  return isClientDependent(spec.localitySetting, spec.failoverEnabled);
}

/**
 * The ClusterLoadAssignment for `spec`. Unhealthy endpoints are included as UNHEALTHY so that
 * the client's panic threshold sees the whole pool; gRPC and Envoy never pick them.
 */
export function buildLoadAssignment(spec: LoadAssignmentSpec, client?: LocalityClient): ProtoObject {
  let groups = groupByLocality(selectEndpoints(spec.service, spec.subsetLabels), spec.port);
  if (client && spec.localitySetting && dependsOnClient(spec)) {
    groups = applyLocalityLoadBalancing(groups, client, spec.localitySetting, spec.failoverEnabled);
  }
  return { cluster_name: spec.clusterName, endpoints: groups.map((g) => localityLbEndpoints(g, spec.port)) };
}
