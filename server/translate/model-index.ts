// Per-model lookups that every node's translation needs: services by hostname and alias, local
// workloads by node, the mesh-bound VirtualServices, DestinationRules and Sidecars, and exportTo.
import { resourcesOf, type MeshModel } from '../model/mesh-model';
import type { Endpoint, Service } from '../registry/service';
import {
  Kind,
  type DestinationRuleResource,
  type DestinationRuleSpec,
  type SidecarResource,
  type SidecarSpec,
  type VirtualServiceResource,
  type VirtualServiceSpec,
} from './specs';

/** A workload running on a node: one endpoint of one service whose `node` is that node. */
export interface LocalWorkload {
  service: Service;
  endpoint: Endpoint;
}

/** The gateway name Istio reserves for "all sidecars in the mesh". */
export const MESH_GATEWAY = 'mesh';

/** Istio's exportTo: absent or empty means everywhere; `.` the owner's namespace; `~` nowhere. */
export function isExportedTo(exportTo: readonly string[] | undefined, ownNamespace: string, namespace: string): boolean {
  if (!exportTo || exportTo.length === 0) return true;
  for (const entry of exportTo) {
    if (entry === '*') return true;
    if (entry === '.' ? namespace === ownNamespace : entry === namespace) return true;
  }
  return false;
}

/** Istio's host matching: `*` matches everything, `*.example.com` anything ending in `.example.com`. */
export function hostMatches(pattern: string, name: string): boolean {
  if (pattern === '*') return true;
  if (pattern.startsWith('*')) {
    const suffix = pattern.slice(1);
    return name.endsWith(suffix) && name.length > suffix.length;
  }
  return pattern === name;
}

/** The names a VirtualService or DestinationRule host may use for a service. */
export function serviceNames(service: Service): string[] {
  return [service.hostname, ...service.aliases];
}

/** A selector (label subset) matches when every key is present with the same value; empty matches all. */
export function labelsMatch(selector: Readonly<Record<string, string>> | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (!selector) return true;
  for (const key of Object.keys(selector)) if (labels[key] !== selector[key]) return false;
  return true;
}

export function isMeshBound(gateways: readonly string[] | undefined): boolean {
  return !gateways || gateways.length === 0 || gateways.includes(MESH_GATEWAY);
}

/** How well a host pattern names a service: 0 exact, then wildcards by decreasing length; -1 no match. */
function hostSpecificity(pattern: string, service: Service): number {
  let best = -1;
  for (const name of serviceNames(service)) {
    if (pattern === name) return Number.MAX_SAFE_INTEGER;
    if (hostMatches(pattern, name)) best = Math.max(best, pattern.length);
  }
  return best;
}

function usesSourceMatch(vs: VirtualServiceSpec): boolean {
  const matches = [
    ...(vs.http ?? []).flatMap((r) => r.match ?? []),
    ...(vs.tcp ?? []).flatMap((r) => r.match ?? []),
    ...(vs.tls ?? []).flatMap((r) => r.match ?? []),
  ];
  return matches.some((m) => (m.sourceLabels && Object.keys(m.sourceLabels).length > 0) || m.sourceNamespace !== undefined);
}

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

/** Built once per model; everything here is independent of the node asking. */
export class ModelIndex {
  readonly services: readonly Service[];
  readonly workloadsByNode: ReadonlyMap<string, readonly LocalWorkload[]>;
  /** VirtualServices that apply to sidecars (gateways empty or including `mesh`), in model order. */
  readonly virtualServices: readonly VirtualServiceResource[];
  readonly destinationRules: readonly DestinationRuleResource[];
  readonly sidecars: readonly SidecarResource[];
  /** True when some route depends on the client's labels or namespace, so route caches must key on them. */
  readonly usesSourceMatch: boolean;
  private readonly byName = new Map<string, Service>();
  // Exact-host indexes plus the wildcard rest, so that a lookup does not scan every resource.
  private readonly vsByHost = new Map<string, VirtualServiceResource[]>();
  private readonly wildcardVs: VirtualServiceResource[] = [];
  private readonly position = new Map<object, number>();
  private readonly drByHost = new Map<string, DestinationRuleResource[]>();
  private readonly wildcardDr: DestinationRuleResource[] = [];

