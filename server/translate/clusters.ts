// Envoy Clusters as Istio builds them: `outbound|PORT|SUBSET|HOST` per service port and
// DestinationRule subset (EDS, DNS or ORIGINAL_DST), with connection pool, outlier detection,
// load balancer and TLS mapped from the merged traffic policy; `inbound|PORT||` for local
// workloads; and the PassthroughCluster, BlackHoleCluster and inbound passthrough clusters.
import { isHttpProtocol, type Service, type ServicePort } from '../registry/service';
import { resourceKey } from '../config/resource';
import { endpointWeight, lbEndpoint, localityLbEndpoints, groupByLocality, selectEndpoints, type LoadAssignmentSpec } from './endpoints';
import { resolveLocalitySetting } from './locality-lb';
import {
  BLACKHOLE_CLUSTER,
  FilterName,
  INBOUND_PASSTHROUGH_CLUSTER,
  MESH_METADATA_KEY,
  PASSTHROUGH_CLUSTER,
  ProtoType,
  inboundClusterName,
  istioMutualSni,
  outboundClusterName,
} from './names';
import {
  ADS_CONFIG_SOURCE,
  MAX_UINT32,
  anyOf,
  durationFromText,
  durationSeconds,
  socketAddress,
  toStruct,
  wrap,
  type ProtoObject,
} from './proto-values';
import type { ClientTLSSettings, ConnectionPoolSettings, DestinationRuleResource, LoadBalancerSettings, OutlierDetection, Subset } from './specs';
import { effectivePolicy, type EffectivePolicy } from './traffic-policy';

/** Envoy-style agents get Istio's sidecar clusters; proxyless gRPC clients the subset gRPC accepts. */
export type ClientFlavor = 'agent' | 'grpc';

/** Istio's mesh-wide default connect timeout. */
export const DEFAULT_CONNECT_TIMEOUT = { seconds: 10 };

/** Where Debian keeps the system trust bundle; Istio's `caCertificates: system` default for SIMPLE/MUTUAL. */
export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

export interface OutboundClusterInput {
  service: Service;
  port: ServicePort;
  rule?: DestinationRuleResource;
  subset?: Subset;
  flavor: ClientFlavor;
  trustDomain: string;
}

export interface BuiltCluster {
  name: string;
  cluster: ProtoObject;
  /** Present for EDS clusters: what their ClusterLoadAssignment is built from. */
  loadAssignment?: LoadAssignmentSpec;
}

/** Istio's defaults: effectively unlimited, so that only configured limits ever trip. */
function thresholds(pool: ConnectionPoolSettings | undefined): ProtoObject {
  const http = pool?.http;
  const tcp = pool?.tcp;
  const positive = (n: number | undefined): number | undefined => (n !== undefined && n > 0 ? n : undefined);
  return {
    max_connections: wrap(positive(tcp?.maxConnections) ?? MAX_UINT32),
    max_pending_requests: wrap(positive(http?.http1MaxPendingRequests) ?? MAX_UINT32),
    max_requests: wrap(positive(http?.http2MaxRequests) ?? MAX_UINT32),
    max_retries: wrap(positive(http?.maxRetries) ?? MAX_UINT32),
    track_remaining: true,
  };
}

