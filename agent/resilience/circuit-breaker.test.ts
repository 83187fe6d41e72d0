// Circuit breaking: thresholds read from the clusters the translator serves, Envoy's defaults,
// try-acquire/release against each limit, overflow counting, and what the agent refuses.
import test from 'ava';
import { endpoint, port, service } from '../../server/translate/testing';
import { CircuitBreaker, ENVOY_DEFAULT_THRESHOLD, circuitBreakerThresholds } from './circuit-breaker';
import { translatedCluster } from './testing';

const HOST = 'reviews.default.svc.cluster.local';
const CLUSTER = `outbound|9080||${HOST}`;
const reviews = service(HOST, { ports: [port(9080, 'HTTP', 'http')], endpoints: [endpoint('10.0.0.1')] });

test('DestinationRule connectionPool limits arrive as the DEFAULT thresholds; unset ones are Istio\'s unlimited', (t) => {
  const cluster = translatedCluster([reviews], { host: HOST, trafficPolicy: { connectionPool: { tcp: { maxConnections: 2 }, http: { http1MaxPendingRequests: 3, http2MaxRequests: 4 } } } }, CLUSTER, 'client');
  t.deepEqual(circuitBreakerThresholds(cluster, CLUSTER), { maxConnections: 2, maxPendingRequests: 3, maxRequests: 4, maxRetries: 4294967295 });
});

test('a cluster without circuit_breakers gets Envoy\'s 1024 for each limit; HIGH-priority thresholds are not used', (t) => {
  t.deepEqual(circuitBreakerThresholds({}, 'c'), { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 1024 });
  const high = circuitBreakerThresholds({ circuit_breakers: { thresholds: [{ priority: 'HIGH', max_connections: { value: 1 } }, { max_retries: { value: 0 } }] } }, 'c');
  t.is(high.maxConnections, ENVOY_DEFAULT_THRESHOLD);
  t.is(high.maxRetries, 0, 'a stated 0 decodes as {} and still means 0');
});

test('what the agent cannot honour is refused naming the cluster and field', (t) => {
  t.throws(() => circuitBreakerThresholds({ circuit_breakers: { thresholds: [{ retry_budget: {} }] } }, 'c'), { message: /cluster c: circuit_breakers.thresholds\[0\].retry_budget is not supported/ });
  t.throws(() => circuitBreakerThresholds({ circuit_breakers: { thresholds: [{}, { priority: 'DEFAULT' }] } }, 'c'), { message: /thresholds\[1\]: a second entry for priority DEFAULT/ });
  t.throws(() => circuitBreakerThresholds({ circuit_breakers: { per_host_thresholds: [{}] } }, 'c'), { message: /per_host_thresholds is not supported/ });
  t.throws(() => circuitBreakerThresholds({ circuit_breakers: { thresholds: [{ max_connections: { value: -1 } }] } }, 'c'), { message: /max_connections must be a non-negative number, got -1/ });
});

test('each limit admits exactly its threshold, counts every refusal as Envoy\'s overflow stat, and frees on release', (t) => {
  const breaker = new CircuitBreaker({ maxConnections: 1, maxPendingRequests: 2, maxRequests: 1, maxRetries: 0 });
  t.true(breaker.tryAcquireConnection());
  t.false(breaker.tryAcquireConnection());
  t.false(breaker.tryAcquireConnection());
  t.true(breaker.tryAcquirePendingRequest());
  t.true(breaker.tryAcquirePendingRequest());
  t.false(breaker.tryAcquirePendingRequest());
  t.true(breaker.tryAcquireRequest());
  t.false(breaker.tryAcquireRequest());
  t.false(breaker.tryAcquireRetry());
  t.like(breaker.stats(), { upstream_cx_overflow: 2, upstream_rq_pending_overflow: 2, upstream_rq_retry_overflow: 1, cx_open: 1, remaining_cx: 0, rq_open: 1 });
  breaker.releaseConnection();
  t.true(breaker.tryAcquireConnection(), 'a released slot is free again');
  breaker.releaseConnection();
  breaker.releaseConnection();
  t.like(breaker.stats(), { remaining_cx: 1, cx_open: 0 }, 'extra releases do not go below zero');
});

test('lowering a limit keeps connections opened under the old one and refuses new ones until below it', (t) => {
  const breaker = new CircuitBreaker({ maxConnections: 3, maxPendingRequests: 1, maxRequests: 1, maxRetries: 1 });
  for (let i = 0; i < 3; i++) t.true(breaker.tryAcquireConnection());
  breaker.reconfigure({ ...breaker.thresholds, maxConnections: 2 });
  t.false(breaker.tryAcquireConnection());
  breaker.releaseConnection();
  t.false(breaker.tryAcquireConnection(), 'two are still open');
  breaker.releaseConnection();
  t.true(breaker.tryAcquireConnection());
});
