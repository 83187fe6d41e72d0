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
import { loadCaKeys, type CaKeys, type PluggedInCa } from './ca/ca-keys';
import { callerNode } from './ca/caller-node';
import { CertificateService } from './ca/certificate-service';
import { JoinTokens, loadOrCreateJoinSecret } from './ca/join-token';
import { ServingIdentity } from './ca/serving-identity';

export interface MeshServerOptions {
  logger: Logger;
  configDir: string;
  /** Consul catalog settings; omitted, the mesh is defined by files alone. */
  consul?: Omit<ConsulSourceOptions, 'logger'>;
  /** Plaintext xDS listen address `host:port` (port 0 picks one); development only, omitted = not served. */
  xdsAddress?: string;
  /** xDS and the CA over TLS (:15012), agents authenticated by their node certificates. */
  secure?: SecureXdsOptions;
  /** Admin HTTP listen address `host:port`. */
  adminAddress: string;
  debounceMs?: number;
  trustDomain?: string;
  rootNamespace?: string;
}

export interface SecureXdsOptions {
  /** `host:port` of the TLS port (port 0 picks one). */
  address: string;
  /** Where a generated root and the join-token secret are kept (0600). */
  caStateDir: string;
  /** An operator's CA instead of a generated root. */
  pluggedIn?: PluggedInCa;
  /** More roots to trust while rotating (see CaKeysOptions). */
  additionalRootFiles?: string[];
  /** URI SAN of the server's certificate; default spiffe://TRUST_DOMAIN/ns/ROOT_NAMESPACE/sa/mesh-server. */
  servingIdentity?: string;
  /** DNS names and IPs agents may dial the server by, put into its certificate. */
  servingDnsNames?: string[];
  servingIpAddresses?: string[];
  /** Lifetime of issued leaves when the CSR asks for none; default 24 h. */
  leafTtlMs?: number;
  maxLeafTtlMs?: number;
}

export interface MeshServerAddresses {
  /** Where xDS is served: the plaintext port when enabled, else the TLS port. */
  xds: { host: string; port: number };
  plaintextXds?: { host: string; port: number };
  secureXds?: { host: string; port: number };
  admin: AdminAddress;
}

