// Listeners for mesh agents, Istio's sidecar layout: `virtualOutbound` (15001, original
// destination, catch-all to PassthroughCluster or BlackHoleCluster), one `0.0.0.0_PORT` per
// outbound service port (HTTP via RDS, TCP/TLS chains), and `virtualInbound` (15006) with one
// chain per local workload port. Chain names and `mesh` metadata tell the agent what each is for.
import { endpointPort, isHttpProtocol, type ServicePort } from '../registry/service';
import { isIp } from '../kinds/common';
import type { ModelIndex, LocalWorkload } from './model-index';
import {
  BLACKHOLE_CLUSTER,
  FilterName,
  ProtoType,
  INBOUND_CAPTURE_PORT,
  INBOUND_PASSTHROUGH_CLUSTER,
  MESH_METADATA_KEY,
  OUTBOUND_CAPTURE_PORT,
  PASSTHROUGH_CLUSTER,
  VIRTUAL_INBOUND_LISTENER,
  VIRTUAL_OUTBOUND_LISTENER,
  inboundClusterName,
  outboundListenerName,
} from './names';
import { anyOf, socketAddress, toStruct, wrap, ZERO_DURATION, type ProtoObject } from './proto-values';
import type { InboundSecurity } from './inbound-security';
import { DEFAULT_MTLS_MODE } from './peer-authentication';
import {
  ChainClaims,
  filterChain,
  httpChain,
  sniffedHttpChain,
  tcpChains,
  tlsChains,
  type ChainCandidate,
} from './filter-chains';
import { SNIFFED_HTTP_PROTOCOLS, httpInspector, inlineHttpConnectionManager, originalDstFilter, tcpProxy, tlsInspector } from './network-filters';
import type { RouteContext } from './routes';
import type { OutboundTrafficPolicy, SidecarScope } from './sidecar-scope';

type PortKind = 'http' | 'sniffed' | 'tls' | 'tcp';

/** How the agent handles a service port; undefined for UDP, which it does not proxy. */
export function portKind(port: ServicePort): PortKind | undefined {
  if (isHttpProtocol(port.protocol)) return 'http';
  if (port.protocol === 'UNSPECIFIED') return 'sniffed';
  if (port.protocol === 'HTTPS' || port.protocol === 'TLS') return 'tls';
  if (port.protocol === 'UDP') return undefined;
  return 'tcp';
}

/** Every port number some visible service can be reached on through the agent, ascending. */
export function outboundPorts(scope: SidecarScope): number[] {
  const ports = new Set<number>();
  for (const { ports: visible } of scope.services) for (const p of visible) if (portKind(p)) ports.add(p.number);
  return [...ports].sort((a, b) => a - b);
}

function catchAllCluster(policy: OutboundTrafficPolicy): string {
  return policy === 'REGISTRY_ONLY' ? BLACKHOLE_CLUSTER : PASSTHROUGH_CLUSTER;
}

/** The capture listener: connections are handed to the listener of their original destination, else here. */
export function buildVirtualOutboundListener(policy: OutboundTrafficPolicy): ProtoObject {
  const cluster = catchAllCluster(policy);
  return {
    name: VIRTUAL_OUTBOUND_LISTENER,
    address: socketAddress('0.0.0.0', OUTBOUND_CAPTURE_PORT),
    use_original_dst: wrap(true),
    traffic_direction: 'OUTBOUND',
    filter_chains: [{
      name: policy === 'REGISTRY_ONLY' ? 'virtualOutbound-blackhole' : 'virtualOutbound-catchall-tcp',
      filters: [tcpProxy(cluster, [{ name: cluster, weight: 100 }])],
      metadata: { filter_metadata: { [MESH_METADATA_KEY]: toStruct({ kind: 'passthrough', outboundTrafficPolicy: policy }) } },
    }],
  };
}

/**
 * `0.0.0.0_PORT` for the services of the scope reachable on `port`. Claim order decides conflicts:
 * the HTTP chain first (many services share it), then sniffed, TCP and TLS chains per service.
 */
