// The ResourceGenerator the ADS server calls: per model it builds an index once, per scope (the
// Sidecar-derived view many nodes share) it builds and encodes clusters, routes and listeners
// once, and per node it only selects; node-specific resources (inbound side, locality-aware
// load assignments) are cached by what they depend on.
import { createHash } from 'node:crypto';
import { resourceKey } from '../config/resource';
import { TypeUrl, type ResourceTypeUrl } from '../../lib/xds/protos';
import type { MeshModel } from '../model/mesh-model';
import type { Service } from '../registry/service';
import type { EncodedResource, ResourceGenerator, Subscription, XdsNode } from '../xds/generator';
import {
  buildBlackHoleCluster,
  buildInboundCluster,
  buildInboundPassthroughCluster,
  buildPassthroughCluster,
  buildServicePortClusters,
  outboundLoadAssignmentSpec,
  type ClientFlavor,
} from './clusters';
import { buildLoadAssignment, dependsOnClient, type LoadAssignmentSpec } from './endpoints';
import { encodeResource } from './hash';
import { buildOutboundPortListener, buildVirtualInboundListener, buildVirtualOutboundListener, inboundPorts, outboundPorts } from './listeners';
import { ModelIndex } from './model-index';
import { declaresProxylessGrpc, nodeIdentity, NodeMetadataKey, sourceMatchKey, type NodeIdentity } from './node-identity';
import { buildApiListener, resolveTarget } from './proxyless';
import { buildPortRouteConfiguration, buildTargetRouteConfiguration, servicesOnPort } from './route-configs';
import type { RouteContext } from './routes';
import { buildSidecarScope, scopeKey, type SidecarScope } from './sidecar-scope';
import { isPortRouteConfigName } from './names';
import type { DestinationRuleResource } from './specs';
import { consistentHashFor } from './traffic-policy';

interface ClusterSet {
  list: EncodedResource[];
  byName: Map<string, EncodedResource>;
}

/** Everything derived from one client context: a scope plus, where config needs them, labels. */
class ClientContextState {
  private readonly rules = new Map<Service, DestinationRuleResource | undefined>();
  readonly clusterSets = new Map<ClientFlavor, ClusterSet>();
  private edsSpecs?: Map<string, LoadAssignmentSpec>;
  private bindings?: string;

  constructor(
    readonly model: ModelState,
    readonly scope: SidecarScope,
    /** The identity that created the context; equal keys mean equal config-relevant identities. */
    readonly identity: NodeIdentity,
    /** Part of the context key that names the client's labels, when config selects by them. */
    private readonly labelKey: string,
  ) {}

  /**
   * A fingerprint of everything listeners and route configurations are built from: the visible
   * services and ports, the VirtualService and DestinationRule bound to each, the outbound policy
   * and (when they matter) the client's labels. Contexts of different namespaces or Sidecars that
   * end up with the same bindings share those resources.
   */
  bindingKey(): string {
    if (this.bindings !== undefined) return this.bindings;
    const hash = createHash('sha1');
    hash.update(`${this.scope.outboundPolicy}\u0000${this.labelKey}`);
    for (const { service, ports } of this.scope.services) {
      const vs = this.model.index.virtualServiceFor(service, this.scope.namespaces);
      hash.update(`\u0000${service.hostname}|${ports.map((p) => p.number).join(',')}|${vs ? resourceKey(vs) : ''}|${this.ruleKey(service)}`);
    }
    this.bindings = hash.digest('base64url');
    return this.bindings;
  }

  ruleFor(service: Service): DestinationRuleResource | undefined {
    if (this.rules.has(service)) return this.rules.get(service);
    const labels = this.identity.views.filter((v) => v.namespace === this.scope.configNamespace).map((v) => v.labels);
    const rule = this.model.index.destinationRuleFor(service, this.scope.configNamespace, this.scope.namespaces, labels);
    this.rules.set(service, rule);
    return rule;
  }

  routeContext(listenPort: number, flavor: ClientFlavor): RouteContext {
    return {
      listenPort,
      flavor,
      views: this.identity.views,
      resolve: (host) => this.model.index.service(host),
      // A destination outside the scope has no cluster on this node, so no hash policy either;
      // this also keeps route content a function of the binding key.
      consistentHash: (service, subset, port) =>
        this.scope.byName.has(service.hostname) ? consistentHashFor(this.ruleFor(service)?.spec, subset, port) : undefined,
    };
  }

