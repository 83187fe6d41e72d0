// The mesh-agent's xDS subscription: LDS and CDS as wildcards, RDS and EDS for what those reference,
// a consistent view of all four for the data plane, persisted so a restart serves it at once.
//
// Static stability (DESIGN.md decision 7): start() first emits the last persisted view (source
// 'snapshot'), then connects; the first complete view from the server replaces it.
import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { silentLogger, type Logger } from '../../lib/log';
import { AdsClient, type AdsClientNode, type AdsNack, type AdsUpdate, type BackoffOptions, type DecodedResource } from '../../lib/xds/ads-client';
import { EncodedResourceMap } from '../../lib/xds/encoded-resource-map';
import { TYPE_SHORT_NAME, TypeUrl, unpackAny, type ResourceTypeUrl } from '../../lib/xds/protos';
import { SnapshotStore, type TypeSnapshot, type XdsSnapshot } from './snapshot-store';

export type ConfigSource = 'server' | 'snapshot';
export type ResourceMap = ReadonlyMap<string, DecodedResource>;

export interface AgentXdsConfig {
  listeners: ResourceMap;
  routes: ResourceMap;
  clusters: ResourceMap;
  endpoints: ResourceMap;
  versions: Partial<Record<'LDS' | 'RDS' | 'CDS' | 'EDS', string>>;
  source: ConfigSource;
}

export interface AgentXdsState {
  /** A view has been emitted: the data plane can serve. */
  haveConfig: boolean;
  source?: ConfigSource;
  connected: boolean;
  /** A NACK still in force, else a stream failure, else a persistence or snapshot problem; each clears when resolved. */
  lastError?: string;
}

/** Returns why the data plane cannot use these resources (NACK, the previous ones stay), or undefined. */
export type XdsValidator = (typeUrl: string, resources: ResourceMap) => string | undefined;

export interface AgentXdsOptions {
  /** host:port of the mesh-server's xDS port. */
  server: string;
  node: AdsClientNode;
  stateDir: string;
  validate?: XdsValidator;
  logger?: Logger;
  credentials?: grpc.ChannelCredentials;
  backoff?: BackoffOptions;
  /**
   * How long a view may wait for referenced routes or endpoints that have not arrived before it is
   * served without them (Envoy's initial_fetch_timeout plays the same role); default 5 s.
   */
  warmingTimeoutMs?: number;
}

export interface AgentXdsEvents {
  config: [config: AgentXdsConfig];
  nack: [nack: AdsNack];
  connected: [];
  disconnected: [status: grpc.StatusObject];
  /** The view with these versions is on disk. */
  persisted: [versions: AgentXdsConfig['versions']];
}

