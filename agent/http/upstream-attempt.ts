// One attempt at sending a request upstream, over HTTP/1.1 or HTTP/2, reporting its outcome as a
// value: a response (maybe an upgrade), or connect-failure, reset or timeout. Retries build on this.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { Duplex, Readable } from 'node:stream';
import type { HeaderBag } from './header-mutations';
import { PendingStream, UpstreamOverflowError } from './http2-upstream';
import { UpstreamConnectError, type UpstreamPool, type UpstreamSettings, type UpstreamTarget } from './upstream-pool';

export interface UpstreamRequest {
  readonly target: UpstreamTarget;
  readonly http2: boolean;
  readonly method: string;
  /** Path with query, after any rewrite. */
  readonly path: string;
  readonly authority: string;
  /** Lower-case end-to-end headers: no pseudo-headers, no hop-by-hop headers, no host. */
  readonly headers: HeaderBag;
  /** The request body; ended by the caller's stream. */
  readonly body: Readable;
  /** Until the response is complete; undefined for none. */
  readonly timeoutMs: number | undefined;
  /** An HTTP/1.1 Upgrade (WebSocket): the `upgrade` header's value. */
  readonly upgrade?: string;
  /** The cluster's connection settings (connect timeout, idle timeout, requests per connection). */
  readonly settings?: UpstreamSettings;
  /** The downstream side: when it closes while the request waits as a pending request, the wait ends. */
  readonly downstream?: Closable;
}

/** What an attempt watches for the client leaving: a response, or an upgrade's socket. */
export interface Closable {
  readonly destroyed: boolean;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

export interface UpstreamResponse {
  readonly status: number;
  /** End-to-end headers (hop-by-hop removed). */
  readonly headers: HeaderBag;
  readonly body: Readable;
  /** The trailers, once `body` has ended (gRPC's grpc-status lives here). */
  trailers(): HeaderBag | undefined;
  /** The route timeout fired after the headers arrived; `body` was destroyed for it. */
  timedOut(): boolean;
  /** Abandons the response: the downstream went away. */
  abort(): void;
  /** The headers ended the response (HTTP/2 END_STREAM on HEADERS: gRPC's trailers-only answer). */
  readonly endedWithHeaders: boolean;
  /** After a 101 to an Upgrade: the raw upstream connection and the bytes already read from it. */
  readonly upgraded?: { readonly socket: Duplex; readonly head: Buffer };
}

export type AttemptOutcome =
  | { readonly kind: 'response'; readonly response: UpstreamResponse }
  | { readonly kind: 'connect-failure'; readonly message: string }
  | { readonly kind: 'reset'; readonly message: string; readonly refusedStream?: boolean }
  | { readonly kind: 'timeout'; readonly message: string }
  /** Refused before it was sent: no pending request left under the cluster's circuit breaker (503 UO, never retried). */
  | { readonly kind: 'overflow'; readonly message: string }
  /** Not sent: the downstream left while the request was pending (nothing to answer, nothing for outlier detection). */
  | { readonly kind: 'abandoned'; readonly message: string };

/** An outcome of an attempt that was sent (or tried to connect). */
export type SentOutcome = Exclude<AttemptOutcome, { readonly kind: 'overflow' | 'abandoned' }>;

/** Connection-specific headers (RFC 9110 7.6.1): never forwarded, and forbidden in HTTP/2. */
export const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host', 'http2-settings']);

/** Copies end-to-end headers of an incoming message, dropping pseudo-headers and hop-by-hop ones. */
export function endToEnd(headers: http.IncomingHttpHeaders | http2.IncomingHttpHeaders): HeaderBag {
  const out: HeaderBag = {};
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 || HOP_BY_HOP.has(name)) continue;
    out[name] = headers[name];
  }
  // `te: trailers` is end to end in effect: gRPC servers may require it, and HTTP/2 allows this value alone.
  if (headers.te === 'trailers') out.te = 'trailers';
  return out;
}

/** Sends `request` once and resolves with what happened; never rejects. */
export function attemptUpstream(pool: UpstreamPool, request: UpstreamRequest): Promise<AttemptOutcome> {
  return request.http2 ? attemptHttp2(pool, request) : attemptHttp1(pool, request);
}

function timeoutMessage(ms: number): string {
  return `upstream request timed out after ${ms} ms`;
}

