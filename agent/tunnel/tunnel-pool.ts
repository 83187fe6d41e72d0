// The sending end of the agent-to-agent tunnel: one long-lived HTTP/2 session per peer agent,
// with each proxied connection a CONNECT stream on it (HBONE shape), so no handshake per request.
import * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { type Destination, formatAuthority } from './hbone-authority';
import { expectSpiffeIds, identitySni, type TunnelCredentials } from './tunnel-credentials';
import { DEFAULT_SESSION_WINDOW, DEFAULT_STREAM_WINDOW, REASON_HEADER } from './tunnel-server';

export interface Peer {
  host: string;
  port: number;
}

/** Mesh mTLS: each session presents a workload's certificate and checks the peer's SPIFFE ID. */
export interface TunnelPoolMtls {
  credentials: TunnelCredentials;
  /** SPIFFE IDs the agent in front of `destination` may prove; undefined when it is no mesh endpoint. */
  expectedIdentities(destination: Destination): readonly string[] | undefined;
  /** The identity a stream presents when the caller names none (the host's only workload, or the node). */
  defaultSource(): string | undefined;
}

export interface TunnelPoolOptions {
  /** Mesh mTLS (TLS 1.3, certificates from the agent's identity); takes precedence over `tls`. */
  mtls?: TunnelPoolMtls;
  /**
   * TLS options for the session (ALPN h2, client certificate, CA). Without them the pool speaks
   * h2c; with them it speaks h2 over TLS to the same kind of server.
   */
  tls?: http2.SecureClientSessionOptions;
  /** Close a session that has carried no stream for this long. */
  idleTimeoutMs?: number;
  /** Ping the peer this often while a session is open; 0 or absent turns liveness checks off. */
  pingIntervalMs?: number;
  /** A ping without an answer after this long marks the session dead. */
  pingTimeoutMs?: number;
  /** How long to wait for the peer's SETTINGS, and then for the answer to a CONNECT. */
  connectTimeoutMs?: number;
  streamWindow?: number;
  sessionWindow?: number;
}

export interface TunnelPoolStats {
  sessionsCreated: number;
  sessionsActive: number;
  streamsOpened: number;
  streamsActive: number;
}

/** A CONNECT that the peer answered with something other than 200, or that could not be sent. */
export class TunnelError extends Error {
  readonly status: number | undefined;
  readonly reason: string;
  constructor(message: string, status: number | undefined, reason: string) {
    super(message);
    this.name = 'TunnelError';
    this.status = status;
    this.reason = reason;
  }
}

interface PooledSession {
  key: string;
  /** With mTLS: the SPIFFE ID this session presented, so a rotation can retire exactly its sessions. */
  source: string | undefined;
  session: http2.ClientHttp2Session;
  ready: Promise<void>;
  /** Callers waiting for or using this session; decides which session a new caller joins. */
  streams: number;
  /** Streams actually requested on the session, counted against the peer's MAX_CONCURRENT_STREAMS. */
  requested: number;
  dead: boolean;
  idleTimer: NodeJS.Timeout | undefined;
  pingTimer: NodeJS.Timeout | undefined;
}

/** The mTLS side of one pooled session: who it speaks as, whom it expects, and its TLS options. */
interface SessionSecurity {
  source: string;
  expected: readonly string[];
  /** Prefix of the pool key: one session per (source identity, expected identities, peer). */
  key: string;
}

const HOP_HEADERS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host']);

export class TunnelPool {
  private readonly options: TunnelPoolOptions;
  private readonly byPeer = new Map<string, PooledSession[]>();
  /** mTLS session descriptions by expected identity list and source, built once per pair. */
  private readonly securities = new WeakMap<readonly string[], Map<string, SessionSecurity>>();
  private readonly counters = { sessionsCreated: 0, streamsOpened: 0, streamsActive: 0 };
  private closed = false;

  constructor(options: TunnelPoolOptions = {}) {
    this.options = options;
  }

  stats(): TunnelPoolStats {
    let sessionsActive = 0;
    for (const list of this.byPeer.values()) sessionsActive += list.length;
    return { ...this.counters, sessionsActive };
  }

