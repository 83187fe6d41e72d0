// The agent's outbound view of one xDS config, compiled once per config: per-port filter chains,
// the catch-all policy and one load balancer per cluster, so that deciding a connection is a lookup.
import { isIPv4, isIPv6 } from 'node:net';
import type { DecodedLoadAssignment, Endpoint } from '../balancing/endpoint-set';
import type { LoadBalancer, PickContext } from '../balancing/load-balancer';
import type { AgentXdsConfig } from '../xds/agent-xds';
import { parseCidr } from '../redirect/cidr';
import { ClusterGuards, clusterResilience, type ClusterGuard, type DecodedGuardedCluster } from '../resilience/cluster-guard';
import { HttpRoutes } from '../http/http-routes';
import type { SniffedProtocol } from '../http/protocol-sniffer';

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
 * `http` hands the connection to the HTTP request path, which decides per request.
 */
export type OutboundDecision =
  | { readonly action: 'tunnel'; readonly destination: Target; readonly chain: string; readonly cluster: string; readonly endpoint: Endpoint; readonly peer: { readonly host: string; readonly port: number }; readonly node: string }
  | { readonly action: 'direct'; readonly destination: Target; readonly chain: string; readonly cluster: string; readonly endpoint: Endpoint }
  | { readonly action: 'http'; readonly destination: Target; readonly chain: string; readonly cluster: ''; readonly routeConfig: string }
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
  /** http_inspector's values this chain takes (`http/1.1`, `h2c`, ...); empty takes any connection. */
  readonly applicationProtocols: readonly string[];
  /** The chain needs TLS inspection (transport_protocol tls, server_names), which the agent does not do. */
  readonly needsTls: boolean;
  readonly target: ChainTarget;
}

interface PortListener {
  readonly chains: readonly CompiledChain[];
  readonly fallback: CompiledChain | undefined;
  /** Some chain matches on application_protocols: the first bytes must be sniffed. */
  readonly sniffed: boolean;
}

/**
 * How connections to a destination start: `tcp` decides at once; `sniff` reads the first bytes
 * (bounded by the detection timeout) to tell HTTP from other bytes; `http` reads them only to tell
 * HTTP/1 from HTTP/2, since the port is declared HTTP.
 */
export type Inspection = 'tcp' | 'sniff' | 'http';

/** The HTTP version a cluster's upstream connections speak (Envoy's HttpProtocolOptions). */
export type UpstreamHttp = 'http1' | 'http2' | 'downstream';

type ClusterEntry =
  | { readonly kind: 'eds'; readonly guard: ClusterGuard; readonly upstreamHttp: UpstreamHttp }
  | { readonly kind: 'passthrough'; readonly upstreamHttp: UpstreamHttp }
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
  // The agent reads plaintext only: chains for TLS (by transport or SNI) never match its connections.
  const needsTls =
    (typeof match.transport_protocol === 'string' && match.transport_protocol !== '' && match.transport_protocol !== 'raw_buffer') ||
    (Array.isArray(match.server_names) && match.server_names.length > 0);
  const applicationProtocols = Array.isArray(match.application_protocols) ? match.application_protocols.map(String) : [];
  const name = typeof chain.name === 'string' && chain.name !== '' ? chain.name : fallbackName;
  const target: ChainTarget = needsTls ? { kind: 'unsupported', reason: 'chain matches on TLS inspection' } : compileTarget(chain);
  return { name, ranges, destinationPort: wrappedNumber(match.destination_port), applicationProtocols, needsTls, target };
}

function typedOptions(cluster: Loose): Loose | undefined {
  const options = isRecord(cluster.typed_extension_protocol_options) ? cluster.typed_extension_protocol_options : undefined;
  if (!options) return undefined;
  for (const value of Object.values(options)) if (isRecord(value)) return value;
  return undefined;
}

/** Envoy's upstream protocol choice: explicit HTTP/2, follow the downstream, or HTTP/1.1 (the default). */
function upstreamHttpOf(cluster: Loose): UpstreamHttp {
  const options = typedOptions(cluster);
  if (isRecord(options?.use_downstream_protocol_config)) return 'downstream';
  const explicit = isRecord(options?.explicit_http_config) ? options.explicit_http_config : undefined;
  if (explicit && isRecord(explicit.http2_protocol_options)) return 'http2';
  if (isRecord(cluster.http2_protocol_options)) return 'http2';
  return 'http1';
}

