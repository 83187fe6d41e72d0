// Routing decisions of RouteTables compiled from the translator's real RouteConfigurations (and a few
// hand-written ones for what Istio never emits), decoded exactly as the agent receives them.
import test from 'ava';
import { TypeUrl, resourceTypes, unpackAny } from '../../lib/xds/protos';
import { MeshTranslator } from '../../server/translate/mesh-translator';
import { endpoint, generateDecoded, model, named, node, port, resource, service } from '../../server/translate/testing';
import type { DestinationRuleSpec, HTTPRoute } from '../../server/translate/specs';
import { RouteConfigError, compileRouteConfiguration, pickWeightedCluster, type RequestView, type RouteDecision } from './route-table';

const HOST = 'reviews.default.svc.cluster.local';
const V1 = `outbound|9080|v1|${HOST}`;
const V2 = `outbound|9080|v2|${HOST}`;
const ALL = `outbound|9080||${HOST}`;
const RATINGS = 'outbound|9080||ratings.default.svc.cluster.local';

const reviews = service(HOST, {
  aliases: ['reviews'],
  addresses: ['10.96.0.10'],
  ports: [port(9080, 'HTTP', 'http')],
  endpoints: [endpoint('10.0.0.1', { labels: { version: 'v1' } }), endpoint('10.0.0.2', { labels: { version: 'v2' } })],
});
const ratings = service('ratings.default.svc.cluster.local', { aliases: ['ratings'], ports: [port(9080, 'HTTP', 'http')] });
const subsets: DestinationRuleSpec = { host: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] };

/** The translator's RouteConfiguration for port 9080 with `http` as the reviews VirtualService. */
function translated(http: HTTPRoute[]): Record<string, unknown> {
  const resources = [resource('VirtualService', 'reviews', { hosts: ['reviews'], http }), resource('DestinationRule', 'reviews', subsets)];
  const configs = generateDecoded(new MeshTranslator(), model([reviews, ratings], resources), node('host-x'), TypeUrl.RouteConfiguration, named('9080'));
  return configs.get('9080');
}

function tableFor(http: HTTPRoute[]) {
  return compileRouteConfiguration(translated(http));
}

/**
 * A hand-written RouteConfiguration through the same encode/decode as one from the ADS stream
 * (fromObject directly: protobufjs's verify wants enum numbers, fromObject takes Envoy's names).
 */
function decoded(config: Record<string, unknown>): Record<string, unknown> {
  const type = resourceTypes().lookupType('envoy.config.route.v3.RouteConfiguration');
  const value = type.encode(type.fromObject(config)).finish();
  return unpackAny({ type_url: TypeUrl.RouteConfiguration, value });
}

function req(path: string, fields: { authority?: string; method?: string; scheme?: string; headers?: Record<string, string>; random?: number } = {}): RequestView {
  const headers = new Map(Object.entries(fields.headers ?? {}));
  return { authority: fields.authority ?? 'reviews:9080', method: fields.method ?? 'GET', path, headers, scheme: fields.scheme ?? 'http', random: fields.random };
}

function clusterOf(decision: RouteDecision | undefined): string | undefined {
  return decision?.action.kind === 'cluster' ? decision.action.cluster : undefined;
}

const toV2 = [{ destination: { host: 'reviews', subset: 'v2' } }];
const toV1 = [{ destination: { host: 'reviews', subset: 'v1' } }];

