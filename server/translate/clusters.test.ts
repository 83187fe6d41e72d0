// Clusters as Istio builds them, decoded from what the translator serves: names, discovery types,
// load balancers, connection pools, outlier detection, TLS, policy merges and the fixed clusters.
import test from 'ava';
import { MeshTranslator } from './mesh-translator';
import { fromStruct } from './proto-values';
import { SYSTEM_CA_BUNDLE } from './clusters';
import { TypeUrl, endpoint, generateDecoded, model, named, node, port, resource, service } from './testing';
import type { DestinationRuleSpec } from './specs';

const MAX = 4294967295;

function reviews(extra: Partial<Parameters<typeof service>[1]> = {}) {
  return service('reviews.default.svc.cluster.local', {
    aliases: ['reviews'],
    ports: [port(9080, 'HTTP', 'http'), port(9090, 'GRPC', 'grpc')],
    endpoints: [
      endpoint('10.0.0.1', { labels: { app: 'reviews', version: 'v1' }, node: 'host-a', serviceAccount: 'reviews' }),
      endpoint('10.0.0.2', { labels: { app: 'reviews', version: 'v2' }, node: 'host-b', serviceAccount: 'reviews' }),
    ],
    ...extra,
  });
}

function clustersFor(rule: DestinationRuleSpec | undefined, svc = reviews(), nodeId = 'host-c') {
  const resources = rule ? [resource('DestinationRule', 'reviews', rule)] : [];
  return generateDecoded(new MeshTranslator(), model([svc], resources), node(nodeId), TypeUrl.Cluster);
}

const cluster9080 = 'outbound|9080||reviews.default.svc.cluster.local';

test('each service port becomes an outbound|PORT||HOST EDS cluster fed over ADS under its own name', (t) => {
  const clusters = clustersFor(undefined);
  const c = clusters.get(cluster9080);
  t.truthy(c);
  t.truthy(clusters.get('outbound|9090||reviews.default.svc.cluster.local'));
  t.is(c.type, 'EDS');
  t.truthy(c.eds_cluster_config.eds_config.ads);
  t.is(c.eds_cluster_config.eds_config.resource_api_version, 'V3');
  t.is(c.eds_cluster_config.service_name, cluster9080);
  t.deepEqual(c.connect_timeout, { seconds: '10' });
  t.is(c.lb_policy, 'LEAST_REQUEST');
});

test('passthrough, blackhole and inbound passthrough clusters are always present for agents', (t) => {
  const clusters = clustersFor(undefined);
  t.is(clusters.get('PassthroughCluster').type, 'ORIGINAL_DST');
  t.is(clusters.get('PassthroughCluster').lb_policy, 'CLUSTER_PROVIDED');
  t.is(clusters.get('BlackHoleCluster').type, 'STATIC');
  t.is(clusters.get('BlackHoleCluster').load_assignment, undefined);
  t.is(clusters.get('InboundPassthroughClusterIpv4').upstream_bind_config.source_address.address, '127.0.0.6');
});

test('DestinationRule subsets add outbound|PORT|SUBSET|HOST clusters for every port', (t) => {
  const clusters = clustersFor({ host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] });
  for (const p of [9080, 9090]) {
    for (const subset of ['', 'v1', 'v2']) t.truthy(clusters.get(`outbound|${p}|${subset}|reviews.default.svc.cluster.local`), `${p} ${subset}`);
  }
  const v2 = clusters.get('outbound|9080|v2|reviews.default.svc.cluster.local');
  t.is(v2.eds_cluster_config.service_name, 'outbound|9080|v2|reviews.default.svc.cluster.local');
  t.is(fromStruct(v2.metadata.filter_metadata.mesh).subset, 'v2');
});

test('simple load balancers map to Envoy lb_policy; PASSTHROUGH becomes an ORIGINAL_DST cluster', (t) => {
  const lb = (simple: 'ROUND_ROBIN' | 'RANDOM' | 'LEAST_CONN' | 'PASSTHROUGH') => clustersFor({ host: 'reviews', trafficPolicy: { loadBalancer: { simple } } }).get(cluster9080);
  t.is(lb('ROUND_ROBIN').lb_policy, 'ROUND_ROBIN');
  t.is(lb('RANDOM').lb_policy, 'RANDOM');
  t.is(lb('LEAST_CONN').lb_policy, 'LEAST_REQUEST');
  const passthrough = lb('PASSTHROUGH');
  t.is(passthrough.type, 'ORIGINAL_DST');
  t.is(passthrough.lb_policy, 'CLUSTER_PROVIDED');
  t.is(passthrough.eds_cluster_config, undefined);
});

