// Upstream HTTP connections per endpoint, kept alive and reused: HTTP/1.1 connections in an
// http.Agent whose sockets are tunnel CONNECT streams or plain TCP, and one HTTP/2 session each.
// Every connection opened for a cluster counts against its max_connections (cluster-connections.ts).
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { CircuitBreaker } from '../resilience/circuit-breaker';
import type { Peer, TunnelPool } from '../tunnel/tunnel-pool';
import { ClusterConnections } from './cluster-connections';
import { Http2Upstream, UpstreamOverflowError, type PendingStream } from './http2-upstream';

/** Where an upstream connection goes: through a peer agent's tunnel, or straight over TCP. */
export type UpstreamTarget =
  | {
      readonly kind: 'tunnel';
      readonly peer: Peer;
      readonly address: string;
      readonly port: number;
      /** The SPIFFE ID the tunnel stream presents (the sending workload's); absent: the agent's default. */
      readonly source?: string;
    }
  | { readonly kind: 'tcp'; readonly address: string; readonly port: number };

export interface UpstreamPoolOptions {
  tunnels: TunnelPool;
  /** Close an upstream connection that has carried no request for this long. */
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
}

export interface UpstreamPoolStats {
  /** HTTP/1.1 connections opened, over the pool's life. */
  http1Connections: number;
  /** HTTP/2 sessions opened, over the pool's life. */
  http2Sessions: number;
}

/** A failure to establish the connection (refused, unreachable, tunnel refused): Envoy's UF. */
export class UpstreamConnectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamConnectError';
  }
}

/**
 * A cluster's settings for its upstream connections (agent/resilience/connection-settings.ts);
 * fields left out take the pool's defaults.
 */
export interface UpstreamSettings {
  readonly connectTimeoutMs?: number;
  /** 0 keeps idle connections open. */
  readonly idleTimeoutMs?: number;
  /** 0 is unlimited. */
  readonly maxRequestsPerConnection?: number;
  /**
   * The cluster's circuit breaker: its connections (idle or busy) count against max_connections,
   * and HTTP/2 requests waiting for a session or a stream against max_pending_requests.
   */
  readonly breaker?: CircuitBreaker;
}

/** Request options carrying the target to createConnection (http.Agent passes request options through). */
interface TargetedOptions extends http.ClientRequestArgs {
  meshTarget: UpstreamTarget;
  meshSettings: UpstreamSettings | undefined;
}

/** What a pooled HTTP/1.1 connection remembers: its cluster's limits and the requests it carried. */
interface ConnectionUse {
  readonly settings: UpstreamSettings | undefined;
  readonly cluster: ClusterConnections | undefined;
  requests: number;
}

type ConnectionCallback = (error: Error | null, socket: Duplex) => void;

const NO_METADATA: Record<string, string> = {};

export function targetKey(target: UpstreamTarget): string {
  // The source is part of the key: a kept-alive connection opened as one workload must never carry
  // another workload's requests, or the peer would see the wrong principal.
  return target.kind === 'tunnel' && target.source !== undefined ? `${target.kind}|${target.address}:${target.port}|${target.source}` : `${target.kind}|${target.address}:${target.port}`;
}

/**
 * An http.Agent whose connections may be tunnel streams. Keeping a connection alive calls socket-only
 * methods (ref, unref, setKeepAlive); a tunnel stream has no handle of its own (its session owns the
 * TCP connection and its keep-alive), so it gets no-op versions of them.
 */
class MeshHttpAgent extends http.Agent {
  private readonly uses = new WeakMap<Duplex, ConnectionUse>();

  constructor(
    private readonly pool: UpstreamPool,
    private readonly idleTimeoutMs: number,
  ) {
    super({ keepAlive: true, timeout: idleTimeoutMs, scheduling: 'lifo' });
  }

  /**
   * Called when a connection finished a request: it goes back to the pool unless it has carried
   * its cluster's max_requests_per_connection, and waits there for the cluster's idle timeout.
   */
  override keepSocketAlive(socket: Duplex): boolean {
    const use = this.uses.get(socket);
    if (use) {
      use.requests++;
      const max = use.settings?.maxRequestsPerConnection ?? 0;
      if (max > 0 && use.requests >= max) return false;
    }
    if (!(super.keepSocketAlive as (s: Duplex) => boolean)(socket)) return false;
    if (use?.cluster && !use.cluster.keepIdle(socket)) return false;
    const idle = use?.settings?.idleTimeoutMs;
    if (idle !== undefined && idle !== this.idleTimeoutMs) (socket as net.Socket).setTimeout(idle);
    return true;
  }

