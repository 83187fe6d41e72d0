// The ResourceGenerator the ADS server calls: per model it builds an index once, per scope (the
// Sidecar-derived view many nodes share) it selects clusters, routes and listeners, and per node
// it only selects. Encoded resources outlive the model: they are cached by content fingerprints
// of what they are built from, so a change re-encodes only the resources it reaches.
import { createHash } from 'node:crypto';
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
import { serviceFingerprints, registryShape, resourceFingerprint } from './fingerprints';
import { GenerationCache } from './generation-cache';
import { encodeResource } from './hash';
import { buildOutboundPortListener, buildVirtualInboundListener, buildVirtualOutboundListener, inboundPorts, outboundPorts, portKind, type InboundPort } from './listeners';
import { ModelIndex } from './model-index';
import { SecurityPolicies, type InboundSecurity } from './inbound-security';
import { isHttpProtocol } from '../registry/service';
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
  private readonly portKeys = new Map<string, string>();
  /** Load assignments that do not depend on the client, by cluster name: most nodes ask for all. */
  private readonly sharedLoadAssignments = new Map<string, EncodedResource>();
  private rulesFingerprint?: string;
  /**
   * Whole results by what they depend on beyond this context, so that the nodes of a fleet that
   * share a context get the same Map object: the ADS server then hashes and encodes it once.
   * Listeners by the inbound key, agent clusters by their inbound clusters; routes and load assignments by subscription
   * (the ADS server shares one object per distinct name list) and, for EDS, the client key.
   */
  readonly agentListenerResults = new Map<string, Map<string, EncodedResource>>();
  agentOutboundListeners?: readonly EncodedResource[];
  readonly agentClusterResults = new Map<string, Map<string, EncodedResource>>();
  readonly routeResults = new WeakMap<Subscription, Map<string, EncodedResource>>();
  readonly loadAssignmentResults = new WeakMap<Subscription, Map<string, Map<string, EncodedResource>>>();

  constructor(
    readonly model: ModelState,
    readonly scope: SidecarScope,
    /** The identity that created the context; equal keys mean equal config-relevant identities. */
    readonly identity: NodeIdentity,
    /** Part of the context key that names the client's labels, when config selects by them. */
    private readonly labelKey: string,
  ) {}

  /**
   * A fingerprint of everything the listener (`listener`) or the route configurations of one
   * port are built from: the model-wide inputs, the outbound policy, (when they matter) the
   * client's labels, the content of every DestinationRule in scope (routes hash by the rule of
   * their destination), and per service on the port its content, ports and VirtualService.
   * Contexts of different namespaces or Sidecars that end up with equal inputs share resources,
   * across models too.
   */
  portKey(port: number, kind: 'listener' | 'routes'): string {
    const key = `${kind}|${port}`;
    let known = this.portKeys.get(key);
    if (known !== undefined) return known;
    const hash = createHash('sha1');
    hash.update(`${this.model.inputsKey}\u0000${this.scope.outboundPolicy}\u0000${this.labelKey}\u0000${this.rulesKey()}`);
    for (const { service, ports } of this.scope.services) {
      const servicePort = ports.find((p) => p.number === port);
      if (!servicePort) continue;
      const fingerprints = serviceFingerprints(service);
      // Only TCP/TLS and sniffed chains read endpoint IPs and VirtualServices; an HTTP port's
      // listener hands everything to RDS.
      const chains = kind === 'listener' && portKind(servicePort) !== 'http';
      const content = chains ? fingerprints.chains : fingerprints.shape;
      const vs = kind === 'routes' || chains ? resourceFingerprint(this.model.index.virtualServiceFor(service, this.scope.namespaces)) : '';
      hash.update(`\u0000${service.hostname}|${ports.map((p) => p.number).join(',')}|${content}|${vs}`);
    }
    known = hash.digest('base64url');
    this.portKeys.set(key, known);
    return known;
  }

  private rulesKey(): string {
    if (this.rulesFingerprint !== undefined) return this.rulesFingerprint;
    const hash = createHash('sha1');
    for (const { service } of this.scope.services) hash.update(`${service.hostname}|${this.ruleKey(service)}\u0000`);
    this.rulesFingerprint = hash.digest('base64url');
    return this.rulesFingerprint;
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

  /** The load assignment of an EDS cluster of the scope, for one client; undefined for other names. */
  loadAssignment(name: string, identity: NodeIdentity): EncodedResource | undefined {
    const shared = this.sharedLoadAssignments.get(name);
    if (shared) return shared;
    const spec = this.loadAssignmentSpecs().get(name);
    if (!spec) return undefined;
    const encoded = this.model.loadAssignment(spec, this.ruleKey(spec.service), identity);
    if (!dependsOnClient(spec)) this.sharedLoadAssignments.set(name, encoded);
    return encoded;
  }

  /** The content fingerprint of the rule this context applies to `service`; '' for none. */
  ruleKey(service: Service): string {
    return resourceFingerprint(this.ruleFor(service));
  }
}