  clusters(flavor: ClientFlavor): ClusterSet {
    let set = this.clusterSets.get(flavor);
    if (set) return set;
    const list: EncodedResource[] = [];
    for (const { service, ports } of this.scope.services) {
      const rule = this.ruleFor(service);
      for (const port of ports) list.push(...this.model.servicePortClusters(service, port, rule, flavor));
    }
    set = { list, byName: new Map(list.map((r) => [r.name, r])) };
    this.clusterSets.set(flavor, set);
    return set;
  }

  /** Load assignment inputs by cluster name, for every EDS cluster the scope can name. */
  loadAssignmentSpecs(): Map<string, LoadAssignmentSpec> {
    if (this.edsSpecs) return this.edsSpecs;
    const specs = new Map<string, LoadAssignmentSpec>();
    for (const { service, ports } of this.scope.services) {
      const rule = this.ruleFor(service);
      for (const port of ports) {
        for (const subset of [undefined, ...(rule?.spec.subsets ?? [])]) {
          const spec = outboundLoadAssignmentSpec({ service, port, rule, subset });
          if (spec) specs.set(spec.clusterName, spec);
        }
      }
    }
    this.edsSpecs = specs;
    return specs;
  }

  ruleKey(service: Service): string {
    const rule = this.ruleFor(service);
    return rule ? resourceKey(rule) : '';
  }
}

/** Per-model caches. Keys name everything a resource depends on besides the model itself. */
class ModelState {
  readonly index: ModelIndex;
  private readonly identities = new Map<string, NodeIdentity>();
  private readonly contexts = new Map<string, ClientContextState>();
  private readonly contextOf = new Map<NodeIdentity, ClientContextState>();
  private readonly scopes = new Map<string, SidecarScope>();
  private readonly servicePortClusterCache = new Map<string, EncodedResource[]>();
  private readonly loadAssignments = new Map<string, EncodedResource>();
  private readonly inboundClusters = new Map<string, EncodedResource>();
  private readonly inboundListeners = new Map<string, EncodedResource>();
  private readonly outboundCatchAll = new Map<string, EncodedResource>();
  private readonly apiListeners = new Map<string, EncodedResource>();
  /** Listeners and route configurations by binding key and name; null records "nothing to serve". */
  readonly boundResources = new Map<string, EncodedResource | null>();
  readonly staticClusters: readonly EncodedResource[];
  /** Config depends on the client's labels only when some route or rule selects by them. */
  private readonly labelSensitive: boolean;

  constructor(readonly model: MeshModel) {
    this.index = new ModelIndex(model);
    this.labelSensitive = this.index.usesSourceMatch || this.index.destinationRules.some((r) => r.spec.workloadSelector !== undefined);
    this.staticClusters = [buildPassthroughCluster(), buildBlackHoleCluster(), buildInboundPassthroughCluster()].map((c) =>
      encodeResource(TypeUrl.Cluster, c.name as string, c),
    );
  }

  identity(node: XdsNode): NodeIdentity {
    const key = `${node.id}\u0000${JSON.stringify(node.metadata[NodeMetadataKey.namespace] ?? null)}\u0000${JSON.stringify(node.metadata[NodeMetadataKey.labels] ?? null)}`;
    let identity = this.identities.get(key);
    if (!identity) this.identities.set(key, (identity = nodeIdentity(this.index, node)));
    return identity;
  }

  context(identity: NodeIdentity): ClientContextState {
    const known = this.contextOf.get(identity);
    if (known) return known;
    const scope = scopeKey(this.index, identity);
    const key = this.labelSensitive ? `${scope}\u0000${sourceMatchKey(identity)}` : scope;
    let context = this.contexts.get(key);
    if (context) {
      this.contextOf.set(identity, context);
      return context;
    }
    let sidecarScope = this.scopes.get(scope);
    if (!sidecarScope) this.scopes.set(scope, (sidecarScope = buildSidecarScope(this.index, identity, scope)));
    context = new ClientContextState(this, sidecarScope, identity, this.labelSensitive ? sourceMatchKey(identity) : '');
    this.contexts.set(key, context);
    this.contextOf.set(identity, context);
    return context;
  }