/**
 * The fields of a ClusterLoadAssignment that endpoint sets are built from. A guard keeps its
 * assignment for as long as the cluster lives (outlier ejections rebuild the set from it), and the
 * decoded one carries much more per endpoint (istio metadata, host_identifier, ...) that nothing reads.
 */
function balancedFields(cla: DecodedLoadAssignment): DecodedLoadAssignment {
  const out: DecodedLoadAssignment = { cluster_name: cla.cluster_name };
  if (cla.policy?.overprovisioning_factor !== undefined) out.policy = { overprovisioning_factor: cla.policy.overprovisioning_factor };
  if (cla.endpoints === undefined) return out;
  out.endpoints = cla.endpoints.map((group) => ({
    locality: group.locality,
    load_balancing_weight: group.load_balancing_weight,
    priority: group.priority,
    lb_endpoints: group.lb_endpoints?.map((lb) => {
      const socket = lb.endpoint?.address?.socket_address;
      const mesh = lb.metadata?.filter_metadata?.mesh;
      return {
        endpoint: socket ? { address: { socket_address: { address: socket.address, port_value: socket.port_value } } } : lb.endpoint,
        health_status: lb.health_status,
        load_balancing_weight: lb.load_balancing_weight,
        metadata: mesh === undefined ? undefined : { filter_metadata: { mesh } },
      };
    }),
  }));
  return out;
}

function listenerPort(listener: Loose): number | undefined {
  const address = isRecord(listener.address) ? listener.address.socket_address : undefined;
  return isRecord(address) && typeof address.port_value === 'number' ? address.port_value : undefined;
}

export interface OutboundTableOptions {
  /** This agent's node name: endpoints on it are still reached through the tunnel, like any peer's. */
  node: string;
  tunnelPort?: number;
  /**
   * The agent's per-cluster guards (circuit breakers, outlier detection), kept across configs;
   * a table built without one gets guards of its own.
   */
  guards?: ClusterGuards;
}