test('virtual hosts are chosen by authority: name, alias and VIP with and without the port, any case; others fall to allow_any', (t) => {
  const table = tableFor([{ route: toV1 }]);
  for (const authority of [HOST, `${HOST}:9080`, 'reviews', 'reviews:9080', '10.96.0.10', '10.96.0.10:9080', 'Reviews:9080']) {
    const decision = table.match(req('/', { authority }));
    t.is(decision?.virtualHost, `${HOST}:9080`, authority);
    t.is(clusterOf(decision), V1, authority);
  }
  t.is(clusterOf(table.match(req('/', { authority: 'ratings:9080' }))), RATINGS);
  const other = table.match(req('/', { authority: 'example.com:9080' }));
  t.is(other?.virtualHost, 'allow_any');
  t.is(clusterOf(other), 'PassthroughCluster');
  // Envoy matches the port as written unless told to strip it.
  t.is(table.match(req('/', { authority: 'reviews:1234' }))?.virtualHost, 'allow_any');
  const stripping = compileRouteConfiguration(translated([{ route: toV1 }]), { stripAnyHostPort: true });
  t.is(stripping.match(req('/', { authority: 'reviews:1234' }))?.virtualHost, `${HOST}:9080`);
});

test('domain order is exact, then longest *suffix, then longest prefix*, then *; a wildcard needs at least one character', (t) => {
  const vh = (name: string, domains: string[]) => ({ name, domains, routes: [{ name, match: { prefix: '/' }, route: { cluster: name } }] });
  const table = compileRouteConfiguration(decoded({
    name: 'wild',
    virtual_hosts: [vh('any', ['*']), vh('prefix', ['api.*']), vh('long-prefix', ['api.v2.*']), vh('suffix', ['*.example.com']), vh('long-suffix', ['*.eu.example.com']), vh('exact', ['api.eu.example.com'])],
  }));
  const pick = (authority: string) => table.match(req('/', { authority }))?.virtualHost;
  t.is(pick('api.eu.example.com'), 'exact');
  t.is(pick('www.eu.example.com'), 'long-suffix');
  t.is(pick('www.example.com'), 'suffix');
  t.is(pick('api.internal'), 'prefix');
  t.is(pick('api.v2.internal'), 'long-prefix');
  t.is(pick('.example.com'), 'any');
  t.is(pick('api.'), 'any');
  t.is(pick('other'), 'any');
  t.is(pick('api.example.com'), 'suffix', 'suffix wildcards win over prefix wildcards');
});

test('uri exact, prefix and regex; method and authority pseudo-headers; ignoreUriCase; first match wins', (t) => {
  const table = tableFor([
    { name: 'login', match: [{ uri: { exact: '/login' }, method: { exact: 'POST' } }], route: toV2 },
    { name: 'api', match: [{ uri: { regex: '/api/v[0-9]+/.*' }, authority: { prefix: 'reviews' } }], route: toV2 },
    { name: 'static', match: [{ uri: { prefix: '/Static' }, ignoreUriCase: true }], route: toV2 },
    { name: 'rest', route: toV1 },
  ]);
  const name = (r: RequestView) => table.match(r)?.routeName;
  t.is(name(req('/login', { method: 'POST' })), 'login');
  t.is(name(req('/login?next=/home', { method: 'POST' })), 'login', 'the query is not part of the path');
  t.is(name(req('/login', { method: 'GET' })), 'rest');
  t.is(name(req('/login/x', { method: 'POST' })), 'rest');
  t.is(name(req('/api/v2/items')), 'api');
  t.is(name(req('/api/vX/items')), 'rest');
  t.is(name(req('/api/v2/items', { authority: '10.96.0.10:9080' })), 'rest', 'authority must start with "reviews"');
  t.is(name(req('/x/api/v2/items')), 'rest', 'regexes match the whole path');
  t.is(name(req('/STATIC/app.js')), 'static');
  t.is(name(req('/static/app.js')), 'static');
  t.is(name(req('/stat')), 'rest');
});

