// The outbound listener (:15001): each redirected connection's original destination is decided
// against the current OutboundTable, then its bytes go through the tunnel, straight, or nowhere.
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../lib/log';
import type { PickContext } from '../balancing/load-balancer';
import { originalDestination, type OriginalDestination } from '../redirect/original-destination';
import type { TunnelPool } from '../tunnel/tunnel-pool';
import type { OutboundDecision, OutboundTable } from './outbound-table';
import { relay } from './relay';
import { drainSockets } from './drain';

export interface OutboundStats {
  accepted: number;
  tunnel: number;
  direct: number;
  passthrough: number;
  blackhole: number;
  failed: number;
  active: number;
}

export interface OutboundInputs {
  /** The table in force; read once per connection, so a new config applies to new connections only. */
  table(): OutboundTable | undefined;
  pool: TunnelPool;
  logger: Logger;
  /** Upstream connect timeout for direct and passthrough connections. */
  connectTimeoutMs?: number;
}

export class Outbound {
  private readonly servers: net.Server[] = [];
  private readonly clients = new Set<net.Socket>();
  private readonly inputs: OutboundInputs;
  private readonly log: Logger;
  /** One pick context for all connections: picks happen synchronously, so it is never shared concurrently. */
  private readonly pick: PickContext = { random: Math.random };
  private readonly counters: OutboundStats = { accepted: 0, tunnel: 0, direct: 0, passthrough: 0, blackhole: 0, failed: 0, active: 0 };
  private draining = false;

  constructor(inputs: OutboundInputs) {
    this.inputs = inputs;
    this.log = inputs.logger.child({ component: 'outbound' });
  }

  stats(): OutboundStats {
    return { ...this.counters };
  }

  /** Binds `0.0.0.0:port` and, when `ipv6`, `[::]:port` (v6 only, so the two do not collide). */
  async listen(port: number, ipv6: boolean): Promise<number> {
    const bound = await this.bind(port, '0.0.0.0', false);
    if (ipv6) await this.bind(bound, '::', true);
    return bound;
  }

  /** Stops accepting, lets open connections finish for up to `graceMs`, then resets what is left. */
  async drain(graceMs: number): Promise<void> {
    this.draining = true;
    await Promise.all(this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    await drainSockets(this.clients, graceMs);
  }

  private bind(port: number, host: string, ipv6Only: boolean): Promise<number> {
    // pauseOnConnect: nothing is read until the decision is taken and the upstream is ready.
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => this.accept(socket));
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host, ipv6Only }, () => {
        server.off('error', reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  private accept(socket: net.Socket): void {
    this.counters.accepted++;
    socket.on('error', () => undefined);
    if (this.draining) {
      socket.destroy();
      return;
    }
    let destination: OriginalDestination;
    try {
      destination = originalDestination(socket);
    } catch (error) {
      // Not redirected (someone connected to :15001 itself): proxying it would loop back here.
      this.counters.failed++;
      this.log.warn({ client: socket.remoteAddress, err: (error as Error).message }, 'outbound connection without an original destination closed');
      socket.destroy();
      return;
    }
    const table = this.inputs.table();
    const decision: OutboundDecision = table
      ? table.decide(destination, this.pick)
      : { action: 'fail', destination, chain: '', cluster: '', reason: 'no xDS config yet' };
    this.clients.add(socket);
    this.counters.active++;
    socket.once('close', () => {
      this.clients.delete(socket);
      this.counters.active--;
    });
    this.act(socket, decision, table);
  }

  private act(socket: net.Socket, decision: OutboundDecision, table: OutboundTable | undefined): void {
    switch (decision.action) {
      case 'blackhole':
        this.counters.blackhole++;
        this.log.info({ client: socket.remoteAddress, decision: summary(decision) }, 'outbound connection blackholed');
        socket.destroy();
        return;
      case 'fail':
        this.counters.failed++;
        this.log.warn({ client: socket.remoteAddress, decision: summary(decision) }, 'outbound connection refused');
        socket.destroy();
        return;
      case 'passthrough':
        this.counters.passthrough++;
        this.connectTcp(socket, decision, decision.destination.address, decision.destination.port);
        return;
      case 'direct': {
        this.counters.direct++;
        const balancer = table?.balancer(decision.cluster);
        balancer?.started(decision.endpoint);
        socket.once('close', () => balancer?.finished(decision.endpoint));
        this.connectTcp(socket, decision, decision.endpoint.address, decision.endpoint.port);
        return;
      }
      case 'tunnel': {
        this.counters.tunnel++;
        const balancer = table?.balancer(decision.cluster);
        balancer?.started(decision.endpoint);
        socket.once('close', () => balancer?.finished(decision.endpoint));
        this.inputs.pool.open(decision.peer, { address: decision.endpoint.address, port: decision.endpoint.port }).then(
          (stream) => this.start(socket, stream, decision),
          (error: unknown) => this.upstreamFailed(socket, decision, error),
        );
        return;
      }
    }
  }

  private connectTcp(socket: net.Socket, decision: OutboundDecision, host: string, port: number): void {
    const upstream = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
    const timeout = this.inputs.connectTimeoutMs ?? 10_000;
    upstream.setTimeout(timeout, () => upstream.destroy(new Error(`connect timed out after ${timeout} ms`)));
    const onError = (error: Error): void => this.upstreamFailed(socket, decision, error);
    upstream.once('error', onError);
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      upstream.off('error', onError);
      this.start(socket, upstream, decision);
    });
  }

  private start(socket: net.Socket, upstream: Duplex, decision: OutboundDecision): void {
    if (socket.destroyed) {
      upstream.destroy();
      return;
    }
    this.log.info({ client: socket.remoteAddress, decision: summary(decision) }, 'outbound connection');
    relay(socket, upstream).then((result) => {
      this.log.debug({ decision: summary(decision), ...result }, 'outbound connection closed');
    });
  }

  private upstreamFailed(socket: net.Socket, decision: OutboundDecision, error: unknown): void {
    this.counters.failed++;
    this.log.warn({ client: socket.remoteAddress, decision: summary(decision), err: (error as Error).message }, 'outbound upstream failed; client closed');
    socket.resetAndDestroy();
  }
}

/** The decision as a log field: addresses as text, the endpoint without its balancer internals. */
export function summary(decision: OutboundDecision): Record<string, unknown> {
  const out: Record<string, unknown> = {
    action: decision.action,
    destination: `${decision.destination.address}:${decision.destination.port}`,
    chain: decision.chain,
    cluster: decision.cluster,
  };
  if (decision.action === 'tunnel' || decision.action === 'direct') out.endpoint = decision.endpoint.key;
  if (decision.action === 'tunnel') {
    out.peer = `${decision.peer.host}:${decision.peer.port}`;
    out.node = decision.node;
  }
  if (decision.action === 'fail') out.reason = decision.reason;
  return out;
}
