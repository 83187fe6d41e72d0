// VirtualService HTTP routes in the per-port RouteConfiguration: matches, splits, rewrites,
// redirects, direct responses, headers, retries, timeouts, faults, mirrors, CORS and hashing.
import test from 'ava';
import { MeshTranslator } from './mesh-translator';
import { fromStruct } from './proto-values';
import { DEFAULT_RETRY_ON } from './route-policies';
import { TypeUrl, endpoint, generateDecoded, model, named, node, port, resource, service } from './testing';
import type { DestinationRuleSpec, HTTPRoute, VirtualServiceSpec } from './specs';

const HOST = 'reviews.default.svc.cluster.local';
const V1 = `outbound|9080|v1|${HOST}`;
const V2 = `outbound|9080|v2|${HOST}`;
const ALL = `outbound|9080||${HOST}`;

const reviews = service(HOST, {
  aliases: ['reviews'],
  addresses: ['10.96.0.10'],
  ports: [port(9080, 'HTTP', 'http')],
  endpoints: [endpoint('10.0.0.1', { labels: { version: 'v1' } }), endpoint('10.0.0.2', { labels: { version: 'v2' } })],
});
const ratings = service('ratings.default.svc.cluster.local', { aliases: ['ratings'], ports: [port(9080, 'HTTP', 'http')] });
const subsets: DestinationRuleSpec = { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] };

function vhostOf(config: any, host: string): any {
  return config.virtual_hosts.find((v: any) => v.name === `${host}:9080`);
}

function routesOf(http: HTTPRoute[], options: { rule?: DestinationRuleSpec; node?: ReturnType<typeof node>; vs?: Partial<VirtualServiceSpec> } = {}) {
  const resources = [
    resource<VirtualServiceSpec>('VirtualService', 'reviews', { hosts: ['reviews'], http, ...options.vs }),
    resource('DestinationRule', 'reviews', options.rule ?? subsets),
  ];
  const configs = generateDecoded(new MeshTranslator(), model([reviews, ratings], resources), options.node ?? node('host-x'), TypeUrl.RouteConfiguration, named('9080'));
  const config = configs.get('9080');
  const vhost = vhostOf(config, HOST);
  return { config, vhost, routes: vhost.routes as any[] };
}

test('the route configuration of a port has one virtual host per service with Istio\'s domains, then allow_any', (t) => {
  const { config, vhost } = routesOf([{ route: [{ destination: { host: 'reviews' } }] }]);
  t.is(config.name, '9080');
  t.deepEqual(vhost.domains, [HOST, `${HOST}:9080`, 'reviews', 'reviews:9080', '10.96.0.10', '10.96.0.10:9080']);
  const names = config.virtual_hosts.map((v: any) => v.name);
  t.deepEqual(names, ['ratings.default.svc.cluster.local:9080', `${HOST}:9080`, 'allow_any']);
  const allowAny = config.virtual_hosts.at(-1);
  t.deepEqual(allowAny.domains, ['*']);
  t.is(allowAny.routes[0].route.cluster, 'PassthroughCluster');
});

test('a service without a VirtualService gets Istio\'s default route with default retries and no timeout', (t) => {
  const { config } = routesOf([{ route: [{ destination: { host: 'reviews' } }] }]);
  const route = vhostOf(config, 'ratings.default.svc.cluster.local').routes[0];
  t.is(route.name, 'default');
  t.is(route.match.prefix, '/');
  t.is(route.route.cluster, 'outbound|9080||ratings.default.svc.cluster.local');
  t.deepEqual(route.route.timeout, { seconds: '0' });
  t.is(route.route.retry_policy.retry_on, DEFAULT_RETRY_ON);
  t.is(route.route.retry_policy.num_retries.value, 2);
  t.deepEqual(route.route.retry_policy.retriable_status_codes, [503]);
  t.is(route.route.retry_policy.retry_host_predicate[0].name, 'envoy.retry_host_predicates.previous_hosts');
});