test('header matches: exact, prefix, regex, presence, and withoutHeaders inverted with missing treated as empty', (t) => {
  const table = tableFor([
    { name: 'h', match: [{ headers: { 'x-exact': { exact: 'jason' }, 'x-prefix': { prefix: 'ja' }, 'x-regex': { regex: 'j.*n' }, 'x-present': {} } }], route: toV2 },
    { name: 'without', match: [{ uri: { prefix: '/w' }, withoutHeaders: { 'x-debug': { exact: '1' }, 'x-absent': {} } }], route: toV2 },
    { name: 'rest', route: toV1 },
  ]);
  const all = { 'x-exact': 'jason', 'x-prefix': 'jack', 'x-regex': 'john', 'x-present': '' };
  const name = (path: string, headers: Record<string, string>) => table.match(req(path, { headers }))?.routeName;
  t.is(name('/', all), 'h');
  t.is(name('/', { ...all, 'x-exact': 'Jason' }), 'rest');
  t.is(name('/', { ...all, 'x-prefix': 'mary' }), 'rest');
  t.is(name('/', { ...all, 'x-regex': 'johnny' }), 'rest');
  const { 'x-present': _, ...withoutPresent } = all;
  t.is(name('/', withoutPresent), 'rest');
  t.is(name('/w', {}), 'without');
  t.is(name('/w', { 'x-debug': '2' }), 'without');
  t.is(name('/w', { 'x-debug': '1' }), 'rest');
  t.is(name('/w', { 'x-absent': 'here' }), 'rest');
  // A lookup function works like a Map, and repeated values are matched joined with ','.
  const fn = compileRouteConfiguration(translated([{ name: 'multi', match: [{ headers: { 'x-v': { exact: 'a,b' } } }], route: toV2 }, { route: toV1 }]));
  const lookup = (n: string) => (n === 'x-v' ? ['a', 'b'] : undefined);
  t.is(fn.match({ ...req('/'), headers: lookup })?.routeName, 'multi');
});

test('query parameters: exact, regex and presence, URL-decoded', (t) => {
  const table = tableFor([{ name: 'q', match: [{ queryParams: { debug: { exact: 'on now' }, trace: { regex: 't.*' }, flag: {} } }], route: toV2 }, { name: 'rest', route: toV1 }]);
  const name = (path: string) => table.match(req(path))?.routeName;
  t.is(name('/p?debug=on%20now&trace=tx&flag'), 'q');
  t.is(name('/p?flag=&trace=t&debug=on+now'), 'q');
  t.is(name('/p?debug=on%20now&trace=tx'), 'rest');
  t.is(name('/p?debug=off&trace=tx&flag'), 'rest');
  t.is(name('/p?debug=on%20now&trace=xt&flag'), 'rest');
  t.is(name('/p'), 'rest');
});