test('consistent hash becomes RING_HASH (default ring 1024) or MAGLEV with its table size', (t) => {
  const ring = clustersFor({ host: 'reviews', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } }).get(cluster9080);
  t.is(ring.lb_policy, 'RING_HASH');
  t.is(ring.ring_hash_lb_config.minimum_ring_size.value, '1024');
  const sized = clustersFor({ host: 'reviews', trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: true, ringHash: { minimumRingSize: 4096 } } } } }).get(cluster9080);
  t.is(sized.ring_hash_lb_config.minimum_ring_size.value, '4096');
  const maglev = clustersFor({ host: 'reviews', trafficPolicy: { loadBalancer: { consistentHash: { httpCookie: { name: 'c', ttl: '10s' }, maglev: { tableSize: 65537 } } } } }).get(cluster9080);
  t.is(maglev.lb_policy, 'MAGLEV');
  t.is(maglev.maglev_lb_config.table_size.value, '65537');
});

test('connection pool settings map to circuit breaker thresholds, timeouts, keepalive and HTTP options', (t) => {
  const c = clustersFor({
    host: 'reviews',
    trafficPolicy: {
      connectionPool: {
        tcp: { maxConnections: 100, connectTimeout: '250ms', tcpKeepalive: { probes: 3, time: '7200s', interval: '75s' } },
        http: { http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 5, maxRetries: 4, idleTimeout: '30s' },
      },
    },
  }).get(cluster9080);
  const th = c.circuit_breakers.thresholds[0];
  t.is(th.max_connections.value, 100);
  t.is(th.max_pending_requests.value, 10);
  t.is(th.max_requests.value, 1000);
  t.is(th.max_retries.value, 4);
  t.true(th.track_remaining);
  t.deepEqual(c.connect_timeout, { seconds: '0', nanos: 250000000 });
  t.deepEqual(c.upstream_connection_options.tcp_keepalive, { keepalive_probes: { value: 3 }, keepalive_time: { value: 7200 }, keepalive_interval: { value: 75 } });
  const options = c.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'];
  t.is(options['@type'], 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions');
  t.deepEqual(options.common_http_protocol_options.idle_timeout, { seconds: '30' });
  t.is(options.common_http_protocol_options.max_requests_per_connection.value, 5);
  t.truthy(options.explicit_http_config.http_protocol_options);
});

test('without a DestinationRule the thresholds are Istio\'s unlimited defaults and gRPC ports speak HTTP/2', (t) => {
  const clusters = clustersFor(undefined);
  const th = clusters.get(cluster9080).circuit_breakers.thresholds[0];
  t.deepEqual([th.max_connections.value, th.max_pending_requests.value, th.max_requests.value, th.max_retries.value], [MAX, MAX, MAX, MAX]);
  t.is(clusters.get(cluster9080).typed_extension_protocol_options, undefined);
  const grpc = clusters.get('outbound|9090||reviews.default.svc.cluster.local');
  t.truthy(grpc.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].explicit_http_config.http2_protocol_options);
});

test('outlier detection maps consecutive errors with enforcement, ejection settings and the panic threshold', (t) => {
  const c = clustersFor({
    host: 'reviews',
    trafficPolicy: {
      outlierDetection: { consecutive5xxErrors: 7, consecutiveGatewayErrors: 0, interval: '5s', baseEjectionTime: '15m', maxEjectionPercent: 50, minHealthPercent: 30 },
    },
  }).get(cluster9080);
  const od = c.outlier_detection;
  t.is(od.consecutive_5xx.value, 7);
  t.is(od.enforcing_consecutive_5xx.value, 100);
  t.is(od.consecutive_gateway_failure.value, 0);
  t.is(od.enforcing_consecutive_gateway_failure.value, 0);
  t.is(od.enforcing_success_rate.value, 0);
  t.deepEqual(od.interval, { seconds: '5' });
  t.deepEqual(od.base_ejection_time, { seconds: '900' });
  t.is(od.max_ejection_percent.value, 50);
  t.is(c.common_lb_config.healthy_panic_threshold.value, 30);
});