const TYPES: readonly ResourceTypeUrl[] = [TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment];
const HCM_TYPE_SUFFIX = '.HttpConnectionManager';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function records(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

/** RDS names referenced by HttpConnectionManager filters (`rds.route_config_name`) of the listeners. */
export function referencedRouteNames(listeners: ResourceMap): string[] {
  const names = new Set<string>();
  for (const listener of listeners.values()) {
    const chains = records(listener.filter_chains);
    if (isRecord(listener.default_filter_chain)) chains.push(listener.default_filter_chain);
    for (const chain of chains) {
      for (const filter of records(chain.filters)) {
        const config = filter.typed_config;
        if (!isRecord(config) || typeof config['@type'] !== 'string' || !config['@type'].endsWith(HCM_TYPE_SUFFIX)) continue;
        const name = isRecord(config.rds) ? config.rds.route_config_name : undefined;
        if (typeof name === 'string' && name !== '') names.add(name);
      }
    }
  }
  return [...names].sort();
}

/** EDS names of the EDS clusters: `eds_cluster_config.service_name`, or the cluster's name without one. */
export function referencedEndpointNames(clusters: ResourceMap): string[] {
  const names = new Set<string>();
  for (const [name, cluster] of clusters) {
    if (cluster.type !== 'EDS') continue;
    const eds = cluster.eds_cluster_config;
    const service = isRecord(eds) && typeof eds.service_name === 'string' && eds.service_name !== '' ? eds.service_name : name;
    names.add(service);
  }
  return [...names].sort();
}

function holdDecoded(maps: readonly ResourceMap[]): void {
  for (const map of maps) if (map instanceof EncodedResourceMap) map.holdDecoded();
}

function releaseDecoded(maps: readonly ResourceMap[]): void {
  for (const map of maps) if (map instanceof EncodedResourceMap) map.releaseDecoded();
}

function versionsOf(versions: Iterable<[string, string | undefined]>): AgentXdsConfig['versions'] {
  const out: AgentXdsConfig['versions'] = {};
  for (const [typeUrl, version] of versions) if (version !== undefined) out[TYPE_SHORT_NAME[typeUrl as ResourceTypeUrl]] = version;
  return out;
}

export class AgentXds extends EventEmitter<AgentXdsEvents> {
  private readonly options: AgentXdsOptions;
  private readonly log: Logger;
  private readonly store: SnapshotStore;
  private readonly warmingTimeoutMs: number;
  private server: string;
  private client?: AdsClient;
  private current?: AgentXdsConfig;
  private connected = false;
  /** Type URL to the message of its NACK, until a version of that type is accepted. */
  private readonly nacked = new Map<string, string>();
  private streamError?: string;
  private persistError?: string;
  private snapshotError?: string;
  private warmingTimer?: NodeJS.Timeout;
  private started = false;
  private closed = false;

  constructor(options: AgentXdsOptions) {
    super();
    this.options = options;
    this.server = options.server;
    this.log = (options.logger ?? silentLogger()).child({ component: 'xds' });
    this.store = new SnapshotStore({ stateDir: options.stateDir, logger: this.log });
    this.warmingTimeoutMs = options.warmingTimeoutMs ?? 5000;
  }

  /** Emits the persisted view (if any) before returning, then connects to the server. */
  async start(): Promise<void> {
    if (this.started) throw new Error('AgentXds already started');
    this.started = true;
    const snapshot = await this.store.load();
    if (this.closed) return;
    if (snapshot) {
      const view = this.viewFromSnapshot(snapshot);
      if (view) {
        const maps = [view.listeners, view.clusters, view.routes, view.endpoints];
        try {
          this.publish(view);
        } finally {
          releaseDecoded(maps);
        }
      }
    }
    this.connect();
  }

  /** Switches to another server address (a changed agent.yaml); the current view stays until the new server's replaces it. */
  setServer(server: string): void {
    if (server === this.server) return;
    this.server = server;
    if (!this.started || this.closed) return;
    this.disposeClient();
    this.connect();
  }

  /** The view last emitted. */
  config(): AgentXdsConfig | undefined {
    return this.current;
  }

  state(): AgentXdsState {
    const lastError = [...this.nacked.values()].at(-1) ?? this.streamError ?? this.persistError ?? this.snapshotError;
    return { haveConfig: this.current !== undefined, source: this.current?.source, connected: this.connected, lastError };
  }

  /** Stops the subscription and waits for a snapshot being written. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.disposeClient();
    await this.store.flush();
  }

  private connect(): void {
    const client = new AdsClient({
      target: this.server,
      node: this.options.node,
      credentials: this.options.credentials,
      logger: this.log,
      backoff: this.options.backoff,
      // The data plane compiles each view; decoded objects would otherwise stay alive next to it.
      retainDecoded: false,
      userAgent: 'mesh-agent',
      validate: this.options.validate,
    });
    this.client = client;
    client.on('connected', () => {
      this.connected = true;
      this.streamError = undefined;
      this.emit('connected');
    });
    client.on('disconnected', (status) => {
      this.connected = false;
      this.streamError = `xDS stream to ${this.server} ended: ${status.details || `code ${status.code}`}`;
      this.emit('disconnected', status);
    });
    client.on('nack', (nack) => {
      this.nacked.delete(nack.typeUrl);
      this.nacked.set(nack.typeUrl, `rejected ${TYPE_SHORT_NAME[nack.typeUrl as ResourceTypeUrl] ?? nack.typeUrl} version ${nack.version}: ${nack.message}`);
      this.emit('nack', nack);
    });
    client.on('update', (update) => this.onUpdate(client, update));
    client.subscribe(TypeUrl.Listener, '*');
    client.subscribe(TypeUrl.Cluster, '*');
  }

  private disposeClient(): void {
    if (this.warmingTimer) clearTimeout(this.warmingTimer);
    this.warmingTimer = undefined;
    this.client?.removeAllListeners();
    this.client?.close();
    this.client = undefined;
    this.connected = false;
    // NACKs were answers of the old server; the new one starts with a clean slate.
    this.nacked.clear();
  }

  private onUpdate(client: AdsClient, update: AdsUpdate): void {
    if (client !== this.client) return;
    this.nacked.delete(update.typeUrl);
    // RDS and EDS follow what the listeners and clusters reference. A first request with no names
    // would be a wildcard, so those types are subscribed only once something is referenced.
    if (update.typeUrl === TypeUrl.Listener) this.follow(client, TypeUrl.RouteConfiguration, referencedRouteNames(update.resources));
    else if (update.typeUrl === TypeUrl.Cluster) this.follow(client, TypeUrl.ClusterLoadAssignment, referencedEndpointNames(update.resources));
    this.offerServerView(client, false);
  }

  private follow(client: AdsClient, typeUrl: ResourceTypeUrl, names: string[]): void {
    if (names.length === 0 && client.version(typeUrl) === undefined && client.resources(typeUrl).size === 0) return;
    client.subscribe(typeUrl, names);
  }

  /** Emits the server's view once it is complete (or has waited long enough), and persists it. */
  private offerServerView(client: AdsClient, warmingExpired: boolean): void {
    if (client.version(TypeUrl.Listener) === undefined || client.version(TypeUrl.Cluster) === undefined) return;
    const listeners = client.resources(TypeUrl.Listener);
    const clusters = client.resources(TypeUrl.Cluster);
    const routes = client.resources(TypeUrl.RouteConfiguration);
    const endpoints = client.resources(TypeUrl.ClusterLoadAssignment);
    const maps = [listeners, clusters, routes, endpoints];
    // Each resource is decoded at most once while this view is checked and compiled, then let go.
    holdDecoded(maps);
    try {
      this.offerView(client, warmingExpired, { listeners, clusters, routes, endpoints });
    } finally {
      releaseDecoded(maps);
    }
  }

  private offerView(client: AdsClient, warmingExpired: boolean, { listeners, clusters, routes, endpoints }: Pick<AgentXdsConfig, 'listeners' | 'clusters' | 'routes' | 'endpoints'>): void {
    const missing = [
      ...referencedRouteNames(listeners).filter((name) => !routes.has(name)).map((name) => `RDS ${name}`),
      ...referencedEndpointNames(clusters).filter((name) => !endpoints.has(name)).map((name) => `EDS ${name}`),
    ];
    if (missing.length > 0 && !warmingExpired) {
      // Listeners arrive before the routes they name: serving them half-built would drop traffic.
      this.warmingTimer ??= setTimeout(() => {
        this.warmingTimer = undefined;
        if (client === this.client) this.offerServerView(client, true);
      }, this.warmingTimeoutMs);
      return;
    }
    if (missing.length > 0) this.log.warn({ missing }, 'serving xDS config without resources the server has not sent');
    if (this.warmingTimer) clearTimeout(this.warmingTimer);
    this.warmingTimer = undefined;
    const versions = versionsOf(TYPES.map((typeUrl) => [typeUrl, client.version(typeUrl)]));
    this.snapshotError = undefined;
    this.publish({ listeners, routes, clusters, endpoints, versions, source: 'server' });
    this.persist(client, versions);
  }

  private persist(client: AdsClient, versions: AgentXdsConfig['versions']): void {
    const snapshot = new Map<string, TypeSnapshot>();
    for (const typeUrl of TYPES) {
      const version = client.version(typeUrl);
      if (version !== undefined) snapshot.set(typeUrl, { version, resources: client.encodedResources(typeUrl) });
    }
    this.store.save(snapshot).then(
      () => {
        this.persistError = undefined;
        this.emit('persisted', versions);
      },
      (error: unknown) => {
        this.persistError = `cannot persist the xDS snapshot in ${this.store.dir}: ${(error as Error).message}`;
        this.log.error({ err: error }, 'cannot persist the xDS snapshot');
      },
    );
  }

  /** The persisted view, decoded and passed through the validator; undefined when it is unusable. */
  private viewFromSnapshot(snapshot: XdsSnapshot): AgentXdsConfig | undefined {
    const decoded = new Map<string, EncodedResourceMap>();
    for (const typeUrl of TYPES) {
      const encoded = snapshot.get(typeUrl)?.resources ?? new Map();
      const objects = new Map<string, DecodedResource>();
      for (const [name, any] of encoded) objects.set(name, unpackAny<DecodedResource>(any));
      // Decoded objects held until the view is published (start() releases them), like a server view's.
      const resources = new EncodedResourceMap(encoded, objects);
      // The data plane may have changed since the snapshot was taken (an upgrade): it must still accept it.
      const problem = snapshot.has(typeUrl) ? this.check(typeUrl, resources) : undefined;
      if (problem !== undefined) {
        this.snapshotError = `persisted ${TYPE_SHORT_NAME[typeUrl]} is no longer accepted: ${problem}`;
        this.log.error({ type: TYPE_SHORT_NAME[typeUrl], problem }, 'persisted xDS snapshot refused by the data plane; waiting for the server');
        return undefined;
      }
      decoded.set(typeUrl, resources);
    }
    const versions = versionsOf([...snapshot].map(([typeUrl, stored]) => [typeUrl, stored.version]));
    this.log.info({ versions }, 'serving the persisted xDS snapshot until the server answers');
    return {
      listeners: decoded.get(TypeUrl.Listener)!,
      routes: decoded.get(TypeUrl.RouteConfiguration)!,
      clusters: decoded.get(TypeUrl.Cluster)!,
      endpoints: decoded.get(TypeUrl.ClusterLoadAssignment)!,
      versions,
      source: 'snapshot',
    };
  }

  private check(typeUrl: string, resources: ResourceMap): string | undefined {
    try {
      return this.options.validate?.(typeUrl, resources);
    } catch (error) {
      return `validation failed: ${(error as Error).message}`;
    }
  }

  private publish(view: AgentXdsConfig): void {
    this.current = view;
    try {
      this.emit('config', view);
    } catch (error) {
      // A listener's bug must not stop the subscription (the ACK for this update is still to be sent).
      this.log.error({ err: error }, 'config listener threw');
    }
  }
}
