// The agent's outbound view of one xDS config, compiled once per config: per-port filter chains,
// the catch-all policy and one load balancer per cluster, so that deciding a connection is a lookup.
import { isIPv4, isIPv6 } from 'node:net';
import { createLoadBalancer, endpointSetFor, lbConfigFromCluster, type DecodedCluster } from '../balancing/create-load-balancer';
import type { DecodedLoadAssignment, Endpoint } from '../balancing/endpoint-set';
import type { LoadBalancer, PickContext } from '../balancing/load-balancer';
import type { AgentXdsConfig } from '../xds/agent-xds';
import { parseCidr } from '../redirect/cidr';

/** The port peer agents serve the HBONE tunnel on (DESIGN.md decision 9). */
export const TUNNEL_PORT = 15008;
/** Istio's names (server/translate/names.ts); the agent only needs to recognise them. */
const VIRTUAL_OUTBOUND = 'virtualOutbound';
const BLACKHOLE_CLUSTER = 'BlackHoleCluster';
const TCP_PROXY_TYPE = '.TcpProxy';
const HCM_TYPE = '.HttpConnectionManager';

export interface Target {
  readonly address: string;
  readonly port: number;
}

/**
 * What happens to one outbound connection, decided before any byte moves: a plain value for logs,
 * metrics and tests. `chain` names the filter chain that matched, `cluster` the cluster it chose.
 */
export type OutboundDecision =
  | { readonly action: 'tunnel'; readonly destination: Target; readonly chain: string; readonly cluster: string; readonly endpoint: Endpoint; readonly peer: { readonly host: string; readonly port: number }; readonly node: string; readonly http: boolean }
  | { readonly action: 'direct'; readonly destination: Target; readonly chain: string; readonly cluster: string; readonly endpoint: Endpoint; readonly http: boolean }
  | { readonly action: 'passthrough'; readonly destination: Target; readonly chain: string; readonly cluster: string }
  | { readonly action: 'blackhole'; readonly destination: Target; readonly chain: string; readonly cluster: string }
  | { readonly action: 'fail'; readonly destination: Target; readonly chain: string; readonly cluster: string; readonly reason: string };

/** A network range as two numbers (IPv4) or a 16-byte prefix (IPv6), compared without parsing text per match. */
interface Range {
  readonly family: 4 | 6;
  readonly v4: number;
  readonly v4Mask: number;
  readonly v6: Uint8Array;
  readonly prefix: number;
}

/** Where a chain sends connections: one cluster, clusters split by weight, or an HCM's route config. */
type ChainTarget =
  | { readonly kind: 'tcp'; readonly clusters: readonly string[]; readonly cumulative: Float64Array; readonly total: number }
  | { readonly kind: 'http'; readonly routeConfig: string }
  | { readonly kind: 'unsupported'; readonly reason: string };

interface CompiledChain {
  readonly name: string;
  readonly ranges: readonly Range[];
  readonly destinationPort: number | undefined;
  readonly target: ChainTarget;
}

interface PortListener {
  readonly chains: readonly CompiledChain[];
  readonly fallback: CompiledChain | undefined;
}

type ClusterEntry =
  | { readonly kind: 'eds'; readonly balancer: LoadBalancer; readonly addresses: ReadonlySet<string> }
  | { readonly kind: 'passthrough' }
  | { readonly kind: 'blackhole' };

type Loose = Record<string, unknown>;

function isRecord(value: unknown): value is Loose {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function records(value: unknown): Loose[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

function wrappedNumber(value: unknown): number | undefined {
  if (!isRecord(value) || value.value === undefined) return undefined;
  const n = Number(value.value);
  return Number.isFinite(n) ? n : undefined;
}

/** IPv4 text to an unsigned 32-bit number without splitting into an array; NaN if malformed. */
function ipv4Number(text: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0) return NaN;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return NaN;
    } else {
      return NaN;
    }
  }
  if (dots !== 3 || digits === 0) return NaN;
  return value * 256 + octet;
}