/**
 * Encoded resources by content key, shared by every model the translator sees. Each key names
 * everything its resource is built from, so an entry is valid whatever model asks for it.
 */
class EncodedCaches {
  readonly servicePortClusters = new GenerationCache<EncodedResource[]>();
  readonly loadAssignments = new GenerationCache<EncodedResource>();
  readonly inboundClusters = new GenerationCache<EncodedResource>();
  readonly inboundListeners = new GenerationCache<EncodedResource>();
  readonly outboundCatchAll = new GenerationCache<EncodedResource>();
  readonly apiListeners = new GenerationCache<EncodedResource>();
  /** Listeners and route configurations by port key and name; null records "nothing to serve". */
  readonly boundResources = new GenerationCache<EncodedResource | null>();
  readonly staticClusters: readonly EncodedResource[] = [buildPassthroughCluster(), buildBlackHoleCluster(), buildInboundPassthroughCluster()].map((c) =>
    encodeResource(TypeUrl.Cluster, c.name as string, c),
  );

  /** Freshly built resources whose bytes equal an earlier one's, by type, name and hash. */
  private readonly interned = new GenerationCache<EncodedResource>();

  /**
   * Encodes, then hands back the earlier object when the bytes did not change: a key that also
   * covers inputs the resource does not read (an endpoint outside a subset) still yields the
   * same object, and the ADS server sees nothing to push.
   */
  encode(typeUrl: ResourceTypeUrl, name: string, message: object): EncodedResource {
    const fresh = encodeResource(typeUrl, name, message);
    return this.interned.get(`${typeUrl}|${name}|${fresh.hash}`, () => fresh);
  }

  advance(): void {
    for (const cache of [this.interned, this.servicePortClusters, this.loadAssignments, this.inboundClusters, this.inboundListeners, this.outboundCatchAll, this.apiListeners, this.boundResources]) {
      cache.advance();
    }
  }
}

/** Per-model lookups: the index, node identities and client contexts; encoded resources are shared. */
class ModelState {
  readonly index: ModelIndex;
  /** The model-wide inputs of routes and listeners: naming, and every service's shape. */
  readonly inputsKey: string;
  private readonly identities = new Map<string, NodeIdentity>();
  private readonly contexts = new Map<string, ClientContextState>();
  private readonly contextOf = new Map<NodeIdentity, ClientContextState>();
  private readonly scopes = new Map<string, SidecarScope>();
  private readonly inbound = new WeakMap<NodeIdentity, { ports: InboundPort[]; security: Map<InboundPort, InboundSecurity>; key: string }>();
  private readonly inboundPortLists = new WeakMap<NodeIdentity, InboundPort[]>();
  private readonly security: SecurityPolicies;
  /** Config depends on the client's labels only when some route or rule selects by them. */
  private readonly labelSensitive: boolean;

  constructor(
    readonly model: MeshModel,
    readonly encoded: EncodedCaches,
  ) {
    this.index = new ModelIndex(model);
    this.security = new SecurityPolicies(model);
    this.labelSensitive = this.index.usesSourceMatch || this.index.destinationRules.some((r) => r.spec.workloadSelector !== undefined);
    this.inputsKey = `${model.trustDomain}|${model.rootNamespace}|${registryShape(this.index.services)}`;
  }

  get staticClusters(): readonly EncodedResource[] {
    return this.encoded.staticClusters;
  }

  bound(key: string, build: () => EncodedResource | undefined): EncodedResource | null {
    return this.encoded.boundResources.get(key, () => build() ?? null);
  }