  /**
   * Opens a CONNECT stream to `destination` through the peer agent at `peer`. Resolves once the
   * peer answered 200; the stream then behaves like a TCP socket, `end()` sending a half-close.
   * A reset by the peer shows as 'end' followed by 'aborted' and 'error' (node's order), so a
   * relay must check `aborted`/`rstCode` before turning 'end' into a FIN.
   */
  async open(peer: Peer, destination: Destination, metadata: Record<string, string> = {}, source?: string): Promise<Duplex> {
    if (this.closed) throw new TunnelError('tunnel pool is closed', undefined, 'pool closed');
    const headers = connectHeaders(destination, metadata);
    const security = this.options.mtls ? this.security(destination, source) : undefined;
    try {
      return await this.openOnce(peer, headers, security);
    } catch (err) {
      // A session can die between being picked and carrying the request (GOAWAY from a restarting
      // peer, a dropped connection). Nothing reached the destination yet, so one retry on a
      // fresh session is safe; answers from the peer (TunnelError with a status) are final, and so
      // is a peer that proved the wrong identity.
      if (err instanceof TunnelError && (err.status !== undefined || err.reason.startsWith('peer identity mismatch'))) throw err;
      if (this.closed) throw err;
      return this.openOnce(peer, headers, security);
    }
  }

  /**
   * A new certificate for `source` (or a new trust bundle, when `source` is undefined): its sessions
   * take no new streams and close once their streams are done; new streams get new sessions.
   */
  rotate(source?: string): void {
    for (const list of [...this.byPeer.values()]) {
      for (const pooled of [...list]) {
        if (source !== undefined && pooled.source !== source) continue;
        this.retire(pooled);
        if (!pooled.session.destroyed) pooled.session.close();
      }
    }
  }

  private security(destination: Destination, requested: string | undefined): SessionSecurity {
    const mtls = this.options.mtls!;
    const expected = mtls.expectedIdentities(destination);
    const where = formatAuthority(destination);
    if (!expected || expected.length === 0) {
      throw new TunnelError(`no mesh identity is known for ${where}; it is not sent over the mesh tunnel unverified`, undefined, 'unknown peer identity');
    }
    const source = requested ?? mtls.defaultSource();
    if (!source || !mtls.credentials.certificate(source) || !mtls.credentials.trustBundlePem()) {
      throw new TunnelError(`no certificate${source ? ` for ${source}` : ''} yet to open a mesh tunnel to ${where}`, undefined, 'no certificate');
    }
    // Per stream, so the key is looked up rather than built: the identity lists come from the
    // index of one applied config and keep their identity until the next one.
    let bySource = this.securities.get(expected);
    if (!bySource) this.securities.set(expected, (bySource = new Map()));
    let security = bySource.get(source);
    if (!security) bySource.set(source, (security = { source, expected, key: `${source}>${expected.join(',')}@` }));
    return security;
  }

  /** TLS options of a new mTLS session, with the certificate and bundle current at this moment. */
  private sessionTls(security: SessionSecurity): http2.SecureClientSessionOptions {
    const credentials = this.options.mtls!.credentials;
    const certificate = credentials.certificate(security.source)!;
    return {
      key: certificate.privateKeyPem,
      cert: certificate.certificateChainPem,
      ca: credentials.trustBundlePem(),
      minVersion: 'TLSv1.3',
      servername: identitySni(security.expected[0]!),
      checkServerIdentity: expectSpiffeIds(security.expected),
    };
  }

  /**
   * Closes every session gracefully (streams in flight may finish for up to `graceMs`), then
   * destroys what is left, so a caller that never ends its stream cannot hold shutdown forever.
   */
  async close(graceMs = 5000): Promise<void> {
    this.closed = true;
    const all = [...this.byPeer.values()].flat();
    await Promise.all(
      all.map(
        (pooled) =>
          new Promise<void>((resolve) => {
            this.retire(pooled);
            const session = pooled.session;
            if (session.destroyed) return resolve();
            const timer = setTimeout(() => session.destroy(), graceMs);
            session.once('close', () => {
              clearTimeout(timer);
              resolve();
            });
            session.close();
          }),
      ),
    );
  }