function ipv6Bytes(text: string): Uint8Array {
  // parseCidr clears host bits of a /128 (none) and prints canonical text; expanding that is simple.
  const canonical = parseCidr(`${text}/128`).address;
  const bytes = new Uint8Array(16);
  const [head = '', tail] = canonical.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? headGroups : [...headGroups, ...new Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  groups.forEach((group, i) => {
    const n = parseInt(group, 16);
    bytes[i * 2] = n >> 8;
    bytes[i * 2 + 1] = n & 0xff;
  });
  return bytes;
}

function v4Mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

function compileRange(value: Loose): Range | undefined {
  const address = typeof value.address_prefix === 'string' ? value.address_prefix : undefined;
  if (address === undefined) return undefined;
  if (isIPv4(address)) {
    const prefix = wrappedNumber(value.prefix_len) ?? 32;
    const mask = v4Mask(prefix);
    return { family: 4, v4: (ipv4Number(address) & mask) >>> 0, v4Mask: mask, v6: new Uint8Array(0), prefix };
  }
  if (isIPv6(address)) {
    const prefix = wrappedNumber(value.prefix_len) ?? 128;
    return { family: 6, v4: 0, v4Mask: 0, v6: ipv6Bytes(address), prefix };
  }
  return undefined;
}

function rangeContains(range: Range, v4: number, v6: Uint8Array | undefined): boolean {
  if (range.family === 4) return !Number.isNaN(v4) && ((v4 & range.v4Mask) >>> 0) === range.v4;
  if (!v6) return false;
  const full = range.prefix >> 3;
  for (let i = 0; i < full; i++) if (v6[i] !== range.v6[i]) return false;
  const bits = range.prefix & 7;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (v6[full]! & mask) === (range.v6[full]! & mask);
}

function compileTarget(chain: Loose): ChainTarget {
  for (const filter of records(chain.filters)) {
    const config = filter.typed_config;
    if (!isRecord(config) || typeof config['@type'] !== 'string') continue;
    const type = config['@type'];
    if (type.endsWith(TCP_PROXY_TYPE)) {
      if (typeof config.cluster === 'string' && config.cluster !== '') {
        return { kind: 'tcp', clusters: [config.cluster], cumulative: Float64Array.of(1), total: 1 };
      }
      const weighted = isRecord(config.weighted_clusters) ? records(config.weighted_clusters.clusters) : [];
      const clusters: string[] = [];
      const weights: number[] = [];
      for (const entry of weighted) {
        const weight = Number(entry.weight ?? 0);
        if (typeof entry.name === 'string' && weight > 0) {
          clusters.push(entry.name);
          weights.push(weight);
        }
      }
      if (clusters.length === 0) return { kind: 'unsupported', reason: 'tcp_proxy names no cluster' };
      const cumulative = new Float64Array(weights.length);
      let total = 0;
      weights.forEach((w, i) => (cumulative[i] = total += w));
      return { kind: 'tcp', clusters, cumulative, total };
    }
    if (type.endsWith(HCM_TYPE)) {
      const name = isRecord(config.rds) ? config.rds.route_config_name : undefined;
      if (typeof name === 'string' && name !== '') return { kind: 'http', routeConfig: name };
      return { kind: 'unsupported', reason: 'HTTP connection manager without RDS' };
    }
  }
  return { kind: 'unsupported', reason: 'no tcp_proxy or HTTP connection manager filter' };
}

function compileChain(chain: Loose, fallbackName: string): CompiledChain {
  const match = isRecord(chain.filter_chain_match) ? chain.filter_chain_match : {};
  const ranges = records(match.prefix_ranges).map(compileRange).filter((r): r is Range => r !== undefined);
  // Chains that need TLS or HTTP sniffing cannot match a connection the agent does not inspect.
  const needsInspection =
    (typeof match.transport_protocol === 'string' && match.transport_protocol !== '' && match.transport_protocol !== 'raw_buffer') ||
    (Array.isArray(match.server_names) && match.server_names.length > 0) ||
    (Array.isArray(match.application_protocols) && match.application_protocols.length > 0);
  const name = typeof chain.name === 'string' && chain.name !== '' ? chain.name : fallbackName;
  const target: ChainTarget = needsInspection ? { kind: 'unsupported', reason: 'chain matches on TLS or HTTP inspection' } : compileTarget(chain);
  return { name, ranges, destinationPort: wrappedNumber(match.destination_port), target };
}

function listenerPort(listener: Loose): number | undefined {
  const address = isRecord(listener.address) ? listener.address.socket_address : undefined;
  return isRecord(address) && typeof address.port_value === 'number' ? address.port_value : undefined;
}

/** The cluster of a virtual host's first route: where a request with no more specific match goes. */
function firstRouteCluster(host: Loose): string | undefined {
  for (const route of records(host.routes)) {
    const action = isRecord(route.route) ? route.route : undefined;
    if (typeof action?.cluster === 'string') return action.cluster;
    const weighted = isRecord(action?.weighted_clusters) ? records(action.weighted_clusters.clusters) : [];
    const first = weighted.find((c) => typeof c.name === 'string' && Number(c.weight ?? 0) > 0);
    if (first) return String(first.name);
  }
  return undefined;
}

/**
 * Without reading requests, an HTTP port's route configuration is reduced to: destination address
 * to the default route's cluster of the virtual host whose service has an endpoint there, and the
 * `*` host's cluster for everything else.
 */
interface HttpPortRoutes {
  readonly byAddress: ReadonlyMap<string, string>;
  readonly fallback: string | undefined;
}

export interface OutboundTableOptions {
  /** This agent's node name: endpoints on it are still reached through the tunnel, like any peer's. */
  node: string;
  tunnelPort?: number;
}

export class OutboundTable {
  private readonly ports = new Map<number, PortListener>();
  private readonly clusters = new Map<string, ClusterEntry>();
  private readonly httpRoutes = new Map<string, HttpPortRoutes>();
  private readonly catchAll: CompiledChain;
  private readonly tunnelPort: number;

  /** Compiles `config`; a cluster the balancer cannot build is left out (the validator NACKs those). */
  constructor(config: AgentXdsConfig, options: OutboundTableOptions) {
    this.tunnelPort = options.tunnelPort ?? TUNNEL_PORT;
    let catchAll: CompiledChain | undefined;
    for (const [name, listener] of config.listeners) {
      const raw = listener as Loose;
      if (name === VIRTUAL_OUTBOUND) {
        const first = records(raw.filter_chains)[0];
        if (first) catchAll = compileChain(first, `${name}/0`);
        continue;
      }
      if (raw.traffic_direction !== 'OUTBOUND') continue;
      const port = listenerPort(raw);
      if (port === undefined) continue;
      const chains = records(raw.filter_chains).map((c, i) => compileChain(c, `${name}/${i}`));
      const fallback = isRecord(raw.default_filter_chain) ? compileChain(raw.default_filter_chain, `${name}/default`) : undefined;
      this.ports.set(port, { chains, fallback });
    }
    // Without a virtualOutbound the server has not said what to do with unknown destinations;
    // refusing them is the safe reading (REGISTRY_ONLY).
    this.catchAll = catchAll ?? { name: 'no-virtualOutbound', ranges: [], destinationPort: undefined, target: { kind: 'tcp', clusters: [BLACKHOLE_CLUSTER], cumulative: Float64Array.of(1), total: 1 } };
    for (const [name, cluster] of config.clusters) {
      const raw = cluster as Loose;
      if (raw.type === 'ORIGINAL_DST') {
        this.clusters.set(name, { kind: 'passthrough' });
        continue;
      }
      if (raw.type !== 'EDS') {
        if (name === BLACKHOLE_CLUSTER) this.clusters.set(name, { kind: 'blackhole' });
        continue;
      }
      const eds = isRecord(raw.eds_cluster_config) ? raw.eds_cluster_config.service_name : undefined;
      const cla = config.endpoints.get(typeof eds === 'string' && eds !== '' ? eds : name) as DecodedLoadAssignment | undefined;
      try {
        const lb = lbConfigFromCluster(raw as DecodedCluster);
        const set = endpointSetFor(lb, cla ?? { cluster_name: name });
        this.clusters.set(name, { kind: 'eds', balancer: createLoadBalancer(lb, set), addresses: new Set(set.endpoints.map((e) => e.address)) });
      } catch {
        // Left out on purpose: connections to it fail with "unknown cluster", naming it.
      }
    }
    this.compileHttpRoutes(config.routes);
  }

  private compileHttpRoutes(routes: AgentXdsConfig['routes']): void {
    for (const [name, routeConfig] of routes) {
      const byAddress = new Map<string, string>();
      let fallback: string | undefined;
      for (const host of records((routeConfig as Loose).virtual_hosts)) {
        const cluster = firstRouteCluster(host);
        if (cluster === undefined) continue;
        if (Array.isArray(host.domains) && host.domains.includes('*')) {
          fallback ??= cluster;
          continue;
        }
        const entry = this.clusters.get(cluster);
        if (entry?.kind !== 'eds') continue;
        for (const address of entry.addresses) if (!byAddress.has(address)) byAddress.set(address, cluster);
      }
      this.httpRoutes.set(name, { byAddress, fallback });
    }
  }

  /** The decision for a connection whose original destination is `destination`. */
  decide(destination: Target, pick: PickContext): OutboundDecision {
    const chain = this.matchChain(destination);
    const target = chain.target;
    if (target.kind === 'unsupported') return { action: 'fail', destination, chain: chain.name, cluster: '', reason: target.reason };
    let cluster: string;
    const http = target.kind === 'http';
    if (target.kind === 'http') {
      // First version: an HTTP port is proxied as TCP to its default route's cluster; requests are not routed one by one.
      const routes = this.httpRoutes.get(target.routeConfig);
      const found = routes?.byAddress.get(destination.address) ?? routes?.fallback;
      if (found === undefined) return { action: 'fail', destination, chain: chain.name, cluster: '', reason: `route configuration ${target.routeConfig} has no route for ${destination.address}:${destination.port}` };
      cluster = found;
    } else {
      cluster = target.clusters[0]!;
      if (target.clusters.length > 1) {
        const point = pick.random() * target.total;
        for (let i = 0; i < target.clusters.length; i++) {
          if (point < target.cumulative[i]!) {
            cluster = target.clusters[i]!;
            break;
          }
        }
      }
    }
    const entry = this.clusters.get(cluster);
    if (!entry) return { action: 'fail', destination, chain: chain.name, cluster, reason: `unknown cluster ${cluster}` };
    if (entry.kind === 'passthrough') return { action: 'passthrough', destination, chain: chain.name, cluster };
    if (entry.kind === 'blackhole') return { action: 'blackhole', destination, chain: chain.name, cluster };
    const endpoint = entry.balancer.pick(pick);
    if (!endpoint) return { action: 'fail', destination, chain: chain.name, cluster, reason: `cluster ${cluster} has no healthy endpoint` };
    const node = endpoint.mesh?.node;
    if (node !== undefined) {
      return { action: 'tunnel', destination, chain: chain.name, cluster, endpoint, peer: { host: endpoint.address, port: this.tunnelPort }, node, http };
    }
    return { action: 'direct', destination, chain: chain.name, cluster, endpoint, http };
  }

  /** The balancer of an EDS cluster, so the caller can report started/finished connections. */
  balancer(cluster: string): LoadBalancer | undefined {
    const entry = this.clusters.get(cluster);
    return entry?.kind === 'eds' ? entry.balancer : undefined;
  }

  /** Envoy's order: the port's listener, then its most specific destination range, then its default chain, then virtualOutbound. */
  private matchChain(destination: Target): CompiledChain {
    const listener = this.ports.get(destination.port);
    if (!listener) return this.catchAll;
    const v4 = ipv4Number(destination.address);
    const v6 = Number.isNaN(v4) && isIPv6(destination.address) ? ipv6Bytes(destination.address) : undefined;
    let best: CompiledChain | undefined;
    let bestPrefix = -2;
    for (const chain of listener.chains) {
      if (chain.destinationPort !== undefined && chain.destinationPort !== destination.port) continue;
      if (chain.target.kind === 'unsupported' && chain.target.reason.startsWith('chain matches on')) continue;
      let prefix = -1;
      if (chain.ranges.length > 0) {
        prefix = -2;
        for (const range of chain.ranges) if (range.prefix > prefix && rangeContains(range, v4, v6)) prefix = range.prefix;
        if (prefix === -2) continue;
      }
      if (prefix > bestPrefix) {
        best = chain;
        bestPrefix = prefix;
      }
    }
    return best ?? listener.fallback ?? this.catchAll;
  }
}