test('a 90/10 split picks v1 for 90% and v2 for 10% of a deterministic sequence of randoms', (t) => {
  const table = tableFor([{ route: [{ destination: { host: 'reviews', subset: 'v1' }, weight: 90 }, { destination: { host: 'reviews', subset: 'v2' }, weight: 10 }] }]);
  const decision = table.match(req('/'))!;
  t.is(decision.action.kind, 'weighted');
  if (decision.action.kind === 'weighted') t.is(decision.action.totalWeight, 100);
  const counts = new Map<string, number>();
  for (let i = 0; i < 2000; i++) {
    const name = pickWeightedCluster(decision, i / 2000)!.name;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  t.deepEqual(Object.fromEntries(counts), { [V1]: 1800, [V2]: 200 });
  t.is(pickWeightedCluster(decision, 0.8999)!.name, V1);
  t.is(pickWeightedCluster(decision, 0.9)!.name, V2);
  t.is(pickWeightedCluster(decision, 0.99999)!.name, V2);
  t.is(pickWeightedCluster(tableFor([{ route: toV1 }]).match(req('/'))!, 0.5), undefined, 'a single cluster is no weighted choice');
});

test('rewrites: prefix swaps the matched prefix, regex substitutes groups, the query is kept, authority is rewritten', (t) => {
  const table = tableFor([
    { name: 'old', match: [{ uri: { prefix: '/old' } }], rewrite: { uri: '/new', authority: 'reviews.internal' }, route: toV1 },
    { name: 'exact', match: [{ uri: { exact: '/exact' } }], rewrite: { uri: '/replaced' }, route: toV1 },
    { name: 'v1', match: [{ uri: { regex: '/v1/.*' } }], rewrite: { uriRegexRewrite: { match: '^/v1/(.*)$', rewrite: '/v2/\\1' } }, route: toV1 },
    { name: 'rest', route: toV1 },
  ]);
  t.deepEqual(table.match(req('/old/path?a=1'))!.rewrite, { path: '/new/path?a=1', authority: 'reviews.internal' });
  t.deepEqual(table.match(req('/exact?x'))!.rewrite, { path: '/replaced?x' });
  t.deepEqual(table.match(req('/v1/items/7?q=$1'))!.rewrite, { path: '/v2/items/7?q=$1' });
  t.deepEqual(table.match(req('/elsewhere'))!.rewrite, {});
});

test('redirect locations: Istio\'s scheme, authority, port and path; derived port; codes mapped to statuses', (t) => {
  const table = tableFor([
    { name: 'moved', match: [{ uri: { exact: '/moved' } }], redirect: { uri: '/new', authority: 'other', redirectCode: 302, port: 8443, scheme: 'https' } },
    { name: 'derive', match: [{ uri: { exact: '/derive' } }], redirect: { uri: '/x', derivePort: 'FROM_REQUEST_PORT' } },
    { name: 'host', match: [{ uri: { prefix: '/host' } }], redirect: { authority: 'elsewhere.example', redirectCode: 308 } },
  ]);
  t.deepEqual(table.match(req('/moved?a=1'))!.action, { kind: 'redirect', location: 'https://other:8443/new?a=1', status: 302 });
  t.deepEqual(table.match(req('/derive', { authority: 'reviews' }))!.action, { kind: 'redirect', location: 'http://reviews:9080/x', status: 301 });
  t.deepEqual(table.match(req('/host/a?b'))!.action, { kind: 'redirect', location: 'http://elsewhere.example/host/a?b', status: 308 });
});

test('redirects as Envoy builds them: https drops the old default port, prefix rewrite, strip_query, path with its own query', (t) => {
  const route = (name: string, prefix: string, redirect: Record<string, unknown>) => ({ name, match: { prefix }, redirect });
  const table = compileRouteConfiguration(decoded({
    name: 'r',
    virtual_hosts: [{
      name: 'vh',
      domains: ['*'],
      routes: [
        route('https', '/secure', { https_redirect: true, response_code: 'PERMANENT_REDIRECT' }),
        route('prefix', '/docs', { prefix_rewrite: '/manual', strip_query: true, response_code: 'SEE_OTHER' }),
        route('path-query', '/search', { path_redirect: '/find?from=search', response_code: 'TEMPORARY_REDIRECT' }),
        route('regex', '/img', { regex_rewrite: { pattern: { regex: '^/img/(.*)\\.png$' }, substitution: '/images/\\1.webp' } }),
      ],
    }],
  }));
  const location = (path: string, authority: string) => {
    const action = table.match(req(path, { authority }))!.action;
    return action.kind === 'redirect' ? [action.location, action.status] : undefined;
  };
  t.deepEqual(location('/secure/a?x=1', 'shop.example:80'), ['https://shop.example/secure/a?x=1', 308]);
  t.deepEqual(location('/secure', 'shop.example:8080'), ['https://shop.example:8080/secure', 308]);
  t.deepEqual(location('/docs/intro?lang=en', 'shop.example'), ['http://shop.example/manual/intro', 303]);
  t.deepEqual(location('/search?q=a', 'shop.example'), ['http://shop.example/find?from=search', 307]);
  t.deepEqual(location('/img/cat.png?s=2', 'shop.example'), ['http://shop.example/images/cat.webp?s=2', 301]);
});

test('direct responses carry status and body; a path no route takes has no decision', (t) => {
  const table = tableFor([
    { name: 'teapot', match: [{ uri: { exact: '/teapot' } }], directResponse: { status: 418, body: { string: 'short and stout' } } },
    { name: 'bytes', match: [{ uri: { exact: '/bytes' } }], directResponse: { status: 200, body: { bytes: Buffer.from('hi').toString('base64') } } },
    { name: 'empty', match: [{ uri: { exact: '/empty' } }], directResponse: { status: 204 } },
  ]);
  const teapot = table.match(req('/teapot'))!.action;
  t.is(teapot.kind, 'direct');
  if (teapot.kind === 'direct') {
    t.is(teapot.status, 418);
    t.is(teapot.body!.toString(), 'short and stout');
  }
  const bytes = table.match(req('/bytes'))!.action;
  t.is(bytes.kind === 'direct' ? bytes.body!.toString() : undefined, 'hi');
  t.deepEqual(table.match(req('/empty'))!.action, { kind: 'direct', status: 204 });
  t.is(table.match(req('/other')), undefined, 'no route: the caller answers 404');
});

test('header operations: route set/add/remove in order, weighted-cluster headers on the cluster', (t) => {
  const table = tableFor([{
    headers: { request: { set: { 'X-Env': 'prod' }, add: { 'x-trace': 'on' }, remove: ['x-secret'] }, response: { set: { 'cache-control': 'no-store' }, remove: ['server'] } },
    route: [
      { destination: { host: 'reviews', subset: 'v1' }, weight: 50, headers: { request: { set: { 'x-version': 'v1' } } } },
      { destination: { host: 'reviews', subset: 'v2' }, weight: 50 },
    ],
  }]);
  const decision = table.match(req('/'))!;
  t.deepEqual(decision.requestHeaders, {
    add: [
      { name: 'x-env', value: 'prod', action: 'OVERWRITE_IF_EXISTS_OR_ADD', keepEmptyValue: false },
      { name: 'x-trace', value: 'on', action: 'APPEND_IF_EXISTS_OR_ADD', keepEmptyValue: false },
    ],
    remove: ['x-secret'],
  });
  t.deepEqual(decision.responseHeaders, { add: [{ name: 'cache-control', value: 'no-store', action: 'OVERWRITE_IF_EXISTS_OR_ADD', keepEmptyValue: false }], remove: ['server'] });
  const v1 = pickWeightedCluster(decision, 0.1)!;
  t.is(v1.name, V1);
  t.deepEqual(v1.requestHeaders.add.map((h) => [h.name, h.value]), [['x-version', 'v1']]);
  t.deepEqual(pickWeightedCluster(decision, 0.9)!.requestHeaders, { add: [], remove: [] });
});

test('timeouts: the route\'s value, 0 disables, and Envoy\'s 15 s when a route sets none', (t) => {
  const decision = tableFor([{ timeout: '1.5s', route: toV1 }]).match(req('/'))!;
  t.is(decision.timeoutMs, 1500);
  t.is(decision.grpcTimeoutHeaderMaxMs, 1500);
  const ratingsDefault = tableFor([{ route: toV1 }]).match(req('/', { authority: 'ratings' }))!;
  t.is(ratingsDefault.timeoutMs, undefined);
  const bare = compileRouteConfiguration(decoded({ name: 'b', virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c' } }] }] }));
  t.is(bare.match(req('/'))!.timeoutMs, 15_000);
});

test('retries: explicit attempts, conditions, status codes and per-try timeout; Istio\'s default policy; attempts 0 means none', (t) => {
  const table = tableFor([
    { match: [{ uri: { prefix: '/a' } }], retries: { attempts: 3, perTryTimeout: '2s', retryOn: 'gateway-error,connect-failure,429' }, route: toV1 },
    { match: [{ uri: { prefix: '/b' } }], retries: { attempts: 0 }, route: toV1 },
    { route: toV1 },
  ]);
  const a = table.match(req('/a'))!.retry!;
  t.is(a.numRetries, 3);
  t.is(a.perTryTimeoutMs, 2000);
  t.deepEqual(a.retryOn, ['gateway-error', 'connect-failure', 'retriable-status-codes']);
  t.deepEqual(a.retriableStatusCodes, [429]);
  t.deepEqual(a.retryHostPredicates, ['envoy.retry_host_predicates.previous_hosts']);
  t.is(table.match(req('/b'))!.retry, undefined);
  const fallback = table.match(req('/c'))!.retry!;
  t.is(fallback.numRetries, 2);
  t.deepEqual(fallback.retryOn, ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes']);
  t.deepEqual(fallback.retriableStatusCodes, [503]);
  t.is(fallback.perTryTimeoutMs, undefined);
});

test('fault injection percentages from MILLION and HUNDRED denominators; http and gRPC aborts', (t) => {
  const table = tableFor([
    { match: [{ uri: { prefix: '/delay' } }], fault: { delay: { fixedDelay: '7s', percentage: { value: 12.5 } } }, route: toV1 },
    { match: [{ uri: { prefix: '/abort' } }], fault: { abort: { httpStatus: 503, percentage: { value: 0.1 } } }, route: toV1 },
    { match: [{ uri: { prefix: '/legacy' } }], fault: { delay: { fixedDelay: '100ms', percent: 30 } }, route: toV1 },
    { match: [{ uri: { prefix: '/grpc' } }], fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 100 } } }, route: toV1 },
    { route: toV1 },
  ]);
  t.deepEqual(table.match(req('/delay'))!.fault, { delay: { ms: 7000, percent: 12.5 } });
  const abort = table.match(req('/abort'))!.fault!.abort!;
  t.is(abort.httpStatus, 503);
  t.true(Math.abs(abort.percent - 0.1) < 1e-9);
  t.deepEqual(table.match(req('/legacy'))!.fault, { delay: { ms: 100, percent: 30 } });
  t.deepEqual(table.match(req('/grpc'))!.fault, { abort: { grpcStatus: 14, percent: 100 } });
  t.is(table.match(req('/other'))!.fault, undefined);
});

test('mirrors carry their cluster and percentage; no percentage means all requests', (t) => {
  const decision = tableFor([{ route: toV1, mirror: { host: 'reviews', subset: 'v2' }, mirrorPercentage: { value: 25 }, mirrors: [{ destination: { host: 'ratings' } }] }]).match(req('/'))!;
  t.deepEqual(decision.mirrors, [{ cluster: V2, percent: 25 }, { cluster: RATINGS, percent: 100 }]);
});

test('route metadata carries the VirtualService; hash policy from the DestinationRule', (t) => {
  const resources = [
    resource('VirtualService', 'reviews', { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] }),
    resource('DestinationRule', 'reviews', { host: 'reviews', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'X-User' } } } }),
  ];
  const config = generateDecoded(new MeshTranslator(), model([reviews, ratings], resources), node('host-x'), TypeUrl.RouteConfiguration, named('9080')).get('9080');
  const decision = compileRouteConfiguration(config).match(req('/'))!;
  t.is(clusterOf(decision), ALL);
  t.deepEqual(decision.hashPolicy, [{ kind: 'header', name: 'x-user', terminal: false }]);
  t.is(decision.metadata.mesh?.virtualService, 'VirtualService/default/reviews');
});

