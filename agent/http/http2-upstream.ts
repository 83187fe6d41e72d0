// One endpoint's HTTP/2 upstream: a session opened on first use and shared by every request, its
// stream capacity (the peer's SETTINGS_MAX_CONCURRENT_STREAMS), and Envoy's pending requests: a
// request that cannot get a stream at once (no connected session yet, or every stream the peer
// allows in use) waits in a queue holding one of its cluster's max_pending_requests, and is refused
// (UpstreamOverflowError, answered 503 UO) when they are all taken. Without this, Node would queue
// such streams inside nghttp2, where no limit applies.
import type * as http2 from 'node:http2';
import type { CircuitBreaker } from '../resilience/circuit-breaker';

/** The cluster's circuit breaker had no pending request left for a request that must wait: Envoy's UO. */
export class UpstreamOverflowError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamOverflowError';
  }
}

/** A request waiting for a stream: `stream` settles once it has one or its session failed; `cancel` gives up waiting. */
export class PendingStream {
  constructor(
    readonly stream: Promise<http2.ClientHttp2Stream>,
    readonly cancel: () => void,
  ) {}
}

interface Waiter {
  readonly headers: http2.OutgoingHttpHeaders;
  readonly breaker: CircuitBreaker | undefined;
  readonly resolve: (stream: http2.ClientHttp2Stream) => void;
  readonly reject: (error: Error) => void;
}

export class Http2Upstream {
  private session: http2.ClientHttp2Session | undefined;
  private connecting = false;
  private active = 0;
  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS, read when it changes (the getter builds an object per call). */
  private capacity = Infinity;
  /** Streams the current session has carried, for max_requests_per_connection. */
  private carried = 0;
  /** Streams still open on retired sessions, which close when theirs end. */
  private readonly retired = new Map<http2.ClientHttp2Session, number>();
  private readonly waiters: Waiter[] = [];

  /**
   * `open` connects a new session (rejecting with the connect failure); `idle` hears that this
   * upstream has no session, stream or waiter left, so its owner may forget it. A session that has
   * carried `maxRequestsPerConnection` streams (0: unlimited) takes no more: it closes once its
   * streams finish, and the next request opens a new one.
   */
  constructor(
    private readonly open: () => Promise<http2.ClientHttp2Session>,
    private readonly idle: () => void,
    private readonly maxRequestsPerConnection = 0,
  ) {}

  /** Streams in flight on the current session. */
  get activeStreams(): number {
    return this.active;
  }

  get pendingRequests(): number {
    return this.waiters.length;
  }

  /**
   * A stream for `headers`: at once when the session is up with a stream free and nobody waits before
   * this request, else a PendingStream holding one of `breaker`'s pending requests. Throws
   * UpstreamOverflowError when the breaker has none left, and what `session.request` throws.
   */
  request(headers: http2.OutgoingHttpHeaders, breaker: CircuitBreaker | undefined): http2.ClientHttp2Stream | PendingStream {
    if (this.waiters.length === 0 && this.hasStreamFree()) return this.start(headers);
    if (breaker && !breaker.tryAcquirePendingRequest()) {
      throw new UpstreamOverflowError(`no pending request left under the cluster's max_pending_requests (${breaker.thresholds.maxPendingRequests}) while waiting for an HTTP/2 ${this.session ? 'stream' : 'connection'}`);
    }
    let waiter: Waiter | undefined;
    const stream = new Promise<http2.ClientHttp2Stream>((resolve, reject) => {
      waiter = { headers, breaker, resolve, reject };
    });
    this.waiters.push(waiter!);
    if (!this.session && !this.connecting) this.connect();
    return new PendingStream(stream, () => {
      const at = this.waiters.indexOf(waiter!);
      if (at < 0) return;
      this.waiters.splice(at, 1);
      waiter!.breaker?.releasePendingRequest();
      this.forgetIfIdle();
    });
  }

  private hasStreamFree(): boolean {
    const session = this.session;
    if (!session || session.closed || session.destroyed) return false;
    return this.active < this.capacity;
  }

  private start(headers: http2.OutgoingHttpHeaders): http2.ClientHttp2Stream {
    const session = this.session!;
    const stream = session.request(headers);
    this.active++;
    if (this.maxRequestsPerConnection > 0 && ++this.carried >= this.maxRequestsPerConnection) this.retire(session);
    stream.once('close', () => {
      // Streams of a session already gone no longer count against the current one.
      if (session !== this.session) {
        const left = this.retired.get(session);
        if (left === undefined) return;
        if (left > 1) this.retired.set(session, left - 1);
        else {
          this.retired.delete(session);
          session.close();
        }
        return;
      }
      this.active--;
      this.dispatch();
      this.forgetIfIdle();
    });
    return stream;
  }

  /** Hands free streams to the oldest waiters. */
  private dispatch(): void {
    while (this.waiters.length > 0 && this.hasStreamFree()) {
      const waiter = this.waiters.shift()!;
      waiter.breaker?.releasePendingRequest();
      try {
        waiter.resolve(this.start(waiter.headers));
      } catch (error) {
        waiter.reject(error as Error);
      }
    }
    // The session may have been retired by the last stream it took: the rest go on a new one.
    if (this.waiters.length > 0 && !this.session && !this.connecting) this.connect();
  }

  /**
   * Takes no more streams on `session`, and closes it once those in flight have finished (closing it
   * at once reset a stream whose request had just been submitted).
   */
  private retire(session: http2.ClientHttp2Session): void {
    this.retired.set(session, this.active);
    session.once('close', () => this.retired.delete(session));
    this.session = undefined;
    this.active = 0;
    this.forgetIfIdle();
  }

  private connect(): void {
    this.connecting = true;
    this.open().then(
      (session) => {
        this.connecting = false;
        this.session = session;
        this.carried = 0;
        this.capacity = session.remoteSettings.maxConcurrentStreams ?? Infinity;
        const gone = (): void => {
          if (this.session !== session) return;
          this.session = undefined;
          this.active = 0;
          // Requests still waiting go on a new session, as Envoy moves pending requests to a new connection.
          if (this.waiters.length > 0) this.connect();
          else this.forgetIfIdle();
        };
        session.once('close', gone);
        session.once('goaway', gone);
        session.on('error', gone);
        // The peer's SETTINGS may raise the stream limit (or first state it).
        session.on('remoteSettings', (settings: http2.Settings) => {
          if (this.session !== session) return;
          this.capacity = settings.maxConcurrentStreams ?? Infinity;
          this.dispatch();
        });
        this.dispatch();
      },
      (error: Error) => {
        this.connecting = false;
        // Every request waiting for this connection fails with it (Envoy's UF for each).
        for (const waiter of this.waiters.splice(0)) {
          waiter.breaker?.releasePendingRequest();
          waiter.reject(error);
        }
        this.forgetIfIdle();
      },
    );
  }

  private forgetIfIdle(): void {
    if (!this.session && !this.connecting && this.active === 0 && this.waiters.length === 0) this.idle();
  }

  /** Closes the sessions, retired ones too; streams in flight may finish. */
  close(): void {
    this.session?.close();
    for (const session of this.retired.keys()) session.close();
  }
}