  private async openOnce(peer: Peer, headers: http2.OutgoingHttpHeaders, security: SessionSecurity | undefined): Promise<Duplex> {
    let pooled = this.acquire(peer, security);
    let stream: http2.ClientHttp2Stream | undefined;
    try {
      // A session chosen before its peer's SETTINGS arrived may turn out to be full; a stream
      // over the limit would sit queued, so such a reservation moves to another session.
      for (let moves = 0; ; moves++) {
        await pooled.ready;
        if (pooled.dead || pooled.session.closed || pooled.session.destroyed) {
          throw new TunnelError(`session to ${pooled.key} closed before the stream was opened`, undefined, 'session closed');
        }
        if (pooled.requested < this.limit(pooled)) break;
        if (moves >= 16) {
          throw new TunnelError(`no session to ${pooled.key} has room for another stream`, undefined, 'no capacity');
        }
        this.release(pooled);
        pooled = this.acquire(peer, security);
      }
      pooled.requested++;
      stream = pooled.session.request(headers, { endStream: false });
      const opened = stream;
      await this.awaitResponse(opened, pooled.key);
      this.counters.streamsOpened++;
      this.counters.streamsActive++;
      const owner = pooled;
      opened.once('close', () => {
        this.counters.streamsActive--;
        owner.requested--;
        this.release(owner);
      });
      return opened;
    } catch (err) {
      if (stream) {
        pooled.requested--;
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
      }
      this.release(pooled);
      throw err;
    }
  }