test('runtime_fraction matches the given share of requests by the request\'s random number', (t) => {
  const table = compileRouteConfiguration(decoded({
    name: 'f',
    virtual_hosts: [{
      name: 'vh',
      domains: ['*'],
      routes: [
        { name: 'canary', match: { prefix: '/', runtime_fraction: { default_value: { numerator: 25, denominator: 'HUNDRED' }, runtime_key: 'k' } }, route: { cluster: 'canary' } },
        { name: 'main', match: { prefix: '/' }, route: { cluster: 'main' } },
      ],
    }],
  }));
  let canary = 0;
  for (let i = 0; i < 1000; i++) if (table.match(req('/', { random: i / 1000 }))!.routeName === 'canary') canary++;
  t.is(canary, 250);
});

test('a regex JavaScript cannot run fails compilation with the route and field named', (t) => {
  const config = translated([{ name: 'bad', match: [{ uri: { regex: '/api/(?P<version>v[0-9]+)' } }], route: toV1 }]);
  const error = t.throws(() => compileRouteConfiguration(config), { instanceOf: RouteConfigError });
  t.regex(error!.message, /routes\["bad"\]\.match\.safe_regex\.regex: invalid regex/);
  const header = translated([{ name: 'hdr', match: [{ headers: { 'x-a': { regex: '(' } } }], route: toV1 }]);
  t.throws(() => compileRouteConfiguration(header), { message: /routes\["hdr"\]\.match\.headers\[0\]\.string_match\.safe_regex\.regex: invalid regex/ });
});

