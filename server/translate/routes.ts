// VirtualService HTTP routes → Envoy Routes, Istio's translateRoute: one Envoy route per match
// block (blocks are ORed), route/redirect/direct-response actions, weighted destinations, rewrites,
// headers, retries, timeouts, fault, mirrors, CORS and consistent-hash policies; plus the default
// route of a service without a VirtualService.
import { resourceKey } from '../config/resource';
import type { Service } from '../registry/service';
import type { ClientFlavor } from './clusters';
import { MESH_GATEWAY, labelsMatch } from './model-index';
import type { WorkloadView } from './node-identity';
import { FilterName, MESH_METADATA_KEY, ProtoType, outboundClusterName } from './names';
import { anyOf, toStruct, wrap, type ProtoObject } from './proto-values';
import { isCatchAllMatch, translateRouteMatch } from './route-match';
import {
  applyHeaderOperations,
  applyTimeout,
  corsPolicy,
  faultFilterConfig,
  hashPolicy,
  headerOperations,
  mirrorFraction,
  retryPolicy,
} from './route-policies';
import type { ConsistentHashLB, Destination, HTTPMatchRequest, HTTPRedirect, HTTPRoute, VirtualServiceResource } from './specs';

/** What translating routes needs to know about the client and the mesh around it. */
export interface RouteContext {
  /** The port the route configuration serves (Istio's listenPort). */
  listenPort: number;
  flavor: ClientFlavor;
  /** The client's workloads, for sourceLabels/sourceNamespace. */
  views: readonly WorkloadView[];
  /** A destination host (hostname or alias) to the service it names, within the client's scope. */
  resolve(host: string): Service | undefined;
  /** The consistent-hash settings the client's DestinationRule gives a destination cluster. */
  consistentHash(service: Service, subset: string | undefined, port: number): ConsistentHashLB | undefined;
}

/**
 * Istio's GetDestinationCluster: the destination's port, else the service's only port, else the
 * port being routed; aliases resolve to the canonical hostname the clusters are named by.
 */
export function destinationCluster(destination: Destination, ctx: RouteContext): { name: string; service?: Service; port: number } {
  const service = ctx.resolve(destination.host);
  const port = destination.port?.number ?? (service && service.ports.length === 1 ? service.ports[0]!.number : ctx.listenPort);
  return { name: outboundClusterName(port, service?.hostname ?? destination.host, destination.subset ?? ''), service, port };
}

function destinationHash(destination: Destination, ctx: RouteContext): ConsistentHashLB | undefined {
  const { service, port } = destinationCluster(destination, ctx);
  return service ? ctx.consistentHash(service, destination.subset, port) : undefined;
}

/**
 * Istio's sourceMatchHTTP for a node that may run several workloads: the block applies when one
 * of them matches sourceLabels and sourceNamespace together. The agent gets the condition in the
 * route metadata to check each connection's actual source.
 */
function sourceMatches(match: HTTPMatchRequest | undefined, views: readonly WorkloadView[]): boolean {
  if (!match) return true;
  if (match.gateways && match.gateways.length > 0) return match.gateways.includes(MESH_GATEWAY);
  return views.some((v) => labelsMatch(match.sourceLabels, v.labels) && (!match.sourceNamespace || match.sourceNamespace === v.namespace));
}

const REDIRECT_CODES: Readonly<Record<number, string>> = {
  301: 'MOVED_PERMANENTLY',
  302: 'FOUND',
  303: 'SEE_OTHER',
  307: 'TEMPORARY_REDIRECT',
  308: 'PERMANENT_REDIRECT',
};

/** Istio's ApplyRedirect; undefined for a redirect code Envoy cannot send. */
function redirectAction(redirect: HTTPRedirect, listenPort: number): ProtoObject | undefined {
  const code = REDIRECT_CODES[redirect.redirectCode || 301];
  if (!code) return undefined;
  const out: ProtoObject = { response_code: code };
  if (redirect.authority) out.host_redirect = redirect.authority;
  if (redirect.uri) out.path_redirect = redirect.uri;
  if (redirect.scheme) out.scheme_redirect = redirect.scheme;
  let port: number | undefined;
  if (redirect.port !== undefined) port = redirect.port;
  else if (redirect.derivePort === 'FROM_REQUEST_PORT') port = listenPort;
  if (port !== undefined) {
    // Sidecars never terminate TLS, so the implied scheme is http; default ports are left implicit.
    const scheme = redirect.scheme || 'http';
    if (!((port === 80 && scheme === 'http') || (port === 443 && scheme === 'https'))) out.port_redirect = port;
  }
  return out;
}