  /** An idle connection taken for a request stops being one its cluster may close to make room. */
  override reuseSocket(socket: net.Socket, request: http.ClientRequest): void {
    super.reuseSocket(socket, request);
    this.uses.get(socket)?.cluster?.busy(socket);
  }

  /** Connections are pooled per target: the same address through a tunnel and over TCP are different upstreams. */
  override getName(options?: http.ClientRequestArgs): string {
    return targetKey((options as TargetedOptions).meshTarget);
  }

  /**
   * Node calls this with a callback, and waits for it when nothing is returned, when no idle
   * connection to the target is left. The new connection first needs room under the cluster's
   * max_connections (closing an idle one elsewhere, or waiting up to the connect timeout).
   */
  override createConnection(options: http.ClientRequestArgs, callback?: ConnectionCallback): undefined {
    const targeted = options as TargetedOptions;
    const settings = targeted.meshSettings;
    const cluster = settings?.breaker ? this.pool.clusterConnections(settings.breaker) : undefined;
    const timeoutMs = this.pool.connectTimeoutMs(settings);
    const fail = (error: Error): void => callback?.(error, undefined as unknown as Duplex);
    const open = (): void => {
      this.pool.connect(targeted.meshTarget, settings?.connectTimeoutMs).then(
        (socket) => {
          cluster?.adopt(socket);
          this.uses.set(socket, { settings, cluster, requests: 0 });
          callback?.(null, socket instanceof net.Socket ? socket : Object.assign(socket, SOCKET_ONLY));
        },
        (error: Error) => {
          cluster?.unreserve();
          fail(error);
        },
      );
    };
    const room = cluster ? cluster.reserve(timeoutMs) : true;
    if (room === true) open();
    else if (room === false) fail(noRoom(cluster!, timeoutMs));
    else void room.then((ok) => (ok ? open() : fail(noRoom(cluster!, timeoutMs))));
    return undefined;
  }

}

function noop(): void {}

/**
 * Node's Http2Stream writev of a string next to a buffer (how the HTTP client flushes a request head
 * with its first body chunk) sent garbage in place of the string here: the request line arrived
 * mangled. Without _writev the stream writes chunk by chunk, which it does correctly.
 */
const SOCKET_ONLY = { ref: noop, unref: noop, setKeepAlive: noop, _writev: null };

export class UpstreamPool {
  private readonly options: UpstreamPoolOptions;
  private readonly agent: MeshHttpAgent;
  private readonly http2Upstreams = new Map<string, Http2Upstream>();
  private readonly clusters = new WeakMap<CircuitBreaker, ClusterConnections>();
  private readonly counters: UpstreamPoolStats = { http1Connections: 0, http2Sessions: 0 };

  constructor(options: UpstreamPoolOptions) {
    this.options = options;
    this.agent = new MeshHttpAgent(this, this.idleTimeoutMs);
  }

  private get idleTimeoutMs(): number {
    return this.options.idleTimeoutMs ?? 60_000;
  }

  stats(): UpstreamPoolStats {
    return { ...this.counters };
  }

  /** Options for http.request that send it on a pooled HTTP/1.1 connection to `target`. */
  http1Options(target: UpstreamTarget, settings?: UpstreamSettings): { agent: http.Agent; host: string; port: number; meshTarget: UpstreamTarget; meshSettings: UpstreamSettings | undefined } {
    return { agent: this.agent, host: target.address, port: target.port, meshTarget: target, meshSettings: settings };
  }

  /**
   * A stream to `target` on its HTTP/2 session (opened on first use, shared by every later request):
   * at once, or pending while the session connects or its streams are all in use (see
   * http2-upstream.ts). Throws UpstreamOverflowError when the cluster has no pending request left.
   */
  http2Stream(target: UpstreamTarget, headers: http2.OutgoingHttpHeaders, settings?: UpstreamSettings): http2.ClientHttp2Stream | PendingStream {
    const key = targetKey(target);
    let upstream = this.http2Upstreams.get(key);
    if (!upstream) {
      const created = new Http2Upstream(
        () => this.openSession(target, settings),
        () => {
          if (this.http2Upstreams.get(key) === created) this.http2Upstreams.delete(key);
        },
        settings?.maxRequestsPerConnection ?? 0,
      );
      upstream = created;
      this.http2Upstreams.set(key, upstream);
    }
    return upstream.request(headers, settings?.breaker);
  }

