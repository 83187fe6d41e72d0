// The network and listener filters the translator puts into listeners: the HTTP connection
// manager (RDS or inline routes, fault then router), tcp_proxy (one or weighted clusters), and the
// listener filters that let filter chains match on TLS SNI, HTTP sniffing and original destination.
import { FilterName, ProtoType } from './names';
import { ADS_CONFIG_SOURCE, anyOf, type ProtoObject } from './proto-values';

/** The fault filter with an empty config: it only acts where a route carries a per-route HTTPFault. */
export function faultHttpFilter(): ProtoObject {
  return { name: FilterName.fault, typed_config: anyOf(ProtoType.fault, {}) };
}

/** The router, which must be the last HTTP filter (gRPC rejects anything else). */
export function routerHttpFilter(): ProtoObject {
  return { name: FilterName.router, typed_config: anyOf(ProtoType.router, {}) };
}

/** `before` are filters that run ahead of fault and router (inbound: jwt_authn and RBAC). */
export function httpConnectionManagerConfig(fields: ProtoObject, withFault: boolean, before: readonly ProtoObject[] = []): ProtoObject {
  return anyOf(ProtoType.httpConnectionManager, {
    ...fields,
    http_filters: withFault ? [...before, faultHttpFilter(), routerHttpFilter()] : [...before, routerHttpFilter()],
  });
}

/** HCM whose routes come over RDS (ADS) under `routeConfigName`. */
export function rdsHttpConnectionManager(statPrefix: string, routeConfigName: string): ProtoObject {
  return {
    name: FilterName.httpConnectionManager,
    typed_config: httpConnectionManagerConfig({ stat_prefix: statPrefix, rds: { route_config_name: routeConfigName, config_source: ADS_CONFIG_SOURCE } }, true),
  };
}

/** HCM with its route configuration inline (inbound chains, which have a single fixed route). */
export function inlineHttpConnectionManager(statPrefix: string, routeConfig: ProtoObject, httpFilters: readonly ProtoObject[] = []): ProtoObject {
  return {
    name: FilterName.httpConnectionManager,
    typed_config: httpConnectionManagerConfig({ stat_prefix: statPrefix, route_config: routeConfig }, false, httpFilters),
  };
}

export interface WeightedCluster {
  name: string;
  weight: number;
}

/** tcp_proxy to one cluster, or split over several by weight. */
export function tcpProxy(statPrefix: string, clusters: readonly WeightedCluster[]): ProtoObject {
  const config: ProtoObject = { stat_prefix: statPrefix };
  if (clusters.length === 1) config.cluster = clusters[0]!.name;
  else config.weighted_clusters = { clusters: clusters.map((c) => ({ name: c.name, weight: c.weight })) };
  return { name: FilterName.tcpProxy, typed_config: anyOf(ProtoType.tcpProxy, config) };
}

export function tlsInspector(): ProtoObject {
  return { name: FilterName.tlsInspector, typed_config: anyOf(ProtoType.tlsInspector, {}) };
}

export function httpInspector(): ProtoObject {
  return { name: FilterName.httpInspector, typed_config: anyOf(ProtoType.httpInspector, {}) };
}

export function originalDstFilter(): ProtoObject {
  return { name: FilterName.originalDst, typed_config: anyOf(ProtoType.originalDst, {}) };
}

/** What http_inspector reports for plaintext HTTP; Istio matches sniffed HTTP chains on these. */
export const SNIFFED_HTTP_PROTOCOLS = ['http/1.0', 'http/1.1', 'h2c'];