function directResponseAction(route: HTTPRoute): ProtoObject {
  const response = route.directResponse!;
  const out: ProtoObject = { status: response.status };
  if (response.body?.string !== undefined) out.body = { inline_string: response.body.string };
  else if (response.body?.bytes !== undefined) out.body = { inline_bytes: Buffer.from(response.body.bytes, 'base64') };
  return out;
}

function routeAction(route: HTTPRoute, ctx: RouteContext, out: ProtoObject, authorityFromHeaders: string | undefined): ProtoObject {
  const action: ProtoObject = {};
  applyTimeout(action, route.timeout, ctx.flavor);
  let authority = authorityFromHeaders;
  if (route.rewrite) {
    if (route.rewrite.uriRegexRewrite?.match !== undefined) {
      action.regex_rewrite = { pattern: { regex: route.rewrite.uriRegexRewrite.match }, substitution: route.rewrite.uriRegexRewrite.rewrite ?? '' };
    } else if (route.rewrite.uri) {
      // On an exact or regex match Envoy swaps the whole matched path, on a prefix match the prefix.
      action.prefix_rewrite = route.rewrite.uri;
    }
    if (route.rewrite.authority) authority = route.rewrite.authority;
  }
  if (authority) action.host_rewrite_literal = authority;

  const mirrors: ProtoObject[] = [];
  if (route.mirror) {
    const fraction = mirrorFraction(route.mirrorPercentage, route.mirrorPercent ?? route.mirror_percent);
    if (fraction) mirrors.push({ cluster: destinationCluster(route.mirror, ctx).name, runtime_fraction: fraction, trace_sampled: wrap(false) });
  }
  for (const mirror of route.mirrors ?? []) {
    const fraction = mirrorFraction(mirror.percentage);
    if (fraction) mirrors.push({ cluster: destinationCluster(mirror.destination, ctx).name, runtime_fraction: fraction, trace_sampled: wrap(false) });
  }
  if (mirrors.length > 0) action.request_mirror_policies = mirrors;

  const destinations = route.route ?? [];
  const hashPolicies: ProtoObject[] = [];
  let consistentHash = false;
  if (destinations.length === 1) {
    const only = destinations[0]!;
    action.cluster = destinationCluster(only.destination, ctx).name;
    const ops = headerOperations(only.headers);
    applyHeaderOperations(out, ops);
    if (ops.authority && action.host_rewrite_literal === undefined) action.host_rewrite_literal = ops.authority;
    const hash = destinationHash(only.destination, ctx);
    consistentHash = hash !== undefined;
    const policy = hashPolicy(hash);
    if (policy) hashPolicies.push(policy);
  } else {
    // Istio skips 0-weight destinations when there are several.
    const weighted = destinations.filter((d) => (d.weight ?? 0) > 0);
    const clusters = weighted.map((d) => {
      const weight: ProtoObject = { name: destinationCluster(d.destination, ctx).name, weight: wrap(d.weight!) };
      const ops = headerOperations(d.headers);
      applyHeaderOperations(weight, ops);
      if (ops.authority) weight.host_rewrite_literal = ops.authority;
      const policy = hashPolicy(destinationHash(d.destination, ctx));
      if (policy) hashPolicies.push(policy);
      return weight;
    });
    if (clusters.length > 0) action.weighted_clusters = { clusters };
    else if (destinations.length > 0) action.cluster = destinationCluster(destinations[0]!.destination, ctx).name;
  }
  if (hashPolicies.length > 0) action.hash_policy = hashPolicies;
  const retries = retryPolicy(route.retries, consistentHash);
  if (retries) action.retry_policy = retries;
  if (route.corsPolicy && ctx.flavor === 'agent') action.cors = corsPolicy(route.corsPolicy);
  return action;
}

