// The mesh-agent's identity as one bundle for MeshAgent: the IdentityManager built from agent.yaml's
// `tls`, the xDS channel credentials, the tunnel's mTLS on both ends, and the wiring that makes a
// new certificate or trust bundle reach new tunnel sessions without dropping open ones.
import { readFile } from 'node:fs/promises';
import { formatWorkloadId } from '../../lib/ca/spiffe';
import type { Logger } from '../../lib/log';
import type { AgentConfig } from '../config/agent-config';
import type { Destination } from '../tunnel/hbone-authority';
import type { TunnelPool, TunnelPoolMtls } from '../tunnel/tunnel-pool';
import type { TunnelServer, TunnelServerMtls } from '../tunnel/tunnel-server';
import type { TunnelCredentials } from '../tunnel/tunnel-credentials';
import type { AgentXdsConfig } from '../xds/agent-xds';
import { IdentityManager } from './identity-manager';
import { buildPeerIdentityIndex, type PeerIdentityIndex } from './peer-identities';

export type AgentTls = NonNullable<AgentConfig['tls']>;

export class AgentIdentity {
  readonly manager: IdentityManager;
  /** SPIFFE IDs of this host's workloads, in agent.yaml order. */
  readonly workloadIds: readonly string[];
  private peers: PeerIdentityIndex = new Map();
  private readonly credentials: TunnelCredentials;

  private constructor(config: AgentConfig, tls: AgentTls, bootstrapTrustPem: string, logger: Logger) {
    this.workloadIds = [...new Set(config.workloads.map((w) => {
      const id = formatWorkloadId({ trustDomain: config.trustDomain, namespace: config.namespace, serviceAccount: w.serviceAccount });
      if (!id.ok) throw new Error(`workload "${w.name}": no SPIFFE ID can be made of it: ${id.reason}`);
      return id.value;
    }))];
    this.manager = new IdentityManager({
      server: config.server,
      trustDomain: config.trustDomain,
      node: config.node,
      workloadIds: this.workloadIds,
      stateDir: config.stateDir,
      bootstrapTrustPem,
      serverSpiffeId: tls.serverIdentity ?? `spiffe://${config.trustDomain}/ns/istio-system/sa/mesh-server`,
      joinToken: () => readJoinToken(tls),
      ttlSeconds: tls.certificateTtlHours ? tls.certificateTtlHours * 3600 : 0,
      logger,
    });
    const manager = this.manager;
    this.credentials = {
      certificate: (id) => manager.certificate(id),
      trustBundlePem: () => manager.trustBundlePem(),
    };
  }

  /** Reads tls.caFile; a missing or empty file is a startup error naming it. */
  static async create(config: AgentConfig, logger: Logger): Promise<AgentIdentity | undefined> {
    const tls = config.tls;
    if (!tls) return undefined;
    let pem: string;
    try {
      pem = await readFile(tls.caFile, 'utf8');
    } catch (error) {
      throw new Error(`tls.caFile ${tls.caFile}: ${(error as Error).message}`);
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`tls.caFile ${tls.caFile}: no PEM certificate in it`);
    return new AgentIdentity(config, tls, pem, logger);
  }

  channelCredentials() {
    return this.manager.channelCredentials();
  }

  /**
   * The identity outbound streams present: the host's workload when it runs exactly one, else the
   * node's (until the sending process is attributed to a workload).
   */
  defaultSource(): string {
    return this.workloadIds.length === 1 ? this.workloadIds[0]! : this.manager.nodeId;
  }

  poolMtls(): TunnelPoolMtls {
    return {
      credentials: this.credentials,
      expectedIdentities: (destination: Destination) => this.peers.get(`${destination.address}:${destination.port}`),
      defaultSource: () => this.defaultSource(),
    };
  }

  serverMtls(trustDomain: string): TunnelServerMtls {
    return {
      credentials: this.credentials,
      identities: () => this.workloadIds,
      defaultIdentity: () => this.manager.nodeId,
      trustDomain,
    };
  }

  /** A certificate or bundle change retires pooled sessions gracefully and re-keys the tunnel port. */
  attach(pool: TunnelPool, server: TunnelServer): void {
    this.manager.on('certificate', (id) => {
      pool.rotate(id);
      server.refreshCredentials();
    });
    this.manager.on('bundle', () => {
      pool.rotate();
      server.refreshCredentials();
    });
  }

  /** Each applied xDS config tells which identities each endpoint's agent may prove. */
  setView(view: AgentXdsConfig): void {
    this.peers = buildPeerIdentityIndex(view.clusters, view.endpoints);
  }

  start(): Promise<void> {
    return this.manager.start();
  }

  stop(): void {
    this.manager.stop();
  }
}

async function readJoinToken(tls: AgentTls): Promise<string | undefined> {
  if (tls.joinToken) return tls.joinToken;
  if (!tls.joinTokenFile) return undefined;
  try {
    return (await readFile(tls.joinTokenFile, 'utf8')).trim() || undefined;
  } catch (error) {
    throw new Error(`tls.joinTokenFile ${tls.joinTokenFile}: ${(error as Error).message}`);
  }
}