/** Istio's applyOutlierDetection; `healthy_panic_threshold` comes from minHealthPercent (0 disables panic mode). */
function outlierDetection(outlier: OutlierDetection): { outlier: ProtoObject; panicThreshold: number } {
  const out: ProtoObject = { enforcing_success_rate: wrap(0) };
  if (outlier.consecutive5xxErrors !== undefined) {
    out.consecutive_5xx = wrap(outlier.consecutive5xxErrors);
    out.enforcing_consecutive_5xx = wrap(outlier.consecutive5xxErrors > 0 ? 100 : 0);
  }
  if (outlier.consecutiveGatewayErrors !== undefined) {
    out.consecutive_gateway_failure = wrap(outlier.consecutiveGatewayErrors);
    out.enforcing_consecutive_gateway_failure = wrap(outlier.consecutiveGatewayErrors > 0 ? 100 : 0);
  }
  // The deprecated consecutiveErrors counted gateway errors only (istio/api#617).
  if (outlier.consecutiveErrors !== undefined && outlier.consecutiveErrors > 0 && outlier.consecutiveGatewayErrors === undefined && outlier.consecutive5xxErrors === undefined) {
    out.consecutive_gateway_failure = wrap(outlier.consecutiveErrors);
    out.enforcing_consecutive_gateway_failure = wrap(100);
    out.enforcing_consecutive_5xx = wrap(0);
  }
  const interval = durationFromText(outlier.interval);
  if (interval) out.interval = interval;
  const baseEjection = durationFromText(outlier.baseEjectionTime);
  if (baseEjection) out.base_ejection_time = baseEjection;
  if (outlier.maxEjectionPercent !== undefined && outlier.maxEjectionPercent > 0) out.max_ejection_percent = wrap(outlier.maxEjectionPercent);
  if (outlier.splitExternalLocalOriginErrors) {
    out.split_external_local_origin_errors = true;
    if (outlier.consecutiveLocalOriginFailures !== undefined && outlier.consecutiveLocalOriginFailures > 0) {
      out.consecutive_local_origin_failure = wrap(outlier.consecutiveLocalOriginFailures);
      out.enforcing_consecutive_local_origin_failure = wrap(100);
    }
    out.enforcing_local_origin_success_rate = wrap(0);
  }
  return { outlier: out, panicThreshold: Math.max(0, outlier.minHealthPercent ?? 0) };
}

function slowStart(lb: LoadBalancerSettings | undefined): ProtoObject | undefined {
  const window = durationFromText(lb?.warmup?.duration ?? lb?.warmupDurationSecs);
  if (!window) return undefined;
  const config: ProtoObject = { slow_start_window: window };
  if (lb?.warmup?.minimumPercent !== undefined) config.min_weight_percent = { value: lb.warmup.minimumPercent };
  return { slow_start_config: config };
}

/** lb_policy (and its config) for an Envoy client, Istio's applyLoadBalancer. */
function applyLoadBalancer(cluster: ProtoObject, lb: LoadBalancerSettings | undefined): void {
  const hash = lb?.consistentHash;
  if (hash) {
    if (hash.maglev) {
      cluster.lb_policy = 'MAGLEV';
      if (hash.maglev.tableSize) cluster.maglev_lb_config = { table_size: wrap(hash.maglev.tableSize) };
    } else {
      cluster.lb_policy = 'RING_HASH';
      const size = hash.ringHash ? hash.ringHash.minimumRingSize : (hash.minimumRingSize || 1024);
      if (size) cluster.ring_hash_lb_config = { minimum_ring_size: wrap(size) };
    }
    return;
  }
  switch (lb?.simple) {
    case 'RANDOM':
      cluster.lb_policy = 'RANDOM';
      return;
    case 'ROUND_ROBIN': {
      cluster.lb_policy = 'ROUND_ROBIN';
      const start = slowStart(lb);
      if (start) cluster.round_robin_lb_config = start;
      return;
    }
    default: {
      // LEAST_REQUEST is Istio's default, LEAST_CONN its deprecated spelling.
      cluster.lb_policy = 'LEAST_REQUEST';
      const start = slowStart(lb);
      if (start) cluster.least_request_lb_config = start;
    }
  }
}

/** gRPC accepts ROUND_ROBIN and RING_HASH only; anything else would make it reject the cluster. */
function applyGrpcLoadBalancer(cluster: ProtoObject, lb: LoadBalancerSettings | undefined): void {
  const hash = lb?.consistentHash;
  if (hash) {
    cluster.lb_policy = 'RING_HASH';
    const size = hash.ringHash?.minimumRingSize ?? hash.minimumRingSize;
    if (size) cluster.ring_hash_lb_config = { minimum_ring_size: wrap(size) };
    return;
  }
  cluster.lb_policy = 'ROUND_ROBIN';
}

