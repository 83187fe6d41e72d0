// The inbound side: which destinations are this host's workloads (from virtualInbound and the
// agent's own workload list), the tunnel's resolveInbound over them, and the plain :15006 listener,
// each enforcing the workload port's security policy (mTLS mode, RBAC, and per request on HTTP ports).
import * as net from 'node:net';
import * as os from 'node:os';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../lib/log';
import type { HttpConnectionOptions } from '../http/http-connection';
import { InboundHttp, inboundSecurityCounters, type InboundHttpContext } from '../http/inbound-http';
import { sniffProtocol } from '../http/protocol-sniffer';
import { UpstreamPool } from '../http/upstream-pool';
import { JwksCache } from '../policy/jwks-cache';
import { InboundPolicy, type PortDecisions } from '../policy/inbound-policy';
import type { AuthorizationDecision } from '../policy/rbac';
import { originalDestination } from '../redirect/original-destination';
import type { Destination } from '../tunnel/hbone-authority';
import { TunnelPool } from '../tunnel/tunnel-pool';
import type { InboundDecision, SourceMetadata } from '../tunnel/tunnel-server';
import type { AgentXdsConfig } from '../xds/agent-xds';
import { relay } from './relay';
import { drainSockets } from './drain';

const VIRTUAL_INBOUND = 'virtualInbound';

type Loose = Record<string, unknown>;

function isRecord(value: unknown): value is Loose {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function records(value: unknown): Loose[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

/**
 * Local workload ports, compiled from one config: `address|port` for chains naming their workload's
 * address, and bare ports for workloads reachable on every local address.
 */
export class InboundTable {
  private readonly exact = new Set<string>();
  private readonly anyAddress = new Set<number>();

  constructor(config: AgentXdsConfig | undefined, configuredPorts: readonly number[]) {
    for (const port of configuredPorts) this.anyAddress.add(port);
    const listener = config?.listeners.get(VIRTUAL_INBOUND) as Loose | undefined;
    for (const chain of records(listener?.filter_chains)) {
      const match = isRecord(chain.filter_chain_match) ? chain.filter_chain_match : undefined;
      const portValue = isRecord(match?.destination_port) ? Number(match.destination_port.value) : NaN;
      // The passthrough chain has no port: it stands for "not a workload", which is not admitted.
      if (!Number.isInteger(portValue)) continue;
      const ranges = records(match?.prefix_ranges);
      if (ranges.length === 0) this.anyAddress.add(portValue);
      for (const range of ranges) if (typeof range.address_prefix === 'string') this.exact.add(`${range.address_prefix}|${portValue}`);
    }
  }

  isWorkload(address: string, port: number): boolean {
    return this.anyAddress.has(port) || this.exact.has(`${address}|${port}`);
  }
}

/** The addresses of this host's interfaces, IPv4-mapped forms unmapped. */
export function hostAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(os.networkInterfaces())) for (const entry of list ?? []) out.add(entry.address.replace(/%.*$/, ''));
  return out;
}

export interface InboundInputs {
  table(): InboundTable;
  /** The security policy in force; without one (no config yet), nothing is enforced beyond the table. */
  policy?(): InboundPolicy | undefined;
  logger: Logger;
  connectTimeoutMs?: number;
  /** Header deadline and idle timeout of inbound HTTP connections. */
  http?: HttpConnectionOptions;
  /** Only for the upstream pool's type: inbound targets are local TCP, the pool never opens a tunnel. */
  tunnels?: TunnelPool;
  /** Where a plain connection was going before redirection; SO_ORIGINAL_DST unless a test supplies it. */
  originalDestination?: (socket: net.Socket) => Destination;
}

/** Before any config: no chain, so every port is plain TCP with nothing enforced. */
const NO_POLICY = InboundPolicy.fromListener(undefined, new JwksCache());