  constructor(readonly model: MeshModel) {
    this.services = [...model.services.values()].sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0));
    // Canonical hostnames win over aliases, so an alias can never shadow another service's hostname.
    for (const service of this.services) this.byName.set(service.hostname, service);
    for (const service of this.services) {
      for (const alias of service.aliases) if (!this.byName.has(alias)) this.byName.set(alias, service);
    }
    const byNode = new Map<string, LocalWorkload[]>();
    for (const service of this.services) {
      for (const endpoint of service.endpoints) {
        if (endpoint.node === undefined) continue;
        let list = byNode.get(endpoint.node);
        if (!list) byNode.set(endpoint.node, (list = []));
        list.push({ service, endpoint });
      }
    }
    this.workloadsByNode = byNode;
    this.virtualServices = resourcesOf<VirtualServiceSpec>(model, Kind.VirtualService).filter((vs) => isMeshBound(vs.spec.gateways));
    this.destinationRules = resourcesOf<DestinationRuleSpec>(model, Kind.DestinationRule);
    this.sidecars = resourcesOf<SidecarSpec>(model, Kind.Sidecar);
    this.usesSourceMatch = this.virtualServices.some((vs) => usesSourceMatch(vs.spec));
    this.virtualServices.forEach((vs, i) => this.position.set(vs, i));
    this.destinationRules.forEach((rule, i) => this.position.set(rule, i));
    for (const vs of this.virtualServices) {
      const hosts = new Set(vs.spec.hosts ?? []);
      if ([...hosts].some((h) => h.startsWith('*'))) this.wildcardVs.push(vs);
      for (const host of hosts) if (!host.startsWith('*')) pushTo(this.vsByHost, host, vs);
    }
    for (const rule of this.destinationRules) {
      if (rule.spec.host.startsWith('*')) this.wildcardDr.push(rule);
      else pushTo(this.drByHost, rule.spec.host, rule);
    }
  }

  /** Resources naming one of the service's names exactly, plus every wildcard one, in model order. */
  private candidates<T extends object>(byHost: Map<string, T[]>, wildcard: readonly T[], service: Service): T[] {
    const found = new Set<T>(wildcard);
    for (const name of serviceNames(service)) for (const r of byHost.get(name) ?? []) found.add(r);
    return [...found].sort((a, b) => this.position.get(a)! - this.position.get(b)!);
  }

  /** The service a hostname or alias names (a VirtualService destination host, a gRPC target). */
  service(name: string): Service | undefined {
    return this.byName.get(name);
  }

  /**
   * The VirtualService that owns a service's routes for a client in `namespaces`: an exact host
   * beats a wildcard, a longer wildcard a shorter one, then model order (Istio: oldest wins).
   */
  virtualServiceFor(service: Service, namespaces: readonly string[]): VirtualServiceResource | undefined {
    let best: VirtualServiceResource | undefined;
    let bestScore = -1;
    for (const vs of this.candidates(this.vsByHost, this.wildcardVs, service)) {
      if (!namespaces.some((ns) => isExportedTo(vs.spec.exportTo, vs.metadata.namespace, ns))) continue;
      let score = -1;
      for (const host of vs.spec.hosts ?? []) score = Math.max(score, hostSpecificity(host, service));
      if (score > bestScore) {
        best = vs;
        bestScore = score;
      }
    }
    return best;
  }

  /**
   * The DestinationRule a client applies to a service, Istio's precedence: the client's own
   * namespace (a workloadSelector rule first when it selects the client), then the service's
   * namespace, then the root namespace, then any other exporting namespace; within one namespace
   * the most specific host, then model order.
   */
  destinationRuleFor(
    service: Service,
    configNamespace: string,
    namespaces: readonly string[],
    clientLabels: readonly Readonly<Record<string, string>>[],
  ): DestinationRuleResource | undefined {
    const tierOf = (rule: DestinationRuleResource): number => {
      const ns = rule.metadata.namespace;
      if (ns === configNamespace) return rule.spec.workloadSelector ? 0 : 1;
      if (ns === service.namespace) return 2;
      if (ns === this.model.rootNamespace) return 3;
      return 4;
    };
    let best: DestinationRuleResource | undefined;
    let bestTier = Number.MAX_SAFE_INTEGER;
    let bestScore = -1;
    for (const rule of this.candidates(this.drByHost, this.wildcardDr, service)) {
      const score = hostSpecificity(rule.spec.host, service);
      if (score < 0) continue;
      if (!namespaces.some((ns) => isExportedTo(rule.spec.exportTo, rule.metadata.namespace, ns))) continue;
      const selector = rule.spec.workloadSelector?.matchLabels;
      if (rule.spec.workloadSelector) {
        // A selector rule only ever applies to the selected workloads of its own namespace.
        if (rule.metadata.namespace !== configNamespace) continue;
        if (!clientLabels.some((labels) => labelsMatch(selector, labels))) continue;
      }
      const tier = tierOf(rule);
      if (tier < bestTier || (tier === bestTier && score > bestScore)) {
        best = rule;
        bestTier = tier;
        bestScore = score;
      }
    }
    return best;
  }
}
