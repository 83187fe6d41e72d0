// The mesh-agent as one object: its dependencies as one bundle (config, xDS, tunnel pool and server,
// outbound and inbound listeners, redirection, admin and readiness ports), started in order and drained in reverse.
import type { Logger } from '../lib/log';
import { TypeUrl } from '../lib/xds/protos';
import { createAgentAdmin, createReadinessServer, type AgentHttpServer, type AgentReadiness, type AgentStats, type AppliedConfig, type HttpAddress } from './admin/agent-admin';
import type { AgentConfig } from './config/agent-config';
import { JwksCache } from './policy/jwks-cache';
import { InboundPolicy } from './policy/inbound-policy';
import { Inbound, InboundTable } from './proxy/inbound';
import { Outbound } from './proxy/outbound';
import { compileRouteConfiguration } from './routing/route-table';
import { OutboundTable, TUNNEL_PORT } from './proxy/outbound-table';
import { createCommandRunner } from './redirect/command-runner';
import type { RedirectBackend } from './redirect/redirect-backend';
import { createRedirectPlan, describeRedirectPlan } from './redirect/redirect-plan';
import { ClusterGuards, clusterResilience, type DecodedGuardedCluster } from './resilience/cluster-guard';
import { selectBackend } from './redirect/select-backend';
import type { AgentIdentity } from './identity/agent-identity';
import { WorkloadResolver } from './identity/workload-resolver';
import { TunnelPool } from './tunnel/tunnel-pool';
import { TunnelServer } from './tunnel/tunnel-server';
import { AgentXds, type AgentXdsConfig, type ResourceMap } from './xds/agent-xds';

export interface MeshAgentOptions {
  config: AgentConfig;
  logger: Logger;
  /** Install the redirection rules once the first config is in, remove them on a clean stop. */
  redirect: boolean;
  /** The uid whose connections are never captured; default this process's. */
  agentUid?: number;
  tunnelPort?: number;
  /** Certificates from the CA (agent.yaml `tls`): mTLS to mesh-server and between agents; absent, plaintext. */
  identity?: AgentIdentity;
}

/**
 * NACKs clusters whose load-balancing policy, circuit breakers, outlier detection or connection
 * settings the agent cannot honour, naming the cluster and field; likewise route configurations and
 * the virtualInbound listener's security filters.
 */
export function validateResources(typeUrl: string, resources: ResourceMap): string | undefined {
  if (typeUrl === TypeUrl.Listener) return inboundPolicyProblem(resources);
  if (typeUrl === TypeUrl.RouteConfiguration) return routeConfigurationProblem(resources);
  if (typeUrl !== TypeUrl.Cluster) return undefined;
  for (const cluster of resources.values()) {
    if ((cluster as { type?: string }).type !== 'EDS') continue;
    try {
      clusterResilience(cluster as DecodedGuardedCluster);
    } catch (error) {
      return (error as Error).message;
    }
  }
  return undefined;
}

/** NACKs a route configuration the HTTP path cannot honour, with the RouteConfigError naming the field. */
function routeConfigurationProblem(resources: ResourceMap): string | undefined {
  for (const [name, config] of resources) {
    try {
      compileRouteConfiguration(config as Record<string, unknown>);
    } catch (error) {
      return `route configuration ${name}: ${(error as Error).message}`;
    }
  }
  return undefined;
}

const VIRTUAL_INBOUND = 'virtualInbound';

/** NACKs a virtualInbound whose security filters (RBAC, jwt_authn) the agent cannot enforce, naming the field. */
function inboundPolicyProblem(resources: ResourceMap): string | undefined {
  try {
    // Compiling fetches nothing: remote key sets are fetched on a request's first use.
    InboundPolicy.fromListener(resources.get(VIRTUAL_INBOUND), new JwksCache());
  } catch (error) {
    return `listener ${VIRTUAL_INBOUND}: ${(error as Error).message}`;
  }
  return undefined;
}

/** agent.yaml's `region/zone/subzone` as the xDS Node's locality, so the server can order failover from it. */
function nodeLocality(locality: string | undefined): { locality?: { region: string; zone: string; sub_zone: string } } {
  if (!locality) return {};
  const [region = '', zone = '', subZone = ''] = locality.split('/');
  return { locality: { region, zone, sub_zone: subZone } };
}

