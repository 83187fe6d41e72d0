import type * as http2 from 'node:http2';
import test from 'ava';
import { CircuitBreaker } from '../resilience/circuit-breaker';
import { Http2Upstream, PendingStream, UpstreamOverflowError } from './http2-upstream';
import { UpstreamConnectError } from './upstream-pool';

function breaker(maxPendingRequests: number): CircuitBreaker {
  return new CircuitBreaker({ maxConnections: 1024, maxPendingRequests, maxRequests: 1024, maxRetries: 3 });
}

const HEADERS = { ':path': '/' };

test('requests waiting for a session that fails to connect all fail with its error, and give their pending requests back', async (t) => {
  let fail: (error: Error) => void = () => undefined;
  let opens = 0;
  let forgotten = 0;
  const upstream = new Http2Upstream(
    () => {
      opens++;
      return new Promise<http2.ClientHttp2Session>((_, reject) => (fail = reject));
    },
    () => forgotten++,
  );
  const cb = breaker(2);
  const first = upstream.request(HEADERS, cb);
  const second = upstream.request(HEADERS, cb);
  t.true(first instanceof PendingStream && second instanceof PendingStream);
  t.is(opens, 1, 'one connect for every waiting request');
  t.throws(() => upstream.request(HEADERS, cb), { instanceOf: UpstreamOverflowError, message: /max_pending_requests \(2\) while waiting for an HTTP\/2 connection/ });
  t.is(cb.stats().upstream_rq_pending_overflow, 1);
  fail(new UpstreamConnectError('connect ECONNREFUSED 127.0.0.1:1'));
  await t.throwsAsync((first as PendingStream).stream, { instanceOf: UpstreamConnectError });
  await t.throwsAsync((second as PendingStream).stream, { instanceOf: UpstreamConnectError });
  t.is(cb.stats().remaining_pending, 2);
  t.is(forgotten, 1, 'with nothing left, the owner may forget the upstream');
});

test('a cancelled wait gives its pending request back at once', (t) => {
  const upstream = new Http2Upstream(
    () => new Promise<http2.ClientHttp2Session>(() => undefined),
    () => undefined,
  );
  const cb = breaker(1);
  const pending = upstream.request(HEADERS, cb) as PendingStream;
  t.is(cb.stats().remaining_pending, 0);
  pending.cancel();
  t.is(cb.stats().remaining_pending, 1);
  t.is(upstream.pendingRequests, 0);
  t.true(upstream.request(HEADERS, cb) instanceof PendingStream);
});