  /** The cluster's connection count, shared by its HTTP/1.1 connections and HTTP/2 sessions. */
  clusterConnections(breaker: CircuitBreaker): ClusterConnections {
    let cluster = this.clusters.get(breaker);
    if (!cluster) {
      cluster = new ClusterConnections(breaker);
      this.clusters.set(breaker, cluster);
    }
    return cluster;
  }

  connectTimeoutMs(settings: UpstreamSettings | undefined): number {
    return settings?.connectTimeoutMs ?? this.options.connectTimeoutMs ?? 10_000;
  }

  /** A new byte stream to `target`; rejects with UpstreamConnectError when it cannot be opened. */
  async connect(target: UpstreamTarget, connectTimeoutMs?: number): Promise<Duplex> {
    if (target.kind === 'tunnel') {
      try {
        const opening = this.options.tunnels.open(target.peer, { address: target.address, port: target.port }, NO_METADATA, target.source);
        const stream = connectTimeoutMs === undefined ? await opening : await withinConnectTimeout(opening, connectTimeoutMs, target);
        this.counters.http1Connections++;
        return stream;
      } catch (error) {
        throw error instanceof UpstreamConnectError ? error : new UpstreamConnectError((error as Error).message);
      }
    }
    const socket = await connectTcp(target.address, target.port, connectTimeoutMs ?? this.connectTimeoutMs(undefined));
    this.counters.http1Connections++;
    return socket;
  }

  /** Closes idle HTTP/1.1 connections and every HTTP/2 session (streams in flight may finish). */
  close(): void {
    this.agent.destroy();
    for (const upstream of this.http2Upstreams.values()) upstream.close();
  }

  /**
   * A new session to `target`. It counts against the cluster's max_connections, but opens even at
   * the limit (counted as an overflow): Envoy gives every endpoint it picks at least one connection.
   */
  private async openSession(target: UpstreamTarget, settings: UpstreamSettings | undefined): Promise<http2.ClientHttp2Session> {
    const cluster = settings?.breaker ? this.clusterConnections(settings.breaker) : undefined;
    const counted = cluster?.reserveOrOverflow() === true;
    let socket: Duplex;
    try {
      socket = await this.connect(target, settings?.connectTimeoutMs);
    } catch (error) {
      if (counted) cluster!.unreserve();
      throw error;
    }
    this.counters.http1Connections--;
    this.counters.http2Sessions++;
    const session = http2.connect(`http://${target.address}:${target.port}`, { createConnection: () => socket });
    if (counted) cluster!.adopt(session);
    // Inactivity on the whole session (no stream, no frame) closes it; streams in flight keep it busy.
    session.setTimeout(settings?.idleTimeoutMs ?? this.idleTimeoutMs, () => session.close());
    await new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', (error) => reject(new UpstreamConnectError(error.message)));
    });
    return session;
  }
}

/**
 * The cluster's connect timeout on a tunnel stream (the tunnel pool has one timeout for every
 * cluster): past it the attempt fails as a connection failure, and a stream that opens later is closed.
 */
function withinConnectTimeout(opening: Promise<Duplex>, timeoutMs: number, target: UpstreamTarget): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new UpstreamConnectError(`connect to ${target.address}:${target.port} through the tunnel timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    opening.then(
      (stream) => {
        clearTimeout(timer);
        if (late) stream.destroy();
        else resolve(stream);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (!late) reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/** Not the endpoint's fault: the request overflows (503 UO) and counts nothing for outlier detection. */
function noRoom(cluster: ClusterConnections, timeoutMs: number): UpstreamOverflowError {
  return new UpstreamOverflowError(`no room for a new upstream connection within ${timeoutMs} ms: the cluster is at its max_connections (${cluster.breaker.thresholds.maxConnections}) with none idle`);
}

function connectTcp(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`connect timed out after ${timeoutMs} ms`)));
    socket.once('error', (error) => reject(new UpstreamConnectError(error.message)));
    socket.once('connect', () => {
      socket.setTimeout(0);
      resolve(socket);
    });
  });
}
