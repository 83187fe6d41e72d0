// The receiving end of the agent-to-agent tunnel (HBONE shape): HTTP/2 CONNECT streams on :15008,
// each naming its destination in `:authority`, relayed to a local workload port over plain TCP.
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { spiffeIdOf } from '../../lib/ca/peer-identity';
import { parseSpiffeId } from '../../lib/ca/spiffe';
import { type Destination, formatAuthority, parseAuthority } from './hbone-authority';
import { identitySni, type TunnelCredentials } from './tunnel-credentials';

/** Header carrying a human-readable reason on every non-200 answer. */
export const REASON_HEADER = 'x-tunnel-reason';

/** Generous windows: a 64 KiB default window caps one stream at roughly window/RTT. */
export const DEFAULT_STREAM_WINDOW = 4 * 1024 * 1024;
export const DEFAULT_SESSION_WINDOW = 16 * 1024 * 1024;

/** What the sender said about the source of the stream, taken from the request headers. */
export interface SourceMetadata {
  /** Every non-pseudo header, lower-case names, repeated values joined with ", ". */
  headers: Record<string, string>;
  /** RFC 7239 `forwarded` (ztunnel puts the original client address here). */
  forwarded?: string;
  /** W3C `baggage`, which HBONE senders use for source workload attributes. */
  baggage?: string;
  traceparent?: string;
  tracestate?: string;
  /** Address of the peer agent's HTTP/2 connection (the tunnel, not the original client). */
  peerAddress?: string;
  peerPort?: number;
  /** With mTLS: the SPIFFE ID the sending agent proved with its client certificate (source principal). */
  principal?: string;
}

export interface TunnelRequest {
  authority: string;
  destination: Destination;
  source: SourceMetadata;
}

/**
 * Relay to a local port, refuse with a status, or answer 200 and hand the stream to `serve` (the
 * inbound side then speaks the stream's protocol itself, e.g. HTTP with per-request policy).
 */
export type InboundDecision = { host: string; port: number } | { reject: number; reason: string } | { serve: (stream: Duplex) => void };

export type ResolveInbound = (
  destination: Destination,
  metadata: SourceMetadata,
) => InboundDecision | Promise<InboundDecision>;

/** The outcome of one CONNECT stream as a plain value, for logs and metrics. */
export interface TunnelStreamEvent {
  authority: string | undefined;
  destination?: Destination;
  source: SourceMetadata;
  status: number;
  reason?: string;
  target?: { host: string; port: number };
}

/** Mesh mTLS on the tunnel port: TLS 1.3, client certificates from the trust bundle required. */
export interface TunnelServerMtls {
  credentials: TunnelCredentials;
  /** The identities this agent answers as (its workloads); a sender names the one it expects by SNI. */
  identities(): readonly string[];
  /** What is presented when the SNI names none of `identities` (the node's own identity). */
  defaultIdentity(): string | undefined;
  /** Client certificates must carry a SPIFFE ID in this trust domain. */
  trustDomain: string;
}

export interface TunnelServerOptions {
  resolveInbound: ResolveInbound;
  /** Mesh mTLS; takes precedence over `createServer`. */
  mtls?: TunnelServerMtls;
  onStream?: (event: TunnelStreamEvent) => void;
  /**
   * Builds the HTTP/2 server. Default is h2c; pass one returning `http2.createSecureServer`
   * (ALPN h2, client certificates) to put mTLS in front without touching the relay.
   */
  createServer?: (options: http2.ServerOptions) => http2.Http2Server | http2.Http2SecureServer;
  streamWindow?: number;
  sessionWindow?: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS announced to peers; pools open another session beyond it. */
  maxConcurrentStreams?: number;
  /** A local target that neither accepts nor refuses (SYN dropped) must not hold a stream forever. */
  connectTimeoutMs?: number;
}

export class TunnelServer {
  private readonly server: http2.Http2Server | http2.Http2SecureServer;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly relays = new Set<net.Socket>();
  private readonly options: TunnelServerOptions;
  private readonly sessionWindow: number;
  /** With mTLS: each session's verified source principal, read once per session rather than per stream. */
  private readonly principals = new WeakMap<http2.Http2Session, string>();
  /** With mTLS: secure contexts by SNI, rebuilt when a certificate or the bundle changes. */
  private contexts = new Map<string, tls.SecureContext>();
  private closing: Promise<void> | undefined;