export function buildOutboundPortListener(index: ModelIndex, scope: SidecarScope, port: number, ctx: RouteContext): ProtoObject | undefined {
  const claims = new ChainClaims();
  const chains: ChainCandidate[] = [];
  const take = (candidate: ChainCandidate): void => {
    const kept = claims.claim(candidate);
    if (kept) chains.push(kept);
  };
  const onPort = scope.services
    .map((v) => ({ service: v.service, port: v.ports.find((p) => p.number === port) }))
    .filter((e): e is { service: typeof e.service; port: ServicePort } => e.port !== undefined && portKind(e.port) !== undefined);
  if (onPort.length === 0) return undefined;
  const kinds = new Set(onPort.map((e) => portKind(e.port)!));
  const declaredHttp = kinds.has('http');
  if (declaredHttp || kinds.has('sniffed')) {
    // On a port only sniffed services use, the catch-all HTTP chain takes what looks like HTTP;
    // anything else falls to the outbound traffic policy below, as Istio's sniffing does.
    const applicationProtocols = declaredHttp ? [] : SNIFFED_HTTP_PROTOCOLS;
    take(httpChain(port, `${outboundListenerName(port)}/http`, { prefixRanges: [], serverNames: [], applicationProtocols }, { port, kind: 'http' }));
  }
  for (const { service, port: servicePort } of onPort) {
    const kind = portKind(servicePort)!;
    const vs = kind === 'http' ? undefined : index.virtualServiceFor(service, scope.namespaces);
    if (kind === 'sniffed') {
      take(sniffedHttpChain(service, port));
      for (const chain of tcpChains(service, servicePort, vs, ctx)) take(chain);
    } else if (kind === 'tcp') {
      for (const chain of tcpChains(service, servicePort, vs, ctx)) take(chain);
    } else if (kind === 'tls') {
      for (const chain of tlsChains(service, servicePort, vs, ctx)) take(chain);
    }
  }
  const listener: ProtoObject = {
    name: outboundListenerName(port),
    address: socketAddress('0.0.0.0', port),
    // Only virtualOutbound binds; it hands connections over by original destination port.
    bind_to_port: wrap(false),
    traffic_direction: 'OUTBOUND',
    filter_chains: chains.map((c) => filterChain(c)),
    metadata: { filter_metadata: { [MESH_METADATA_KEY]: toStruct({ port, kinds: [...kinds].sort() }) } },
  };
  const listenerFilters: ProtoObject[] = [];
  if (chains.some((c) => c.match.transportProtocol === 'tls' || c.match.serverNames.length > 0)) listenerFilters.push(tlsInspector());
  if (chains.some((c) => c.match.applicationProtocols.length > 0)) listenerFilters.push(httpInspector());
  if (listenerFilters.length > 0) listener.listener_filters = listenerFilters;
  if (!declaredHttp) {
    // Without a catch-all HTTP chain, connections to other destinations on this port fall back
    // to the outbound traffic policy, as they would on virtualOutbound.
    const cluster = catchAllCluster(scope.outboundPolicy);
    listener.default_filter_chain = {
      name: `${outboundListenerName(port)}/passthrough`,
      filters: [tcpProxy(cluster, [{ name: cluster, weight: 100 }])],
      metadata: { filter_metadata: { [MESH_METADATA_KEY]: toStruct({ port, kind: 'passthrough' }) } },
    };
  }
  return listener;
}

/** One inbound chain: a local workload's address and port. */
export interface InboundPort {
  address?: string;
  targetPort: number;
  protocol: ServicePort['protocol'];
  service: string;
  namespace: string;
  servicePort: number;
  /** The workload's labels and its service's names, which security policies select by. */
  labels: Readonly<Record<string, string>>;
  serviceNames: readonly string[];
}

