// The JWKS cache on its own: one fetch for concurrent requests, a back-off after failures that
// answers at once, retry once it passes, and oversized key sets refused (from a real local server).
import test from 'ava';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { JwksCache, JwksError, MAX_JWKS_BYTES, fetchJwks, type KeySet } from './jwks-cache';
import { jwksOf, testSigner } from './jwt-testing';

const remote = (uri = 'http://keys.test/jwks') => ({ uri, timeoutMs: 1000, cacheMs: 60_000 });

test('concurrent requests for a missing key set share one fetch', async (t) => {
  let fetches = 0;
  let release!: (body: string) => void;
  const cache = new JwksCache({
    fetch: () => {
      fetches++;
      return new Promise<string>((resolve) => (release = resolve));
    },
  });
  const waiting = [cache.get(remote()), cache.get(remote()), cache.get(remote())];
  t.true(waiting.every((w) => w instanceof Promise));
  release(jwksOf(testSigner('ES256')));
  const sets = (await Promise.all(waiting)) as KeySet[];
  t.is(fetches, 1);
  t.is(sets[0]!.keys.length, 1);
  t.is(cache.get(remote()), sets[0], 'then served from the cache, synchronously');
});

test('after a failure requests fail at once until the back-off passes, then it fetches again', async (t) => {
  let now = 0;
  let fetches = 0;
  let answer: () => Promise<string> = () => Promise.reject(new Error('connection refused'));
  const errors: string[] = [];
  const cache = new JwksCache({ now: () => now, failureBackoffMs: 1000, onError: (_uri, message) => errors.push(message), fetch: () => (fetches++, answer()) });
  await t.throwsAsync(Promise.resolve(cache.get(remote())), { instanceOf: JwksError, message: /keys\.test\/jwks: connection refused/ });
  await t.throwsAsync(Promise.resolve(cache.get(remote())), { message: /connection refused/ });
  t.is(fetches, 1);
  now += 1000;
  answer = () => Promise.resolve(jwksOf(testSigner('ES256')));
  const keys = await cache.get(remote());
  t.is(keys.keys.length, 1);
  t.is(fetches, 2);
  t.deepEqual(errors, ['connection refused']);
});

test('an oversized key set is refused while reading, not after', async (t) => {
  const server = http.createServer((_req, res) => {
    // No content-length: the limit must hold on the stream itself.
    res.write('{"keys": [');
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    for (let i = 0; i < (MAX_JWKS_BYTES / chunk.length) + 2; i++) res.write(chunk);
    res.end(']}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  await t.throwsAsync(fetchJwks(uri, 5000), { instanceOf: JwksError, message: /exceeds 1048576 bytes/ });
});