function attemptHttp1(pool: UpstreamPool, request: UpstreamRequest): Promise<AttemptOutcome> {
  return new Promise((resolve) => {
    const headers: HeaderBag = { ...request.headers, host: request.authority };
    if (request.upgrade !== undefined) {
      headers.connection = 'upgrade';
      headers.upgrade = request.upgrade;
    }
    const options = { ...pool.http1Options(request.target, request.settings), method: request.method, path: request.path, headers, setHost: false };
    const upstream = http.request(options as http.RequestOptions);
    let gotSocket = false;
    const attempt = new AttemptSettlement(resolve, request.timeoutMs, (error) => upstream.destroy(error));
    const settle = attempt.settle;
    upstream.once('socket', () => (gotSocket = true));
    upstream.on('error', (error) => {
      attempt.clearTimer();
      if (error instanceof UpstreamOverflowError) settle({ kind: 'overflow', message: error.message });
      else if (error instanceof UpstreamConnectError || !gotSocket) settle({ kind: 'connect-failure', message: error.message });
      else settle({ kind: 'reset', message: error.message });
    });
    upstream.once('response', (incoming: http.IncomingMessage) => {
      incoming.once('end', attempt.clearTimer);
      incoming.once('close', attempt.clearTimer);
      settle({
        kind: 'response',
        response: {
          status: incoming.statusCode ?? 502,
          headers: endToEnd(incoming.headers),
          body: incoming,
          endedWithHeaders: false,
          trailers: () => (Object.keys(incoming.trailers).length > 0 ? { ...incoming.trailers } : undefined),
          timedOut: () => attempt.timedOut,
          abort: () => upstream.destroy(),
        },
      });
    });
    upstream.once('upgrade', (incoming: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      attempt.clearTimer();
      const headers = endToEnd(incoming.headers);
      // The protocol switched to travels back to the client with the 101.
      if (incoming.headers.upgrade !== undefined) headers.upgrade = incoming.headers.upgrade;
      settle({
        kind: 'response',
        response: {
          status: incoming.statusCode ?? 101,
          headers,
          body: incoming,
          endedWithHeaders: false,
          trailers: () => undefined,
          timedOut: () => false,
          abort: () => socket.destroy(),
          upgraded: { socket, head },
        },
      });
    });
    if (request.upgrade !== undefined) upstream.end();
    else request.body.pipe(upstream);
  });
}

function attemptHttp2(pool: UpstreamPool, request: UpstreamRequest): Promise<AttemptOutcome> {
  return new Promise((resolve) => {
    const headers: HeaderBag = { ...request.headers, ':method': request.method, ':path': request.path, ':authority': request.authority, ':scheme': 'http' };
    let opened: http2.ClientHttp2Stream | PendingStream;
    try {
      opened = pool.http2Stream(request.target, headers as http2.OutgoingHttpHeaders, request.settings);
    } catch (error) {
      resolve(error instanceof UpstreamOverflowError ? { kind: 'overflow', message: error.message } : { kind: 'connect-failure', message: (error as Error).message });
      return;
    }
    if (!(opened instanceof PendingStream)) {
      exchangeHttp2(opened, request, resolve);
      return;
    }
    // Pending: the route timeout runs while the request waits (Envoy's timer starts with the request).
    const pending = opened;
    const waiting = new AttemptSettlement(resolve, request.timeoutMs, () => pending.cancel());
    const started = performance.now();
    let gone = false;
    const downstream = request.downstream;
    const onGone = (): void => {
      gone = true;
      pending.cancel();
      waiting.clearTimer();
      waiting.settle({ kind: 'abandoned', message: 'the downstream closed while the request waited for an upstream HTTP/2 stream' });
    };
    downstream?.once('close', onGone);
    pending.stream.then(
      (stream) => {
        downstream?.off('close', onGone);
        if (waiting.timedOut || gone) {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          return;
        }
        waiting.clearTimer();
        const left = request.timeoutMs === undefined ? undefined : Math.max(1, request.timeoutMs - Math.round(performance.now() - started));
        exchangeHttp2(stream, { ...request, timeoutMs: left }, resolve);
      },
      (error: Error) => {
        downstream?.off('close', onGone);
        waiting.clearTimer();
        waiting.settle({ kind: 'connect-failure', message: error.message });
      },
    );
  });
}

/** The exchange on an opened stream: its response, or its reset or timeout. */
function exchangeHttp2(stream: http2.ClientHttp2Stream, request: UpstreamRequest, resolve: (outcome: AttemptOutcome) => void): void {
  let trailers: HeaderBag | undefined;
  const attempt = new AttemptSettlement(resolve, request.timeoutMs, (error) => stream.destroy(error));
  const settle = attempt.settle;
  stream.on('error', (error) => settle({ kind: 'reset', message: error.message, refusedStream: stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM }));
  stream.once('close', () => {
    attempt.clearTimer();
    const code = stream.rstCode ?? 0;
    settle({ kind: 'reset', message: `upstream stream closed before a response (code ${code})`, refusedStream: code === http2.constants.NGHTTP2_REFUSED_STREAM });
  });
  stream.once('trailers', (received: http2.IncomingHttpHeaders) => (trailers = endToEnd(received)));
  stream.once('response', (received: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, flags: number) => {
    settle({
      kind: 'response',
      response: {
        status: Number(received[':status'] ?? 502),
        headers: endToEnd(received),
        body: stream,
        // endAfterHeaders is set only after this event; the frame's flags say it now.
        endedWithHeaders: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0,
        trailers: () => trailers,
        timedOut: () => attempt.timedOut,
        abort: () => stream.close(http2.constants.NGHTTP2_CANCEL),
      },
    });
  });
  request.body.pipe(stream);
}

/**
 * The one outcome of an attempt (the first to arrive wins) and its timeout, which destroys the
 * upstream exchange and settles as a timeout. Shared by the HTTP/1 and HTTP/2 attempts.
 */
class AttemptSettlement {
  timedOut = false;
  private settled = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly resolve: (outcome: AttemptOutcome) => void, timeoutMs: number | undefined, destroy: (error: Error) => void) {
    if (timeoutMs === undefined) return;
    this.timer = setTimeout(() => {
      this.timedOut = true;
      const message = timeoutMessage(timeoutMs);
      destroy(new Error(message));
      this.settle({ kind: 'timeout', message });
    }, timeoutMs);
  }

  readonly settle = (outcome: AttemptOutcome): void => {
    if (this.settled) return;
    this.settled = true;
    this.resolve(outcome);
  };

  readonly clearTimer = (): void => {
    if (this.timer) clearTimeout(this.timer);
  };
}