/** Node reports IPv4 clients of a dual-stack listener as ::ffff:a.b.c.d; policies name a.b.c.d. */
function unmapped(address: string | undefined): string {
  if (address === undefined) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** What inbound does with one destination: a local workload port, or a refusal with the reason. */
export type InboundChoice = { readonly allowed: true; readonly host: string; readonly port: number } | { readonly allowed: false; readonly status: number; readonly reason: string };

export class Inbound {
  private readonly inputs: InboundInputs;
  private readonly log: Logger;
  private readonly clients = new Set<net.Socket>();
  private server: net.Server | undefined;
  private addresses = hostAddresses();
  private draining = false;
  private readonly upstreams: UpstreamPool;
  private readonly http: InboundHttp;
  readonly counters = { tunnelAllowed: 0, tunnelRefused: 0, plain: 0, plainRefused: 0, plaintext_refused: 0, ...inboundSecurityCounters() };

  constructor(inputs: InboundInputs) {
    this.inputs = inputs;
    this.log = inputs.logger.child({ component: 'inbound' });
    this.upstreams = new UpstreamPool({ tunnels: inputs.tunnels ?? new TunnelPool(), connectTimeoutMs: inputs.connectTimeoutMs });
    this.http = new InboundHttp({ policy: () => this.policy(), pool: this.upstreams, logger: inputs.logger, counters: this.counters, connection: inputs.http });
  }

  private policy(): InboundPolicy {
    return this.inputs.policy?.() ?? NO_POLICY;
  }

  /**
   * Network RBAC of a TCP port for one connection: counted when the port has RBAC, the dry-run
   * outcome reported. HTTP ports decide per request instead.
   */
  private authorizeConnection(decisions: PortDecisions, destination: Destination, principal: string | undefined, sourceIp: string): AuthorizationDecision | undefined {
    if (!decisions.port.rbac) return undefined;
    const decision = decisions.authorizeConnection({ sourcePrincipal: principal, sourceIp, destinationIp: destination.address, destinationPort: destination.port });
    if (decision.audit !== undefined) {
      this.log.info({ source: principal ?? sourceIp, destination: `${destination.address}:${destination.port}`, policy: decision.audit, allowed: decision.allowed }, 'connection audited');
    }
    if (decision.shadow && !decision.shadow.allowed) {
      this.counters.rbac_shadow_denied++;
      this.log.info({ source: principal ?? sourceIp, destination: `${destination.address}:${destination.port}`, policy: decision.shadow.policy }, 'connection would be denied by a dry-run policy');
    }
    if (decision.allowed) this.counters.rbac_allowed++;
    else this.counters.rbac_denied++;
    return decision;
  }

  /** Parses HTTP on an admitted connection or tunnel stream; each request is then decided on its own. */
  private serveHttp(socket: Duplex, destination: Destination, principal: string | undefined, sourceIp: string, upstreamHttp2: boolean): void {
    const context: InboundHttpContext = {
      address: destination.address,
      port: destination.port,
      sourcePrincipal: principal,
      sourceIp,
      target: { kind: 'tcp', address: destination.address, port: destination.port },
      upstreamHttp2,
    };
    // A declared HTTP port is HTTP whatever comes; the bytes only tell HTTP/1 from HTTP/2. A client
    // that sends nothing is bounded by the header deadline, here and then in the HTTP server.
    void sniffProtocol(socket as net.Socket, this.inputs.http?.headersTimeoutMs ?? 60_000).then((sniffed) => {
      if (socket.destroyed) return;
      this.http.serve(socket, sniffed === 'h2c' ? 'h2c' : 'http1', context);
    });
  }

  /**
   * A destination is served when it is one of this host's addresses and a workload port there.
   * The connection goes to that same address, where the workload listens (it may bind it alone).
   */
  choose(destination: Destination): InboundChoice {
    if (!this.addresses.has(destination.address)) {
      // Interfaces change rarely; a miss re-reads them once before refusing.
      this.addresses = hostAddresses();
      if (!this.addresses.has(destination.address)) {
        return { allowed: false, status: 403, reason: `${destination.address} is not an address of this host` };
      }
    }
    if (!this.inputs.table().isWorkload(destination.address, destination.port)) {
      return { allowed: false, status: 403, reason: `no local workload serves ${destination.address}:${destination.port}` };
    }
    return { allowed: true, host: destination.address, port: destination.port };
  }

  /** TunnelServer's resolveInbound: the same choice, logged with the peer that asked. */
  readonly resolveInbound = (destination: Destination, source: SourceMetadata): InboundDecision => {
    const choice = this.choose(destination);
    const where = `${destination.address}:${destination.port}`;
    if (!choice.allowed) {
      this.counters.tunnelRefused++;
      this.log.warn({ peer: source.peerAddress, principal: source.principal, destination: where, reason: choice.reason }, 'inbound tunnel stream refused');
      return { reject: choice.status, reason: choice.reason };
    }
    const policy = this.policy();
    const sourceIp = unmapped(source.peerAddress);
    const decisions = policy.at(destination.address, destination.port);
    const port = decisions.port;
    if (port.protocol === 'http') {
      this.counters.tunnelAllowed++;
      this.log.info({ peer: source.peerAddress, principal: source.principal, destination: where, protocol: 'http' }, 'inbound tunnel stream');
      return { serve: (stream) => this.serveHttp(stream, destination, source.principal, sourceIp, port.upstreamHttp2) };
    }
    const decision = this.authorizeConnection(decisions, destination, source.principal, sourceIp);
    if (decision && !decision.allowed) {
      this.counters.tunnelRefused++;
      const reason = decision.policy ? `RBAC: access denied by ${decision.policy}` : 'RBAC: access denied';
      this.log.warn({ peer: source.peerAddress, principal: source.principal, destination: where, reason }, 'inbound tunnel stream refused');
      return { reject: 403, reason };
    }
    this.counters.tunnelAllowed++;
    this.log.info({ peer: source.peerAddress, principal: source.principal, destination: where }, 'inbound tunnel stream');
    return { host: choice.host, port: choice.port };
  };

  /** The plain (PERMISSIVE) listener for PREROUTING-redirected connections; binds all addresses, as REDIRECT requires. */
  listen(port: number, ipv6: boolean): Promise<number> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => this.accept(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host: ipv6 ? '::' : '0.0.0.0' }, () => {
        server.off('error', reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    const server = this.server;
    // As in Outbound.drain: close() calls back only once every connection ended, so the grace
    // period runs alongside it rather than after it.
    const closed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    await drainSockets(this.clients, graceMs);
    await closed;
    this.http.close();
    this.upstreams.close();
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => undefined);
    if (this.draining) {
      socket.destroy();
      return;
    }
    let destination: Destination;
    try {
      destination = (this.inputs.originalDestination ?? originalDestination)(socket);
    } catch (error) {
      this.log.warn({ client: socket.remoteAddress, err: (error as Error).message }, 'inbound connection without an original destination closed');
      socket.destroy();
      return;
    }
    const choice = this.choose(destination);
    const where = `${destination.address}:${destination.port}`;
    if (!choice.allowed) {
      this.counters.plainRefused++;
      this.log.warn({ client: socket.remoteAddress, destination: where, reason: choice.reason }, 'plain inbound connection refused');
      socket.destroy();
      return;
    }
    const policy = this.policy();
    if (!policy.admitsPlaintext(destination.address, destination.port)) {
      this.counters.plainRefused++;
      this.counters.plaintext_refused++;
      const mode = policy.mtlsModeOf(destination.address, destination.port);
      this.log.warn({ client: socket.remoteAddress, destination: where, port: destination.port, mode }, `plaintext connection refused: port ${destination.port} is ${mode} (mTLS only)`);
      socket.destroy();
      return;
    }
    const sourceIp = unmapped(socket.remoteAddress);
    const decisions = policy.at(destination.address, destination.port);
    const port = decisions.port;
    if (port.protocol === 'http') {
      this.counters.plain++;
      this.clients.add(socket);
      socket.once('close', () => this.clients.delete(socket));
      this.log.info({ client: socket.remoteAddress, destination: where, protocol: 'http' }, 'plain inbound connection');
      this.serveHttp(socket, destination, undefined, sourceIp, port.upstreamHttp2);
      return;
    }
    const decision = this.authorizeConnection(decisions, destination, undefined, sourceIp);
    if (decision && !decision.allowed) {
      this.counters.plainRefused++;
      this.log.warn({ client: socket.remoteAddress, destination: where, reason: decision.policy ? `RBAC: access denied by ${decision.policy}` : 'RBAC: access denied' }, 'plain inbound connection refused');
      socket.destroy();
      return;
    }
    this.counters.plain++;
    this.clients.add(socket);
    socket.once('close', () => this.clients.delete(socket));
    const upstream = net.connect({ host: choice.host, port: choice.port, allowHalfOpen: true, noDelay: true });
    const timeout = this.inputs.connectTimeoutMs ?? 10_000;
    upstream.setTimeout(timeout, () => upstream.destroy(new Error(`connect timed out after ${timeout} ms`)));
    const onError = (error: Error): void => {
      this.log.warn({ client: socket.remoteAddress, destination: `${destination.address}:${destination.port}`, err: error.message }, 'plain inbound upstream failed');
      socket.resetAndDestroy();
    };
    upstream.once('error', onError);
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      upstream.off('error', onError);
      this.log.info({ client: socket.remoteAddress, destination: `${destination.address}:${destination.port}` }, 'plain inbound connection');
      void relay(socket, upstream);
    });
  }
}
