// RouteConfigurations: for agents one per outbound HTTP port (named by the port, virtual hosts per
// service with Istio's domains, then allow_any/block_all), for gRPC clients one per target.
import { isHttpProtocol, type Service, type ServicePort } from '../registry/service';
import { isIp } from '../kinds/common';
import type { ModelIndex } from './model-index';
import { PASSTHROUGH_CLUSTER, portRouteConfigName } from './names';
import { wrap, ZERO_DURATION, type ProtoObject } from './proto-values';
import { defaultRoute, translateVirtualServiceRoutes, type RouteContext } from './routes';
import type { SidecarScope, VisibleService } from './sidecar-scope';

/** Istio's limit for direct_response bodies (Envoy's default is 4 KiB). */
export const MAX_DIRECT_RESPONSE_BODY_BYTES = 1024 * 1024;

/** Ports whose traffic the agent routes as HTTP: declared HTTP-ish, or unnamed and sniffed. */
export function routesAsHttp(port: ServicePort): boolean {
  return isHttpProtocol(port.protocol) || port.protocol === 'UNSPECIFIED';
}

function withPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Istio's generateVirtualHostDomains for our names: hostname, aliases and VIPs, bare and with the port. */
export function virtualHostDomains(service: Service, port: number): string[] {
  const names = [service.hostname, ...service.aliases, ...service.addresses.filter((a) => isIp(a))];
  const out: string[] = [];
  for (const name of names) out.push(name, withPort(name, port));
  return out;
}

/** The routes of a service on a port: its VirtualService's, else the default route. */
export function serviceRoutes(index: ModelIndex, scope: SidecarScope, service: Service, ctx: RouteContext, cache?: Map<unknown, ProtoObject[]>): ProtoObject[] {
  const vs = index.virtualServiceFor(service, scope.namespaces);
  if (vs) {
    let routes = cache?.get(vs);
    if (!routes) {
      routes = translateVirtualServiceRoutes(vs, ctx);
      cache?.set(vs, routes);
    }
    if (routes.length > 0) return routes;
  }
  return [defaultRoute(service, ctx.listenPort, ctx)];
}

function usesDirectResponseBody(virtualHosts: readonly ProtoObject[]): boolean {
  return virtualHosts.some((vh) => (vh.routes as ProtoObject[]).some((r) => (r.direct_response as ProtoObject | undefined)?.body !== undefined));
}

export function servicesOnPort(scope: SidecarScope, port: number): VisibleService[] {
  return scope.services.filter((v) => v.ports.some((p) => p.number === port && routesAsHttp(p)));
}

/**
 * The RouteConfiguration an agent's `0.0.0.0_PORT` listener asks for. Domains are unique across
 * virtual hosts (Envoy rejects duplicates): a name claimed by an earlier service is left out.
 */
export function buildPortRouteConfiguration(index: ModelIndex, scope: SidecarScope, port: number, ctx: RouteContext): ProtoObject {
  const used = new Set<string>();
  const virtualHosts: ProtoObject[] = [];
  const perVirtualService = new Map<unknown, ProtoObject[]>();
  for (const { service } of servicesOnPort(scope, port)) {
    const domains = virtualHostDomains(service, port).filter((d) => !used.has(d));
    if (domains.length === 0) continue;
    for (const d of domains) used.add(d);
    virtualHosts.push({ name: `${service.hostname}:${port}`, domains, routes: serviceRoutes(index, scope, service, ctx, perVirtualService) });
  }
  virtualHosts.push(scope.outboundPolicy === 'REGISTRY_ONLY' ? blockAllVirtualHost() : allowAnyVirtualHost());
  const config: ProtoObject = { name: portRouteConfigName(port), virtual_hosts: virtualHosts, validate_clusters: wrap(false) };
  if (usesDirectResponseBody(virtualHosts)) config.max_direct_response_body_size_bytes = wrap(MAX_DIRECT_RESPONSE_BODY_BYTES);
  return config;
}

/** Hosts outside the registry go to their original destination (ALLOW_ANY). */
export function allowAnyVirtualHost(): ProtoObject {
  return {
    name: 'allow_any',
    domains: ['*'],
    routes: [{
      name: 'allow_any',
      match: { prefix: '/' },
      route: { cluster: PASSTHROUGH_CLUSTER, timeout: ZERO_DURATION, max_stream_duration: { max_stream_duration: ZERO_DURATION, grpc_timeout_header_max: ZERO_DURATION } },
    }],
  };
}

/** Hosts outside the registry are refused (REGISTRY_ONLY), with Istio's 502. */
export function blockAllVirtualHost(): ProtoObject {
  return { name: 'block_all', domains: ['*'], routes: [{ name: 'block_all', match: { prefix: '/' }, direct_response: { status: 502 } }] };
}

/**
 * The RouteConfiguration of a gRPC client's target `name`: one virtual host whose domains include
 * the exact name the client dials (gRPC matches its target authority against them).
 */
export function buildTargetRouteConfiguration(index: ModelIndex, scope: SidecarScope, name: string, service: Service, port: ServicePort, ctx: RouteContext): ProtoObject {
  const domains = [...new Set([name, ...virtualHostDomains(service, port.number)])];
  return {
    name,
    virtual_hosts: [{ name: `${service.hostname}:${port.number}`, domains, routes: serviceRoutes(index, scope, service, ctx) }],
  };
}
