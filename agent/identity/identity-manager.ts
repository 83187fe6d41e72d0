// The agent's certificates: its node identity (join token once, then renewed over mTLS) and one
// certificate per local workload, loaded from disk at start, renewed at half-life ±10% jitter, with
// events when a certificate or the trust bundle changes (the tunnel and the xDS channel follow them).
import { EventEmitter } from 'node:events';
import { CertificateSource } from '../../lib/ca/certificate-source';
import { formatNodeId } from '../../lib/ca/spiffe';
import type { Logger } from '../../lib/log';
import { CaClient } from './ca-client';
import { IdentityStore, type StoredCertificate } from './identity-store';

export interface IdentityManagerOptions {
  /** mesh-server's TLS port, host:port. */
  server: string;
  trustDomain: string;
  node: string;
  /** SPIFFE IDs of the workloads this host runs. */
  workloadIds: readonly string[];
  stateDir: string;
  /** Roots that vouch for mesh-server before the agent has a bundle of its own (agent.yaml tls.caFile). */
  bootstrapTrustPem: string;
  serverSpiffeId: string;
  /** The join token, read when needed (no valid node certificate on disk). */
  joinToken: () => Promise<string | undefined>;
  /** Requested lifetime in seconds; 0 takes the server's default. */
  ttlSeconds?: number;
  logger: Logger;
  /** Retry delays after a failed request. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Uniform in [0, 1); replaced in tests to pin the jitter. */
  random?: () => number;
}

export interface IdentityManagerEvents {
  /** A new certificate for `spiffeId` is in force (new connections use it; open ones keep theirs). */
  certificate: [spiffeId: string, certificate: StoredCertificate];
  /** The set of trusted roots changed. */
  bundle: [trustBundlePem: string];
}

/** Renewal at half of the lifetime, spread by ±10% so a fleet issued together does not renew together. */
export const RENEW_AT_FRACTION = 0.5;
export const RENEW_JITTER = 0.1;

export function renewalDelayMs(cert: Pick<StoredCertificate, 'receivedAt' | 'notAfter'>, now: number, random: () => number): number {
  const lifetime = cert.notAfter.getTime() - cert.receivedAt.getTime();
  const at = cert.receivedAt.getTime() + lifetime * RENEW_AT_FRACTION * (1 + (random() * 2 - 1) * RENEW_JITTER);
  return Math.max(0, at - now);
}

interface IdentityState {
  readonly spiffeId: string;
  cert?: StoredCertificate;
  timer?: NodeJS.Timeout;
  failures: number;
  inFlight?: Promise<void>;
}

export class IdentityManager extends EventEmitter<IdentityManagerEvents> {
  /** The node certificate and bundle as grpc-js reads them: the mTLS identity of xDS and CA calls. */
  readonly nodeSource = new CertificateSource();
  readonly nodeId: string;
  private readonly options: IdentityManagerOptions;
  private readonly log: Logger;
  private readonly store: IdentityStore;
  private readonly ca: CaClient;
  private readonly states = new Map<string, IdentityState>();
  private readonly random: () => number;
  private bundlePem: string | undefined;
  private stopped = false;
  readonly counters = { issued: 0, renewalFailures: 0, loadedFromDisk: 0 };

  constructor(options: IdentityManagerOptions) {
    super();
    this.options = options;
    this.log = options.logger.child({ component: 'identity' });
    const nodeId = formatNodeId(options.trustDomain, options.node);
    if (!nodeId.ok) throw new Error(`node "${options.node}" cannot be named in a SPIFFE ID: ${nodeId.reason}`);
    this.nodeId = nodeId.value;
    this.random = options.random ?? Math.random;
    this.store = new IdentityStore(options.stateDir);
    this.ca = new CaClient({ server: options.server, source: this.nodeSource, bootstrapTrustPem: options.bootstrapTrustPem, serverSpiffeId: options.serverSpiffeId });
    for (const id of [this.nodeId, ...options.workloadIds]) this.states.set(id, { spiffeId: id, failures: 0 });
  }

  /** mTLS credentials for channels to mesh-server (xDS): they follow the node certificate. */
  channelCredentials() {
    return this.ca.channelCredentials();
  }

  certificate(spiffeId: string): StoredCertificate | undefined {
    return this.states.get(spiffeId)?.cert;
  }

  trustBundlePem(): string | undefined {
    return this.bundlePem;
  }

  /**
   * Loads what is on disk, then fetches what is missing. Resolves once every identity has a valid
   * certificate; when the server cannot be reached, keeps retrying in the background and resolves
   * with whatever the disk had (an agent restarted while mesh-server is down serves on).
   */
  async start(): Promise<void> {
    for (const state of this.states.values()) {
      const { cert, problem } = await this.store.load(state.spiffeId);
      if (problem) this.log.warn({ identity: state.spiffeId, problem }, 'stored certificate not used');
      if (cert) {
        this.counters.loadedFromDisk++;
        this.install(state, cert);
      }
    }
    const node = this.states.get(this.nodeId)!;
    // The node certificate first: every other request is authenticated by it.
    await this.refresh(node, !node.cert);
    await Promise.all([...this.states.values()].filter((s) => s !== node).map((s) => this.refresh(s, !s.cert)));
  }

