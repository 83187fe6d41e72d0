// The outbound listener (:15001): each redirected connection's original destination is decided
// against the current OutboundTable, then its bytes go through the tunnel, straight, or nowhere.
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../lib/log';
import type { Endpoint } from '../balancing/endpoint-set';
import type { PickContext } from '../balancing/load-balancer';
import type { HttpConnectionOptions } from '../http/http-connection';
import { OutboundHttp, type OutboundHttpStats } from '../http/outbound-http';
import { sniffProtocol, type SniffedProtocol } from '../http/protocol-sniffer';
import { UpstreamPool, type UpstreamPoolStats } from '../http/upstream-pool';
import type { SourceWorkload, WorkloadResolver } from '../identity/workload-resolver';
import { originalDestination, type OriginalDestination } from '../redirect/original-destination';
import type { ClusterGuard } from '../resilience/cluster-guard';
import { TunnelError, type TunnelPool } from '../tunnel/tunnel-pool';
import type { OutboundDecision, OutboundTable } from './outbound-table';
import { LiveHttpContext } from '../http/live-http-context';
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
  /** Connections handed to the HTTP request path. */
  http: number;
}

/**
 * How long a sniffed port waits for the client's first bytes before treating the connection as
 * TCP. Istio's default is now no timeout, which leaves server-first protocols (MySQL, SMTP) on an
 * unnamed port waiting forever for a greeting; 5 s is Istio's former default and Linkerd's order of
 * magnitude: long enough for any client that speaks first, short enough that a server-first one
 * still works. Declaring such ports as TCP avoids the wait altogether.
 */
export const DEFAULT_PROTOCOL_DETECTION_TIMEOUT_MS = 5000;

/** TCP streams carry no metadata headers; one shared empty record instead of one per connection. */
const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});

export interface OutboundInputs {
  /** The table in force; read once per connection, so a new config applies to new connections only. */
  table(): OutboundTable | undefined;
  pool: TunnelPool;
  logger: Logger;
  /** Upstream connect timeout for direct and passthrough connections. */
  connectTimeoutMs?: number;
  protocolDetectionTimeoutMs?: number;
  /** Header deadline and idle timeout of downstream HTTP connections. */
  http?: HttpConnectionOptions;
  /** Idle upstream HTTP connections are closed after this. */
  upstreamIdleTimeoutMs?: number;
  /** Where a connection was going before redirection; SO_ORIGINAL_DST unless a test supplies it. */
  originalDestination?: (socket: net.Socket) => OriginalDestination;
  /**
   * Which local workload sent each connection (looked up on accept, while the client's socket is
   * surely alive): its identity opens the tunnel stream. Absent, every stream presents the pool's default.
   */
  sources?: WorkloadResolver;
}

export class Outbound {
  private readonly servers: net.Server[] = [];
  private readonly clients = new Set<net.Socket>();
  private readonly inputs: OutboundInputs;
  private readonly log: Logger;
  /** One pick context for all connections: picks happen synchronously, so it is never shared concurrently. */
  private readonly pick: PickContext = { random: Math.random };
  private readonly counters: OutboundStats = { accepted: 0, tunnel: 0, direct: 0, passthrough: 0, blackhole: 0, failed: 0, active: 0, http: 0 };
  private readonly upstreams: UpstreamPool;
  private readonly http: OutboundHttp;
  private draining = false;

  constructor(inputs: OutboundInputs) {
    this.inputs = inputs;
    this.log = inputs.logger.child({ component: 'outbound' });
    this.upstreams = new UpstreamPool({ tunnels: inputs.pool, idleTimeoutMs: inputs.upstreamIdleTimeoutMs, connectTimeoutMs: inputs.connectTimeoutMs });
    this.http = new OutboundHttp({ pool: this.upstreams, logger: inputs.logger, connection: inputs.http });
  }

  stats(): OutboundStats {
    return { ...this.counters };
  }