test('an 80/20 split becomes weighted_clusters 80/20 on the subset clusters', (t) => {
  const { routes } = routesOf([{ route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 80 }, { destination: { host: 'reviews', subset: 'v2' }, weight: 20 }] }]);
  t.is(routes.length, 1);
  t.deepEqual(routes[0].route.weighted_clusters.clusters.map((c: any) => [c.name, c.weight.value]), [[V1, 80], [V2, 20]]);
  t.is(routes[0].route.cluster, undefined);
});

test('header matches: exact, prefix, regex and presence; withoutHeaders inverts', (t) => {
  const { routes } = routesOf([{
    match: [{
      headers: { 'x-exact': { exact: 'jason' }, 'x-prefix': { prefix: 'ja' }, 'x-regex': { regex: 'j.*n' }, 'x-present': {} },
      withoutHeaders: { 'x-debug': { exact: '1' }, 'x-absent': {} },
    }],
    route: [{ destination: { host: 'reviews', subset: 'v2' } }],
  }]);
  const headers = Object.fromEntries(routes[0].match.headers.map((h: any) => [h.name, h]));
  t.deepEqual(headers['x-exact'].string_match, { exact: 'jason', match_pattern: 'exact' });
  t.deepEqual(headers['x-prefix'].string_match, { prefix: 'ja', match_pattern: 'prefix' });
  t.is(headers['x-regex'].string_match.safe_regex.regex, 'j.*n');
  t.true(headers['x-present'].present_match);
  t.true(headers['x-debug'].invert_match);
  t.true(headers['x-debug'].treat_missing_header_as_empty);
  t.true(headers['x-absent'].invert_match);
  t.true(headers['x-absent'].present_match);
  t.deepEqual(routes[0].match.headers.map((h: any) => h.name), ['x-absent', 'x-debug', 'x-exact', 'x-prefix', 'x-present', 'x-regex']);
});

test('uri, method, authority, scheme, query parameters and ignoreUriCase', (t) => {
  const { routes } = routesOf([
    { match: [{ uri: { exact: '/login' }, method: { exact: 'POST' } }], route: [{ destination: { host: 'reviews' } }] },
    { match: [{ uri: { regex: '/api/v[0-9]+/.*' }, authority: { prefix: 'reviews' }, scheme: { exact: 'http' } }], route: [{ destination: { host: 'reviews' } }] },
    { match: [{ uri: { prefix: '/Static' }, ignoreUriCase: true, queryParams: { debug: { exact: '1' }, trace: { regex: 't.*' }, flag: {} } }], route: [{ destination: { host: 'reviews' } }] },
  ]);
  t.is(routes[0].match.path, '/login');
  t.deepEqual(routes[0].match.headers, [{ name: ':method', string_match: { exact: 'POST', match_pattern: 'exact' }, header_match_specifier: 'string_match' }]);
  t.is(routes[1].match.safe_regex.regex, '/api/v[0-9]+/.*');
  t.deepEqual(routes[1].match.headers.map((h: any) => h.name), [':authority', ':scheme']);
  t.is(routes[2].match.prefix, '/Static');
  t.false(routes[2].match.case_sensitive.value);
  t.deepEqual(routes[2].match.query_parameters.map((q: any) => q.name), ['debug', 'flag', 'trace']);
  t.true(routes[2].match.query_parameters[1].present_match);
  t.is(routes[2].match.query_parameters[2].string_match.safe_regex.regex, 't.*');
});

