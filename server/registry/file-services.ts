// The file-based service registry: ServiceEntry and WorkloadEntry resources turned into the
// mesh's Service/Endpoint model with Istio's semantics, for meshes that run without Consul.
import type { ConfigResource } from '../config/resource';
import type { ServiceEntrySpec } from '../kinds/service-entry/schema';
import type { WorkloadEntrySpec } from '../kinds/workload-entry/schema';
import { protocolFromPortName, type Endpoint, type Locality, type PortProtocol, type Service, type ServicePort } from './service';

/**
 * WorkloadEntry annotation naming the mesh-agent node (its xDS node id) that runs the workload.
 * An annotation rather than a label: labels feed workload selection and DestinationRule
 * subsets, where a placement detail has no business, and annotation values have no 63-character
 * limit, so a host's FQDN fits. Inline ServiceEntry endpoints have no metadata and so no node:
 * describe meshed workloads with WorkloadEntries.
 */
export const NODE_ANNOTATION = 'mesh.io/node';

const PROTOCOLS: ReadonlySet<string> = new Set<PortProtocol>(['HTTP', 'HTTPS', 'HTTP2', 'GRPC', 'GRPC-WEB', 'TCP', 'TLS', 'MONGO', 'REDIS', 'MYSQL', 'UDP']);

/** The declared protocol (case-insensitive, as Istio reads it), else the port-name convention. */
function portProtocol(name: string, declared: string | undefined): PortProtocol {
  const upper = declared?.toUpperCase();
  return upper !== undefined && PROTOCOLS.has(upper) ? (upper as PortProtocol) : protocolFromPortName(name);
}

function parseLocality(text: string | undefined): Locality {
  const [region = '', zone = '', subzone = ''] = (text ?? '').split('/');
  return { region, zone, subzone };
}

function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/** Endpoint ports keyed by the service's port names; other names in the entry are irrelevant here. */
function endpointPorts(ports: Record<string, number> | undefined, servicePorts: readonly ServicePort[]): Record<string, number> {
  const out: Record<string, number> = {};
  if (!ports) return out;
  for (const port of servicePorts) {
    const target = ports[port.name];
    if (target !== undefined) out[port.name] = target;
  }
  return out;
}

function toEndpoint(entry: WorkloadEntrySpec, labels: Record<string, string>, servicePorts: readonly ServicePort[], node: string | undefined): Endpoint | undefined {
  // Istio allows an address-less entry reached through its network's gateway; this mesh has no
  // cross-network gateways, so such an entry cannot be routed to and is left out.
  if (!entry.address) return undefined;
  return {
    address: entry.address,
    ports: endpointPorts(entry.ports, servicePorts),
    labels,
    ...(node !== undefined ? { node } : {}),
    healthy: true,
    locality: parseLocality(entry.locality),
    // Istio reads weight 0 (unset in proto3) as the default, 1.
    weight: entry.weight && entry.weight > 0 ? entry.weight : 1,
    ...(entry.serviceAccount ? { serviceAccount: entry.serviceAccount } : {}),
    ...(entry.network ? { network: entry.network } : {}),
  };
}

/** A WorkloadEntry's labels: spec.labels overlaid with metadata.labels, as Istio merges them. */
function workloadLabels(resource: ConfigResource): Record<string, string> {
  return { ...((resource.spec as WorkloadEntrySpec).labels ?? {}), ...resource.metadata.labels };
}

/** A WorkloadEntry with its merged labels, computed once per registry build. */
interface Workload {
  resource: ConfigResource;
  labels: Record<string, string>;
}

/**
 * WorkloadEntries by namespace and by each `key=value` label they carry, so that a selector is
 * answered from the entries carrying its first label instead of scanning every entry.
 */
class WorkloadIndex {
  private readonly byLabel = new Map<string, Workload[]>();
  private readonly byNamespace = new Map<string, Workload[]>();