export class OutboundTable {
  private readonly ports = new Map<number, PortListener>();
  private readonly clusters = new Map<string, ClusterEntry>();
  /** The route configurations of this config, compiled once for every request the HTTP path routes. */
  readonly httpRoutes: HttpRoutes;
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
      this.ports.set(port, { chains, fallback, sniffed: chains.some((c) => c.applicationProtocols.length > 0) });
    }
    // Without a virtualOutbound the server has not said what to do with unknown destinations;
    // refusing them is the safe reading (REGISTRY_ONLY).
    this.catchAll = catchAll ?? {
      name: 'no-virtualOutbound',
      ranges: [],
      destinationPort: undefined,
      applicationProtocols: [],
      needsTls: false,
      target: { kind: 'tcp', clusters: [BLACKHOLE_CLUSTER], cumulative: Float64Array.of(1), total: 1 },
    };
    const guards = options.guards ?? new ClusterGuards();
    for (const [name, cluster] of config.clusters) {
      const raw = cluster as Loose;
      if (raw.type === 'ORIGINAL_DST') {
        this.clusters.set(name, { kind: 'passthrough', upstreamHttp: upstreamHttpOf(raw) });
        continue;
      }
      if (raw.type !== 'EDS') {
        if (name === BLACKHOLE_CLUSTER) this.clusters.set(name, { kind: 'blackhole' });
        continue;
      }
      const eds = isRecord(raw.eds_cluster_config) ? raw.eds_cluster_config.service_name : undefined;
      const cla = config.endpoints.get(typeof eds === 'string' && eds !== '' ? eds : name) as DecodedLoadAssignment | undefined;
      try {
        const guard = guards.update(name, clusterResilience(raw as DecodedGuardedCluster), cla ? balancedFields(cla) : { cluster_name: name });
        this.clusters.set(name, { kind: 'eds', guard, upstreamHttp: upstreamHttpOf(raw) });
      } catch {
        // Left out on purpose: connections to it fail with "unknown cluster", naming it.
      }
    }
    // Clusters that left the config stop their outlier timers; the others keep their state.
    guards.retain(new Set([...this.clusters].filter(([, e]) => e.kind === 'eds').map(([n]) => n)));
    this.httpRoutes = new HttpRoutes(config.routes);
  }

  /** What the first bytes of a connection to `destination` must be read for before deciding. */
  inspection(destination: Target): Inspection {
    const listener = this.ports.get(destination.port);
    if (listener?.sniffed) return 'sniff';
    return this.matchChain(destination, undefined).target.kind === 'http' ? 'http' : 'tcp';
  }

  /** The decision for a connection whose original destination is `destination` and whose first bytes sniffed as `protocol`. */
  decide(destination: Target, pick: PickContext, protocol?: SniffedProtocol): OutboundDecision {
    const chain = this.matchChain(destination, protocol);
    const target = chain.target;
    if (target.kind === 'unsupported') return { action: 'fail', destination, chain: chain.name, cluster: '', reason: target.reason };
    if (target.kind === 'http') return { action: 'http', destination, chain: chain.name, cluster: '', routeConfig: target.routeConfig };
    let cluster = target.clusters[0]!;
    if (target.clusters.length > 1) {
      const point = pick.random() * target.total;
      for (let i = 0; i < target.clusters.length; i++) {
        if (point < target.cumulative[i]!) {
          cluster = target.clusters[i]!;
          break;
        }
      }
    }
    return this.pickEndpoint(cluster, destination, chain.name, pick);
  }

  /** Where `cluster` sends a connection or request now: its balancer's endpoint, passthrough, or nowhere. */
  pickEndpoint(cluster: string, destination: Target, chain: string, pick: PickContext): OutboundDecision {
    const entry = this.clusters.get(cluster);
    if (!entry) return { action: 'fail', destination, chain, cluster, reason: `unknown cluster ${cluster}` };
    if (entry.kind === 'passthrough') return { action: 'passthrough', destination, chain, cluster };
    if (entry.kind === 'blackhole') return { action: 'blackhole', destination, chain, cluster };
    const endpoint = entry.guard.balancer.pick(pick);
    if (!endpoint) return { action: 'fail', destination, chain, cluster, reason: `cluster ${cluster} has no healthy endpoint` };
    const node = endpoint.mesh?.node;
    if (node !== undefined) {
      return { action: 'tunnel', destination, chain, cluster, endpoint, peer: { host: endpoint.address, port: this.tunnelPort }, node };
    }
    return { action: 'direct', destination, chain, cluster, endpoint };
  }

  /** The HTTP version `cluster` speaks upstream; HTTP/1.1 for clusters that say nothing. */
  upstreamHttp(cluster: string): UpstreamHttp {
    const entry = this.clusters.get(cluster);
    return entry && entry.kind !== 'blackhole' ? entry.upstreamHttp : 'http1';
  }

  /** The balancer of an EDS cluster, so the caller can report started/finished connections. */
  balancer(cluster: string): LoadBalancer | undefined {
    const entry = this.clusters.get(cluster);
    return entry?.kind === 'eds' ? entry.guard.balancer : undefined;
  }

  /** The circuit breaker, outlier detector and connection settings of an EDS cluster (see agent/resilience/cluster-guard.ts). */
  guard(cluster: string): ClusterGuard | undefined {
    const entry = this.clusters.get(cluster);
    return entry?.kind === 'eds' ? entry.guard : undefined;
  }

  /**
   * Envoy's order: the port's listener, then its most specific destination range, then among the
   * chains at that range the one naming the sniffed protocol over one naming none (no stepping back
   * to a less specific range, as in Envoy), then the port's default chain, then virtualOutbound.
   */
  private matchChain(destination: Target, protocol: SniffedProtocol | undefined): CompiledChain {
    const listener = this.ports.get(destination.port);
    if (!listener) return this.catchAll;
    const v4 = ipv4Number(destination.address);
    const v6 = Number.isNaN(v4) && isIPv6(destination.address) ? ipv6Bytes(destination.address) : undefined;
    let best: CompiledChain | undefined;
    let bestPrefix = -2;
    let bestByProtocol = false;
    for (const chain of listener.chains) {
      if (chain.destinationPort !== undefined && chain.destinationPort !== destination.port) continue;
      if (chain.needsTls) continue;
      let prefix = -1;
      if (chain.ranges.length > 0) {
        prefix = -2;
        for (const range of chain.ranges) if (range.prefix > prefix && rangeContains(range, v4, v6)) prefix = range.prefix;
        if (prefix === -2) continue;
      }
      const named = chain.applicationProtocols.length > 0;
      const takes = !named || (protocol !== undefined && chain.applicationProtocols.includes(protocol));
      if (prefix > bestPrefix) {
        // A more specific range wins even when none of its chains takes this protocol (Envoy does not backtrack).
        best = takes ? chain : undefined;
        bestPrefix = prefix;
        bestByProtocol = takes && named;
      } else if (prefix === bestPrefix && takes && (best === undefined || (named && !bestByProtocol))) {
        best = chain;
        bestByProtocol = named;
      }
    }
    return best ?? listener.fallback ?? this.catchAll;
  }
}
