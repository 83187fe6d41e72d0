// Istio's names for the Envoy resources the translator emits (clusters, listeners, route
// configurations, filters), in one place so that every file and the agent agree on them.

/** Cluster that forwards to the connection's original destination (outboundTrafficPolicy ALLOW_ANY). */
export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
/** Cluster with no endpoints: traffic to it fails (outboundTrafficPolicy REGISTRY_ONLY). */
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';
/** Inbound traffic to a port no local workload declares goes to its original destination. */
export const INBOUND_PASSTHROUGH_CLUSTER = 'InboundPassthroughClusterIpv4';

export const VIRTUAL_OUTBOUND_LISTENER = 'virtualOutbound';
export const VIRTUAL_INBOUND_LISTENER = 'virtualInbound';
/** Istio's port layout (DESIGN.md decision 9). */
export const OUTBOUND_CAPTURE_PORT = 15001;
export const INBOUND_CAPTURE_PORT = 15006;

/** filter_metadata key under which the mesh carries what the agent needs beyond Envoy's shapes. */
export const MESH_METADATA_KEY = 'mesh';
/** Dynamic metadata namespace where Istio puts request authentication results for RBAC. */
export const ISTIO_AUTHN_METADATA = 'istio_authn';
/** filter_metadata key Envoy reads to pick a cluster's transport_socket_matches entry. */
export const TRANSPORT_SOCKET_MATCH_KEY = 'envoy.transport_socket_match';

export const FilterName = {
  httpConnectionManager: 'envoy.filters.network.http_connection_manager',
  tcpProxy: 'envoy.filters.network.tcp_proxy',
  fault: 'envoy.filters.http.fault',
  router: 'envoy.filters.http.router',
  tlsInspector: 'envoy.filters.listener.tls_inspector',
  httpInspector: 'envoy.filters.listener.http_inspector',
  originalDst: 'envoy.filters.listener.original_dst',
  rbacHttp: 'envoy.filters.http.rbac',
  rbacNetwork: 'envoy.filters.network.rbac',
  jwtAuthn: 'envoy.filters.http.jwt_authn',
  tlsTransportSocket: 'envoy.transport_sockets.tls',
  httpProtocolOptions: 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
} as const;

/** Fully qualified proto type names used inside Any fields. */
export const ProtoType = {
  httpConnectionManager: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  tcpProxy: 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  fault: 'envoy.extensions.filters.http.fault.v3.HTTPFault',
  router: 'envoy.extensions.filters.http.router.v3.Router',
  tlsInspector: 'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
  httpInspector: 'envoy.extensions.filters.listener.http_inspector.v3.HttpInspector',
  originalDst: 'envoy.extensions.filters.listener.original_dst.v3.OriginalDst',
  rbacHttp: 'envoy.extensions.filters.http.rbac.v3.RBAC',
  rbacNetwork: 'envoy.extensions.filters.network.rbac.v3.RBAC',
  jwtAuthn: 'envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication',
  upstreamTlsContext: 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  httpProtocolOptions: 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
} as const;

export type TrafficDirection = 'outbound' | 'inbound';

export interface ClusterKey {
  direction: TrafficDirection;
  port: number;
  subset: string;
  host: string;
}

/** `outbound|PORT|SUBSET|HOST`, Istio's subset key; the subset is empty for the whole service. */
export function outboundClusterName(port: number, host: string, subset = ''): string {
  return `outbound|${port}|${subset}|${host}`;
}

/** `inbound|PORT||`: Istio (1.10+) names inbound clusters by the port the workload listens on. */
export function inboundClusterName(port: number): string {
  return `inbound|${port}||`;
}

/** The parts of a cluster name built by the two functions above, or undefined for other names. */
export function parseClusterName(name: string): ClusterKey | undefined {
  const parts = name.split('|');
  if (parts.length !== 4) return undefined;
  const [direction, port, subset, host] = parts as [string, string, string, string];
  if (direction !== 'outbound' && direction !== 'inbound') return undefined;
  if (!/^[0-9]+$/.test(port)) return undefined;
  return { direction, port: Number(port), subset, host };
}

/** `0.0.0.0_PORT`: the outbound listener for one service port. */
export function outboundListenerName(port: number): string {
  return `0.0.0.0_${port}`;
}

/** Sidecars name the RouteConfiguration of an outbound HTTP port by the bare port number. */
export function portRouteConfigName(port: number): string {
  return String(port);
}

export function isPortRouteConfigName(name: string): boolean {
  return /^[1-9][0-9]{0,4}$/.test(name) && Number(name) <= 65535;
}

/** The SNI Istio uses for ISTIO_MUTUAL connections, so the peer can tell which cluster was meant. */
export function istioMutualSni(port: number, host: string, subset = ''): string {
  return `outbound_.${port}_.${subset}_.${host}`;
}

/** Splits `host` or `host:port` (a gRPC target authority); IPv6 literals keep their brackets off. */
export function splitHostPort(authority: string): { host: string; port?: number } {
  const bracketed = /^\[([^\]]+)\](?::([0-9]+))?$/.exec(authority);
  if (bracketed) {
    return bracketed[2] === undefined ? { host: bracketed[1]! } : { host: bracketed[1]!, port: Number(bracketed[2]) };
  }
  const colon = authority.lastIndexOf(':');
  if (colon > 0 && authority.indexOf(':') === colon && /^[0-9]{1,5}$/.test(authority.slice(colon + 1))) {
    return { host: authority.slice(0, colon), port: Number(authority.slice(colon + 1)) };
  }
  return { host: authority };
}
