// The inbound side: which destinations are this host's workloads (from virtualInbound and the
// agent's own workload list), the tunnel's resolveInbound over them, and the plain :15006 listener.
import * as net from 'node:net';
import * as os from 'node:os';
import type { Logger } from '../../lib/log';
import { originalDestination } from '../redirect/original-destination';
import type { Destination } from '../tunnel/hbone-authority';
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
  logger: Logger;
  connectTimeoutMs?: number;
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
  readonly counters = { tunnelAllowed: 0, tunnelRefused: 0, plain: 0, plainRefused: 0 };

  constructor(inputs: InboundInputs) {
    this.inputs = inputs;
    this.log = inputs.logger.child({ component: 'inbound' });
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
    if (choice.allowed) {
      this.counters.tunnelAllowed++;
      this.log.info({ peer: source.peerAddress, destination: `${destination.address}:${destination.port}` }, 'inbound tunnel stream');
      return { host: choice.host, port: choice.port };
    }
    this.counters.tunnelRefused++;
    this.log.warn({ peer: source.peerAddress, destination: `${destination.address}:${destination.port}`, reason: choice.reason }, 'inbound tunnel stream refused');
    return { reject: choice.status, reason: choice.reason };
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
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await drainSockets(this.clients, graceMs);
  }

  private accept(socket: net.Socket): void {
    socket.on('error', () => undefined);
    if (this.draining) {
      socket.destroy();
      return;
    }
    let destination: Destination;
    try {
      destination = originalDestination(socket);
    } catch (error) {
      this.log.warn({ client: socket.remoteAddress, err: (error as Error).message }, 'inbound connection without an original destination closed');
      socket.destroy();
      return;
    }
    const choice = this.choose(destination);
    if (!choice.allowed) {
      this.counters.plainRefused++;
      this.log.warn({ client: socket.remoteAddress, destination: `${destination.address}:${destination.port}`, reason: choice.reason }, 'plain inbound connection refused');
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
