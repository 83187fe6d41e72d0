import test from 'ava';
import { addFlag } from './response-flags';
import { backOffMs, isRetriable, retryOnBits } from './retry-policy';
import { shadowAuthority } from './request-mirror';

const response = (status: number, grpcStatus?: number) => ({ kind: 'response', status, grpcStatus }) as const;

test('retry_on conditions retry what Envoy documents for them, and nothing else', (t) => {
  const fiveXx = retryOnBits(['5xx']);
  t.true(isRetriable(fiveXx, [], response(500)));
  t.true(isRetriable(fiveXx, [], response(503)));
  t.false(isRetriable(fiveXx, [], response(404)));
  t.true(isRetriable(fiveXx, [], { kind: 'timeout' }));
  t.true(isRetriable(fiveXx, [], { kind: 'reset', refusedStream: false }));
  t.true(isRetriable(fiveXx, [], { kind: 'connect-failure' }));

  const gateway = retryOnBits(['gateway-error']);
  t.false(isRetriable(gateway, [], response(500)));
  t.true(isRetriable(gateway, [], response(502)));
  t.true(isRetriable(gateway, [], response(504)));

  const connect = retryOnBits(['connect-failure']);
  t.true(isRetriable(connect, [], { kind: 'connect-failure' }));
  t.false(isRetriable(connect, [], { kind: 'reset', refusedStream: false }));
  t.false(isRetriable(connect, [], { kind: 'timeout' }));
  t.false(isRetriable(connect, [], response(503)));

  t.true(isRetriable(retryOnBits(['refused-stream']), [], { kind: 'reset', refusedStream: true }));
  t.false(isRetriable(retryOnBits(['refused-stream']), [], { kind: 'reset', refusedStream: false }));
  t.true(isRetriable(retryOnBits(['retriable-4xx']), [], response(409)));
  t.false(isRetriable(retryOnBits(['retriable-4xx']), [], response(429)));
  // Status codes count only with the retriable-status-codes condition.
  t.true(isRetriable(retryOnBits(['retriable-status-codes']), [503, 429], response(429)));
  t.false(isRetriable(retryOnBits(['connect-failure']), [429], response(429)));
});

test('gRPC conditions read grpc-status: cancelled 1, deadline-exceeded 4, resource-exhausted 8, internal 13, unavailable 14', (t) => {
  const pairs: Array<[string, number]> = [['cancelled', 1], ['deadline-exceeded', 4], ['resource-exhausted', 8], ['internal', 13], ['unavailable', 14]];
  for (const [condition, code] of pairs) {
    t.true(isRetriable(retryOnBits([condition]), [], response(200, code)), condition);
    t.false(isRetriable(retryOnBits([condition]), [], response(200, 3)), `${condition} does not retry INVALID_ARGUMENT`);
  }
  t.false(isRetriable(retryOnBits(['unavailable']), [], response(200)));
});

test('back-off is full jitter below (2^n − 1) × base, capped at max_interval', (t) => {
  const policy = { baseIntervalMs: 25, maxIntervalMs: 250 };
  t.is(backOffMs(policy, 1, () => 0.999), 24);
  t.is(backOffMs(policy, 2, () => 0.999), 74);
  t.is(backOffMs(policy, 3, () => 0.999), 174);
  t.is(backOffMs(policy, 4, () => 0.999), 249);
  t.is(backOffMs(policy, 20, () => 0.5), 125);
  t.is(backOffMs(policy, 1, () => 0), 0);
});

test('response flags keep Envoy\'s order whatever order they are added in', (t) => {
  t.is(addFlag('', 'UF'), 'UF');
  t.is(addFlag('URX', 'UT'), 'UT,URX');
  t.is(addFlag('FI', 'DI'), 'DI,FI');
  t.is(addFlag('UT,URX', 'URX'), 'UT,URX');
});

test('a shadow request\'s host gets "-shadow" before its port', (t) => {
  t.is(shadowAuthority('web:8080'), 'web-shadow:8080');
  t.is(shadowAuthority('web'), 'web-shadow');
  t.is(shadowAuthority('[fd00::1]:80'), '[fd00::1]-shadow:80');
  t.is(shadowAuthority('[fd00::1]'), '[fd00::1]-shadow');
});