test('several match blocks become several Envoy routes (OR) with the same action', (t) => {
  const { routes } = routesOf([
    { name: 'r', match: [{ name: 'a', uri: { prefix: '/a' } }, { name: 'b', uri: { prefix: '/b' } }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
    { route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
  ]);
  t.deepEqual(routes.map((r: any) => r.name), ['r.a', 'r.b', undefined]);
  t.deepEqual(routes.map((r: any) => r.route.cluster), [V2, V2, V1]);
});

test('routes after a catch-all are dropped, as they can never match', (t) => {
  const { routes } = routesOf([
    { match: [{ uri: { prefix: '/' } }], route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
    { match: [{ uri: { prefix: '/never' } }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
  ]);
  t.is(routes.length, 1);
});

test('rewrite: uri to prefix_rewrite, uriRegexRewrite to regex_rewrite, authority to host_rewrite_literal', (t) => {
  const { routes } = routesOf([
    { match: [{ uri: { prefix: '/old' } }], rewrite: { uri: '/new', authority: 'reviews.internal' }, route: [{ destination: { host: 'reviews' } }] },
    { match: [{ uri: { regex: '/v1/(.*)' } }], rewrite: { uriRegexRewrite: { match: '^/v1/(.*)$', rewrite: '/v2/\\1' } }, route: [{ destination: { host: 'reviews' } }] },
  ]);
  t.is(routes[0].route.prefix_rewrite, '/new');
  t.is(routes[0].route.host_rewrite_literal, 'reviews.internal');
  t.deepEqual(routes[1].route.regex_rewrite, { pattern: { regex: '^/v1/(.*)$' }, substitution: '/v2/\\1' });
});

test('redirects keep Istio\'s codes and ports; direct responses carry status and body', (t) => {
  const { routes, config } = routesOf([
    { match: [{ uri: { exact: '/moved' } }], redirect: { uri: '/new', authority: 'other', redirectCode: 302, port: 8443, scheme: 'https' } },
    { match: [{ uri: { exact: '/derive' } }], redirect: { uri: '/x', derivePort: 'FROM_REQUEST_PORT' } },
    { match: [{ uri: { exact: '/teapot' } }], directResponse: { status: 418, body: { string: 'short and stout' } } },
    { match: [{ uri: { exact: '/bytes' } }], directResponse: { status: 200, body: { bytes: Buffer.from('hi').toString('base64') } } },
  ]);
  t.deepEqual(
    { ...routes[0].redirect, scheme_rewrite_specifier: undefined, path_rewrite_specifier: undefined },
    { path_redirect: '/new', host_redirect: 'other', response_code: 'FOUND', port_redirect: 8443, scheme_redirect: 'https', scheme_rewrite_specifier: undefined, path_rewrite_specifier: undefined },
  );
  t.is(routes[1].redirect.port_redirect, 9080);
  t.is(routes[1].redirect.response_code, 'MOVED_PERMANENTLY');
  t.is(routes[2].direct_response.status, 418);
  t.is(routes[2].direct_response.body.inline_string, 'short and stout');
  t.is(Buffer.from(routes[3].direct_response.body.inline_bytes).toString(), 'hi');
  t.is(config.max_direct_response_body_size_bytes.value, 1024 * 1024);
});

test('header operations: set overwrites, add appends, remove removes, per destination on weighted clusters', (t) => {
  const { routes } = routesOf([{
    headers: { request: { set: { 'x-env': 'prod' }, add: { 'x-trace': 'on' }, remove: ['x-secret'] }, response: { set: { 'cache-control': 'no-store' }, remove: ['server'] } },
    route: [
      { destination: { host: 'reviews', subset: 'v1' }, weight: 50, headers: { request: { set: { 'x-version': 'v1' } }, response: { add: { 'x-served-by': 'v1' } } } },
      { destination: { host: 'reviews', subset: 'v2' }, weight: 50 },
    ],
  }]);
  const r = routes[0];
  t.deepEqual(r.request_headers_to_add.map((h: any) => [h.header.key, h.header.value, h.append_action]), [
    ['x-env', 'prod', 'OVERWRITE_IF_EXISTS_OR_ADD'],
    ['x-trace', 'on', 'APPEND_IF_EXISTS_OR_ADD'],
  ]);
  t.deepEqual(r.request_headers_to_remove, ['x-secret']);
  t.deepEqual(r.response_headers_to_add[0].header, { key: 'cache-control', value: 'no-store' });
  t.deepEqual(r.response_headers_to_remove, ['server']);
  const v1 = r.route.weighted_clusters.clusters[0];
  t.deepEqual(v1.request_headers_to_add[0].header, { key: 'x-version', value: 'v1' });
  t.deepEqual(v1.response_headers_to_add[0].header, { key: 'x-served-by', value: 'v1' });
  t.is(r.route.weighted_clusters.clusters[1].request_headers_to_add, undefined);
});

test('retries: explicit attempts, conditions with status codes, per-try timeout; attempts 0 disables', (t) => {
  const { routes } = routesOf([
    { match: [{ uri: { prefix: '/a' } }], retries: { attempts: 3, perTryTimeout: '2s', retryOn: 'gateway-error,connect-failure,429', retryRemoteLocalities: true }, route: [{ destination: { host: 'reviews' } }] },
    { match: [{ uri: { prefix: '/b' } }], retries: { attempts: 0 }, route: [{ destination: { host: 'reviews' } }] },
    { match: [{ uri: { prefix: '/c' } }], retries: { attempts: 1, retryIgnorePreviousHosts: false }, route: [{ destination: { host: 'reviews' } }] },
  ]);
  const policy = routes[0].route.retry_policy;
  t.is(policy.num_retries.value, 3);
  t.is(policy.retry_on, 'gateway-error,connect-failure,retriable-status-codes');
  t.deepEqual(policy.retriable_status_codes, [429]);
  t.deepEqual(policy.per_try_timeout, { seconds: '2' });
  t.is(policy.retry_priority.name, 'envoy.retry_priorities.previous_priorities');
  // Istio's update_frequency; Envoy rejects the plugin without a config (update_frequency must be > 0).
  t.deepEqual(policy.retry_priority.typed_config, { '@type': 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig', update_frequency: 2 });
  t.is(routes[1].route.retry_policy, undefined);
  t.is(routes[2].route.retry_policy.retry_host_predicate, undefined);
  t.is(routes[2].route.retry_policy.retry_on, DEFAULT_RETRY_ON);
});

test('timeout sets the route timeout and bounds gRPC deadlines', (t) => {
  const { routes } = routesOf([{ timeout: '1.5s', route: [{ destination: { host: 'reviews' } }] }]);
  t.deepEqual(routes[0].route.timeout, { seconds: '1', nanos: 500000000 });
  t.deepEqual(routes[0].route.max_stream_duration.grpc_timeout_header_max, { seconds: '1', nanos: 500000000 });
});

test('fault injection is a per-route HTTPFault with MILLION-denominator percentages', (t) => {
  const { routes } = routesOf([
    { match: [{ uri: { prefix: '/delay' } }], fault: { delay: { fixedDelay: '7s', percentage: { value: 12.5 } } }, route: [{ destination: { host: 'reviews' } }] },
    { match: [{ uri: { prefix: '/abort' } }], fault: { abort: { httpStatus: 503, percentage: { value: 0.1 } } }, route: [{ destination: { host: 'reviews' } }] },
    { match: [{ uri: { prefix: '/grpc' } }], fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 100 } } }, route: [{ destination: { host: 'reviews' } }] },
  ]);
  const delay = routes[0].typed_per_filter_config['envoy.filters.http.fault'];
  t.is(delay['@type'], 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault');
  t.deepEqual(delay.delay.fixed_delay, { seconds: '7' });
  t.deepEqual(delay.delay.percentage, { numerator: 125000, denominator: 'MILLION' });
  const abort = routes[1].typed_per_filter_config['envoy.filters.http.fault'].abort;
  t.is(abort.http_status, 503);
  t.deepEqual(abort.percentage, { numerator: 1000, denominator: 'MILLION' });
  t.is(routes[2].typed_per_filter_config['envoy.filters.http.fault'].abort.grpc_status, 14);
});

test('mirror and mirrors become request_mirror_policies with runtime fractions', (t) => {
  const { routes } = routesOf([{
    route: [{ destination: { host: 'reviews', subset: 'v1' } }],
    mirror: { host: 'reviews', subset: 'v2' },
    mirrorPercentage: { value: 25 },
    mirrors: [{ destination: { host: 'ratings' } }],
  }]);
  const mirrors = routes[0].route.request_mirror_policies;
  t.is(mirrors[0].cluster, V2);
  t.deepEqual(mirrors[0].runtime_fraction.default_value, { numerator: 250000, denominator: 'MILLION' });
  t.false(mirrors[0].trace_sampled.value);
  t.is(mirrors[1].cluster, 'outbound|9080||ratings.default.svc.cluster.local');
  t.deepEqual(mirrors[1].runtime_fraction.default_value, { numerator: 100, denominator: 'HUNDRED' });
});

test('corsPolicy becomes the route CORS policy', (t) => {
  const { routes } = routesOf([{
    corsPolicy: { allowOrigins: [{ exact: 'https://a.example' }, { regex: 'https://.*\\.b\\.example' }], allowMethods: ['GET', 'POST'], allowHeaders: ['x-a'], exposeHeaders: ['x-b'], maxAge: '24h', allowCredentials: true },
    route: [{ destination: { host: 'reviews' } }],
  }]);
  const cors = routes[0].route.cors;
  t.is(cors.allow_origin_string_match[0].exact, 'https://a.example');
  t.is(cors.allow_origin_string_match[1].safe_regex.regex, 'https://.*\\.b\\.example');
  t.is(cors.allow_methods, 'GET,POST');
  t.is(cors.allow_headers, 'x-a');
  t.is(cors.expose_headers, 'x-b');
  t.is(cors.max_age, '86400');
  t.true(cors.allow_credentials.value);
});

test('consistent hash in the destination\'s DestinationRule becomes the route hash_policy and drops previous_hosts', (t) => {
  const rule: DestinationRuleSpec = { ...subsets, trafficPolicy: { loadBalancer: { consistentHash: { httpCookie: { name: 'user', path: '/', ttl: '0s' } } } } };
  const { routes, config } = routesOf([{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }], { rule });
  t.deepEqual(routes[0].route.hash_policy, [{ cookie: { name: 'user', path: '/', ttl: { seconds: '0' } }, policy_specifier: 'cookie' }]);
  t.is(routes[0].route.retry_policy.retry_host_predicate, undefined);
  const header = routesOf([{ route: [{ destination: { host: 'reviews' } }] }], { rule: { host: 'reviews', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } } });
  t.is(header.routes[0].route.hash_policy[0].header.header_name, 'x-user');
  t.is(vhostOf(config, 'ratings.default.svc.cluster.local').routes[0].route.hash_policy, undefined);
});

test('sourceLabels apply a match block only on nodes running a matching workload, and travel in route metadata', (t) => {
  const http: HTTPRoute[] = [
    { match: [{ sourceLabels: { app: 'productpage' } }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
    { route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
  ];
  const productpage = service('productpage.default.svc.cluster.local', { ports: [port(9080, 'HTTP', 'http')], endpoints: [endpoint('10.0.1.1', { node: 'host-p', labels: { app: 'productpage' } })] });
  const m = model([reviews, productpage], [resource('VirtualService', 'reviews', { hosts: ['reviews'], http }), resource('DestinationRule', 'reviews', subsets)]);
  const translator = new MeshTranslator();
  const onP = vhostOf(generateDecoded(translator, m, node('host-p'), TypeUrl.RouteConfiguration, named('9080')).get('9080'), HOST).routes;
  const onOther = vhostOf(generateDecoded(translator, m, node('host-q'), TypeUrl.RouteConfiguration, named('9080')).get('9080'), HOST).routes;
  t.deepEqual(onP.map((r: any) => r.route.cluster), [V2, V1]);
  t.deepEqual(fromStruct(onP[0].metadata.filter_metadata.mesh).sourceLabels, { app: 'productpage' });
  t.deepEqual(onOther.map((r: any) => r.route.cluster), [V1]);
});

test('a match block bound to another port or to a gateway only is skipped; so is a gateway-only VirtualService', (t) => {
  const { routes } = routesOf([
    { match: [{ port: 8080 }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
    { match: [{ gateways: ['ingress'] }], route: [{ destination: { host: 'reviews', subset: 'v2' } }] },
    { route: [{ destination: { host: 'reviews', subset: 'v1' } }] },
  ]);
  t.deepEqual(routes.map((r: any) => r.route.cluster), [V1]);
  const gatewayOnly = routesOf([{ route: [{ destination: { host: 'reviews', subset: 'v2' } }] }], { vs: { gateways: ['ingress'] } });
  t.deepEqual(gatewayOnly.routes.map((r: any) => r.route.cluster), [ALL]);
});

test('a destination without a port on a single-port service uses that port; aliases name the canonical cluster', (t) => {
  const { routes } = routesOf([{ route: [{ destination: { host: 'ratings' } }] }]);
  t.is(routes[0].route.cluster, 'outbound|9080||ratings.default.svc.cluster.local');
});