test('config the agent cannot honour is refused by field, so the NACK says what to fix', (t) => {
  const withRoute = (route: Record<string, unknown>) => decoded({ name: 'x', virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ name: 'r', match: { prefix: '/' }, ...route }] }] });
  t.throws(() => compileRouteConfiguration(withRoute({ route: { cluster_header: 'x-cluster' } })), { message: /routes\["r"\]\.route\.cluster_header: field not supported/ });
  t.throws(() => compileRouteConfiguration(withRoute({ route: { cluster: 'c', auto_host_rewrite: { value: true } } })), { message: /route\.auto_host_rewrite: field not supported/ });
  t.throws(() => compileRouteConfiguration(withRoute({ route: { cluster: 'c' }, request_headers_to_add: [{ header: { key: 'x-ip', value: '%DOWNSTREAM_REMOTE_ADDRESS%' } }] })), { message: /request_headers_to_add\[0\]\.header\.value: substitution/ });
  t.throws(() => compileRouteConfiguration(withRoute({ direct_response: { status: 200, body: { inline_string: 'x'.repeat(5000) } } })), { message: /exceeds max_direct_response_body_size_bytes 4096/ });
  const duplicate = decoded({ name: 'd', virtual_hosts: [{ name: 'a', domains: ['x'], routes: [] }, { name: 'b', domains: ['x'], routes: [] }] });
  const wildcards = decoded({ name: 'w', virtual_hosts: [{ name: 'a', domains: ['*foo*'], routes: [] }] });
  t.throws(() => compileRouteConfiguration(wildcards), { message: /virtual_hosts\["a"\]\.domains: only one wildcard allowed in "\*foo\*"/ });
  t.throws(() => compileRouteConfiguration(duplicate), { message: /virtual_hosts\["b"\]\.domains: domain "x" is used by an earlier virtual host/ });
});

