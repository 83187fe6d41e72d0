// Outbound filter chains of one service port, Istio-style: TCP routes (tcp_proxy, matched by the
// destination's VIPs or endpoint IPs or a route's destinationSubnets), TLS routes (matched by SNI),
// sniffed HTTP next to TCP, and a claim set that keeps Envoy from seeing two chains with one match.
import { isIp } from '../kinds/common';
import type { Service, ServicePort } from '../registry/service';
import { MESH_METADATA_KEY } from './names';
import { cidrRange, toStruct, wrap, type ProtoObject } from './proto-values';
import { SNIFFED_HTTP_PROTOCOLS, rdsHttpConnectionManager, tcpProxy, type WeightedCluster } from './network-filters';
import { destinationCluster, type RouteContext } from './routes';
import { MESH_GATEWAY, labelsMatch } from './model-index';
import type { WorkloadView } from './node-identity';
import type { L4MatchAttributes, RouteDestination, TLSMatchAttributes, VirtualServiceResource } from './specs';
import { resourceKey } from '../config/resource';

export interface ChainMatch {
  prefixRanges: string[];
  serverNames: string[];
  transportProtocol?: string;
  applicationProtocols: string[];
}

export interface ChainCandidate {
  name: string;
  match: ChainMatch;
  filters: ProtoObject[];
  metadata: Record<string, string | number | undefined>;
}

/**
 * Envoy rejects a listener where two filter chains share a match. Chains are claimed in order; a
 * later chain loses the destinations or server names an earlier one already took, and is dropped
 * when nothing is left.
 */
export class ChainClaims {
  private readonly claimed = new Set<string>();

  claim(candidate: ChainCandidate): ChainCandidate | undefined {
    const { match } = candidate;
    const prefixes = match.prefixRanges.length > 0 ? match.prefixRanges : [''];
    const names = match.serverNames.length > 0 ? match.serverNames : [''];
    const alpns = match.applicationProtocols.length > 0 ? match.applicationProtocols : [''];
    const transport = match.transportProtocol ?? '';
    const key = (p: string, s: string, a: string): string => `${p}\u0000${s}\u0000${transport}\u0000${a}`;
    const free = (p: string, s: string): boolean => alpns.every((a) => !this.claimed.has(key(p, s, a)));
    const keptPrefixes = prefixes.filter((p) => names.every((s) => free(p, s)));
    if (keptPrefixes.length === 0) return undefined;
    const keptNames = names.filter((s) => keptPrefixes.every((p) => free(p, s)));
    if (keptNames.length === 0) return undefined;
    for (const p of keptPrefixes) for (const s of keptNames) for (const a of alpns) this.claimed.add(key(p, s, a));
    return {
      ...candidate,
      match: {
        ...match,
        prefixRanges: match.prefixRanges.length > 0 ? keptPrefixes : [],
        serverNames: match.serverNames.length > 0 ? keptNames : [],
      },
    };
  }
}

export function filterChain(candidate: ChainCandidate, destinationPort?: number): ProtoObject {
  const m = candidate.match;
  const match: ProtoObject = {};
  if (destinationPort !== undefined) match.destination_port = wrap(destinationPort);
  const ranges = m.prefixRanges.map(cidrRange).filter((r) => r !== undefined);
  if (ranges.length > 0) match.prefix_ranges = ranges;
  if (m.serverNames.length > 0) match.server_names = m.serverNames;
  if (m.transportProtocol) match.transport_protocol = m.transportProtocol;
  if (m.applicationProtocols.length > 0) match.application_protocols = m.applicationProtocols;
  const chain: ProtoObject = {
    name: candidate.name,
    filters: candidate.filters,
    metadata: { filter_metadata: { [MESH_METADATA_KEY]: toStruct(candidate.metadata) } },
  };
  if (Object.keys(match).length > 0) chain.filter_chain_match = match;
  return chain;
}

/** Where a service's clients connect: its VIPs/CIDRs, else the IPs of its endpoints. */
export function serviceDestinationRanges(service: Service): string[] {
  const declared = service.addresses.filter((a) => cidrRange(a) !== undefined);
  if (declared.length > 0) return declared;
  return [...new Set(service.endpoints.map((e) => e.address).filter((a) => isIp(a)))].sort();
}

function l4SourceMatches(match: L4MatchAttributes | TLSMatchAttributes, views: readonly WorkloadView[]): boolean {
  if (match.gateways && match.gateways.length > 0) return match.gateways.includes(MESH_GATEWAY);
  return views.some((v) => labelsMatch(match.sourceLabels, v.labels) && (!match.sourceNamespace || match.sourceNamespace === v.namespace));
}

function routeClusters(route: readonly RouteDestination[] | undefined, ctx: RouteContext): WeightedCluster[] {
  const destinations = route ?? [];
  if (destinations.length === 1) return [{ name: destinationCluster(destinations[0]!.destination, ctx).name, weight: 100 }];
  return destinations.filter((d) => (d.weight ?? 0) > 0).map((d) => ({ name: destinationCluster(d.destination, ctx).name, weight: d.weight! }));
}

