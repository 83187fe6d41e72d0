// mesh-server as one object: config directory and Consul sources feed one model, the translator
// turns it into per-node xDS, the ADS server pushes it, and the admin API shows all of it.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../lib/log';
import { parseListenAddress } from '../lib/listen-address';
import { createAdminServer, type AdminAddress, type AdminServer } from './admin/admin-server';
import { ServerMetrics } from './admin/server-metrics';
import { formatIssue, type ConfigIssue } from '../lib/config/issue';
import type { MeshModel } from './model/mesh-model';
import type { Service } from './registry/service';
import { ConfigDirectory } from './sources/config-dir';
import { ConsulSource, type ConsulSourceOptions } from './sources/consul-source';
import type { RegistrySource, SourceStatus } from './sources/source';
import { MeshTranslator } from './translate/mesh-translator';
import { AdsServer } from './xds/ads-server';

export interface MeshServerOptions {
  logger: Logger;
  configDir: string;
  /** Consul catalog settings; omitted, the mesh is defined by files alone. */
  consul?: Omit<ConsulSourceOptions, 'logger'>;
  /** Plaintext xDS listen address `host:port` (port 0 picks one). */
  xdsAddress: string;
  /** Admin HTTP listen address `host:port`. */
  adminAddress: string;
  debounceMs?: number;
  trustDomain?: string;
  rootNamespace?: string;
}

export interface MeshServerAddresses {
  xds: { host: string; port: number };
  admin: AdminAddress;
}

export class MeshServer {
  readonly metrics = new ServerMetrics();
  private readonly logger: Logger;
  private readonly configDir: ConfigDirectory;
  private readonly consul?: ConsulSource;
  private readonly ads: AdsServer;
  private readonly grpcServer = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
  private readonly admin: AdminServer;
  private model?: MeshModel;
  private modelVersion = 0;
  private started = false;

  constructor(private readonly options: MeshServerOptions) {
    this.logger = options.logger;
    this.configDir = new ConfigDirectory({ dir: options.configDir, logger: this.logger });
    if (options.consul) this.consul = new ConsulSource({ ...options.consul, logger: this.logger });
    this.ads = new AdsServer({
      generator: new MeshTranslator(),
      logger: this.logger.child({ component: 'ads' }),
      observer: this.metrics,
      debounceMs: options.debounceMs,
    });
    this.ads.bind(this.grpcServer);
    this.admin = createAdminServer({
      logger: this.logger,
      metrics: this.metrics,
      model: () => this.model,
      sources: () => this.sourceStatuses(),
      syncStatus: () => this.ads.syncStatus(),
      reload: () => this.reload(),
    });
  }

  /** Binds the ports and starts the sources; serving starts with whatever the sources have. */
  async start(): Promise<MeshServerAddresses> {
    if (this.started) throw new Error('mesh-server already started');
    this.started = true;
    const xdsListen = parseListenAddress(this.options.xdsAddress, 'xDS address');
    const adminListen = parseListenAddress(this.options.adminAddress, 'admin address');
    const xdsPort = await new Promise<number>((resolve, reject) => {
      const host = xdsListen.host.includes(':') ? `[${xdsListen.host}]` : xdsListen.host;
      this.grpcServer.bindAsync(`${host}:${xdsListen.port}`, grpc.ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(new Error(`xDS ${this.options.xdsAddress}: ${error.message}`)) : resolve(port));
    });
    const admin = await this.admin.listen(adminListen.host, adminListen.port);

    this.configDir.onChange(() => this.rebuild('config'));
    if (this.consul) {
      this.consul.onChange(() => {
        // The analysis must know Consul's hosts, or VirtualServices for them would warn.
        this.configDir.setExternalServices(this.consul!.services());
        this.rebuild('consul');
      });
    }
    await Promise.all([this.configDir.start(), this.consul?.start()]);
    this.rebuild('start');
    this.logger.info({ xds: `${xdsListen.host}:${xdsPort}`, admin: admin.url, configDir: this.options.configDir, consul: this.consul ? this.options.consul!.address : undefined }, 'mesh-server serving');
    if (xdsListen.host !== '127.0.0.1' && xdsListen.host !== '::1') {
      this.logger.warn({ xds: `${xdsListen.host}:${xdsPort}` }, 'xDS is served in plaintext; use it only on a trusted network');
    }
    return { xds: { host: xdsListen.host, port: xdsPort }, admin };
  }

  /** Re-reads every config file (SIGHUP, POST /debug/reload). */
  async reload(): Promise<void> {
    await this.configDir.reload();
    this.metrics.configReloaded();
    this.rebuild('reload');
  }

  currentModel(): MeshModel | undefined {
    return this.model;
  }

  syncStatus() {
    return this.ads.syncStatus();
  }

  adsStats() {
    return this.ads.stats();
  }

  /** Stops accepting, ends xDS streams cleanly (clients reconnect elsewhere), stops the sources. */
  async stop(): Promise<void> {
    this.ads.close();
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => { this.grpcServer.forceShutdown(); resolve(); }, 5000);
      this.grpcServer.tryShutdown(() => { clearTimeout(force); resolve(); });
    });
    await Promise.all([this.configDir.stop(), this.consul?.stop(), this.admin.close()]);
  }

  private sourceStatuses(): Record<string, SourceStatus> {
    const statuses: Record<string, SourceStatus> = { file: this.configDir.status() };
    if (this.consul) statuses.consul = this.consul.status();
    return statuses;
  }

  /** A new immutable model from the sources' current views; the ADS server debounces pushes. */
  private rebuild(cause: string): void {
    const snapshot = this.configDir.snapshot();
    const { services, issues } = mergeRegistries([snapshot.services, this.consul?.services() ?? []]);
    const model: MeshModel = {
      version: ++this.modelVersion,
      resources: snapshot.resources,
      services,
      issues: [...snapshot.issues, ...issues],
      rootNamespace: this.options.rootNamespace ?? 'istio-system',
      trustDomain: this.options.trustDomain ?? 'cluster.local',
    };
    const previousErrors = new Set(this.model?.issues.map(formatIssue));
    for (const issue of model.issues) {
      if (!previousErrors.has(formatIssue(issue))) {
        this.logger[issue.severity === 'error' ? 'error' : 'warn']({ issue }, formatIssue(issue));
      }
    }
    this.model = model;
    this.metrics.observeModel(model);
    this.logger.debug({ version: model.version, cause, services: services.size }, 'model rebuilt');
    this.ads.setModel(model);
  }
}

/**
 * One registry from several sources, keyed by hostname. Earlier sources win a clash (files are
 * listed before Consul: an operator's explicit ServiceEntry overrides what discovery found).
 */
export function mergeRegistries(sources: ReadonlyArray<readonly Service[]>): { services: Map<string, Service>; issues: ConfigIssue[] } {
  const services = new Map<string, Service>();
  const issues: ConfigIssue[] = [];
  for (const list of sources) {
    for (const service of list) {
      const existing = services.get(service.hostname);
      if (!existing) {
        services.set(service.hostname, service);
        continue;
      }
      issues.push({
        severity: 'warning',
        code: 'duplicate-service',
        path: '',
        message: `service ${service.hostname} is defined by ${existing.source} (namespace ${existing.namespace}) and by ${service.source} (namespace ${service.namespace}); using the ${existing.source} one`,
      });
    }
  }
  return { services, issues };
}