test('outlier detection without minHealthPercent disables the panic threshold, as Istio does', (t) => {
  const c = clustersFor({ host: 'reviews', trafficPolicy: { outlierDetection: { consecutive5xxErrors: 5 } } }).get(cluster9080);
  t.deepEqual(c.common_lb_config.healthy_panic_threshold, { value: 0 });
  t.is(c.common_lb_config.locality_weighted_lb_config, undefined);
});

test('locality distribute and failover with outlier detection turn on locality weighted LB', (t) => {
  const distribute = clustersFor({
    host: 'reviews',
    trafficPolicy: { loadBalancer: { localityLbSetting: { distribute: [{ from: 'eu/*', to: { 'eu/a/*': 80, 'eu/b/*': 20 } }] } } },
  }).get(cluster9080);
  t.deepEqual(distribute.common_lb_config.locality_weighted_lb_config, {});
  const failoverWithoutOutlier = clustersFor({
    host: 'reviews',
    trafficPolicy: { loadBalancer: { localityLbSetting: { failover: [{ from: 'eu', to: 'us' }] } } },
  }).get(cluster9080);
  t.is(failoverWithoutOutlier.common_lb_config, undefined);
});

test('port-level settings replace the top-level ones for their port only', (t) => {
  const clusters = clustersFor({
    host: 'reviews',
    trafficPolicy: {
      loadBalancer: { simple: 'RANDOM' },
      connectionPool: { tcp: { maxConnections: 10 } },
      portLevelSettings: [{ port: { number: 9090 }, loadBalancer: { simple: 'ROUND_ROBIN' } }],
    },
  });
  const http = clusters.get(cluster9080);
  const grpc = clusters.get('outbound|9090||reviews.default.svc.cluster.local');
  t.is(http.lb_policy, 'RANDOM');
  t.is(http.circuit_breakers.thresholds[0].max_connections.value, 10);
  t.is(grpc.lb_policy, 'ROUND_ROBIN');
  // Port-level settings do not inherit omitted components: back to the default.
  t.is(grpc.circuit_breakers.thresholds[0].max_connections.value, MAX);
});

