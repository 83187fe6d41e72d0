// Upstream HTTP connections per endpoint, kept alive and reused: HTTP/1.1 connections in an
// http.Agent whose sockets are tunnel CONNECT streams or plain TCP, and one HTTP/2 session each.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Peer, TunnelPool } from '../tunnel/tunnel-pool';

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
}

/** Request options carrying the target to createConnection (http.Agent passes request options through). */
interface TargetedOptions extends http.ClientRequestArgs {
  meshTarget: UpstreamTarget;
  meshSettings: UpstreamSettings | undefined;
}

/** What a pooled HTTP/1.1 connection remembers: its cluster's limits and the requests it carried. */
interface ConnectionUse {
  readonly settings: UpstreamSettings | undefined;
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
    const idle = use?.settings?.idleTimeoutMs;
    if (idle !== undefined && idle !== this.idleTimeoutMs) (socket as net.Socket).setTimeout(idle);
    return true;
  }

  /** Connections are pooled per target: the same address through a tunnel and over TCP are different upstreams. */
  override getName(options?: http.ClientRequestArgs): string {
    return targetKey((options as TargetedOptions).meshTarget);
  }

  // Node calls this with a callback and waits for it when nothing is returned.
  override createConnection(options: http.ClientRequestArgs, callback?: ConnectionCallback): undefined {
    const targeted = options as TargetedOptions;
    this.pool.connect(targeted.meshTarget, targeted.meshSettings?.connectTimeoutMs).then(
      (socket) => {
        this.uses.set(socket, { settings: targeted.meshSettings, requests: 0 });
        callback?.(null, socket instanceof net.Socket ? socket : Object.assign(socket, SOCKET_ONLY));
      },
      (error: Error) => callback?.(error, undefined as unknown as Duplex),
    );
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
  private readonly sessions = new Map<string, Promise<http2.ClientHttp2Session>>();
  private readonly live = new Set<http2.ClientHttp2Session>();
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

  /** The HTTP/2 session to `target`, opened on first use and shared by every later request. */
  session(target: UpstreamTarget, settings?: UpstreamSettings): Promise<http2.ClientHttp2Session> {
    const key = targetKey(target);
    let pending = this.sessions.get(key);
    if (!pending) {
      pending = this.openSession(key, target, settings);
      this.sessions.set(key, pending);
      pending.catch(() => this.sessions.delete(key));
    }
    return pending;
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
    const socket = await connectTcp(target.address, target.port, connectTimeoutMs ?? this.options.connectTimeoutMs ?? 10_000);
    this.counters.http1Connections++;
    return socket;
  }

  /** Closes idle HTTP/1.1 connections and every HTTP/2 session (streams in flight may finish). */
  close(): void {
    this.agent.destroy();
    for (const session of this.live) session.close();
  }

  private async openSession(key: string, target: UpstreamTarget, settings: UpstreamSettings | undefined): Promise<http2.ClientHttp2Session> {
    const socket = await this.connect(target, settings?.connectTimeoutMs);
    this.counters.http1Connections--;
    this.counters.http2Sessions++;
    const session = http2.connect(`http://${target.address}:${target.port}`, { createConnection: () => socket });
    this.live.add(session);
    const pending = this.sessions.get(key);
    const forget = (): void => {
      this.live.delete(session);
      if (this.sessions.get(key) === pending) this.sessions.delete(key);
    };
    session.on('error', forget);
    session.once('close', forget);
    session.once('goaway', forget);
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