test('path_separated_prefix stops at a segment boundary; grpc matches gRPC content types only; virtual host retry and headers apply', (t) => {
  const add = (key: string, value: string) => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' });
  const config = (mostSpecificWins: boolean) => decoded({
    name: 's',
    most_specific_header_mutations_wins: mostSpecificWins,
    request_headers_to_add: [add('x-level', 'config')],
    virtual_hosts: [{
      name: 'vh',
      domains: ['*'],
      request_headers_to_add: [add('x-level', 'vhost')],
      retry_policy: { retry_on: '5xx', num_retries: { value: 4 } },
      routes: [
        { name: 'grpc', match: { prefix: '/', grpc: {} }, route: { cluster: 'grpc' } },
        { name: 'api', match: { path_separated_prefix: '/api' }, request_headers_to_add: [add('x-level', 'route')], route: { cluster: 'api' } },
        { name: 'rest', match: { prefix: '/' }, route: { cluster: 'rest', retry_policy: { retry_on: 'reset' } } },
      ],
    }],
  });
  const table = compileRouteConfiguration(config(false));
  const name = (path: string, headers: Record<string, string> = {}) => table.match(req(path, { headers }))?.routeName;
  t.is(name('/api'), 'api');
  t.is(name('/api/items'), 'api');
  t.is(name('/apis'), 'rest');
  t.is(name('/api', { 'content-type': 'application/grpc+proto' }), 'grpc');
  t.is(name('/api', { 'content-type': 'application/json' }), 'api');
  const api = table.match(req('/api'))!;
  t.deepEqual(api.retry && [api.retry.numRetries, api.retry.retryOn], [4, ['5xx']]);
  t.deepEqual(api.requestHeaders.add.map((h) => h.value), ['route', 'vhost', 'config'], 'by default the least specific is applied last and wins');
  const rest = table.match(req('/other'))!;
  t.deepEqual(rest.retry && [rest.retry.numRetries, rest.retry.retryOn], [1, ['reset']], 'a route policy replaces the virtual host one; Envoy retries once by default');
  const reversed = compileRouteConfiguration(config(true)).match(req('/api'))!;
  t.deepEqual(reversed.requestHeaders.add.map((h) => h.value), ['config', 'vhost', 'route']);
});