  /** The HTTP request path's counters and its upstream connection pool's. */
  httpStats(): OutboundHttpStats & UpstreamPoolStats {
    return { ...this.http.stats(), ...this.upstreams.stats() };
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
    // close() stops accepting at once but calls back only when every connection has ended, so the
    // grace period runs alongside it: awaiting close first would let one open connection hold the
    // agent's shutdown for as long as its client likes.
    const closed = Promise.all(this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    await drainSockets(this.clients, graceMs);
    await closed;
    this.http.close();
    this.upstreams.close();
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
      destination = (this.inputs.originalDestination ?? originalDestination)(socket);
    } catch (error) {
      // Not redirected (someone connected to :15001 itself): proxying it would loop back here.
      this.counters.failed++;
      this.log.warn({ client: socket.remoteAddress, err: (error as Error).message }, 'outbound connection without an original destination closed');
      socket.destroy();
      return;
    }
    const source = this.inputs.sources?.resolve(socket, destination);
    const table = this.inputs.table();
    this.clients.add(socket);
    this.counters.active++;
    socket.once('close', () => {
      this.clients.delete(socket);
      this.counters.active--;
    });
    if (!table) {
      this.act(socket, source, { action: 'fail', destination, chain: '', cluster: '', reason: 'no xDS config yet' }, table);
      return;
    }
    const inspection = table.inspection(destination);
    if (inspection === 'tcp') {
      this.act(socket, source, table.decide(destination, this.pick), table);
      return;
    }
    // A declared HTTP port is HTTP whatever comes; the bytes only tell HTTP/1 from HTTP/2, and the
    // HTTP server's header deadline bounds a client that sends nothing.
    const timeout = inspection === 'sniff' ? (this.inputs.protocolDetectionTimeoutMs ?? DEFAULT_PROTOCOL_DETECTION_TIMEOUT_MS) : 0;
    void sniffProtocol(socket, timeout).then((sniffed) => {
      if (socket.destroyed) return;
      const protocol: SniffedProtocol | undefined = sniffed ?? (inspection === 'http' ? 'http/1.1' : undefined);
      this.act(socket, source, table.decide(destination, this.pick, protocol), table, protocol);
    });
  }

  private act(socket: net.Socket, source: SourceWorkload | undefined, decision: OutboundDecision, table: OutboundTable | undefined, protocol?: SniffedProtocol): void {
    switch (decision.action) {
      case 'http':
        this.counters.http++;
        this.log.debug({ client: socket.remoteAddress, source_workload: source?.name, decision: summary(decision), protocol }, 'outbound HTTP connection');
        this.http.serve(
          socket,
          protocol === 'h2c' ? 'h2c' : 'http1',
          new LiveHttpContext({
            current: this.inputs.table,
            decidedWith: table!,
            routeConfig: decision.routeConfig,
            destination: decision.destination,
            chain: decision.chain,
            downstreamHttp2: protocol === 'h2c',
            sourceIp: socket.remoteAddress,
            sourceWorkload: source,
          }),
        );
        return;
      case 'blackhole':
        this.counters.blackhole++;
        this.log.info({ client: socket.remoteAddress, source_workload: source?.name, decision: summary(decision) }, 'outbound connection blackholed');
        socket.destroy();
        return;
      case 'fail':
        this.counters.failed++;
        this.log.warn({ client: socket.remoteAddress, source_workload: source?.name, decision: summary(decision) }, 'outbound connection refused');
        socket.destroy();
        return;
      case 'passthrough':
        this.counters.passthrough++;
        this.connectTcp(socket, source, decision, decision.destination.address, decision.destination.port);
        return;
      case 'direct': {
        const guard = table?.guard(decision.cluster);
        if (!this.admit(socket, decision, guard)) return;
        this.counters.direct++;
        this.connectTcp(socket, source, decision, decision.endpoint.address, decision.endpoint.port, guard);
        return;
      }
      case 'tunnel': {
        const guard = table?.guard(decision.cluster);
        if (!this.admit(socket, decision, guard)) return;
        this.counters.tunnel++;
        const key = decision.endpoint.key;
        this.inputs.pool.open(decision.peer, { address: decision.endpoint.address, port: decision.endpoint.port }, NO_METADATA, source?.identity).then(
          (stream) => {
            guard?.detector?.recordConnected(key);
            this.start(socket, source, stream, decision);
          },
          (error: unknown) => {
            guard?.detector?.recordFailure(key, error instanceof TunnelError && error.reason === 'timeout' ? 'timeout' : 'connect-failure');
            this.upstreamFailed(socket, source, decision, error);
          },
        );
        return;
      }
    }
  }