  stop(): void {
    this.stopped = true;
    for (const state of this.states.values()) if (state.timer) clearTimeout(state.timer);
    this.ca.close();
  }

  /** Renews `spiffeId` now (tests, and an operator forcing rotation). */
  renewNow(spiffeId: string): Promise<void> {
    const state = this.states.get(spiffeId);
    if (!state) return Promise.reject(new Error(`${spiffeId} is not an identity of this agent`));
    return this.refresh(state, true);
  }

  private refresh(state: IdentityState, now: boolean): Promise<void> {
    if (!now && state.cert) {
      this.schedule(state, renewalDelayMs(state.cert, Date.now(), this.random));
      return Promise.resolve();
    }
    state.inFlight ??= this.fetch(state).finally(() => { state.inFlight = undefined; });
    return state.inFlight;
  }

  private async fetch(state: IdentityState): Promise<void> {
    if (this.stopped) return;
    try {
      const cert = await this.request(state);
      state.failures = 0;
      this.counters.issued++;
      await this.store.save(cert);
      this.install(state, cert);
      this.log.info({ identity: state.spiffeId, notAfter: cert.notAfter.toISOString() }, 'certificate issued');
    } catch (error) {
      state.failures++;
      this.counters.renewalFailures++;
      const initial = this.options.retryInitialMs ?? 1000;
      const delay = Math.min(this.options.retryMaxMs ?? 30_000, initial * 2 ** Math.min(state.failures - 1, 16)) * (0.8 + 0.4 * this.random());
      this.log.warn({ identity: state.spiffeId, err: error, retryMs: Math.round(delay), valid: state.cert ? `until ${state.cert.notAfter.toISOString()}` : 'no certificate' }, 'certificate request failed');
      this.schedule(state, delay);
    }
  }

  private async request(state: IdentityState): Promise<StoredCertificate> {
    const ttl = this.options.ttlSeconds ?? 0;
    const node = this.states.get(this.nodeId)!;
    const nodeValid = node.cert !== undefined && node.cert.notAfter.getTime() > Date.now();
    let issued;
    if (nodeValid) {
      issued = await this.ca.issue(state.spiffeId, ttl);
    } else if (state === node) {
      const token = await this.options.joinToken();
      if (!token) throw new Error(`no valid node certificate in ${this.options.stateDir} and no join token configured (agent.yaml tls.joinToken or tls.joinTokenFile); issue one with meshctl bootstrap --node ${this.options.node}`);
      issued = await this.ca.bootstrap(state.spiffeId, token, ttl);
    } else {
      throw new Error(`no valid node certificate yet to ask for ${state.spiffeId} with`);
    }
    return { ...issued, receivedAt: new Date() };
  }

  private install(state: IdentityState, cert: StoredCertificate): void {
    state.cert = cert;
    if (cert.trustBundlePem !== this.bundlePem) {
      const first = this.bundlePem === undefined;
      this.bundlePem = cert.trustBundlePem;
      if (!first) this.log.info('trust bundle changed');
      this.emit('bundle', cert.trustBundlePem);
    }
    if (state.spiffeId === this.nodeId) {
      this.nodeSource.update({ certificateChainPem: cert.certificateChainPem, privateKeyPem: cert.privateKeyPem, trustBundlePem: this.bundlePem! });
      // Workloads that waited for a node certificate (first start with the server down) need not
      // wait out their retry back-off.
      for (const other of this.states.values()) {
        if (other !== state && !other.cert && !other.inFlight) void this.refresh(other, true);
      }
    } else {
      const node = this.states.get(this.nodeId)!.cert;
      // The xDS channel must trust a root the server moved to, even before the node certificate renews.
      if (node && this.nodeSource.current()?.trustBundlePem !== this.bundlePem) {
        this.nodeSource.update({ certificateChainPem: node.certificateChainPem, privateKeyPem: node.privateKeyPem, trustBundlePem: this.bundlePem! });
      }
    }
    this.emit('certificate', state.spiffeId, cert);
    this.schedule(state, renewalDelayMs(cert, Date.now(), this.random));
  }

  private schedule(state: IdentityState, delayMs: number): void {
    if (this.stopped) return;
    if (state.timer) clearTimeout(state.timer);
    state.timer = setTimeout(() => {
      state.timer = undefined;
      void this.refresh(state, true);
    }, Math.min(delayMs, 2 ** 31 - 1));
    state.timer.unref();
  }
}