export class MeshAgent {
  private readonly options: MeshAgentOptions;
  private readonly log: Logger;
  private readonly xds: AgentXds;
  private readonly pool: TunnelPool;
  private readonly tunnel: TunnelServer;
  private readonly outbound: Outbound;
  /** Which workload sent each outbound connection (by uid), for its tunnel identity and stats. */
  private readonly sources: WorkloadResolver;
  private readonly inbound: Inbound;
  private readonly configuredPorts: number[];
  private outboundTable: OutboundTable | undefined;
  /** Per-cluster circuit breakers and outlier detectors, kept across configs. */
  private readonly guards = new ClusterGuards();
  private inboundTable: InboundTable;
  /** The inbound security policy of the config in force, compiled once per config. */
  private inboundPolicy: InboundPolicy | undefined;
  /** Remote JWKS documents, kept across configs (Envoy caches them per provider URI). */
  private readonly jwks = new JwksCache();
  private backend: RedirectBackend | undefined;
  private readonly admin: AgentHttpServer;
  private readonly readinessServer: AgentHttpServer;
  private applied: AppliedConfig | undefined;
  private redirectState: AgentReadiness['redirect'];
  private redirectError: string | undefined;
  /** Where the admin API (`admin`) and the readiness probe (`readiness`) listen, once started. */
  readonly addresses: { admin?: HttpAddress; readiness?: HttpAddress } = {};
  /** Set by the first config: readiness (and the redirection) is reached once. */
  private becomingReady = false;
  private readyResolve!: () => void;
  private readyReject!: (error: Error) => void;
  /** Resolves once the first config is in force and, when asked for, the redirection is installed. */
  readonly ready: Promise<void>;
  private stopping: Promise<void> | undefined;

  constructor(options: MeshAgentOptions) {
    this.options = options;
    const config = options.config;
    this.log = options.logger.child({ agent: config.node });
    this.configuredPorts = config.workloads.flatMap((w) => Object.values(w.ports));
    this.inboundTable = new InboundTable(undefined, this.configuredPorts);
    this.ready = new Promise((resolve, reject) => {
      this.readyResolve = resolve;
      this.readyReject = reject;
    });
    this.ready.catch(() => undefined);
    this.xds = new AgentXds({
      server: config.server,
      node: { id: config.node, cluster: 'mesh-agent', metadata: { NAMESPACE: config.namespace }, ...nodeLocality(config.locality) },
      stateDir: config.stateDir,
      validate: validateResources,
      logger: this.log,
      credentials: options.identity?.channelCredentials(),
    });
    this.pool = new TunnelPool({ pingIntervalMs: 30_000, pingTimeoutMs: 10_000, mtls: options.identity?.poolMtls() });
    this.inbound = new Inbound({ table: () => this.inboundTable, policy: () => this.inboundPolicy, logger: this.log, tunnels: this.pool });
    this.tunnel = new TunnelServer({ resolveInbound: this.inbound.resolveInbound, mtls: options.identity?.serverMtls(config.trustDomain) });
    options.identity?.attach(this.pool, this.tunnel);
    this.sources = new WorkloadResolver({ config, logger: this.log });
    this.outbound = new Outbound({ table: () => this.outboundTable, pool: this.pool, logger: this.log, sources: this.sources });
    this.redirectState = options.redirect && config.redirect.enabled ? 'pending' : 'disabled';
    // The root logger, not this.log: POST /logging changes the level of every child that has none of its own.
    this.admin = createAgentAdmin({ logger: options.logger, config: () => this.applied, stats: () => this.counters() });
    this.readinessServer = createReadinessServer({ logger: this.log, readiness: () => this.readiness() });
  }

  /** Binds every listener, then subscribes; redirection follows the first config (see `ready`). */
  async start(): Promise<void> {
    const config = this.options.config;
    const tunnelPort = this.options.tunnelPort ?? TUNNEL_PORT;
    // First, so that a probe during start-up gets a 503 with the reason instead of a refused connection.
    this.addresses.readiness = await this.readinessServer.listen(config.readiness);
    this.addresses.admin = await this.admin.listen(config.admin);
    // Stored certificates first (static stability); what is missing is fetched, retried in the background.
    await this.options.identity?.start();
    await this.tunnel.listen(tunnelPort, '0.0.0.0');
    await this.outbound.listen(config.redirect.outboundPort, config.redirect.ipv6);
    await this.inbound.listen(config.redirect.inboundPort, config.redirect.ipv6);
    this.xds.on('config', (view) => this.apply(view));
    this.xds.on('nack', (nack) => this.log.warn({ type: nack.typeUrl, version: nack.version, message: nack.message }, 'xDS update rejected'));
    await this.xds.start();
  }

  stats(): { outbound: ReturnType<Outbound['stats']>; outboundHttp: ReturnType<Outbound['httpStats']>; inbound: Inbound['counters']; tunnelPool: ReturnType<TunnelPool['stats']> } {
    return { outbound: this.outbound.stats(), outboundHttp: this.outbound.httpStats(), inbound: { ...this.inbound.counters }, tunnelPool: this.pool.stats() };
  }

  /** The same counters as plain records: the admin API prints any group without knowing its fields. */
  private counters(): AgentStats {
    const { outbound, outboundHttp, inbound, tunnelPool } = this.stats();
    return { outbound: { ...outbound }, outboundHttp: { ...outboundHttp }, outboundBySourceWorkload: this.sources.stats(), inbound, tunnelPool: { ...tunnelPool }, ...this.guards.stats() };
  }