type UpstreamHttp = 'http1' | 'http2' | 'downstream';

/** Istio's setUpstreamProtocol + h2UpgradePolicy: HTTP/2 for gRPC and HTTP2 ports, sniffed ports follow the client. */
function upstreamHttp(port: ServicePort, pool: ConnectionPoolSettings | undefined): UpstreamHttp | undefined {
  if (pool?.http?.useClientProtocol) return 'downstream';
  if (port.protocol === 'HTTP2' || port.protocol === 'GRPC' || port.protocol === 'GRPC-WEB') return 'http2';
  if (port.protocol === 'UNSPECIFIED') return pool?.http?.h2UpgradePolicy === 'UPGRADE' ? 'http2' : 'downstream';
  if (port.protocol === 'HTTP') return pool?.http?.h2UpgradePolicy === 'UPGRADE' ? 'http2' : 'http1';
  return undefined;
}

function httpProtocolOptions(port: ServicePort, pool: ConnectionPoolSettings | undefined): ProtoObject | undefined {
  const upstream = upstreamHttp(port, pool);
  if (!upstream) return undefined;
  const common: ProtoObject = {};
  const idle = durationFromText(pool?.http?.idleTimeout ?? pool?.tcp?.idleTimeout);
  if (idle) common.idle_timeout = idle;
  const perConnection = pool?.http?.maxRequestsPerConnection;
  if (perConnection !== undefined && perConnection > 0) common.max_requests_per_connection = wrap(perConnection);
  const maxDuration = durationFromText(pool?.tcp?.maxConnectionDuration);
  if (maxDuration) common.max_connection_duration = maxDuration;
  // Plain HTTP/1.1 with nothing to tune is Envoy's default: no options needed.
  if (upstream === 'http1' && Object.keys(common).length === 0) return undefined;
  const h2: ProtoObject = {};
  const streams = pool?.http?.maxConcurrentStreams;
  if (streams !== undefined && streams > 0) h2.max_concurrent_streams = wrap(streams);
  const options: ProtoObject = {};
  if (Object.keys(common).length > 0) options.common_http_protocol_options = common;
  if (upstream === 'http1') options.explicit_http_config = { http_protocol_options: {} };
  else if (upstream === 'http2') options.explicit_http_config = { http2_protocol_options: h2 };
  else options.use_downstream_protocol_config = { http_protocol_options: {}, http2_protocol_options: h2 };
  return { [FilterName.httpProtocolOptions]: anyOf(ProtoType.httpProtocolOptions, options) };
}

function tcpKeepalive(pool: ConnectionPoolSettings | undefined): ProtoObject | undefined {
  const keepalive = pool?.tcp?.tcpKeepalive;
  if (!keepalive) return undefined;
  const out: ProtoObject = {};
  if (keepalive.probes !== undefined && keepalive.probes > 0) out.keepalive_probes = wrap(keepalive.probes);
  const time = durationSeconds(keepalive.time);
  if (time !== undefined && time > 0) out.keepalive_time = wrap(time);
  const interval = durationSeconds(keepalive.interval);
  if (interval !== undefined && interval > 0) out.keepalive_interval = wrap(interval);
  return { tcp_keepalive: out };
}

function sanMatcher(san: string): ProtoObject {
  return { san_type: san.includes('://') ? 'URI' : 'DNS', matcher: { exact: san } };
}