  /** The clusters of one service port under one rule, encoded once and shared by every scope. */
  servicePortClusters(service: Service, port: Service['ports'][number], rule: DestinationRuleResource | undefined, flavor: ClientFlavor): EncodedResource[] {
    const key = `${flavor}|${service.hostname}|${port.number}|${rule ? resourceKey(rule) : ''}`;
    let encoded = this.servicePortClusterCache.get(key);
    if (!encoded) {
      encoded = buildServicePortClusters({ service, port, rule, flavor, trustDomain: this.model.trustDomain }).map((b) =>
        encodeResource(TypeUrl.Cluster, b.name, b.cluster),
      );
      this.servicePortClusterCache.set(key, encoded);
    }
    return encoded;
  }

  loadAssignment(spec: LoadAssignmentSpec, ruleKey: string, identity: NodeIdentity): EncodedResource {
    const clientDependent = dependsOnClient(spec) && identity.locality !== undefined;
    const locality = identity.locality;
    const labels = identity.views[0]?.labels ?? {};
    const key = clientDependent
      ? `${spec.clusterName}|${ruleKey}|${locality!.region}/${locality!.zone}/${locality!.subzone}|${JSON.stringify(labels)}`
      : `${spec.clusterName}|${ruleKey}`;
    let encoded = this.loadAssignments.get(key);
    if (!encoded) {
      const cla = buildLoadAssignment(spec, clientDependent ? { locality: locality!, labels } : undefined);
      this.loadAssignments.set(key, (encoded = encodeResource(TypeUrl.ClusterLoadAssignment, spec.clusterName, cla)));
    }
    return encoded;
  }

  inboundCluster(port: number, protocol: Service['ports'][number]['protocol']): EncodedResource {
    const key = `${port}|${protocol}`;
    let encoded = this.inboundClusters.get(key);
    if (!encoded) {
      const cluster = buildInboundCluster(port, protocol);
      this.inboundClusters.set(key, (encoded = encodeResource(TypeUrl.Cluster, cluster.name as string, cluster)));
    }
    return encoded;
  }

  virtualInbound(identity: NodeIdentity): EncodedResource {
    const ports = inboundPorts(identity.workloads);
    const key = JSON.stringify(ports);
    let encoded = this.inboundListeners.get(key);
    if (!encoded) {
      const listener = buildVirtualInboundListener(ports);
      this.inboundListeners.set(key, (encoded = encodeResource(TypeUrl.Listener, listener.name as string, listener)));
    }
    return encoded;
  }

  virtualOutbound(policy: SidecarScope['outboundPolicy']): EncodedResource {
    let encoded = this.outboundCatchAll.get(policy);
    if (!encoded) {
      const listener = buildVirtualOutboundListener(policy);
      this.outboundCatchAll.set(policy, (encoded = encodeResource(TypeUrl.Listener, listener.name as string, listener)));
    }
    return encoded;
  }

  apiListener(name: string): EncodedResource {
    let encoded = this.apiListeners.get(name);
    if (!encoded) this.apiListeners.set(name, (encoded = encodeResource(TypeUrl.Listener, name, buildApiListener(name))));
    return encoded;
  }
}

function wanted(subscription: Subscription, name: string): boolean {
  return subscription.wildcard || subscription.names.has(name);
}

function collect(resources: Iterable<EncodedResource>, subscription: Subscription): Map<string, EncodedResource> {
  const out = new Map<string, EncodedResource>();
  for (const r of resources) if (!out.has(r.name) && wanted(subscription, r.name)) out.set(r.name, r);
  return out;
}

/**
 * Translates the mesh model into Envoy xDS v3 resources per node. Agents subscribe LDS and CDS
 * as wildcards and name RDS (`PORT`) and EDS (cluster names); proxyless gRPC clients name every
 * resource, starting from listeners named by their target (`greeter`, `greeter:50051`).
 */
export class MeshTranslator implements ResourceGenerator {
  private readonly states = new WeakMap<MeshModel, ModelState>();

  private state(model: MeshModel): ModelState {
    let state = this.states.get(model);
    if (!state) this.states.set(model, (state = new ModelState(model)));
    return state;
  }

