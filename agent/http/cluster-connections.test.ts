import { PassThrough } from 'node:stream';
import test from 'ava';
import { CircuitBreaker } from '../resilience/circuit-breaker';
import { ClusterConnections } from './cluster-connections';

function breaker(maxConnections: number): CircuitBreaker {
  return new CircuitBreaker({ maxConnections, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 });
}

/** Stands in for a socket or tunnel stream: it emits close once destroyed. */
function connection(): PassThrough {
  return new PassThrough();
}

const closed = (stream: PassThrough) => new Promise<void>((resolve) => (stream.closed ? resolve() : stream.once('close', () => resolve())));

test('at the limit the oldest idle connection is closed to make room, counting no overflow', async (t) => {
  const cluster = new ClusterConnections(breaker(2));
  const first = connection();
  const second = connection();
  for (const c of [first, second]) {
    t.is(cluster.reserve(1000), true);
    cluster.adopt(c);
    t.true(cluster.keepIdle(c));
  }
  t.is(cluster.reserve(1000), true);
  t.true(first.destroyed, 'the oldest idle connection closed');
  t.false(second.destroyed);
  t.is(cluster.breaker.stats().remaining_cx, 0);
  t.is(cluster.breaker.stats().upstream_cx_overflow, 0);
  await closed(first);
  // Its later close event gives back nothing more: the slot was given back when it was closed.
  t.is(cluster.breaker.stats().remaining_cx, 0);
});

test('a connection taken from idle is never closed for room; with none idle the new connection waits, and one turning idle is closed for it', async (t) => {
  const cluster = new ClusterConnections(breaker(1));
  const busy = connection();
  t.is(cluster.reserve(1000), true);
  cluster.adopt(busy);
  t.true(cluster.keepIdle(busy));
  cluster.busy(busy);
  const waiting = cluster.reserve(5000);
  t.true(waiting instanceof Promise);
  t.false(busy.destroyed);
  t.is(cluster.breaker.stats().upstream_cx_overflow, 1, "Envoy's upstream_cx_overflow: the request stays pending for a connection");
  // Its request done, the busy connection would be kept alive: it is closed instead, for the waiter.
  t.false(cluster.keepIdle(busy));
  busy.destroy();
  t.is(await waiting, true);
  t.is(cluster.breaker.stats().remaining_cx, 0);
});

test('a wait for room gives up after its timeout; a failed connect gives its slot back', async (t) => {
  const cluster = new ClusterConnections(breaker(1));
  t.is(cluster.reserve(1000), true);
  const started = performance.now();
  t.is(await cluster.reserve(50), false);
  t.true(performance.now() - started >= 45);
  cluster.unreserve();
  t.is(cluster.breaker.stats().remaining_cx, 1);
});

test('an HTTP/2 session opens even at the limit (Envoy gives each picked host one connection), counted as an overflow and holding no slot', (t) => {
  const cluster = new ClusterConnections(breaker(1));
  t.true(cluster.reserveOrOverflow());
  t.false(cluster.reserveOrOverflow());
  t.is(cluster.breaker.stats().upstream_cx_overflow, 1);
});