function clusterStatPrefix(clusters: readonly WeightedCluster[]): string {
  return clusters.length === 1 ? clusters[0]!.name : clusters.map((c) => c.name).join(',');
}

/** TCP chains of a TCP (or sniffed) service: its VirtualService's tcp routes, else straight to its cluster. */
export function tcpChains(service: Service, port: ServicePort, vs: VirtualServiceResource | undefined, ctx: RouteContext): ChainCandidate[] {
  const out: ChainCandidate[] = [];
  const serviceRanges = serviceDestinationRanges(service);
  const base = { service: service.hostname, port: port.number, kind: 'tcp', virtualService: vs ? resourceKey(vs) : undefined };
  routes: for (const [i, route] of (vs?.spec.tcp ?? []).entries()) {
    const clusters = routeClusters(route.route, ctx);
    if (clusters.length === 0) continue;
    const matches: (L4MatchAttributes | undefined)[] = route.match && route.match.length > 0 ? route.match : [undefined];
    for (const [j, match] of matches.entries()) {
      if (match?.port !== undefined && match.port !== port.number) continue;
      if (match && !l4SourceMatches(match, ctx.views)) continue;
      const subnets = match?.destinationSubnets ?? [];
      out.push({
        name: `${service.hostname}:${port.number}/tcp/${i}.${j}`,
        match: { prefixRanges: subnets.length > 0 ? subnets : serviceRanges, serverNames: [], applicationProtocols: [] },
        filters: [tcpProxy(clusterStatPrefix(clusters), clusters)],
        metadata: base,
      });
      // A route for all of the service's destinations ends the list, as Istio stops at a catch-all.
      if (subnets.length === 0) break routes;
    }
  }
  if (out.length === 0) {
    const cluster = destinationCluster({ host: service.hostname, port: { number: port.number } }, ctx).name;
    out.push({
      name: `${service.hostname}:${port.number}/tcp`,
      match: { prefixRanges: serviceRanges, serverNames: [], applicationProtocols: [] },
      filters: [tcpProxy(cluster, [{ name: cluster, weight: 100 }])],
      metadata: { ...base, virtualService: undefined },
    });
  }
  return out;
}

/** TLS chains of an HTTPS/TLS service: its VirtualService's tls routes by SNI, else its VIPs or names. */
export function tlsChains(service: Service, port: ServicePort, vs: VirtualServiceResource | undefined, ctx: RouteContext): ChainCandidate[] {
  const out: ChainCandidate[] = [];
  const base = { service: service.hostname, port: port.number, kind: 'tls', virtualService: vs ? resourceKey(vs) : undefined };
  for (const [i, route] of (vs?.spec.tls ?? []).entries()) {
    const clusters = routeClusters(route.route, ctx);
    if (clusters.length === 0) continue;
    for (const [j, match] of (route.match ?? []).entries()) {
      if (match.port !== undefined && match.port !== port.number) continue;
      if (!l4SourceMatches(match, ctx.views)) continue;
      out.push({
        name: `${service.hostname}:${port.number}/tls/${i}.${j}`,
        match: { prefixRanges: match.destinationSubnets ?? [], serverNames: match.sniHosts ?? [], transportProtocol: 'tls', applicationProtocols: [] },
        filters: [tcpProxy(clusterStatPrefix(clusters), clusters)],
        metadata: base,
      });
    }
  }
  if (out.length === 0) {
    const cluster = destinationCluster({ host: service.hostname, port: { number: port.number } }, ctx).name;
    const declared = service.addresses.filter((a) => cidrRange(a) !== undefined);
    out.push({
      name: `${service.hostname}:${port.number}/tls`,
      match: declared.length > 0
        ? { prefixRanges: declared, serverNames: [], transportProtocol: 'tls', applicationProtocols: [] }
        : { prefixRanges: [], serverNames: [service.hostname, ...service.aliases], transportProtocol: 'tls', applicationProtocols: [] },
      filters: [tcpProxy(cluster, [{ name: cluster, weight: 100 }])],
      metadata: { ...base, virtualService: undefined },
    });
  }
  return out;
}

/** The HTTP chain of a port: routes come from RouteConfiguration `PORT` over RDS. */
export function httpChain(port: number, name: string, match: ChainMatch, metadata: ChainCandidate['metadata']): ChainCandidate {
  return { name, match, filters: [rdsHttpConnectionManager(`outbound_0.0.0.0_${port}`, String(port))], metadata };
}

/** HTTP chain for a sniffed service, matched on its destinations when the first bytes look like HTTP. */
export function sniffedHttpChain(service: Service, port: number): ChainCandidate {
  return httpChain(port, `${service.hostname}:${port}/http`, {
    prefixRanges: serviceDestinationRanges(service),
    serverNames: [],
    applicationProtocols: SNIFFED_HTTP_PROTOCOLS,
  }, { service: service.hostname, port, kind: 'http' });
}