  identity(node: XdsNode): NodeIdentity {
    const key = `${node.id}\u0000${JSON.stringify(node.metadata[NodeMetadataKey.namespace] ?? null)}\u0000${JSON.stringify(node.metadata[NodeMetadataKey.labels] ?? null)}\u0000${JSON.stringify(node.locality ?? null)}`;
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
    const key = `${flavor}|${service.hostname}|${port.number}|${serviceFingerprints(service).cluster}|${resourceFingerprint(rule)}|${this.model.trustDomain}`;
    return this.encoded.servicePortClusters.get(key, () =>
      buildServicePortClusters({ service, port, rule, flavor, trustDomain: this.model.trustDomain }).map((b) => this.encoded.encode(TypeUrl.Cluster, b.name, b.cluster)),
    );
  }

  /** `ruleKey` is the content fingerprint of the DestinationRule the spec was derived under. */
  loadAssignment(spec: LoadAssignmentSpec, ruleKey: string, identity: NodeIdentity): EncodedResource {
    const clientDependent = dependsOnClient(spec) && identity.locality !== undefined;
    const locality = identity.locality;
    const labels = identity.views[0]?.labels ?? {};
    const inputs = `${spec.clusterName}|${serviceFingerprints(spec.service).full}|${ruleKey}`;
    const key = clientDependent ? `${inputs}|${locality!.region}/${locality!.zone}/${locality!.subzone}|${JSON.stringify(labels)}` : inputs;
    return this.encoded.loadAssignments.get(key, () => {
      const cla = buildLoadAssignment(spec, clientDependent ? { locality: locality!, labels } : undefined);
      return this.encoded.encode(TypeUrl.ClusterLoadAssignment, spec.clusterName, cla);
    });
  }

  inboundCluster(port: number, protocol: Service['ports'][number]['protocol']): EncodedResource {
    return this.encoded.inboundClusters.get(`${port}|${protocol}`, () => {
      const cluster = buildInboundCluster(port, protocol);
      return this.encoded.encode(TypeUrl.Cluster, cluster.name as string, cluster);
    });
  }

  virtualInbound(identity: NodeIdentity): EncodedResource {
    // The listener is a function of the node's workload ports and of the security each gets, so
    // nodes whose workloads and policies did not change keep their encoded listener across models.
    const { ports, security, key } = this.inboundPorts(identity);
    return this.encoded.inboundListeners.get(key, () => {
      const listener = buildVirtualInboundListener(ports, (port) => security.get(port)!);
      return this.encoded.encode(TypeUrl.Listener, listener.name as string, listener);
    });
  }

  /** The node's workload ports alone: what its inbound clusters need, without the security listeners need. */
  inboundPortList(identity: NodeIdentity): InboundPort[] {
    const known = this.inbound.get(identity);
    if (known) return known.ports;
    let ports = this.inboundPortLists.get(identity);
    if (!ports) this.inboundPortLists.set(identity, (ports = inboundPorts(identity.workloads)));
    return ports;
  }

  /** The node's workload ports with their security, and as a key what the inbound side is built from. */
  inboundPorts(identity: NodeIdentity): { ports: InboundPort[]; security: Map<InboundPort, InboundSecurity>; key: string } {
    let known = this.inbound.get(identity);
    if (!known) {
      const ports = this.inboundPortList(identity);
      const security = new Map(ports.map((port) => [port, this.security.forPort(port, port.targetPort, isHttpProtocol(port.protocol))]));
      const key = JSON.stringify(ports.map((port) => [port, security.get(port)]));
      this.inbound.set(identity, (known = { ports, security, key }));
    }
    return known;
  }

  virtualOutbound(policy: SidecarScope['outboundPolicy']): EncodedResource {
    return this.encoded.outboundCatchAll.get(policy, () => {
      const listener = buildVirtualOutboundListener(policy);
      return this.encoded.encode(TypeUrl.Listener, listener.name as string, listener);
    });
  }

  apiListener(name: string): EncodedResource {
    return this.encoded.apiListeners.get(name, () => this.encoded.encode(TypeUrl.Listener, name, buildApiListener(name)));
  }
}

/**
 * What of a node a load assignment may read beyond its context (ModelState.loadAssignment): its
 * locality and first workload's labels, and only when it states a locality.
 */