  /**
   * Takes a connection slot of the cluster's circuit breaker (released when the client closes) and
   * counts the endpoint as busy; a full cluster closes the client at once, Envoy's flag UO.
   */
  private admit(socket: net.Socket, decision: OutboundDecision & { endpoint: Endpoint }, guard: ClusterGuard | undefined): boolean {
    if (!guard) return true;
    if (!guard.breaker.tryAcquireConnection()) {
      this.counters.failed++;
      this.log.warn({ client: socket.remoteAddress, decision: summary(decision), response_flags: 'UO', max_connections: guard.breaker.thresholds.maxConnections }, 'outbound connection refused: cluster at max_connections');
      socket.resetAndDestroy();
      return false;
    }
    guard.balancer.started(decision.endpoint);
    socket.once('close', () => {
      guard.breaker.releaseConnection();
      // The balancer in force at close: an ejection or config update may have replaced it since.
      guard.balancer.finished(decision.endpoint);
    });
    return true;
  }

  /** Connects to the endpoint with the cluster's connect timeout and keepalive, reporting the outcome to its outlier detector. */
  private connectTcp(socket: net.Socket, source: SourceWorkload | undefined, decision: OutboundDecision, host: string, port: number, guard?: ClusterGuard): void {
    const upstream = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
    const timeout = guard?.connection.connectTimeoutMs ?? this.inputs.connectTimeoutMs ?? 10_000;
    const key = decision.action === 'direct' ? decision.endpoint.key : undefined;
    const detector = key === undefined ? undefined : guard?.detector;
    let timedOut = false;
    if (timeout > 0) {
      upstream.setTimeout(timeout, () => {
        timedOut = true;
        upstream.destroy(new Error(`connect timed out after ${timeout} ms`));
      });
    }
    const onError = (error: Error): void => {
      detector?.recordFailure(key!, timedOut ? 'timeout' : 'connect-failure');
      this.upstreamFailed(socket, source, decision, error);
    };
    upstream.once('error', onError);
    upstream.once('connect', () => {
      upstream.setTimeout(0);
      upstream.off('error', onError);
      const keepalive = guard?.connection.keepalive;
      if (keepalive) upstream.setKeepAlive(true, keepalive.timeMs);
      detector?.recordConnected(key!);
      this.start(socket, source, upstream, decision);
    });
  }

  private start(socket: net.Socket, source: SourceWorkload | undefined, upstream: Duplex, decision: OutboundDecision): void {
    if (socket.destroyed) {
      upstream.destroy();
      return;
    }
    this.log.info({ client: socket.remoteAddress, source_workload: source?.name, decision: summary(decision) }, 'outbound connection');
    relay(socket, upstream).then((result) => {
      this.log.debug({ source_workload: source?.name, decision: summary(decision), ...result }, 'outbound connection closed');
    });
  }

  private upstreamFailed(socket: net.Socket, source: SourceWorkload | undefined, decision: OutboundDecision, error: unknown): void {
    this.counters.failed++;
    this.log.warn({ client: socket.remoteAddress, source_workload: source?.name, decision: summary(decision), err: (error as Error).message }, 'outbound upstream failed; client closed');
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
  if (decision.action === 'http') out.routeConfig = decision.routeConfig;
  return out;
}