/** SIMPLE and MUTUAL: Envoy's UpstreamTlsContext from the files the rule names. */
function upstreamTlsTransportSocket(tls: ClientTLSSettings, service: Service): ProtoObject {
  const common: ProtoObject = {};
  if (tls.mode === 'MUTUAL' && tls.clientCertificate && tls.privateKey) {
    common.tls_certificates = [{ certificate_chain: { filename: tls.clientCertificate }, private_key: { filename: tls.privateKey } }];
  }
  if (!tls.insecureSkipVerify) {
    const validation: ProtoObject = { trusted_ca: { filename: tls.caCertificates || SYSTEM_CA_BUNDLE } };
    const sans = tls.subjectAltNames && tls.subjectAltNames.length > 0 ? tls.subjectAltNames : service.subjectAltNames;
    if (sans.length > 0) validation.match_typed_subject_alt_names = sans.map(sanMatcher);
    if (tls.caCrl) validation.crl = { filename: tls.caCrl };
    common.validation_context = validation;
  }
  const context: ProtoObject = { common_tls_context: common };
  const sni = tls.sni ?? (service.hostname.startsWith('*') ? undefined : service.hostname);
  if (sni) context.sni = sni;
  return { name: FilterName.tlsTransportSocket, typed_config: anyOf(ProtoType.upstreamTlsContext, context) };
}

function spiffeIdentities(service: Service, trustDomain: string): string[] {
  const accounts = new Set<string>();
  for (const endpoint of service.endpoints) if (endpoint.serviceAccount) accounts.add(endpoint.serviceAccount);
  const ids = [...accounts].sort().map((sa) => `spiffe://${trustDomain}/ns/${service.namespace}/sa/${sa}`);
  return [...new Set([...ids, ...service.subjectAltNames])];
}

/**
 * The TLS intent carried in cluster metadata. ISTIO_MUTUAL (and Istio's auto mTLS, `AUTO`, which
 * applies mesh mTLS to endpoints marked tlsMode=istio) is done by the agent with its own
 * certificates, so it is stated here rather than as an Envoy transport socket.
 */
function tlsIntent(tls: ClientTLSSettings | undefined, input: OutboundClusterInput): Record<string, string | string[] | undefined> {
  const mode = tls?.mode ?? 'AUTO';
  if (mode === 'DISABLE') return { mode };
  if (mode === 'SIMPLE' || mode === 'MUTUAL') return { mode, credentialName: tls?.credentialName };
  const sans = tls?.subjectAltNames && tls.subjectAltNames.length > 0 ? tls.subjectAltNames : spiffeIdentities(input.service, input.trustDomain);
  return {
    mode,
    sni: tls?.sni ?? istioMutualSni(input.port.number, input.service.hostname, input.subset?.name ?? ''),
    subjectAltNames: sans,
  };
}

type DiscoveryType = 'EDS' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'ORIGINAL_DST';

function discoveryType(service: Service, policy: EffectivePolicy, flavor: ClientFlavor): DiscoveryType {
  if (service.resolution === 'DNS' || service.resolution === 'DNS_ROUND_ROBIN') {
    return flavor === 'grpc' || service.resolution === 'DNS_ROUND_ROBIN' ? 'LOGICAL_DNS' : 'STRICT_DNS';
  }
  // gRPC has no original-destination cluster; it always load balances over the endpoints.
  if (flavor === 'grpc') return 'EDS';
  if (service.resolution === 'NONE' || policy.loadBalancer?.simple === 'PASSTHROUGH') return 'ORIGINAL_DST';
  return 'EDS';
}

/** Inline endpoints of a DNS cluster: the service's endpoints (hostnames), or the service's own name. */
function dnsLoadAssignment(name: string, service: Service, port: ServicePort, subsetLabels: Readonly<Record<string, string>> | undefined, logical: boolean): ProtoObject {
  const endpoints = selectEndpoints(service, subsetLabels);
  if (endpoints.length === 0) {
    return {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(service.hostname, port.number) } }], load_balancing_weight: wrap(1) }],
    };
  }
  if (logical) {
    // LOGICAL_DNS takes exactly one locality with one endpoint (Envoy and gRPC both insist).
    const first = endpoints[0]!;
    return {
      cluster_name: name,
      endpoints: [{
        locality: { region: first.locality.region, zone: first.locality.zone, sub_zone: first.locality.subzone },
        lb_endpoints: [lbEndpoint(first, port)],
        load_balancing_weight: wrap(endpointWeight(first)),
      }],
    };
  }
  return { cluster_name: name, endpoints: groupByLocality(endpoints, port).map((g) => localityLbEndpoints(g, port)) };
}