export class MeshServer {
  readonly metrics = new ServerMetrics();
  private readonly logger: Logger;
  private readonly configDir: ConfigDirectory;
  private readonly consul?: ConsulSource;
  private readonly ads: AdsServer;
  private readonly grpcServer = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024 });
  /**
   * A server of its own so the CA is never reachable on the plaintext port. Channelz is off: nothing
   * serves it, and its per-call bookkeeping cost ~30 µs of each certificate issued (bench:ca).
   */
  private readonly secureGrpcServer = new grpc.Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024, 'grpc.enable_channelz': 0 });
  private caKeys?: CaKeys;
  private joinTokens?: JoinTokens;
  private servingIdentity?: ServingIdentity;
  certificateService?: CertificateService;
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
    if (options.secure) {
      const trustDomain = this.trustDomain();
      this.ads.bind(this.secureGrpcServer, (call, nodeId) => {
        const caller = callerNode(call, trustDomain);
        if (caller.kind === 'none') return { code: grpc.status.UNAUTHENTICATED, message: 'xDS on the TLS port needs a client certificate issued by this mesh (a node certificate); bootstrap with a join token first' };
        if (caller.kind === 'other') return { code: grpc.status.PERMISSION_DENIED, message: `the client certificate may not subscribe to xDS: ${caller.reason}` };
        if (caller.node !== nodeId) return { code: grpc.status.PERMISSION_DENIED, message: `the client certificate is node "${caller.node}"'s; it may not subscribe as node.id "${nodeId}"` };
        return undefined;
      });
    }
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
    if (!this.options.xdsAddress && !this.options.secure) throw new Error('mesh-server needs a plaintext xDS address, the TLS port, or both');
    const adminListen = parseListenAddress(this.options.adminAddress, 'admin address');
    const plaintextXds = this.options.xdsAddress
      ? await bindGrpc(this.grpcServer, this.options.xdsAddress, 'xDS address', grpc.ServerCredentials.createInsecure())
      : undefined;
    const secureXds = this.options.secure ? await this.startSecure(this.options.secure) : undefined;
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
    const show = (at?: { host: string; port: number }) => (at ? `${at.host}:${at.port}` : undefined);
    this.logger.info({ xds: show(plaintextXds), secureXds: show(secureXds), admin: admin.url, configDir: this.options.configDir, consul: this.consul ? this.options.consul!.address : undefined }, 'mesh-server serving');
    if (plaintextXds && plaintextXds.host !== '127.0.0.1' && plaintextXds.host !== '::1') {
      this.logger.warn({ xds: show(plaintextXds) }, 'xDS is served in plaintext; use it only on a trusted network');
    }
    return { xds: (plaintextXds ?? secureXds)!, plaintextXds, secureXds, admin };
  }

  /** Issues a join token for `node` (what `meshctl bootstrap` prints); needs the TLS port configured. */
  issueJoinToken(node: string, ttlMs?: number): string {
    if (!this.joinTokens) throw new Error('join tokens need the TLS port (secure xDS) configured');
    return this.joinTokens.issue(node, ttlMs ? { ttlMs } : {});
  }

  /** The roots agents trust, PEM; undefined without the TLS port. */
  trustBundlePem(): string | undefined {
    return this.caKeys?.trustBundle.pem;
  }

  private trustDomain(): string {
    return this.options.trustDomain ?? 'cluster.local';
  }

  private async startSecure(secure: SecureXdsOptions): Promise<{ host: string; port: number }> {
    const trustDomain = this.trustDomain();
    this.caKeys = await this.loadCaKeys(secure);
    this.logger.info({ origin: this.caKeys.origin, root: this.caKeys.root.subject, roots: this.caKeys.trustBundle.roots.length }, 'CA ready');
    this.joinTokens = new JoinTokens(await loadOrCreateJoinSecret(secure.caStateDir));
    this.certificateService = new CertificateService({
      trustDomain,
      keys: () => this.caKeys!,
      tokens: this.joinTokens,
      model: () => this.model,
      logger: this.logger.child({ component: 'ca' }),
      defaultTtlMs: secure.leafTtlMs,
      maxTtlMs: secure.maxLeafTtlMs,
    });
    this.certificateService.bind(this.secureGrpcServer);
    const listen = parseListenAddress(secure.address, 'secure xDS address');
    this.servingIdentity = new ServingIdentity({
      keys: () => this.caKeys!,
      names: {
        spiffeId: secure.servingIdentity ?? `spiffe://${trustDomain}/ns/${this.options.rootNamespace ?? 'istio-system'}/sa/mesh-server`,
        dnsNames: secure.servingDnsNames ?? ['localhost'],
        ipAddresses: secure.servingIpAddresses ?? (listen.host === '0.0.0.0' || listen.host === '::' ? ['127.0.0.1'] : [listen.host]),
      },
      ttlMs: secure.leafTtlMs,
      logger: this.logger.child({ component: 'ca' }),
    });
    this.servingIdentity.renew();
    // Clients without a valid certificate still get through the handshake (the join-token path); the
    // CA service and the ADS authorizer then see no verified certificate and refuse what needs one.
    const source = this.servingIdentity.source;
    const credentials = grpc.experimental.createCertificateProviderServerCredentials(source, source, false);
    return bindGrpc(this.secureGrpcServer, secure.address, 'secure xDS address', credentials);
  }

  private loadCaKeys(secure: SecureXdsOptions): Promise<CaKeys> {
    return loadCaKeys({ trustDomain: this.trustDomain(), stateDir: secure.caStateDir, pluggedIn: secure.pluggedIn, additionalRootFiles: secure.additionalRootFiles });
  }

  /**
   * Re-reads the CA material (root rotation: a new root in the additional roots, then a new signing CA,
   * then the old root dropped). New leaves and the server's own certificate carry the new bundle.
   */
  async reloadCa(): Promise<void> {
    if (!this.options.secure || !this.caKeys) return;
    const keys = await this.loadCaKeys(this.options.secure);
    const changed = keys.trustBundle.pem !== this.caKeys.trustBundle.pem || keys.signingCertificate.serialNumber !== this.caKeys.signingCertificate.serialNumber;
    this.caKeys = keys;
    if (changed) {
      this.logger.info({ root: keys.root.subject, roots: keys.trustBundle.roots.length }, 'CA material changed');
      this.servingIdentity!.renew();
    }
  }

  /** Re-reads every config file (SIGHUP, POST /debug/reload). */
  async reload(): Promise<void> {
    await this.reloadCa();
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
    this.servingIdentity?.stop();
    await Promise.all([this.grpcServer, this.secureGrpcServer].map((server) => new Promise<void>((resolve) => {
      const force = setTimeout(() => { server.forceShutdown(); resolve(); }, 5000);
      server.tryShutdown(() => { clearTimeout(force); resolve(); });
    })));
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
      trustDomain: this.trustDomain(),
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
    // Until Consul's first full view is in, a model lacks its services: serving it would make every
    // agent that (re)connects drop its clusters and endpoints, then get them back a moment later,
    // each time a full push to the whole fleet. Clients wait for their first response instead, as
    // Istio's proxies wait for istiod's caches to sync; agents keep serving their persisted config.
    if (this.consul && !this.consul.status().ready) return;
    this.ads.setModel(model);
  }
}

function bindGrpc(server: grpc.Server, address: string, what: string, credentials: grpc.ServerCredentials): Promise<{ host: string; port: number }> {
  const listen = parseListenAddress(address, what);
  const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host}:${listen.port}`, credentials, (error, port) =>
      error ? reject(new Error(`${what} ${address}: ${error.message}`)) : resolve({ host: listen.host, port }));
  });
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