test('a subset\'s traffic policy overrides the rule\'s component by component', (t) => {
  const clusters = clustersFor({
    host: 'reviews',
    trafficPolicy: { loadBalancer: { simple: 'RANDOM' }, connectionPool: { tcp: { maxConnections: 10 } } },
    subsets: [{ name: 'v2', labels: { version: 'v2' }, trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' } } }],
  });
  const v2 = clusters.get('outbound|9080|v2|reviews.default.svc.cluster.local');
  t.is(v2.lb_policy, 'ROUND_ROBIN');
  t.is(v2.circuit_breakers.thresholds[0].max_connections.value, 10);
  t.is(clusters.get(cluster9080).lb_policy, 'RANDOM');
});

test('SIMPLE and MUTUAL TLS become an UpstreamTlsContext with SNI, files and SAN checks', (t) => {
  const simple = clustersFor({ host: 'reviews', trafficPolicy: { tls: { mode: 'SIMPLE', sni: 'reviews.example.com' } } }).get(cluster9080);
  t.is(simple.transport_socket.name, 'envoy.transport_sockets.tls');
  const ctx = simple.transport_socket.typed_config;
  t.is(ctx['@type'], 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext');
  t.is(ctx.sni, 'reviews.example.com');
  t.is(ctx.common_tls_context.validation_context.trusted_ca.filename, SYSTEM_CA_BUNDLE);
  t.is(ctx.common_tls_context.tls_certificates, undefined);

  const mutual = clustersFor({
    host: 'reviews',
    trafficPolicy: { tls: { mode: 'MUTUAL', clientCertificate: '/etc/certs/cert.pem', privateKey: '/etc/certs/key.pem', caCertificates: '/etc/certs/ca.pem', subjectAltNames: ['reviews.example.com'] } },
  }).get(cluster9080);
  const mctx = mutual.transport_socket.typed_config.common_tls_context;
  t.is(mctx.tls_certificates[0].certificate_chain.filename, '/etc/certs/cert.pem');
  t.is(mctx.tls_certificates[0].private_key.filename, '/etc/certs/key.pem');
  t.is(mctx.validation_context.trusted_ca.filename, '/etc/certs/ca.pem');
  t.deepEqual(mctx.validation_context.match_typed_subject_alt_names, [{ san_type: 'DNS', matcher: { exact: 'reviews.example.com', match_pattern: 'exact' } }]);
  t.is(mutual.transport_socket.typed_config.sni, 'reviews.default.svc.cluster.local');
});

test('ISTIO_MUTUAL is carried as intent in mesh metadata, with Istio\'s SNI and the SPIFFE identities', (t) => {
  const c = clustersFor({ host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }], trafficPolicy: { tls: { mode: 'ISTIO_MUTUAL' } } })
    .get('outbound|9080|v1|reviews.default.svc.cluster.local');
  t.is(c.transport_socket, undefined);
  const mesh = fromStruct(c.metadata.filter_metadata.mesh);
  t.deepEqual(mesh.tls, {
    mode: 'ISTIO_MUTUAL',
    sni: 'outbound_.9080_.v1_.reviews.default.svc.cluster.local',
    subjectAltNames: ['spiffe://cluster.local/ns/default/sa/reviews'],
  });
  t.is(mesh.destinationRule, 'DestinationRule/default/reviews');
  t.is((fromStruct(clustersFor(undefined).get(cluster9080).metadata.filter_metadata.mesh).tls as { mode: string }).mode, 'AUTO');
});

test('DNS services get STRICT_DNS (LOGICAL_DNS for DNS_ROUND_ROBIN) clusters with inline endpoints', (t) => {
  const external = service('api.example.com', { resolution: 'DNS', location: 'MESH_EXTERNAL', ports: [port(443, 'TLS', 'tls')] });
  const c = clustersFor(undefined, external).get('outbound|443||api.example.com');
  t.is(c.type, 'STRICT_DNS');
  t.is(c.eds_cluster_config, undefined);
  t.is(c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address, 'api.example.com');
  t.is(c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value, 443);
  const rr = service('db.example.com', {
    resolution: 'DNS_ROUND_ROBIN',
    ports: [port(5432, 'TCP', 'tcp')],
    endpoints: [endpoint('db1.example.com'), endpoint('db2.example.com')],
  });
  const logical = clustersFor(undefined, rr).get('outbound|5432||db.example.com');
  t.is(logical.type, 'LOGICAL_DNS');
  t.is(logical.load_assignment.endpoints.length, 1);
  t.is(logical.load_assignment.endpoints[0].lb_endpoints.length, 1);
});

test('resolution NONE gives agents an ORIGINAL_DST cluster and gRPC clients an EDS one', (t) => {
  const none = service('legacy.internal', { resolution: 'NONE', ports: [port(8080, 'HTTP', 'http')], endpoints: [endpoint('10.1.0.1')] });
  const m = model([none]);
  const translator = new MeshTranslator();
  t.is(generateDecoded(translator, m, node('host-z'), TypeUrl.Cluster).get('outbound|8080||legacy.internal').type, 'ORIGINAL_DST');
  const grpc = generateDecoded(translator, m, node('client'), TypeUrl.Cluster, named('outbound|8080||legacy.internal')).get('outbound|8080||legacy.internal');
  t.is(grpc.type, 'EDS');
});

test('gRPC clients get ROUND_ROBIN or RING_HASH only, never Envoy-only policies', (t) => {
  const m = model([reviews()], [resource('DestinationRule', 'reviews', { host: 'reviews', trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' } }, subsets: [{ name: 'v1', labels: { version: 'v1' }, trafficPolicy: { loadBalancer: { consistentHash: { maglev: {}, httpHeaderName: 'x' } } } }] })]);
  const clusters = generateDecoded(new MeshTranslator(), m, node('client'), TypeUrl.Cluster, named(cluster9080, 'outbound|9080|v1|reviews.default.svc.cluster.local'));
  t.is(clusters.get(cluster9080).lb_policy, 'ROUND_ROBIN');
  t.is(clusters.get('outbound|9080|v1|reviews.default.svc.cluster.local').lb_policy, 'RING_HASH');
  t.is(clusters.size, 2);
});

test('inbound|PORT|| clusters point at loopback on the workload\'s port, only for the node\'s own workloads', (t) => {
  const svc = reviews({ endpoints: [endpoint('10.0.0.1', { node: 'host-a', ports: { http: 19080 } }), endpoint('10.0.0.2', { node: 'host-b' })] });
  const a = clustersFor(undefined, svc, 'host-a');
  const inbound = a.get('inbound|19080||');
  t.is(inbound.type, 'STATIC');
  t.deepEqual(inbound.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address, { address: '127.0.0.1', port_value: 19080, port_specifier: 'port_value' });
  t.truthy(a.get('inbound|9090||'));
  const c = clustersFor(undefined, svc, 'host-c');
  t.false([...c.keys()].some((name) => name.startsWith('inbound|')));
});
