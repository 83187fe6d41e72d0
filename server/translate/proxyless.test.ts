// Proxyless gRPC clients: listeners and route configurations by target name, and gRPC's own xDS
// validation (from @grpc/grpc-js-xds) accepting every resource such a client is served.
import test from 'ava';
import { MeshTranslator } from './mesh-translator';
import { TypeUrl, decodeAll, endpoint, model, named, node, port, resource, service } from './testing';
import type { EncodedResource } from '../xds/generator';

// gRPC's own xDS resource validation (the code a proxyless client runs on every response).
const { ListenerResourceType } = require('@grpc/grpc-js-xds/build/src/xds-resource-type/listener-resource-type');
const { RouteConfigurationResourceType } = require('@grpc/grpc-js-xds/build/src/xds-resource-type/route-config-resource-type');
const { ClusterResourceType } = require('@grpc/grpc-js-xds/build/src/xds-resource-type/cluster-resource-type');
const { EndpointResourceType } = require('@grpc/grpc-js-xds/build/src/xds-resource-type/endpoint-resource-type');

// A client registers its HTTP filters at startup; the validators only know registered ones.
require('@grpc/grpc-js-xds/build/src/http-filter/router-filter').setup();
require('@grpc/grpc-js-xds/build/src/http-filter/fault-injection-filter').setup();

const grpcContext = { server: {}, bootstrap: { certificateProviders: {} } };

function grpcAccepts(type: { get(): { decode(ctx: unknown, any: unknown): { name: string; error?: string } } }, resources: Map<string, EncodedResource>): string[] {
  return [...resources.values()].map((r) => type.get().decode(grpcContext, r.any)).filter((d) => d.error !== undefined).map((d) => `${d.name}: ${d.error}`);
}

const greeter = service('greeter.default.svc.cluster.local', {
  aliases: ['greeter'],
  ports: [port(50051, 'GRPC', 'grpc'), port(9090, 'HTTP', 'http-metrics')],
  endpoints: [
    endpoint('10.0.0.1', { labels: { version: 'v1' }, locality: { region: 'eu', zone: 'a', subzone: '' } }),
    endpoint('10.0.0.2', { labels: { version: 'v2' }, locality: { region: 'eu', zone: 'b', subzone: '' } }),
  ],
});
const single = service('echo.default.svc.cluster.local', { aliases: ['echo'], ports: [port(7000, 'HTTP2', 'http2')], endpoints: [endpoint('10.0.1.1')] });

const vs = resource('VirtualService', 'greeter', {
  hosts: ['greeter'],
  http: [
    { match: [{ headers: { 'x-canary': { exact: '1' } }, name: 'canary' }], route: [{ destination: { host: 'greeter', subset: 'v2' } }], fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 50 } } } },
    { match: [{ uri: { prefix: '/redirect' } }], redirect: { uri: '/elsewhere' } },
    { route: [{ destination: { host: 'greeter', subset: 'v1' }, weight: 90 }, { destination: { host: 'greeter', subset: 'v2' }, weight: 10 }], timeout: '2s', retries: { attempts: 3, retryOn: 'unavailable' } },
  ],
});
const dr = resource('DestinationRule', 'greeter', { host: 'greeter', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] });
const mesh = model([greeter, single], [vs, dr]);
const client = node('grpc-client-1', { GENERATOR: 'grpc', NAMESPACE: 'default' });

test('listeners are served by the names gRPC asks for, with and without a port; unknown names are absent', (t) => {
  const translator = new MeshTranslator();
  const listeners = translator.generate(mesh, client, TypeUrl.Listener, named('greeter', 'greeter:50051', 'greeter.default.svc.cluster.local:50051', 'echo', 'nothing', 'greeter:1'));
  t.deepEqual([...listeners.keys()].sort(), ['echo', 'greeter', 'greeter.default.svc.cluster.local:50051', 'greeter:50051']);
});

