// Per-cluster upstream connection settings as plain numbers: connect timeout and TCP keepalive
// (Cluster fields), and the HTTP pool's idle timeout, requests per connection and connection
// lifetime (HttpProtocolOptions.common_http_protocol_options), as Istio's connectionPool sets them.
//
// API: `table.guard(cluster).connection` is a ConnectionSettings; 0 means "no limit" for the
// optional limits, and `keepalive` is undefined when the cluster does not ask for keepalive.
import { durationMs, wrappedCount, type DecodedDuration, type Wrapped } from './decoded-fields';

/** Envoy's connect_timeout default when the cluster has none (Istio always states one, 10 s by default). */
export const ENVOY_DEFAULT_CONNECT_TIMEOUT_MS = 5000;
/** Envoy's HTTP upstream idle timeout when common_http_protocol_options has none. */
export const ENVOY_DEFAULT_HTTP_IDLE_TIMEOUT_MS = 3_600_000;

export interface KeepaliveSettings {
  /** Idle time before the first probe, in ms; 0 leaves the host's net.ipv4.tcp_keepalive_time. */
  readonly timeMs: number;
}

export interface ConnectionSettings {
  readonly connectTimeoutMs: number;
  readonly keepalive: KeepaliveSettings | undefined;
  /** Close an upstream HTTP connection idle for this long (no request in flight); 0 disables, as in Envoy. */
  readonly idleTimeoutMs: number;
  /** Requests per upstream connection before it is closed; 0 is unlimited. */
  readonly maxRequestsPerConnection: number;
  /** Upstream connection lifetime; 0 is unlimited. */
  readonly maxConnectionDurationMs: number;
}

const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** The part of a decoded Cluster these settings come from. */
export interface DecodedConnectionFields {
  connect_timeout?: DecodedDuration;
  upstream_connection_options?: {
    tcp_keepalive?: { keepalive_probes?: Wrapped; keepalive_time?: Wrapped; keepalive_interval?: Wrapped };
  };
  typed_extension_protocol_options?: Record<string, unknown>;
}

interface DecodedCommonHttpOptions {
  idle_timeout?: DecodedDuration;
  max_requests_per_connection?: Wrapped;
  max_connection_duration?: DecodedDuration;
}

/** Reads the settings; throws, naming the cluster and field, for values the agent cannot honour. */
export function connectionSettings(cluster: DecodedConnectionFields, name: string): ConnectionSettings {
  const where = `cluster ${name}`;
  const connectTimeoutMs = durationMs(cluster.connect_timeout, ENVOY_DEFAULT_CONNECT_TIMEOUT_MS, `${where}: connect_timeout`);
  let keepalive: KeepaliveSettings | undefined;
  const tcp = cluster.upstream_connection_options?.tcp_keepalive;
  if (tcp) {
    // Node sets SO_KEEPALIVE and TCP_KEEPIDLE only; probe count and interval would need
    // setsockopt(TCP_KEEPCNT / TCP_KEEPINTVL), which neither Node nor the agent's addon offers.
    if (wrappedCount(tcp.keepalive_probes, 0, `${where}: tcp_keepalive.keepalive_probes`) > 0) {
      throw new Error(`${where}: upstream_connection_options.tcp_keepalive.keepalive_probes cannot be honoured by mesh-agent (Node cannot set TCP_KEEPCNT); leave tcpKeepalive.probes unset to use the host's net.ipv4.tcp_keepalive_probes`);
    }
    if (wrappedCount(tcp.keepalive_interval, 0, `${where}: tcp_keepalive.keepalive_interval`) > 0) {
      throw new Error(`${where}: upstream_connection_options.tcp_keepalive.keepalive_interval cannot be honoured by mesh-agent (Node cannot set TCP_KEEPINTVL); leave tcpKeepalive.interval unset to use the host's net.ipv4.tcp_keepalive_intvl`);
    }
    keepalive = { timeMs: wrappedCount(tcp.keepalive_time, 0, `${where}: tcp_keepalive.keepalive_time`) * 1000 };
  }
  const options = cluster.typed_extension_protocol_options?.[HTTP_PROTOCOL_OPTIONS] as { common_http_protocol_options?: DecodedCommonHttpOptions } | undefined;
  const common = options?.common_http_protocol_options;
  const at = `${where}: common_http_protocol_options`;
  return {
    connectTimeoutMs,
    keepalive,
    idleTimeoutMs: durationMs(common?.idle_timeout, ENVOY_DEFAULT_HTTP_IDLE_TIMEOUT_MS, `${at}.idle_timeout`),
    maxRequestsPerConnection: wrappedCount(common?.max_requests_per_connection, 0, `${at}.max_requests_per_connection`),
    maxConnectionDurationMs: durationMs(common?.max_connection_duration, 0, `${at}.max_connection_duration`),
  };
}