function loadAssignmentSpec(name: string, input: Omit<OutboundClusterInput, 'flavor' | 'trustDomain'>, policy: EffectivePolicy): LoadAssignmentSpec {
  return {
    clusterName: name,
    service: input.service,
    port: input.port,
    subsetLabels: input.subset?.labels,
    localitySetting: resolveLocalitySetting(policy.loadBalancer?.localityLbSetting),
    failoverEnabled: policy.outlierDetection !== undefined,
  };
}

/**
 * What the ClusterLoadAssignment of `outbound|PORT|SUBSET|HOST` is built from, whichever client
 * flavor asks; undefined for DNS services, whose clusters carry their endpoints inline.
 */
export function outboundLoadAssignmentSpec(input: Omit<OutboundClusterInput, 'flavor' | 'trustDomain'>): LoadAssignmentSpec | undefined {
  if (input.service.resolution === 'DNS' || input.service.resolution === 'DNS_ROUND_ROBIN') return undefined;
  const name = outboundClusterName(input.port.number, input.service.hostname, input.subset?.name ?? '');
  return loadAssignmentSpec(name, input, effectivePolicy(input.rule?.spec, input.subset, input.port.number));
}

/** One outbound cluster: the service port as a whole (no subset) or one DestinationRule subset. */
export function buildOutboundCluster(input: OutboundClusterInput): BuiltCluster {
  const { service, port, rule, subset, flavor } = input;
  const name = outboundClusterName(port.number, service.hostname, subset?.name ?? '');
  const policy = effectivePolicy(rule?.spec, subset, port.number);
  const pool = policy.connectionPool;
  const type = discoveryType(service, policy, flavor);
  const cluster: ProtoObject = {
    name,
    type,
    connect_timeout: durationFromText(pool?.tcp?.connectTimeout) ?? DEFAULT_CONNECT_TIMEOUT,
    circuit_breakers: { thresholds: [thresholds(pool)] },
  };
  const commonLb: ProtoObject = {};
  if (policy.outlierDetection) {
    const { outlier, panicThreshold } = outlierDetection(policy.outlierDetection);
    cluster.outlier_detection = outlier;
    commonLb.healthy_panic_threshold = { value: panicThreshold };
  }
  const localitySetting = resolveLocalitySetting(policy.loadBalancer?.localityLbSetting);
  const failoverEnabled = policy.outlierDetection !== undefined;
  if (localitySetting && ((localitySetting.distribute?.length ?? 0) > 0
    || (failoverEnabled && ((localitySetting.failover?.length ?? 0) > 0 || (localitySetting.failoverPriority?.length ?? 0) > 0)))) {
    commonLb.locality_weighted_lb_config = {};
  }
  if (Object.keys(commonLb).length > 0) cluster.common_lb_config = commonLb;

  if (type === 'ORIGINAL_DST') cluster.lb_policy = 'CLUSTER_PROVIDED';
  else if (flavor === 'grpc') applyGrpcLoadBalancer(cluster, policy.loadBalancer);
  else applyLoadBalancer(cluster, policy.loadBalancer);

  let loadAssignment: LoadAssignmentSpec | undefined;
  if (type === 'EDS') {
    cluster.eds_cluster_config = { eds_config: ADS_CONFIG_SOURCE, service_name: name };
    loadAssignment = loadAssignmentSpec(name, input, policy);
  } else if (type === 'STRICT_DNS' || type === 'LOGICAL_DNS') {
    cluster.load_assignment = dnsLoadAssignment(name, service, port, subset?.labels, type === 'LOGICAL_DNS');
    cluster.dns_lookup_family = 'V4_ONLY';
  }

  if (flavor === 'agent') {
    const protocolOptions = httpProtocolOptions(port, pool);
    if (protocolOptions) cluster.typed_extension_protocol_options = protocolOptions;
    const keepalive = tcpKeepalive(pool);
    if (keepalive) cluster.upstream_connection_options = keepalive;
  }
  const tls = policy.tls;
  if (tls && (tls.mode === 'SIMPLE' || tls.mode === 'MUTUAL')) cluster.transport_socket = upstreamTlsTransportSocket(tls, service);
  cluster.metadata = {
    filter_metadata: {
      [MESH_METADATA_KEY]: toStruct({
        service: service.hostname,
        namespace: service.namespace,
        port: port.number,
        portName: port.name,
        protocol: port.protocol,
        subset: subset?.name,
        destinationRule: rule ? resourceKey(rule) : undefined,
        location: service.location,
        tls: tlsIntent(tls, input),
      }),
    },
  };
  return { name, cluster, loadAssignment };
}