/** The node's workload ports, first service wins when two share an address and port. */
export function inboundPorts(workloads: readonly LocalWorkload[]): InboundPort[] {
  const seen = new Set<string>();
  const out: InboundPort[] = [];
  for (const { service, endpoint } of workloads) {
    for (const port of service.ports) {
      if (port.protocol === 'UDP') continue;
      const targetPort = endpointPort(endpoint, port);
      const address = isIp(endpoint.address) ? endpoint.address : undefined;
      const key = `${address ?? ''}|${targetPort}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({
        address,
        targetPort,
        protocol: port.protocol,
        service: service.hostname,
        namespace: service.namespace,
        servicePort: port.number,
        labels: endpoint.labels,
        serviceNames: [service.hostname, ...service.aliases],
      });
    }
  }
  return out.sort((a, b) => a.targetPort - b.targetPort || ((a.address ?? '') < (b.address ?? '') ? -1 : 1));
}

function inboundRouteConfiguration(targetPort: number): ProtoObject {
  const cluster = inboundClusterName(targetPort);
  return {
    name: cluster,
    validate_clusters: wrap(false),
    virtual_hosts: [{
      name: `inbound|http|${targetPort}`,
      domains: ['*'],
      routes: [{
        name: 'default',
        match: { prefix: '/' },
        // Inbound requests are bounded by the caller's timeout, never by the callee's agent.
        route: { cluster, timeout: ZERO_DURATION, max_stream_duration: { max_stream_duration: ZERO_DURATION, grpc_timeout_header_max: ZERO_DURATION } },
      }],
    }],
  };
}

/** Security of one inbound port: mTLS mode, and filters ahead of the router or tcp_proxy. */
export type InboundSecurityOf = (port: InboundPort) => InboundSecurity;

const NO_SECURITY: InboundSecurity = { mtlsMode: DEFAULT_MTLS_MODE, httpFilters: [], networkFilters: [] };

/** What a STRICT port does with plaintext: nothing is allowed (an ALLOW set without policies). */
function refusePlaintextFilter(statPrefix: string): ProtoObject {
  return { name: FilterName.rbacNetwork, typed_config: anyOf(ProtoType.rbacNetwork, { rules: { action: 'ALLOW', policies: {} }, stat_prefix: `tcp.${statPrefix}.` }) };
}

/**
 * One local workload port. PERMISSIVE and DISABLE ports take any transport on one chain; a STRICT
 * port's chain requires TLS (mTLS) and a second chain closes plaintext connections, as Istio's
 * sidecars have no raw_buffer chain for it.
 */
function inboundChains(port: InboundPort, security: InboundSecurity): ProtoObject[] {
  const cluster = inboundClusterName(port.targetPort);
  const match: ProtoObject = { destination_port: wrap(port.targetPort) };
  if (port.address) match.prefix_ranges = [{ address_prefix: port.address, prefix_len: wrap(port.address.includes(':') ? 128 : 32) }];
  const http = isHttpProtocol(port.protocol);
  const filters = http
    ? [inlineHttpConnectionManager(`inbound_0.0.0.0_${port.targetPort}`, inboundRouteConfiguration(port.targetPort), security.httpFilters)]
    : [...security.networkFilters, tcpProxy(cluster, [{ name: cluster, weight: 100 }])];
  const name = port.address ? `${cluster}/${port.address}` : cluster;
  const metadata = (kind: string): ProtoObject => ({
    filter_metadata: {
      [MESH_METADATA_KEY]: toStruct({
        kind,
        service: port.service,
        namespace: port.namespace,
        port: port.servicePort,
        targetPort: port.targetPort,
        protocol: port.protocol,
        workload: port.address,
        mtlsMode: security.mtlsMode,
      }),
    },
  });
  const strict = security.mtlsMode === 'STRICT';
  const chain: ProtoObject = { name, filter_chain_match: strict ? { ...match, transport_protocol: 'tls' } : match, filters, metadata: metadata(http ? 'http' : 'tcp') };
  if (!strict) return [chain];
  return [
    chain,
    {
      name: `${name}/plaintext`,
      filter_chain_match: { ...match, transport_protocol: 'raw_buffer' },
      filters: [refusePlaintextFilter(cluster), tcpProxy(BLACKHOLE_CLUSTER, [{ name: BLACKHOLE_CLUSTER, weight: 100 }])],
      metadata: metadata('plaintext-refused'),
    },
  ];
}

/** The inbound capture listener: one chain per local workload port, the rest passed through. */
export function buildVirtualInboundListener(ports: readonly InboundPort[], securityOf: InboundSecurityOf = () => NO_SECURITY): ProtoObject {
  const chains = ports.flatMap((port) => inboundChains(port, securityOf(port)));
  chains.push({
    name: 'virtualInbound-passthrough',
    filters: [tcpProxy(INBOUND_PASSTHROUGH_CLUSTER, [{ name: INBOUND_PASSTHROUGH_CLUSTER, weight: 100 }])],
    metadata: { filter_metadata: { [MESH_METADATA_KEY]: toStruct({ kind: 'passthrough' }) } },
  });
  const transportMatched = chains.some((c) => (c.filter_chain_match as ProtoObject | undefined)?.transport_protocol !== undefined);
  return {
    name: VIRTUAL_INBOUND_LISTENER,
    address: socketAddress('0.0.0.0', INBOUND_CAPTURE_PORT),
    traffic_direction: 'INBOUND',
    // transport_protocol is only known to chain matching once tls_inspector has looked.
    listener_filters: transportMatched ? [originalDstFilter(), tlsInspector()] : [originalDstFilter()],
    filter_chains: chains,
  };
}
