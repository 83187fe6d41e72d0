// Proxyless gRPC clients (@grpc/grpc-js-xds dialing `xds:///NAME` or `xds:///NAME:PORT`) ask for
// listeners by the target's authority. Each resolvable name gets an API listener whose HTTP
// connection manager takes routes over RDS under the same name, with the fault filter (so
// per-route faults apply) before the router.
import type { Service, ServicePort } from '../registry/service';
import { splitHostPort } from './names';
import { httpConnectionManagerConfig } from './network-filters';
import { ADS_CONFIG_SOURCE, type ProtoObject } from './proto-values';
import type { SidecarScope } from './sidecar-scope';

export interface ResolvedTarget {
  name: string;
  service: Service;
  port: ServicePort;
}

const isGrpcLike = (port: ServicePort): boolean => port.protocol === 'GRPC' || port.protocol === 'HTTP2';

/**
 * A target authority to the service and port it means: a hostname or alias visible to the client,
 * with its port, or without one the service's only port or else its first gRPC/HTTP2 port.
 */
export function resolveTarget(scope: SidecarScope, name: string): ResolvedTarget | undefined {
  const { host, port } = splitHostPort(name);
  const visible = scope.byName.get(host);
  if (!visible) return undefined;
  let chosen: ServicePort | undefined;
  if (port !== undefined) chosen = visible.ports.find((p) => p.number === port);
  else if (visible.ports.length === 1) chosen = visible.ports[0];
  else chosen = visible.ports.find(isGrpcLike);
  return chosen ? { name, service: visible.service, port: chosen } : undefined;
}

/** The API listener for target `name`; its RouteConfiguration has the same name. */
export function buildApiListener(name: string): ProtoObject {
  return {
    name,
    api_listener: {
      api_listener: httpConnectionManagerConfig({ stat_prefix: name, rds: { route_config_name: name, config_source: ADS_CONFIG_SOURCE } }, true),
    },
  };
}
