// The token bucket that rate-limits the Consul watches: whole and fractional costs.
import test from 'ava';
import { TokenBucket } from './consul-blocking-loop';

test('a token bucket lets the burst through at once, then makes the next take wait', async (t) => {
  const bucket = new TokenBucket(2, 60_000);
  const signal = new AbortController().signal;
  t.true(await bucket.take(signal));
  t.true(await bucket.take(signal));
  const abort = new AbortController();
  const waiting = bucket.take(abort.signal);
  setTimeout(() => abort.abort(), 20);
  t.false(await waiting, 'no token for a minute: the take waits until aborted');
});

test('fractional costs: two half-sweeps take what one full sweep takes', async (t) => {
  const bucket = new TokenBucket(1, 60_000);
  const signal = new AbortController().signal;
  t.true(await bucket.take(signal, 0.5));
  t.true(await bucket.take(signal, 0.5));
  const abort = new AbortController();
  const waiting = bucket.take(abort.signal, 0.5);
  setTimeout(() => abort.abort(), 20);
  t.false(await waiting, 'the burst is spent');
});