/** The clusters of one service port: the port itself, then one per subset of the rule. */
export function buildServicePortClusters(input: Omit<OutboundClusterInput, 'subset'>): BuiltCluster[] {
  const out = [buildOutboundCluster(input)];
  for (const subset of input.rule?.spec.subsets ?? []) out.push(buildOutboundCluster({ ...input, subset }));
  return out;
}

/** `inbound|PORT||`: the local workload listening on PORT, reached over loopback. */
export function buildInboundCluster(targetPort: number, protocol: ServicePort['protocol']): ProtoObject {
  const name = inboundClusterName(targetPort);
  const cluster: ProtoObject = {
    name,
    type: 'STATIC',
    connect_timeout: DEFAULT_CONNECT_TIMEOUT,
    lb_policy: 'ROUND_ROBIN',
    circuit_breakers: { thresholds: [thresholds(undefined)] },
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress('127.0.0.1', targetPort) } }] }] },
    metadata: { filter_metadata: { [MESH_METADATA_KEY]: toStruct({ direction: 'inbound', port: targetPort, protocol }) } },
  };
  if (isHttpProtocol(protocol) && protocol !== 'HTTP') {
    cluster.typed_extension_protocol_options = {
      [FilterName.httpProtocolOptions]: anyOf(ProtoType.httpProtocolOptions, { explicit_http_config: { http2_protocol_options: {} } }),
    };
  }
  return cluster;
}

function followDownstreamProtocol(): ProtoObject {
  return {
    [FilterName.httpProtocolOptions]: anyOf(ProtoType.httpProtocolOptions, {
      use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: {} },
    }),
  };
}

/** Sends to the connection's original destination: outbound traffic to hosts outside the registry. */
export function buildPassthroughCluster(): ProtoObject {
  return {
    name: PASSTHROUGH_CLUSTER,
    type: 'ORIGINAL_DST',
    lb_policy: 'CLUSTER_PROVIDED',
    connect_timeout: DEFAULT_CONNECT_TIMEOUT,
    circuit_breakers: { thresholds: [thresholds(undefined)] },
    typed_extension_protocol_options: followDownstreamProtocol(),
  };
}

/** No endpoints: what REGISTRY_ONLY sends unknown destinations to. */
export function buildBlackHoleCluster(): ProtoObject {
  return { name: BLACKHOLE_CLUSTER, type: 'STATIC', connect_timeout: DEFAULT_CONNECT_TIMEOUT };
}

/**
 * Inbound traffic for ports no local workload declares, forwarded to where it was going. Istio
 * binds the upstream side to 127.0.0.6 so that redirection rules can tell it from app traffic.
 */
export function buildInboundPassthroughCluster(): ProtoObject {
  return {
    name: INBOUND_PASSTHROUGH_CLUSTER,
    type: 'ORIGINAL_DST',
    lb_policy: 'CLUSTER_PROVIDED',
    connect_timeout: DEFAULT_CONNECT_TIMEOUT,
    circuit_breakers: { thresholds: [thresholds(undefined)] },
    upstream_bind_config: { source_address: { address: '127.0.0.6', port_value: 0 } },
    typed_extension_protocol_options: followDownstreamProtocol(),
  };
}