  constructor(resources: readonly ConfigResource[]) {
    for (const resource of resources) {
      if (resource.kind !== 'WorkloadEntry') continue;
      const workload = { resource, labels: workloadLabels(resource) };
      const namespace = resource.metadata.namespace;
      push(this.byNamespace, namespace, workload);
      for (const [key, value] of Object.entries(workload.labels)) push(this.byLabel, `${namespace}\u0000${key}\u0000${value}`, workload);
    }
  }

  select(namespace: string, selector: Readonly<Record<string, string>>): Workload[] {
    const first = Object.entries(selector)[0];
    const candidates = first ? this.byLabel.get(`${namespace}\u0000${first[0]}\u0000${first[1]}`) : this.byNamespace.get(namespace);
    return (candidates ?? []).filter((workload) => selects(selector, workload.labels));
  }
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function endpointsOf(entry: ConfigResource, host: string, ports: readonly ServicePort[], workloads: WorkloadIndex): Endpoint[] {
  const spec = entry.spec as ServiceEntrySpec;
  const out: Endpoint[] = [];
  if (spec.workloadSelector) {
    for (const { resource, labels } of workloads.select(entry.metadata.namespace, spec.workloadSelector.labels ?? {})) {
      const endpoint = toEndpoint(resource.spec as WorkloadEntrySpec, { ...labels }, ports, resource.metadata.annotations[NODE_ANNOTATION]);
      if (endpoint) out.push(endpoint);
    }
    return out;
  }
  if (spec.endpoints && spec.endpoints.length > 0) {
    for (const inline of spec.endpoints) {
      const endpoint = toEndpoint(inline, { ...(inline.labels ?? {}) }, ports, undefined);
      if (endpoint) out.push(endpoint);
    }
    return out;
  }
  // Istio: a DNS ServiceEntry without endpoints resolves its own (non-wildcard) hosts.
  if ((spec.resolution === 'DNS' || spec.resolution === 'DNS_ROUND_ROBIN') && !host.startsWith('*')) {
    out.push({ address: host, ports: {}, labels: {}, healthy: true, locality: parseLocality(undefined), weight: 1 });
  }
  return out;
}

/**
 * Services described by the ServiceEntries among `resources` (one per host), with endpoints
 * inline or selected from the WorkloadEntries of the same namespace. ServiceEntries of one
 * namespace that share a host are merged, as Istio does: ports are joined (the first definition
 * of a port number wins; the analyzer reports conflicting ones) and endpoints added up.
 */
export function servicesFromConfig(resources: readonly ConfigResource[]): Service[] {
  const workloads = new WorkloadIndex(resources);
  const byKey = new Map<string, Service>();
  for (const entry of resources) {
    if (entry.kind !== 'ServiceEntry') continue;
    const spec = entry.spec as ServiceEntrySpec;
    const ports: ServicePort[] = (spec.ports ?? []).map((port) => ({
      name: port.name,
      number: port.number,
      protocol: portProtocol(port.name, port.protocol),
      ...(port.targetPort !== undefined ? { targetPort: port.targetPort } : {}),
    }));
    for (const host of spec.hosts) {
      const endpoints = endpointsOf(entry, host, ports, workloads);
      const key = `${entry.metadata.namespace}|${host}`;
      const existing = byKey.get(key);
      if (existing) {
        for (const port of ports) if (!existing.ports.some((p) => p.number === port.number)) existing.ports.push({ ...port });
        existing.endpoints.push(...endpoints);
        for (const address of spec.addresses ?? []) if (!existing.addresses.includes(address)) existing.addresses.push(address);
        continue;
      }
      byKey.set(key, {
        hostname: host,
        namespace: entry.metadata.namespace,
        aliases: [],
        addresses: [...(spec.addresses ?? [])],
        ports: ports.map((port) => ({ ...port })),
        resolution: spec.resolution ?? 'NONE',
        location: spec.location ?? 'MESH_EXTERNAL',
        endpoints,
        source: 'file',
        exportTo: spec.exportTo && spec.exportTo.length > 0 ? [...spec.exportTo] : ['*'],
        subjectAltNames: [...(spec.subjectAltNames ?? [])],
      });
    }
  }
  return [...byKey.values()];
}