function loadAssignmentClientKey(identity: NodeIdentity): string {
  const locality = identity.locality;
  if (!locality) return '';
  return `${locality.region}/${locality.zone}/${locality.subzone}|${JSON.stringify(identity.views[0]?.labels ?? {})}`;
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
  private readonly encoded = new EncodedCaches();
  private latestVersion = -Infinity;

  private state(model: MeshModel): ModelState {
    let state = this.states.get(model);
    if (!state) {
      // A newer model starts a cache generation; a late request for an older one only reads.
      if (model.version > this.latestVersion) {
        this.latestVersion = model.version;
        this.encoded.advance();
      }
      this.states.set(model, (state = new ModelState(model, this.encoded)));
    }
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
        return this.loadAssignments(context, identity, subscription);
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
    const inboundKey = state.inboundPorts(identity).key;
    const known = context.agentListenerResults.get(inboundKey);
    if (known) return known;
    const resources = [...this.outboundListeners(state, context), state.virtualInbound(identity)];
    const result = collect(resources, subscription);
    context.agentListenerResults.set(inboundKey, result);
    return result;
  }

  /** The outbound side of an agent's listeners, once per context: every node of it has the same. */
  private outboundListeners(state: ModelState, context: ClientContextState): readonly EncodedResource[] {
    if (context.agentOutboundListeners) return context.agentOutboundListeners;
    const resources: EncodedResource[] = [state.virtualOutbound(context.scope.outboundPolicy)];
    for (const port of outboundPorts(context.scope)) {
      const encoded = state.bound(`${context.portKey(port, 'listener')}|listener|${port}`, () => {
        const listener = buildOutboundPortListener(state.index, context.scope, port, context.routeContext(port, 'agent'));
        return listener ? state.encoded.encode(TypeUrl.Listener, listener.name as string, listener) : undefined;
      });
      if (encoded) resources.push(encoded);
    }
    context.agentOutboundListeners = resources;
    return resources;
  }

  private routeConfigurations(context: ClientContextState, subscription: Subscription): Map<string, EncodedResource> {
    const known = context.routeResults.get(subscription);
    if (known) return known;
    const names = subscription.wildcard ? [] : [...subscription.names];
    const out = new Map<string, EncodedResource>();
    context.routeResults.set(subscription, out);
    for (const name of names) {
      // A port's configuration, or a gRPC target's, which routes one service port.
      const port = isPortRouteConfigName(name) ? Number(name) : resolveTarget(context.scope, name)?.port.number;
      if (port === undefined) continue;
      const encoded = context.model.bound(`${context.portKey(port, 'routes')}|routes|${name}`, () => this.buildRouteConfiguration(context, name));
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
      return context.model.encoded.encode(TypeUrl.RouteConfiguration, name, config);
    }
    const target = resolveTarget(context.scope, name);
    if (!target) return undefined;
    const config = buildTargetRouteConfiguration(index, context.scope, name, target.service, target.port, context.routeContext(target.port.number, 'grpc'));
    return context.model.encoded.encode(TypeUrl.RouteConfiguration, name, config);
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
    // Inbound clusters are a function of target port and protocol only: nodes running different
    // services on the same ports get the same cluster list.
    const inboundClusters = state.inboundPortList(identity).map((port) => state.inboundCluster(port.targetPort, port.protocol));
    const key = inboundClusters.map((cluster) => `${cluster.name}|${cluster.hash}`).join('\u0000');
    const known = context.agentClusterResults.get(key);
    if (known) return known;
    const result = collect([...context.clusters('agent').list, ...state.staticClusters, ...inboundClusters], subscription);
    context.agentClusterResults.set(key, result);
    return result;
  }

  private loadAssignments(context: ClientContextState, identity: NodeIdentity, subscription: Subscription): Map<string, EncodedResource> {
    let byClient = context.loadAssignmentResults.get(subscription);
    if (!byClient) context.loadAssignmentResults.set(subscription, (byClient = new Map()));
    const clientKey = loadAssignmentClientKey(identity);
    const known = byClient.get(clientKey);
    if (known) return known;
    const names = subscription.wildcard ? context.loadAssignmentSpecs().keys() : subscription.names;
    const out = new Map<string, EncodedResource>();
    for (const name of names) {
      const encoded = context.loadAssignment(name, identity);
      if (encoded) out.set(name, encoded);
    }
    byClient.set(clientKey, out);
    return out;
  }
}