test('an API listener holds an HCM on RDS of the same name with the fault filter before the router', (t) => {
  const listener = decodeAll(new MeshTranslator().generate(mesh, client, TypeUrl.Listener, named('greeter:50051'))).get('greeter:50051');
  const hcm = listener.api_listener.api_listener;
  t.is(hcm['@type'], 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
  t.is(hcm.rds.route_config_name, 'greeter:50051');
  t.truthy(hcm.rds.config_source.ads);
  t.deepEqual(hcm.http_filters.map((f: any) => f.name), ['envoy.filters.http.fault', 'envoy.filters.http.router']);
  t.is(listener.address, undefined);
});

test('the route configuration of a target has a virtual host for the exact name and the VirtualService routes', (t) => {
  const routes = decodeAll(new MeshTranslator().generate(mesh, client, TypeUrl.RouteConfiguration, named('greeter'))).get('greeter');
  t.is(routes.virtual_hosts.length, 1);
  const vhost = routes.virtual_hosts[0];
  t.true(vhost.domains.includes('greeter'));
  t.true(vhost.domains.includes('greeter.default.svc.cluster.local:50051'));
  // The redirect is left out: gRPC cannot execute it and would reject the whole configuration.
  t.is(vhost.routes.length, 2);
  const [canary, split] = vhost.routes;
  t.is(canary.route.cluster, 'outbound|50051|v2|greeter.default.svc.cluster.local');
  const fault = canary.typed_per_filter_config['envoy.filters.http.fault'];
  t.is(fault.abort.grpc_status, 14);
  t.deepEqual(fault.abort.percentage, { numerator: 500000, denominator: 'MILLION' });
  t.deepEqual(split.route.weighted_clusters.clusters.map((c: any) => c.weight.value), [90, 10]);
  t.deepEqual(split.route.max_stream_duration, { max_stream_duration: { seconds: '2' } });
  t.is(split.route.retry_policy.num_retries.value, 3);
});

test('without a port the target means the only port, or the first gRPC port', (t) => {
  const translator = new MeshTranslator();
  const echo = decodeAll(translator.generate(mesh, client, TypeUrl.RouteConfiguration, named('echo'))).get('echo');
  t.is(echo.virtual_hosts[0].routes[0].route.cluster, 'outbound|7000||echo.default.svc.cluster.local');
  const metrics = decodeAll(translator.generate(mesh, client, TypeUrl.RouteConfiguration, named('greeter:9090'))).get('greeter:9090');
  t.is(metrics.virtual_hosts[0].name, 'greeter.default.svc.cluster.local:9090');
});

test('gRPC\'s own validation accepts the listener, route configuration, clusters and endpoints it is given', (t) => {
  const translator = new MeshTranslator();
  const listeners = translator.generate(mesh, client, TypeUrl.Listener, named('greeter', 'greeter:50051', 'echo'));
  const routes = translator.generate(mesh, client, TypeUrl.RouteConfiguration, named('greeter', 'greeter:50051', 'echo'));
  const clusterNames = new Set<string>();
  for (const r of decodeAll(routes).values()) {
    for (const route of r.virtual_hosts[0].routes) {
      if (route.route.cluster) clusterNames.add(route.route.cluster);
      for (const c of route.route.weighted_clusters?.clusters ?? []) clusterNames.add(c.name);
    }
  }
  const clusters = translator.generate(mesh, client, TypeUrl.Cluster, named(...clusterNames));
  t.is(clusters.size, clusterNames.size);
  const edsNames = [...decodeAll(clusters).values()].map((c: any) => c.eds_cluster_config.service_name);
  const endpoints = translator.generate(mesh, client, TypeUrl.ClusterLoadAssignment, named(...edsNames));
  t.is(endpoints.size, edsNames.length);
  t.deepEqual(grpcAccepts(ListenerResourceType, listeners), []);
  t.deepEqual(grpcAccepts(RouteConfigurationResourceType, routes), []);
  t.deepEqual(grpcAccepts(ClusterResourceType, clusters), []);
  t.deepEqual(grpcAccepts(EndpointResourceType, endpoints), []);
  for (const cla of decodeAll(endpoints).values()) {
    for (const locality of cla.endpoints) t.true(locality.load_balancing_weight.value > 0, 'gRPC ignores localities without a weight');
  }
});

test('a target not visible to the client (Sidecar, exportTo) resolves to nothing', (t) => {
  const hidden = service('hidden.other.svc', { namespace: 'other', exportTo: ['.'], ports: [port(50051, 'GRPC', 'grpc')] });
  const m = model([greeter, hidden]);
  const listeners = new MeshTranslator().generate(m, client, TypeUrl.Listener, named('hidden.other.svc', 'greeter'));
  t.deepEqual([...listeners.keys()], ['greeter']);
});

test('an abort without a percentage is served as an explicit 0%, which gRPC accepts (it rejects the whole route configuration otherwise)', (t) => {
  const m = model([greeter], [
    resource('VirtualService', 'greeter', { hosts: ['greeter'], http: [{ fault: { abort: { grpcStatus: 'INTERNAL' } }, route: [{ destination: { host: 'greeter' } }] }] }),
  ]);
  const routes = new MeshTranslator().generate(m, client, TypeUrl.RouteConfiguration, named('greeter'));
  t.deepEqual(grpcAccepts(RouteConfigurationResourceType, routes), []);
  const abort = decodeAll(routes).get('greeter').virtual_hosts[0].routes[0].typed_per_filter_config['envoy.filters.http.fault'].abort;
  t.is(abort.grpc_status, 13);
  t.deepEqual(abort.percentage, { numerator: 0, denominator: 'HUNDRED' });
});

test('gRPC reads http2MaxRequests as its concurrency limit; Istio\'s consecutive-error outlier detection is accepted but gives gRPC no ejection algorithm', (t) => {
  const m = model([greeter], [
    resource('DestinationRule', 'greeter', {
      host: 'greeter',
      trafficPolicy: { connectionPool: { http: { http2MaxRequests: 3 } }, outlierDetection: { consecutive5xxErrors: 2, interval: '1s', baseEjectionTime: '30s' } },
    }),
  ]);
  const clusters = new MeshTranslator().generate(m, client, TypeUrl.Cluster, named('outbound|50051||greeter.default.svc.cluster.local'));
  t.deepEqual(grpcAccepts(ClusterResourceType, clusters), []);
  const parsed = ClusterResourceType.get().decode(grpcContext, [...clusters.values()][0]!.any).value;
  t.is(parsed.maxConcurrentRequests, 3);
  // gRFC A50: gRPC ejects by success rate or failure percentage only. Istio disables the first
  // (enforcing_success_rate 0) and has no field for the second, so proxyless clients never eject.
  t.is(parsed.outlierDetectionUpdate.success_rate_ejection, undefined);
  t.is(parsed.outlierDetectionUpdate.failure_percentage_ejection, undefined);
});
