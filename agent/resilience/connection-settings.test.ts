// Connection settings from the clusters the translator serves: connect timeout, keepalive time,
// HTTP idle timeout and requests per connection; keepalive parts Node cannot set are refused.
import test from 'ava';
import { endpoint, port, service } from '../../server/translate/testing';
import { ENVOY_DEFAULT_CONNECT_TIMEOUT_MS, connectionSettings } from './connection-settings';
import { translatedCluster } from './testing';

const HOST = 'reviews.default.svc.cluster.local';
const CLUSTER = `outbound|9080||${HOST}`;
const reviews = service(HOST, { ports: [port(9080, 'HTTP', 'http')], endpoints: [endpoint('10.0.0.1')] });

test('connectTimeout, tcpKeepalive.time, idleTimeout and maxRequestsPerConnection become plain numbers', (t) => {
  const cluster = translatedCluster([reviews], {
    host: HOST,
    trafficPolicy: { connectionPool: { tcp: { connectTimeout: '1.5s', tcpKeepalive: { time: '7s' } }, http: { idleTimeout: '30s', maxRequestsPerConnection: 4 } } },
  }, CLUSTER, 'client');
  t.deepEqual(connectionSettings(cluster, CLUSTER), { connectTimeoutMs: 1500, keepalive: { timeMs: 7000 }, idleTimeoutMs: 30_000, maxRequestsPerConnection: 4, maxConnectionDurationMs: 0 });
});

test('Istio\'s 10 s default connect timeout is served; a bare cluster gets Envoy\'s 5 s and no keepalive', (t) => {
  const cluster = translatedCluster([reviews], undefined, CLUSTER, 'client');
  t.is(connectionSettings(cluster, CLUSTER).connectTimeoutMs, 10_000);
  t.like(connectionSettings({}, 'c'), { connectTimeoutMs: ENVOY_DEFAULT_CONNECT_TIMEOUT_MS, keepalive: undefined, maxRequestsPerConnection: 0 });
});

test('keepalive probes and interval cannot be honoured and are refused naming the cluster and the Istio field', (t) => {
  const cluster = translatedCluster([reviews], { host: HOST, trafficPolicy: { connectionPool: { tcp: { tcpKeepalive: { time: '7s', probes: 3 } } } } }, CLUSTER, 'client');
  t.throws(() => connectionSettings(cluster, CLUSTER), { message: new RegExp(`cluster ${CLUSTER.replace(/\|/g, '\\|')}: .*keepalive_probes cannot be honoured.*tcpKeepalive.probes`) });
  t.throws(() => connectionSettings({ upstream_connection_options: { tcp_keepalive: { keepalive_interval: { value: 5 } } } }, 'c'), { message: /keepalive_interval cannot be honoured/ });
  t.throws(() => connectionSettings({ connect_timeout: { seconds: '-1' } }, 'c'), { message: /cluster c: connect_timeout must not be negative/ });
});
