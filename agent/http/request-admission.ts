// Envoy's circuit breaking of one cluster on the HTTP path: an attempt needs a request slot
// (max_requests), and on HTTP/1.1, where a connection carries one request at a time (an upgraded
// one for its whole life), a free connection (max_connections); with every connection busy it waits
// as a pending request (max_pending_requests). Whatever does not fit is refused at once: the caller
// answers 503 UO. Idle kept-alive connections count against max_connections too: the upstream pool
// closes one to make room (cluster-connections.ts). On HTTP/2 a request waits for a session or a
// stream, not a connection of its own: that pending wait is the upstream pool's (http2-upstream.ts).
import type { CircuitBreaker } from '../resilience/circuit-breaker';

/** Releases what an admitted attempt holds; call exactly once. */
export type Admitted = () => void;

interface Waiter {
  readonly grant: (admitted: Admitted | undefined) => void;
  cancelled: boolean;
}

/** The HTTP/1.1 connection slots of one cluster, shared by every request to it. */
export class Http1Slots {
  private busy = 0;
  private readonly queue: Waiter[] = [];

  constructor(private readonly breaker: CircuitBreaker) {}

  get inUse(): number {
    return this.busy;
  }

  /**
   * An attempt's admission: at once when a connection is free, after a wait as a pending request
   * when none is, undefined (overflow, counted by the breaker) when the pending queue is full.
   * `cancel` (the downstream left) ends a wait with undefined.
   */
  admit(http1: boolean, cancel: { onCancel(listener: () => void): void }): Admitted | undefined | Promise<Admitted | undefined> {
    const breaker = this.breaker;
    if (!breaker.tryAcquireRequest()) return undefined;
    if (!http1) return () => breaker.releaseRequest();
    if (this.busy < breaker.thresholds.maxConnections) {
      this.busy++;
      return this.releaser();
    }
    if (!breaker.tryAcquirePendingRequest()) {
      breaker.releaseRequest();
      return undefined;
    }
    return new Promise((resolve) => {
      const waiter: Waiter = { grant: resolve, cancelled: false };
      this.queue.push(waiter);
      cancel.onCancel(() => {
        if (waiter.cancelled) return;
        waiter.cancelled = true;
        const at = this.queue.indexOf(waiter);
        if (at < 0) return;
        this.queue.splice(at, 1);
        breaker.releasePendingRequest();
        breaker.releaseRequest();
        resolve(undefined);
      });
    });
  }

  private releaser(): Admitted {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.breaker.releaseRequest();
      const next = this.queue.shift();
      if (next) {
        // The freed connection goes straight to the oldest pending request.
        next.cancelled = true;
        this.breaker.releasePendingRequest();
        next.grant(this.releaser());
      } else this.busy--;
    };
  }
}

/** One Http1Slots per cluster guard, living as long as the guard (guards outlive config updates). */
export class ClusterAdmission {
  private readonly slots = new WeakMap<CircuitBreaker, Http1Slots>();

  of(breaker: CircuitBreaker): Http1Slots {
    let slots = this.slots.get(breaker);
    if (!slots) {
      slots = new Http1Slots(breaker);
      this.slots.set(breaker, slots);
    }
    return slots;
  }
}