  constructor(options: TunnelServerOptions) {
    this.options = options;
    this.sessionWindow = options.sessionWindow ?? DEFAULT_SESSION_WINDOW;
    const serverOptions: http2.ServerOptions = {
      settings: {
        initialWindowSize: options.streamWindow ?? DEFAULT_STREAM_WINDOW,
        maxConcurrentStreams: options.maxConcurrentStreams ?? 1000,
      },
      // Large windows mean more unacknowledged data in flight per session; nghttp2's default
      // 10 MB memory cap would answer a busy session with ENHANCE_YOUR_CALM.
      maxSessionMemory: 128,
    };
    this.server = options.mtls ? this.createMtlsServer(serverOptions, options.mtls) : (options.createServer ?? http2.createServer)(serverOptions);
    this.server.on('session', (session: http2.ServerHttp2Session) => this.onSession(session));
    this.server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) =>
      this.onStream(stream, headers),
    );
  }

  /**
   * Certificates or the trust bundle changed: new handshakes use the new material; sessions already
   * established keep going (their peers were verified when they connected).
   */
  refreshCredentials(): void {
    const mtls = this.options.mtls;
    if (!mtls) return;
    this.contexts = new Map();
    // The default context is the one a handshake starts with (and keeps without SNI).
    const options = this.materialFor(mtls.defaultIdentity());
    if (options) (this.server as http2.Http2SecureServer).setSecureContext(options);
  }

  private createMtlsServer(serverOptions: http2.ServerOptions, mtls: TunnelServerMtls): http2.Http2SecureServer {
    return http2.createSecureServer({
      ...serverOptions,
      ...this.materialFor(mtls.defaultIdentity()),
      minVersion: 'TLSv1.3',
      requestCert: true,
      rejectUnauthorized: true,
      SNICallback: (servername, callback) => callback(null, this.sniContext(servername)),
    });
  }

  private materialFor(spiffeId: string | undefined): tls.SecureContextOptions | undefined {
    const mtls = this.options.mtls!;
    const certificate = spiffeId ? mtls.credentials.certificate(spiffeId) : undefined;
    const ca = mtls.credentials.trustBundlePem();
    if (!certificate || !ca) return undefined;
    return { key: certificate.privateKeyPem, cert: certificate.certificateChainPem, ca, minVersion: 'TLSv1.3' };
  }

  private contextFor(spiffeId: string | undefined): tls.SecureContext | undefined {
    const material = this.materialFor(spiffeId);
    return material ? tls.createSecureContext(material) : undefined;
  }

  private sniContext(servername: string): tls.SecureContext | undefined {
    const mtls = this.options.mtls!;
    let context = this.contexts.get(servername);
    if (context) return context;
    const wanted = mtls.identities().find((id) => identitySni(id) === servername);
    context = this.contextFor(wanted ?? mtls.defaultIdentity());
    // Only known names are cached, so a client sending random SNI cannot grow the map.
    if (context && wanted) this.contexts.set(servername, context);
    return context;
  }

  listen(port = 15008, host = '0.0.0.0'): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  /**
   * Stops accepting, sends GOAWAY so peers move new streams elsewhere, lets open streams finish
   * for up to `graceMs`, then destroys whatever is left.
   */
  close(graceMs = 5000): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      if (!this.server.listening) {
        resolve();
        return;
      }
      const timer = setTimeout(() => {
        for (const session of this.sessions) session.destroy();
        for (const socket of this.relays) socket.destroy();
      }, graceMs);
      this.server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      for (const session of this.sessions) session.close();
    });
    return this.closing;
  }

  private onSession(session: http2.ServerHttp2Session): void {
    if (this.options.mtls) {
      const principal = this.verifiedPrincipal(session.socket as tls.TLSSocket, this.options.mtls.trustDomain);
      if (!principal) {
        session.destroy();
        return;
      }
      this.principals.set(session, principal);
    }
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    // A session that errors is torn down by node; the error itself is not ours to rethrow.
    session.on('error', () => undefined);
    session.setLocalWindowSize(this.sessionWindow);
    if (this.closing) session.close();
  }

  /** TLS verified the chain (rejectUnauthorized); the mesh also wants one SPIFFE ID of its own trust domain. */
  private verifiedPrincipal(socket: tls.TLSSocket, trustDomain: string): string | undefined {
    if (!socket.authorized) return undefined;
    const id = spiffeIdOf(socket.getPeerCertificate());
    if (!id.ok) return undefined;
    const parsed = parseSpiffeId(id.id);
    return parsed.ok && parsed.value.trustDomain === trustDomain ? id.id : undefined;
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    stream.on('error', () => undefined);
    const authority = headers[':authority'];
    const source = sourceMetadata(headers, stream.session?.socket);
    const principal = stream.session ? this.principals.get(stream.session) : undefined;
    if (principal !== undefined) source.principal = principal;
    const event: TunnelStreamEvent = { authority, source, status: 0 };
    if (headers[':method'] !== 'CONNECT') {
      this.refuse(stream, event, 405, 'only CONNECT is served on the tunnel port');
      return;
    }
    const destination = parseAuthority(authority);
    if (!destination) {
      this.refuse(stream, event, 400, `:authority must be ip:port or [ipv6]:port, got ${JSON.stringify(authority ?? '')}`);
      return;
    }
    event.destination = destination;
    let decided: Promise<InboundDecision>;
    try {
      decided = Promise.resolve(this.options.resolveInbound(destination, source));
    } catch (err) {
      decided = Promise.reject(err);
    }
    decided.then(
      (decision) => {
        if ('reject' in decision) this.refuse(stream, event, decision.reject, decision.reason);
        else if ('serve' in decision) this.handOver(stream, event, decision.serve);
        else this.relay(stream, event, decision);
      },
      (err: unknown) => this.refuse(stream, event, 500, `inbound resolution failed: ${String(err)}`),
    );
  }

  private refuse(stream: http2.ServerHttp2Stream, event: TunnelStreamEvent, status: number, reason: string): void {
    event.status = status;
    event.reason = reason;
    if (!stream.destroyed && !stream.headersSent) {
      stream.respond({ ':status': status, [REASON_HEADER]: reason }, { endStream: true });
    }
    this.options.onStream?.(event);
  }

  private handOver(stream: http2.ServerHttp2Stream, event: TunnelStreamEvent, serve: (stream: Duplex) => void): void {
    if (stream.destroyed) return;
    event.status = 200;
    stream.respond({ ':status': 200 });
    this.options.onStream?.(event);
    serve(stream);
  }

  private relay(stream: http2.ServerHttp2Stream, event: TunnelStreamEvent, target: { host: string; port: number }): void {
    if (stream.destroyed) return;
    event.target = target;
    // allowHalfOpen: the app's FIN must only close the app→peer direction; the peer may still send.
    const socket = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    this.relays.add(socket);
    const timeout = this.options.connectTimeoutMs ?? 10_000;
    socket.setTimeout(timeout);
    const onTimeout = (): void => {
      socket.destroy(new Error(`connect timed out after ${timeout} ms`));
    };
    socket.once('timeout', onTimeout);
    const onConnectError = (err: Error): void => {
      this.refuse(stream, event, 503, `connect to ${formatAuthority({ address: target.host, port: target.port })} failed: ${err.message}`);
    };
    socket.once('error', onConnectError);
    // The peer may give up (RST) while we are still connecting.
    const onEarlyClose = (): void => {
      socket.destroy();
    };
    stream.once('close', onEarlyClose);
    socket.once('close', () => this.relays.delete(socket));
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.off('timeout', onTimeout);
      socket.off('error', onConnectError);
      stream.off('close', onEarlyClose);
      if (stream.destroyed) {
        socket.destroy();
        return;
      }
      event.status = 200;
      stream.respond({ ':status': 200 });
      this.options.onStream?.(event);
      // END_STREAM becomes FIN and FIN becomes END_STREAM (pipe ends the stream; the socket is
      // ended below), so half-closed connections keep working through the tunnel.
      stream.pipe(socket, { end: false });
      socket.pipe(stream);
      // Node ends the readable side of a reset stream before it reports the reset, so the FIN
      // is held back one turn of the event loop to learn whether this was END_STREAM or RST.
      stream.once('end', () => {
        setImmediate(() => {
          if (!stream.aborted && !stream.rstCode) socket.end();
        });
      });
      socket.on('error', () => undefined);
      socket.once('close', (hadError) => {
        // A reset or failed app connection is reported to the peer as a reset, not as a clean end.
        if (hadError && !stream.closed) stream.close(http2.constants.NGHTTP2_CONNECT_ERROR);
      });
      stream.once('close', () => {
        // A reset stream must not look like a complete exchange to the app: reset it too.
        if ((stream.aborted || stream.rstCode) && !socket.destroyed) socket.resetAndDestroy();
      });
    });
  }
}

function sourceMetadata(headers: http2.IncomingHttpHeaders, socket: net.Socket | undefined): SourceMetadata {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    flat[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  const metadata: SourceMetadata = { headers: flat };
  if (flat.forwarded !== undefined) metadata.forwarded = flat.forwarded;
  if (flat.baggage !== undefined) metadata.baggage = flat.baggage;
  if (flat.traceparent !== undefined) metadata.traceparent = flat.traceparent;
  if (flat.tracestate !== undefined) metadata.tracestate = flat.tracestate;
  if (socket?.remoteAddress !== undefined) metadata.peerAddress = socket.remoteAddress;
  if (socket?.remotePort !== undefined) metadata.peerPort = socket.remotePort;
  return metadata;
}