/** One Envoy route for one match block of an HTTP route; undefined when it cannot apply here. */
function translateRoute(vs: VirtualServiceResource, route: HTTPRoute, match: HTTPMatchRequest | undefined, ctx: RouteContext): ProtoObject | undefined {
  if (match?.port !== undefined && match.port !== ctx.listenPort) return undefined;
  if (!sourceMatches(match, ctx.views)) return undefined;
  // gRPC only forwards; a route it cannot execute would make it reject the whole configuration.
  if (ctx.flavor === 'grpc' && (route.redirect || route.directResponse)) return undefined;
  const out: ProtoObject = {};
  const name = match?.name ? `${route.name ?? ''}.${match.name}` : route.name;
  if (name) out.name = name;
  out.match = translateRouteMatch(match);
  out.metadata = {
    filter_metadata: {
      [MESH_METADATA_KEY]: toStruct({
        virtualService: resourceKey(vs),
        sourceLabels: match?.sourceLabels,
        sourceNamespace: match?.sourceNamespace,
      }),
    },
  };
  const ops = headerOperations(route.headers);
  applyHeaderOperations(out, ops);
  if (route.redirect) {
    const redirect = redirectAction(route.redirect, ctx.listenPort);
    if (!redirect) return undefined;
    out.redirect = redirect;
  } else if (route.directResponse) {
    out.direct_response = directResponseAction(route);
  } else {
    const action = routeAction(route, ctx, out, ops.authority);
    // Envoy requires a cluster; a route without destinations (schema-valid, semantically not)
    // is left out rather than sent to be rejected with the whole configuration.
    if (action.cluster === undefined && action.weighted_clusters === undefined) return undefined;
    out.route = action;
  }
  if (route.fault) {
    const fault = faultFilterConfig(route.fault);
    if (fault) out.typed_per_filter_config = { [FilterName.fault]: anyOf(ProtoType.fault, fault) };
  }
  return out;
}

/**
 * The routes of a VirtualService for one port and client, Istio's BuildHTTPRoutesForVirtualService:
 * HTTP routes in order, one Envoy route per applicable match block, stopping after a catch-all.
 * Empty when no block applies (the service then gets its default route).
 */
export function translateVirtualServiceRoutes(vs: VirtualServiceResource, ctx: RouteContext): ProtoObject[] {
  const out: ProtoObject[] = [];
  for (const route of vs.spec.http ?? []) {
    // Delegation (a route handing over to another VirtualService) is not translated yet: such a
    // route is skipped rather than guessed at, and the next routes still apply.
    if (route.delegate) continue;
    let catchAll = false;
    if (!route.match || route.match.length === 0) {
      const translated = translateRoute(vs, route, undefined, ctx);
      if (translated) out.push(translated);
      catchAll = true;
    } else {
      for (const match of route.match) {
        const translated = translateRoute(vs, route, match, ctx);
        if (!translated) continue;
        out.push(translated);
        // A block conditioned on the source is left to the agent to check per connection (other
        // workloads of the node may not match), so it never ends the list.
        const sourceConditioned = (match.sourceLabels && Object.keys(match.sourceLabels).length > 0) || match.sourceNamespace !== undefined;
        if (!sourceConditioned && isCatchAllMatch(translated.match as ProtoObject)) {
          catchAll = true;
          break;
        }
      }
    }
    if (catchAll) break;
  }
  return out;
}

/** Istio's BuildDefaultHTTPOutboundRoute: everything to the service port's cluster, default retries. */
export function defaultRoute(service: Service, port: number, ctx: RouteContext): ProtoObject {
  const action: ProtoObject = { cluster: outboundClusterName(port, service.hostname) };
  applyTimeout(action, undefined, ctx.flavor);
  const hash = ctx.consistentHash(service, undefined, port);
  const policy = hashPolicy(hash);
  if (policy) action.hash_policy = [policy];
  const retries = retryPolicy(undefined, hash !== undefined);
  if (retries) action.retry_policy = retries;
  return { name: 'default', match: translateRouteMatch(undefined), route: action };
}