  /** Ready once a config (server or snapshot) is in force and the redirection, when enabled, is verified. */
  readiness(): AgentReadiness {
    const source = this.applied?.view.source;
    const base = { source, redirect: this.redirectState };
    if (this.stopping) return { ...base, ready: false, reason: 'mesh-agent is draining' };
    if (!this.applied) {
      const xdsError = this.xds.state().lastError;
      return { ...base, ready: false, reason: `no xDS config yet (neither from ${this.options.config.server} nor a snapshot)${xdsError ? `: ${xdsError}` : ''}` };
    }
    if (this.redirectState === 'pending') return { ...base, ready: false, reason: 'redirection rules are being installed' };
    if (this.redirectState === 'failed') return { ...base, ready: false, reason: `redirection failed: ${this.redirectError ?? 'unknown error'}` };
    return { ...base, ready: true };
  }

  /**
   * Removes the redirection first (new connections then bypass the agent instead of hitting a
   * closed port), stops accepting, lets connections finish for `graceMs`, then closes the rest.
   */
  stop(graceMs = 5000): Promise<void> {
    this.stopping ??= (async () => {
      this.readyReject(new Error('mesh-agent stopped before it was ready'));
      if (this.backend) {
        try {
          await this.backend.remove();
          this.log.info({ backend: this.backend.name }, 'redirection removed');
        } catch (error) {
          this.log.error({ err: error }, 'cannot remove the redirection rules');
        }
      }
      await Promise.all([this.outbound.drain(graceMs), this.inbound.drain(graceMs), this.tunnel.close(graceMs)]);
      await this.pool.close(graceMs);
      this.guards.close();
      await this.xds.close();
      this.options.identity?.stop();
      await Promise.all([this.admin.close(), this.readinessServer.close()]);
    })();
    return this.stopping;
  }

  private apply(view: AgentXdsConfig): void {
    const config = this.options.config;
    this.options.identity?.setView(view);
    this.outboundTable = new OutboundTable(view, { node: config.node, tunnelPort: this.options.tunnelPort, guards: this.guards });
    this.inboundTable = new InboundTable(view, this.configuredPorts);
    try {
      this.inboundPolicy = InboundPolicy.fromListener(view.listeners.get(VIRTUAL_INBOUND), this.jwks);
    } catch (error) {
      // Server configs are validated first; a stored snapshot from an older agent may not compile.
      // Its workloads are then closed to everyone rather than served without their policy.
      this.inboundPolicy = InboundPolicy.denyAll();
      this.log.error({ err: (error as Error).message }, 'inbound security policy cannot be enforced; inbound traffic refused');
    }
    this.applied = { view, appliedAt: new Date() };
    this.log.info({ source: view.source, versions: view.versions, listeners: view.listeners.size, clusters: view.clusters.size }, 'config applied');
    if (!this.becomingReady) {
      this.becomingReady = true;
      void this.becomeReady();
    }
  }

  private async becomeReady(): Promise<void> {
    const config = this.options.config;
    try {
      if (this.options.redirect && config.redirect.enabled) {
        const plan = createRedirectPlan({
          agentUid: this.options.agentUid ?? process.getuid?.() ?? 0,
          outboundPort: config.redirect.outboundPort,
          inboundPort: config.redirect.inboundPort,
          excludeOutboundPorts: config.redirect.excludeOutboundPorts,
          excludeOutboundCidrs: config.redirect.excludeOutboundCidrs,
          inboundPorts: config.redirect.inboundPorts,
          excludeInboundPorts: config.redirect.excludeInboundPorts,
          ipv6: config.redirect.ipv6,
        });
        const selected = await selectBackend(createCommandRunner({ timeoutMs: 30_000 }), config.redirect.backend);
        if (this.stopping) return;
        await selected.backend.install(plan);
        this.backend = selected.backend;
        this.log.info({ backend: selected.backend.name, reason: selected.reason, plan: describeRedirectPlan(plan) }, 'redirection installed');
        // Read the rules back: another tool rewriting the chains would leave the agent capturing nothing.
        const verified = await selected.backend.verify(plan);
        if (!verified.ok) {
          throw new Error(`the ${selected.backend.name} rules in force differ from the plan: missing [${verified.missing.join('; ')}], unexpected [${verified.unexpected.join('; ')}]`);
        }
        this.redirectState = 'verified';
      }
      this.log.info({ tunnel: this.options.tunnelPort ?? TUNNEL_PORT, outbound: config.redirect.outboundPort, inbound: config.redirect.inboundPort }, 'mesh-agent ready');
      this.readyResolve();
    } catch (error) {
      this.redirectState = 'failed';
      this.redirectError = (error as Error).message;
      this.log.error({ err: error }, 'cannot install the redirection rules');
      this.readyReject(error as Error);
    }
  }
}