  generate(model: MeshModel, node: XdsNode, typeUrl: ResourceTypeUrl, subscription: Subscription): Map<string, EncodedResource> {
    const state = this.state(model);
    const identity = state.identity(node);
    const context = state.context(identity);
    switch (typeUrl) {
      case TypeUrl.Listener:
        return this.listeners(state, context, identity, node, subscription);
      case TypeUrl.RouteConfiguration:
        return this.routeConfigurations(context, subscription);
      case TypeUrl.Cluster:
        return this.clusters(state, context, identity, node, subscription);
      case TypeUrl.ClusterLoadAssignment:
        return this.loadAssignments(state, context, identity, subscription);
      default:
        return new Map();
    }
  }

  private listeners(state: ModelState, context: ClientContextState, identity: NodeIdentity, node: XdsNode, subscription: Subscription): Map<string, EncodedResource> {
    // Named listener subscriptions come from gRPC clients: each name is a target authority.
    if (!subscription.wildcard || declaresProxylessGrpc(node)) {
      const out = new Map<string, EncodedResource>();
      const names = subscription.wildcard ? [] : [...subscription.names];
      for (const name of names) if (resolveTarget(context.scope, name)) out.set(name, state.apiListener(name));
      return out;
    }
    const resources: EncodedResource[] = [state.virtualOutbound(context.scope.outboundPolicy)];
    for (const port of outboundPorts(context.scope)) {
      const key = `${context.bindingKey()}|listener|${port}`;
      let encoded = state.boundResources.get(key);
      if (encoded === undefined) {
        const listener = buildOutboundPortListener(state.index, context.scope, port, context.routeContext(port, 'agent'));
        encoded = listener ? encodeResource(TypeUrl.Listener, listener.name as string, listener) : null;
        state.boundResources.set(key, encoded);
      }
      if (encoded) resources.push(encoded);
    }
    resources.push(state.virtualInbound(identity));
    return collect(resources, subscription);
  }

  private routeConfigurations(context: ClientContextState, subscription: Subscription): Map<string, EncodedResource> {
    const names = subscription.wildcard ? [] : [...subscription.names];
    const out = new Map<string, EncodedResource>();
    for (const name of names) {
      const key = `${context.bindingKey()}|routes|${name}`;
      let encoded = context.model.boundResources.get(key);
      if (encoded === undefined) {
        encoded = this.buildRouteConfiguration(context, name) ?? null;
        context.model.boundResources.set(key, encoded);
      }
      if (encoded) out.set(name, encoded);
    }
    return out;
  }

  private buildRouteConfiguration(context: ClientContextState, name: string): EncodedResource | undefined {
    const index = context.model.index;
    if (isPortRouteConfigName(name)) {
      const port = Number(name);
      if (servicesOnPort(context.scope, port).length === 0) return undefined;
      const config = buildPortRouteConfiguration(index, context.scope, port, context.routeContext(port, 'agent'));
      return encodeResource(TypeUrl.RouteConfiguration, name, config);
    }
    const target = resolveTarget(context.scope, name);
    if (!target) return undefined;
    const config = buildTargetRouteConfiguration(index, context.scope, name, target.service, target.port, context.routeContext(target.port.number, 'grpc'));
    return encodeResource(TypeUrl.RouteConfiguration, name, config);
  }

  private clusters(state: ModelState, context: ClientContextState, identity: NodeIdentity, node: XdsNode, subscription: Subscription): Map<string, EncodedResource> {
    if (!subscription.wildcard) {
      const { byName } = context.clusters('grpc');
      const out = new Map<string, EncodedResource>();
      for (const name of subscription.names) {
        const found = byName.get(name);
        if (found) out.set(name, found);
      }
      return out;
    }
    if (declaresProxylessGrpc(node)) return collect(context.clusters('grpc').list, subscription);
    const resources: EncodedResource[] = [...context.clusters('agent').list, ...state.staticClusters];
    for (const port of inboundPorts(identity.workloads)) resources.push(state.inboundCluster(port.targetPort, port.protocol));
    return collect(resources, subscription);
  }

  private loadAssignments(state: ModelState, context: ClientContextState, identity: NodeIdentity, subscription: Subscription): Map<string, EncodedResource> {
    const specs = context.loadAssignmentSpecs();
    const names = subscription.wildcard ? [...specs.keys()] : [...subscription.names];
    const out = new Map<string, EncodedResource>();
    for (const name of names) {
      const spec = specs.get(name);
      if (spec) out.set(name, state.loadAssignment(spec, context.ruleKey(spec.service), identity));
    }
    return out;
  }
}
