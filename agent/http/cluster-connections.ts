// The upstream connections one cluster holds open in the upstream pool, idle or busy, counted
// against its circuit breaker's max_connections as Envoy counts them (every connection, whatever it
// is doing). A kept-alive idle connection therefore takes room too: when a request needs a new
// connection and the cluster is at its limit, the oldest idle connection of the cluster is closed to
// make room. Idle ones to the same endpoint never get here (the pool reuses them first), so this
// only closes connections to other endpoints, which would otherwise sit unused until their idle
// timeout while this request waited. With no idle connection to close, the new connection waits
// until one closes or turns idle.
import type { Duplex } from 'node:stream';
import type { CircuitBreaker } from '../resilience/circuit-breaker';

/** Something that counts as one upstream connection (a socket, a tunnel stream, an HTTP/2 session) and says when it is gone. */
export interface CountedConnection {
  once(event: 'close', listener: () => void): unknown;
}

export class ClusterConnections {
  /** Idle kept-alive connections, oldest first (a Set keeps insertion order). */
  private readonly idle = new Set<Duplex>();
  /** Connections holding one of the breaker's connection slots, each released once. */
  private readonly counted = new WeakSet<CountedConnection>();
  /** New connections waiting for room, oldest first. */
  private readonly waiters: Array<() => void> = [];

  constructor(readonly breaker: CircuitBreaker) {}

  /**
   * Room for one new connection (its slot is taken): at once, after closing an idle connection, or
   * once a connection closes or turns idle; false when none did within `timeoutMs`. A taken slot is
   * then either `adopt`ed by the connection or given back with `unreserve`.
   */
  reserve(timeoutMs: number): boolean | Promise<boolean> {
    this.evictIdleForRoom();
    // A refusal here is Envoy's upstream_cx_overflow: the request stays pending for a connection.
    if (this.waiters.length === 0 && this.breaker.tryAcquireConnection()) return true;
    return new Promise((resolve) => {
      const waiter = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) this.waiters.splice(at, 1);
        resolve(false);
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /**
   * Envoy's rule for a host that has no connection at all (HTTP/2: one session per endpoint): it gets
   * one even when the cluster is at its limit, counted as an overflow. True when a slot was taken.
   */
  reserveOrOverflow(): boolean {
    this.evictIdleForRoom();
    return this.breaker.tryAcquireConnection();
  }

  /** A slot from `reserve` whose connection could not be opened. */
  unreserve(): void {
    this.breaker.releaseConnection();
    this.wake();
  }

  /** The connection opened on a reserved slot: the slot is freed when it closes. */
  adopt(connection: CountedConnection): void {
    this.counted.add(connection);
    connection.once('close', () => {
      this.idle.delete(connection as Duplex);
      this.release(connection);
    });
  }

  /**
   * A connection finished its request and would be kept alive. False when a new connection is
   * waiting for room: this one is then closed rather than kept (its close makes the room).
   */
  keepIdle(connection: Duplex): boolean {
    if (this.waiters.length > 0) return false;
    this.idle.add(connection);
    return true;
  }

  /** An idle connection taken for a request. */
  busy(connection: Duplex): void {
    this.idle.delete(connection);
  }

  private evictIdleForRoom(): void {
    while (!this.breaker.hasConnectionRoom() && this.idle.size > 0) {
      const oldest = this.idle.values().next().value as Duplex;
      this.idle.delete(oldest);
      this.release(oldest);
      // Out of the http.Agent's free list now, not at its close event: no request may be given it meanwhile.
      oldest.emit('agentRemove');
      oldest.destroy();
    }
  }

  private release(connection: CountedConnection): void {
    if (!this.counted.delete(connection)) return;
    this.breaker.releaseConnection();
    this.wake();
  }

  private wake(): void {
    while (this.waiters.length > 0 && this.breaker.hasConnectionRoom()) {
      this.breaker.tryAcquireConnection();
      this.waiters.shift()!();
    }
  }
}
