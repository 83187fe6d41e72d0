// What a node sees: the Sidecar that applies to each of its workloads (Istio's selection order),
// the outbound services and ports those Sidecars' egress hosts and exportTo leave visible, and
// the outbound traffic policy. Many nodes share one scope, so everything keyed on it is shared.
import { resourceKey } from '../config/resource';
import type { Service, ServicePort } from '../registry/service';
import type { NodeIdentity, WorkloadView } from './node-identity';
import { hostMatches, isExportedTo, labelsMatch, serviceNames, type ModelIndex } from './model-index';
import type { SidecarResource, VirtualServiceResource } from './specs';

export type OutboundTrafficPolicy = 'ALLOW_ANY' | 'REGISTRY_ONLY';

export interface VisibleService {
  service: Service;
  /** The ports the node may reach, in the service's order. */
  ports: readonly ServicePort[];
}

export interface SidecarScope {
  /** Equal keys mean equal scopes: caches of scope-derived resources key on it. */
  key: string;
  configNamespace: string;
  namespaces: readonly string[];
  outboundPolicy: OutboundTrafficPolicy;
  /** The Sidecar chosen per view (undefined: none applies, everything is visible). */
  sidecars: readonly (SidecarResource | undefined)[];
  /** Sorted by hostname. */
  services: readonly VisibleService[];
  /** By hostname and by alias. */
  byName: ReadonlyMap<string, VisibleService>;
}

/**
 * Istio's Sidecar selection for one workload: a Sidecar of its namespace whose workloadSelector
 * matches its labels, else the namespace's Sidecar without selector, else the root namespace's.
 */
export function selectSidecar(index: ModelIndex, view: WorkloadView): SidecarResource | undefined {
  const inNamespace = index.sidecars.filter((s) => s.metadata.namespace === view.namespace);
  const selected = inNamespace.find((s) => s.spec.workloadSelector?.labels && labelsMatch(s.spec.workloadSelector.labels, view.labels));
  if (selected) return selected;
  const namespaceDefault = inNamespace.find((s) => !s.spec.workloadSelector);
  if (namespaceDefault) return namespaceDefault;
  return index.sidecars.find((s) => s.metadata.namespace === index.model.rootNamespace && !s.spec.workloadSelector);
}

interface EgressHost {
  /** `*` any namespace, `~` none, else one namespace (`.` already resolved). */
  namespace: string;
  host: string;
}

/** `ns/host` with `.` meaning the workload's namespace; a bare host is read as any namespace. */
function parseEgressHost(text: string, workloadNamespace: string): EgressHost {
  const slash = text.indexOf('/');
  if (slash < 0) return { namespace: '*', host: text };
  const ns = text.slice(0, slash);
  return { namespace: ns === '.' ? workloadNamespace : ns, host: text.slice(slash + 1) || '*' };
}

function egressAdmits(rule: EgressHost, service: Service): boolean {
  if (rule.namespace === '~') return false;
  if (rule.namespace !== '*' && rule.namespace !== service.namespace) return false;
  return serviceNames(service).some((name) => hostMatches(rule.host, name));
}

/** Port numbers visible per hostname for one view; `true` means all ports. */
type Visibility = Map<string, Set<number> | true>;

function admit(visibility: Visibility, service: Service, port: number | undefined): void {
  const current = visibility.get(service.hostname);
  if (current === true) return;
  if (port === undefined) {
    visibility.set(service.hostname, true);
    return;
  }
  if (!service.ports.some((p) => p.number === port)) return;
  if (current) current.add(port);
  else visibility.set(service.hostname, new Set([port]));
}

function viewVisibility(index: ModelIndex, view: WorkloadView, sidecar: SidecarResource | undefined, visibility: Visibility): void {
  const exported = index.services.filter((s) => isExportedTo(s.exportTo, s.namespace, view.namespace));
  const egress = sidecar?.spec.egress;
  if (!egress || egress.length === 0) {
    for (const service of exported) admit(visibility, service, undefined);
    return;
  }
  for (const listener of egress) {
    const rules = (listener.hosts ?? []).map((h) => parseEgressHost(h, view.namespace));
    for (const service of exported) {
      if (rules.some((rule) => egressAdmits(rule, service))) admit(visibility, service, listener.port?.number);
    }
  }
}

function destinationHosts(vs: VirtualServiceResource): string[] {
  const hosts: string[] = [];
  for (const route of vs.spec.http ?? []) {
    for (const d of route.route ?? []) hosts.push(d.destination.host);
    if (route.mirror) hosts.push(route.mirror.host);
    for (const m of route.mirrors ?? []) hosts.push(m.destination.host);
  }
  for (const route of [...(vs.spec.tcp ?? []), ...(vs.spec.tls ?? [])]) {
    for (const d of route.route ?? []) hosts.push(d.destination.host);
  }
  return hosts;
}

/** The key a scope is cached under: the views' namespaces and the Sidecars chosen for them. */
export function scopeKey(index: ModelIndex, identity: NodeIdentity): string {
  const parts = identity.views.map((view) => {
    const sidecar = selectSidecar(index, view);
    return `${view.namespace}=${sidecar ? resourceKey(sidecar) : ''}`;
  });
  return `${identity.configNamespace}|${[...new Set(parts)].sort().join(',')}`;
}

/**
 * The union of what the node's workloads see: a per-host agent serves all of them with one set of
 * listeners, so a service visible to any of them is visible to the node, and REGISTRY_ONLY holds
 * only when every workload's Sidecar asks for it.
 */
export function buildSidecarScope(index: ModelIndex, identity: NodeIdentity, key: string): SidecarScope {
  const visibility: Visibility = new Map();
  const sidecars: (SidecarResource | undefined)[] = [];
  let registryOnly = true;
  for (const view of identity.views) {
    const sidecar = selectSidecar(index, view);
    sidecars.push(sidecar);
    if (sidecar?.spec.outboundTrafficPolicy?.mode !== 'REGISTRY_ONLY') registryOnly = false;
    viewVisibility(index, view, sidecar, visibility);
  }
  // Istio adds the destinations of the VirtualServices in scope, so that routes never point at a
  // cluster the node was not given.
  for (const hostname of [...visibility.keys()]) {
    const service = index.model.services.get(hostname);
    if (!service) continue;
    const vs = index.virtualServiceFor(service, identity.namespaces);
    if (!vs) continue;
    for (const host of destinationHosts(vs)) {
      const target = index.service(host);
      if (target && identity.namespaces.some((ns) => isExportedTo(target.exportTo, target.namespace, ns))) admit(visibility, target, undefined);
    }
  }
  const services: VisibleService[] = [];
  const byName = new Map<string, VisibleService>();
  for (const service of index.services) {
    const visible = visibility.get(service.hostname);
    if (!visible) continue;
    const entry: VisibleService = { service, ports: visible === true ? service.ports : service.ports.filter((p) => visible.has(p.number)) };
    services.push(entry);
    for (const name of serviceNames(service)) if (!byName.has(name)) byName.set(name, entry);
  }
  return {
    key,
    configNamespace: identity.configNamespace,
    namespaces: identity.namespaces,
    outboundPolicy: registryOnly ? 'REGISTRY_ONLY' : 'ALLOW_ANY',
    sidecars,
    services,
    byName,
  };
}