test('retry settings the agent cannot honour fail compilation naming the field: unknown retry_on, a retry priority without its config, other host predicates', (t) => {
  const bad = (policy: Record<string, unknown>) => decoded({ name: 'r', virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ name: 'x', match: { prefix: '/' }, route: { cluster: 'c', retry_policy: policy } }] }] });
  t.throws(() => compileRouteConfiguration(bad({ retry_on: '5xx,retriable-headers' })), { message: /routes\["x"\]\.route\.retry_policy\.retry_on: condition "retriable-headers"/ });
  t.throws(() => compileRouteConfiguration(bad({ retry_on: '5xx', retry_priority: { name: 'envoy.retry_priorities.previous_priorities' } })), { message: /retry_policy\.retry_priority\.typed_config: missing: .*update_frequency greater than 0/ });
  const config = (fields: Record<string, unknown>) => ({ '@type': 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig', ...fields });
  t.throws(() => compileRouteConfiguration(bad({ retry_on: '5xx', retry_priority: { name: 'envoy.retry_priorities.previous_priorities', typed_config: config({}) } })), { message: /retry_priority\.typed_config\.update_frequency: must be greater than 0, got 0/ });
  t.throws(() => compileRouteConfiguration(bad({ retry_on: '5xx', retry_priority: { name: 'envoy.retry_priorities.other', typed_config: config({ update_frequency: 1 }) } })), { message: /retry_priority\.name: envoy\.retry_priorities\.other is not supported/ });
  t.throws(() => compileRouteConfiguration(bad({ retry_on: '5xx', retry_host_predicate: [{ name: 'envoy.retry_host_predicates.omit_canary_hosts' }] })), { message: /retry_policy\.retry_host_predicate: .*omit_canary_hosts/ });
  t.notThrows(() => compileRouteConfiguration(bad({ retry_on: 'gateway-error,reset,unavailable,retriable-4xx', retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts' }] })));
});

test('previous_priorities (retryRemoteLocalities) compiles to its update frequency; routes without it have none', (t) => {
  const route = (name: string, policy: Record<string, unknown>) => ({ name, match: { path: `/${name}` }, route: { cluster: 'c', retry_policy: policy } });
  const priority = (updateFrequency: number) => ({ name: 'envoy.retry_priorities.previous_priorities', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig', update_frequency: updateFrequency } });
  const table = compileRouteConfiguration(decoded({ name: 'r', virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [
    route('istio', { retry_on: '5xx', num_retries: { value: 2 }, retry_priority: priority(2) }),
    route('each', { retry_on: '5xx', retry_priority: priority(1) }),
    route('plain', { retry_on: '5xx' }),
  ] }] }));
  t.deepEqual(table.match(req('/istio'))!.retry!.previousPriorities, { updateFrequency: 2 });
  t.deepEqual(table.match(req('/each'))!.retry!.previousPriorities, { updateFrequency: 1 });
  t.is(table.match(req('/plain'))!.retry!.previousPriorities, undefined);
});
