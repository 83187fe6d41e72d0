// Listeners for mesh agents, Istio's sidecar layout: `virtualOutbound` (15001, original
// destination, catch-all to PassthroughCluster or BlackHoleCluster), one `0.0.0.0_PORT` per
// outbound service port (HTTP via RDS, TCP/TLS chains), and `virtualInbound` (15006) with one
// chain per local workload port. Chain names and `mesh` metadata tell the agent what each is for.
import { endpointPort, isHttpProtocol, type ServicePort } from '../registry/service';
import { isIp } from '../kinds/common';
import type { ModelIndex, LocalWorkload } from './model-index';
import {
  BLACKHOLE_CLUSTER,
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
import { socketAddress, toStruct, wrap, ZERO_DURATION, type ProtoObject } from './proto-values';
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
      out.push({ address, targetPort, protocol: port.protocol, service: service.hostname, namespace: service.namespace, servicePort: port.number });
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

function inboundChain(port: InboundPort): ProtoObject {
  const cluster = inboundClusterName(port.targetPort);
  const match: ProtoObject = { destination_port: wrap(port.targetPort) };
  if (port.address) match.prefix_ranges = [{ address_prefix: port.address, prefix_len: wrap(port.address.includes(':') ? 128 : 32) }];
  const filters = isHttpProtocol(port.protocol)
    ? [inlineHttpConnectionManager(`inbound_0.0.0.0_${port.targetPort}`, inboundRouteConfiguration(port.targetPort))]
    : [tcpProxy(cluster, [{ name: cluster, weight: 100 }])];
  return {
    name: port.address ? `${cluster}/${port.address}` : cluster,
    filter_chain_match: match,
    filters,
    metadata: {
      filter_metadata: {
        [MESH_METADATA_KEY]: toStruct({
          kind: isHttpProtocol(port.protocol) ? 'http' : 'tcp',
          service: port.service,
          namespace: port.namespace,
          port: port.servicePort,
          targetPort: port.targetPort,
          protocol: port.protocol,
          workload: port.address,
        }),
      },
    },
  };
}

/** The inbound capture listener: one chain per local workload port, the rest passed through. */
export function buildVirtualInboundListener(ports: readonly InboundPort[]): ProtoObject {
  const chains = ports.map(inboundChain);
  chains.push({
    name: 'virtualInbound-passthrough',
    filters: [tcpProxy(INBOUND_PASSTHROUGH_CLUSTER, [{ name: INBOUND_PASSTHROUGH_CLUSTER, weight: 100 }])],
    metadata: { filter_metadata: { [MESH_METADATA_KEY]: toStruct({ kind: 'passthrough' }) } },
  });
  return {
    name: VIRTUAL_INBOUND_LISTENER,
    address: socketAddress('0.0.0.0', INBOUND_CAPTURE_PORT),
    traffic_direction: 'INBOUND',
    listener_filters: [originalDstFilter()],
    filter_chains: chains,
  };
}