  private awaitResponse(stream: http2.ClientHttp2Stream, key: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timeoutMs = this.options.connectTimeoutMs ?? 10_000;
      const timer = setTimeout(() => {
        fail(new TunnelError(`no answer from ${key} to CONNECT within ${timeoutMs} ms`, undefined, 'timeout'));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        stream.off('response', onResponse);
        stream.off('error', fail);
        stream.off('close', onClose);
      };
      const fail = (err: Error): void => {
        cleanup();
        reject(err instanceof TunnelError ? err : new TunnelError(`CONNECT via ${key} failed: ${err.message}`, undefined, err.message));
      };
      const onClose = (): void => {
        fail(new TunnelError(`CONNECT via ${key} was closed before an answer (code ${stream.rstCode})`, undefined, 'stream closed'));
      };
      const onResponse = (response: http2.IncomingHttpHeaders): void => {
        cleanup();
        const status = Number(response[':status']);
        if (status === 200) {
          // Errors after this point belong to the caller, who owns the stream like a socket.
          resolve();
          return;
        }
        const raw = response[REASON_HEADER];
        const reason = (Array.isArray(raw) ? raw.join(', ') : raw) ?? '';
        stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(new TunnelError(`CONNECT via ${key} answered ${status}${reason ? `: ${reason}` : ''}`, status, reason));
      };
      stream.on('response', onResponse);
      stream.on('error', fail);
      stream.on('close', onClose);
    });
  }

  /** Picks a live session with room for one more stream, or starts a new one, and reserves a slot. */
  private acquire(peer: Peer, security: SessionSecurity | undefined): PooledSession {
    const key = `${security?.key ?? ''}${peer.host}:${peer.port}`;
    let list = this.byPeer.get(key);
    if (!list) {
      list = [];
      this.byPeer.set(key, list);
    }
    for (const pooled of list) {
      if (pooled.dead) continue;
      if (pooled.streams < this.limit(pooled)) {
        this.reserve(pooled);
        return pooled;
      }
    }
    const pooled = this.connect(key, peer, security);
    list.push(pooled);
    this.reserve(pooled);
    return pooled;
  }

  /**
   * Before the peer's SETTINGS arrive node reports the protocol's "unlimited"; openOnce() checks
   * again once they are in.
   */
  private limit(pooled: PooledSession): number {
    return pooled.session.remoteSettings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER;
  }

  private reserve(pooled: PooledSession): void {
    pooled.streams++;
    if (pooled.idleTimer) {
      clearTimeout(pooled.idleTimer);
      pooled.idleTimer = undefined;
    }
  }

  private release(pooled: PooledSession): void {
    pooled.streams--;
    if (pooled.streams > 0 || pooled.dead) return;
    const idle = this.options.idleTimeoutMs ?? 60_000;
    pooled.idleTimer = setTimeout(() => {
      this.retire(pooled);
      pooled.session.close();
    }, idle);
    pooled.idleTimer.unref();
  }

  private connect(key: string, peer: Peer, security: SessionSecurity | undefined): PooledSession {
    const host = peer.host.includes(':') ? `[${peer.host}]` : peer.host;
    const settings: http2.Settings = {
      initialWindowSize: this.options.streamWindow ?? DEFAULT_STREAM_WINDOW,
      enablePush: false,
    };
    const tls = security ? this.sessionTls(security) : this.options.tls;
    const session = tls
      ? http2.connect(`https://${host}:${peer.port}`, { ...tls, settings, maxSessionMemory: 128 })
      : http2.connect(`http://${host}:${peer.port}`, { settings, maxSessionMemory: 128 });
    this.counters.sessionsCreated++;
    const pooled: PooledSession = {
      key,
      source: security?.source,
      session,
      ready: Promise.resolve(),
      streams: 0,
      requested: 0,
      dead: false,
      idleTimer: undefined,
      pingTimer: undefined,
    };
    pooled.ready = new Promise<void>((resolve, reject) => {
      const timeoutMs = this.options.connectTimeoutMs ?? 10_000;
      const timer = setTimeout(() => {
        session.destroy();
        reject(new TunnelError(`no HTTP/2 SETTINGS from ${key} within ${timeoutMs} ms`, undefined, 'timeout'));
      }, timeoutMs);
      // The peer's SETTINGS carry its stream limit; waiting for them makes the limit real before
      // more streams are put on this session, and proves the peer speaks HTTP/2.
      session.once('remoteSettings', () => {
        clearTimeout(timer);
        resolve();
      });
      session.once('close', () => {
        clearTimeout(timer);
        reject(new TunnelError(`session to ${key} closed before it was ready`, undefined, 'session closed'));
      });
      // A TLS alert (peer refused our certificate) surfaces only on the socket: node destroys
      // the session without emitting 'error' or 'close' on it.
      session.socket.once('error', (err: Error) => {
        clearTimeout(timer);
        this.retire(pooled);
        session.destroy();
        reject(new TunnelError(`connection to ${key} failed: ${err.message}`, undefined, err.message));
      });
    });
    // Callers that never reach `await ready` (none today) must not produce unhandled rejections.
    pooled.ready.catch(() => undefined);
    session.once('connect', () => session.setLocalWindowSize(this.options.sessionWindow ?? DEFAULT_SESSION_WINDOW));
    session.on('error', () => this.retire(pooled));
    // GOAWAY: streams already running finish, new ones go to a new session.
    session.on('goaway', () => this.retire(pooled));
    session.once('close', () => this.retire(pooled));
    this.startPing(pooled);
    return pooled;
  }

  private startPing(pooled: PooledSession): void {
    const interval = this.options.pingIntervalMs ?? 0;
    if (interval <= 0) return;
    const timeoutMs = this.options.pingTimeoutMs ?? interval;
    const tick = (): void => {
      if (pooled.dead) return;
      const deadline = setTimeout(() => {
        // No answer: the connection is black-holed; waiting for TCP to notice takes minutes.
        this.retire(pooled);
        pooled.session.destroy();
      }, timeoutMs);
      const sent = pooled.session.ping((err) => {
        clearTimeout(deadline);
        if (err) return;
        pooled.pingTimer = setTimeout(tick, interval);
        pooled.pingTimer.unref();
      });
      if (!sent) clearTimeout(deadline);
    };
    pooled.pingTimer = setTimeout(tick, interval);
    pooled.pingTimer.unref();
  }

  /** Takes a session out of rotation; it stays open for the streams it still carries. */
  private retire(pooled: PooledSession): void {
    if (pooled.dead) return;
    pooled.dead = true;
    if (pooled.idleTimer) clearTimeout(pooled.idleTimer);
    if (pooled.pingTimer) clearTimeout(pooled.pingTimer);
    const list = this.byPeer.get(pooled.key);
    if (!list) return;
    const index = list.indexOf(pooled);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) this.byPeer.delete(pooled.key);
  }
}

function connectHeaders(destination: Destination, metadata: Record<string, string>): http2.OutgoingHttpHeaders {
  const headers: http2.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(metadata)) {
    const lower = name.toLowerCase();
    // Pseudo-headers and connection-specific headers are not metadata; HTTP/2 forbids the latter.
    if (lower.startsWith(':') || HOP_HEADERS.has(lower)) {
      throw new TunnelError(`metadata header ${JSON.stringify(name)} is not allowed on a tunnel stream`, undefined, 'bad metadata');
    }
    headers[lower] = value;
  }
  headers[':method'] = 'CONNECT';
  headers[':authority'] = formatAuthority(destination);
  return headers;
}
