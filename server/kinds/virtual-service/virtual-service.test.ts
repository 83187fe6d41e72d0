// Tests of the VirtualService schema and checks: Istio's documented examples are accepted, and each
// rule reports the offending field's path, message and value.
import test from 'ava';
import { issueAt, lines, validateYaml } from '../testing';
import { virtualServiceKind } from './schema';

const vs = (yaml: string) => validateYaml(virtualServiceKind, yaml);

test('the bookinfo reviews example from the Istio reference is accepted as is', (t) => {
  const result = vs(`
hosts:
- reviews.prod.svc.cluster.local
http:
- name: "reviews-v2-routes"
  match:
  - uri:
      prefix: "/wpcatalog"
  - uri:
      prefix: "/consumercatalog"
  rewrite:
    uri: "/newcatalog"
  route:
  - destination:
      host: reviews.prod.svc.cluster.local
      subset: v2
- name: "reviews-v1-route"
  route:
  - destination:
      host: reviews.prod.svc.cluster.local
      subset: v1
`);
  t.deepEqual(result.issues, []);
  t.is(result.spec?.http?.[0]?.match?.[1]?.uri?.prefix, '/consumercatalog');
});

test('a VirtualService using every documented HTTP, TCP and TLS feature is accepted', (t) => {
  const result = vs(`
hosts: [ratings.prod.svc.cluster.local, "*.bookinfo.com"]
gateways: [mesh, istio-system/bookinfo-gateway]
exportTo: ["."]
http:
- name: canary
  match:
  - name: jason
    headers:
      end-user: {exact: jason}
      x-present: {}
    uri: {regex: "^/ratings/[0-9]+$"}
    method: {exact: GET}
    authority: {prefix: ratings}
    scheme: {exact: https}
    queryParams:
      debug: {exact: "1"}
    withoutHeaders:
      x-skip: {regex: "*"}
    ignoreUriCase: true
    sourceLabels: {app: productpage}
    sourceNamespace: bookinfo
    port: 9080
    statPrefix: jason
  route:
  - destination: {host: ratings.prod.svc.cluster.local, subset: v1, port: {number: 9080}}
    weight: 75
    headers:
      request: {set: {x-canary: "false"}}
  - destination: {host: ratings.prod.svc.cluster.local, subset: v2}
    weight: 25
    headers:
      response: {add: {x-version: v2}, remove: [x-internal]}
  timeout: 10s
  retries:
    attempts: 3
    perTryTimeout: 2s
    retryOn: gateway-error,connect-failure,refused-stream,503
    retryRemoteLocalities: false
    retryIgnorePreviousHosts: true
    backoff: 25ms
  fault:
    delay: {percentage: {value: 0.1}, fixedDelay: 5s}
    abort: {percentage: {value: 0.1}, httpStatus: 400}
  mirror: {host: ratings.prod.svc.cluster.local, subset: v3}
  mirrorPercentage: {value: 50.0}
  corsPolicy:
    allowOrigins: [{exact: "https://example.com"}, {regex: "https://.*\\\\.example\\\\.org"}]
    allowMethods: [POST, GET]
    allowCredentials: false
    allowHeaders: [X-Foo-Bar]
    exposeHeaders: [X-Expose]
    maxAge: "24h"
    unmatchedPreflights: IGNORE
  headers:
    request: {set: {x-route: canary}, add: {x-trace: "%REQ(x-request-id)%"}, remove: [x-legacy]}
- match: [{uri: {prefix: /old}}]
  redirect: {uri: /new, authority: newratings.default.svc.cluster.local, redirectCode: 301, derivePort: FROM_REQUEST_PORT, scheme: https}
- match: [{uri: {exact: /health}}]
  directResponse: {status: 503, body: {string: "unavailable"}}
- match: [{uri: {prefix: /v2}}]
  rewrite: {uriRegexRewrite: {match: "^/v2/(.*)$", rewrite: "/\\\\1"}}
  route: [{destination: {host: ratings.prod.svc.cluster.local}}]
  mirrors:
  - destination: {host: ratings.prod.svc.cluster.local, subset: v4}
    percentage: {value: 10}
tcp:
- match: [{port: 27017, destinationSubnets: [10.0.0.0/8], sourceLabels: {app: backend}}]
  route:
  - destination: {host: mongo.backup.svc.cluster.local, port: {number: 5555}}
tls:
- match:
  - port: 443
    sniHosts: [login.bookinfo.com]
  route:
  - destination: {host: login.prod.svc.cluster.local}
`);
  t.deepEqual(lines(result.issues), []);
  t.deepEqual(lines(result.issues, 'warning'), []);
});

test('a delegate route on the root and a delegate VirtualService without hosts are accepted', (t) => {
  const root = vs(`
hosts: ["*.bookinfo.com"]
gateways: [bookinfo-gateway]
http:
- match: [{uri: {prefix: /productpage}}]
  delegate: {name: productpage, namespace: nsA}
`);
  t.deepEqual(root.issues, []);
  const delegate = vs(`
http:
- match: [{uri: {prefix: /productpage/v1/}}]
  route: [{destination: {host: productpage-v1.nsA.svc.cluster.local}}]
`);
  t.deepEqual(delegate.issues, []);
});

test('weights of several destinations must sum to 100, reported at the last weight', (t) => {
  const result = vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
    weight: 50
  - destination: {host: reviews, subset: v2}
    weight: 40
`);
  const issue = issueAt(result.issues, 'http[0].route[1].weight');
  t.is(issue?.message, 'weights must sum to 100, got 90');
  t.is(issue?.code, 'weights-sum');
  t.is(issue?.value, 90);
});

test('a single destination may omit its weight, two without weights fail', (t) => {
  t.deepEqual(vs(`{hosts: [a], http: [{route: [{destination: {host: a}}]}]}`).issues, []);
  const result = vs(`{hosts: [a], http: [{route: [{destination: {host: a, subset: x}}, {destination: {host: a, subset: y}}]}]}`);
  t.is(issueAt(result.issues, 'http[0].route[1].weight')?.message, 'weights must sum to 100, got 0');
});

test('TCP and TLS route weights are summed too', (t) => {
  const result = vs(`
hosts: [db.example.com]
tcp:
- route:
  - {destination: {host: db.example.com, subset: a}, weight: 70}
  - {destination: {host: db.example.com, subset: b}, weight: 70}
`);
  t.is(issueAt(result.issues, 'tcp[0].route[1].weight')?.message, 'weights must sum to 100, got 140');
});

test('an unknown field is reported at its own path', (t) => {
  const result = vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews}
    wieght: 100
`);
  const issue = issueAt(result.issues, 'http[0].route[0].wieght');
  t.is(issue?.code, 'unknown-field');
  t.is(issue?.value, 100);
  t.is(result.spec, undefined);
});

test('a wrong type is reported at the field with the received value', (t) => {
  const result = vs(`
hosts: [reviews]
http:
- route:
  - {destination: {host: reviews, subset: v1}, weight: 50}
  - {destination: {host: reviews, subset: v2}, weight: "50"}
`);
  const issue = issueAt(result.issues, 'http[0].route[1].weight');
  t.is(issue?.code, 'invalid-type');
  t.is(issue?.value, '50');
});

test('StringMatch takes exactly one of exact, prefix, regex', (t) => {
  const both = vs(`{hosts: [a], http: [{match: [{uri: {exact: /a, prefix: /b}}], route: [{destination: {host: a}}]}]}`);
  t.regex(issueAt(both.issues, 'http[0].match[0].uri')?.message ?? '', /only one of exact, prefix, regex/);
  const none = vs(`{hosts: [a], http: [{match: [{uri: {}}], route: [{destination: {host: a}}]}]}`);
  t.regex(issueAt(none.issues, 'http[0].match[0].uri')?.message ?? '', /one of exact, prefix, regex is required/);
});

test('regexes are checked wherever they appear: uri, headers, queryParams, authority', (t) => {
  const result = vs(`
hosts: [a]
http:
- match:
  - uri: {regex: "^/(?!admin).*"}
    headers: {cookie: {regex: "(a)\\\\1"}}
    queryParams: {q: {regex: "["}}
    authority: {regex: "(?<=x)y"}
  route: [{destination: {host: a}}]
`);
  t.regex(issueAt(result.issues, 'http[0].match[0].uri.regex')?.message ?? '', /lookahead/);
  t.regex(issueAt(result.issues, 'http[0].match[0].headers.cookie.regex')?.message ?? '', /backreference/);
  t.regex(issueAt(result.issues, 'http[0].match[0].queryParams.q.regex')?.message ?? '', /invalid regex/);
  t.regex(issueAt(result.issues, 'http[0].match[0].authority.regex')?.message ?? '', /lookbehind/);
  t.is(issueAt(result.issues, 'http[0].match[0].uri.regex')?.code, 'invalid-regex');
});

test('a route needs one of route, redirect, directResponse or delegate, and not two', (t) => {
  const none = vs(`{hosts: [a], http: [{match: [{uri: {prefix: /}}]}]}`);
  t.is(issueAt(none.issues, 'http[0]')?.message, 'HTTP route needs one of route, redirect, directResponse or delegate');
  const both = vs(`{hosts: [a], http: [{redirect: {uri: /x}, route: [{destination: {host: a}}]}]}`);
  t.is(issueAt(both.issues, 'http[0].route')?.message, 'HTTP route cannot contain both route and redirect');
  const direct = vs(`{hosts: [a], http: [{directResponse: {status: 200}, redirect: {uri: /x}}]}`);
  t.is(issueAt(direct.issues, 'http[0].directResponse')?.message, 'HTTP route cannot contain both directResponse and redirect');
  const delegate = vs(`{hosts: [a], http: [{delegate: {name: d}, route: [{destination: {host: a}}]}]}`);
  t.is(issueAt(delegate.issues, 'http[0].route')?.message, 'a route with delegate must not specify route');
  const nested = vs(`{http: [{delegate: {name: d}}]}`);
  t.is(issueAt(nested.issues, 'http[0].delegate')?.message, 'delegate HTTP route cannot contain delegate');
});

test('durations must parse and be at least 1ms', (t) => {
  const bad = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], timeout: 10 seconds}]}`);
  t.regex(issueAt(bad.issues, 'http[0].timeout')?.message ?? '', /not a duration/);
  const zero = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], timeout: 0s}]}`);
  t.is(issueAt(zero.issues, 'http[0].timeout')?.message, 'duration must be at least 1ms');
  const fine = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], timeout: 1m30s}]}`);
  t.deepEqual(fine.issues, []);
});

test('retries: retryOn entries must be Envoy conditions or status codes, attempts not negative', (t) => {
  const result = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], retries: {attempts: -1, retryOn: "5xx,connect-failure,reset,retriable-4xx,unavailable,429,flaky"}}]}`);
  t.is(issueAt(result.issues, 'http[0].retries.retryOn')?.message, '"flaky" is not a valid retryOn policy');
  t.is(issueAt(result.issues, 'http[0].retries.attempts')?.message, 'attempts cannot be negative');
});

test('retries with attempts 0 but other settings is an error, as in Istio', (t) => {
  const result = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], retries: {attempts: 0, perTryTimeout: 1s}}]}`);
  t.is(issueAt(result.issues, 'http[0].retries.attempts')?.message, 'retry policy configured while attempts is 0 (retries disabled)');
});

test('retryRemoteLocalities true and false are accepted with attempts, and with attempts 0 (retries disabled) either is an error, as in Istio', (t) => {
  for (const value of [true, false]) {
    const accepted = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], retries: {attempts: 2, retryOn: 5xx, retryRemoteLocalities: ${value}}}]}`);
    t.deepEqual(accepted.issues, [], String(value));
    const disabled = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], retries: {attempts: 0, retryRemoteLocalities: ${value}}}]}`);
    t.like(issueAt(disabled.issues, 'http[0].retries.attempts'), { severity: 'error', code: 'invalid-retries', message: 'retry policy configured while attempts is 0 (retries disabled)' }, String(value));
  }
});

test('retryRemoteLocalities with 1 attempt is a warning: Istio\'s update_frequency 2 keeps the only retry in the locality tried', (t) => {
  const single = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], retries: {attempts: 1, retryRemoteLocalities: true}}]}`);
  t.like(issueAt(single.issues, 'http[0].retries.attempts'), { severity: 'warning', code: 'retry-remote-localities-without-effect', value: 1 });
  t.regex(issueAt(single.issues, 'http[0].retries.attempts')!.message, /set attempts to 2 or more/);
  t.deepEqual(vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], retries: {attempts: 1, retryRemoteLocalities: false}}]}`).issues, []);
});

test('retryOn with attempts 0 or unset, and zero or negative timeouts, are errors naming the field, as in Istio', (t) => {
  for (const retries of ['{attempts: 0, retryOn: 5xx}', '{retryOn: "connect-failure"}']) {
    const result = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], retries: ${retries}}]}`);
    t.like(issueAt(result.issues, 'http[0].retries.attempts'), { severity: 'error', code: 'invalid-retries' }, retries);
  }
  const result = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], timeout: -1s, retries: {attempts: 2, perTryTimeout: 0s}}]}`);
  t.like(issueAt(result.issues, 'http[0].timeout'), { severity: 'error', message: 'duration must be at least 1ms', value: '-1s' });
  t.like(issueAt(result.issues, 'http[0].retries.perTryTimeout'), { severity: 'error', message: 'duration must be at least 1ms', value: '0s' });
});

test('a perTryTimeout longer than the route timeout is a warning, not an error', (t) => {
  const result = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], timeout: 1s, retries: {attempts: 2, perTryTimeout: 3s}}]}`);
  t.deepEqual(lines(result.issues), []);
  const issue = issueAt(result.issues, 'http[0].retries.perTryTimeout');
  t.is(issue?.severity, 'warning');
  t.is(issue?.code, 'per-try-timeout-exceeds-timeout');
});

test('fault percentages must be within 0..100 and abort needs a valid status', (t) => {
  const result = vs(`
hosts: [a]
http:
- route: [{destination: {host: a}}]
  fault:
    delay: {percentage: {value: 120}, fixedDelay: 5s}
    abort: {percentage: {value: 10}, httpStatus: 700}
`);
  t.regex(issueAt(result.issues, 'http[0].fault.delay.percentage.value')?.message ?? '', /0\.\.100/);
  const status = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], fault: {abort: {httpStatus: 700}}}]}`);
  t.is(issueAt(status.issues, 'http[0].fault.abort.httpStatus')?.message, 'HTTP status must be in the range 200-599');
});

test('the deprecated delay.percent is range-checked and flagged with a warning', (t) => {
  const result = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], fault: {delay: {percent: 150, fixedDelay: 1s}}}]}`);
  t.deepEqual(lines(result.issues), ['http[0].fault.delay.percent: percentage must be in the range 0..100']);
  t.deepEqual(lines(result.issues, 'warning'), ['http[0].fault.delay.percent: "percent" is deprecated, use "percentage.value" instead']);
});

test('mirror and mirrors are exclusive; mirror_percent is accepted but deprecated', (t) => {
  const result = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], mirror: {host: b}, mirrors: [{destination: {host: c}}], mirror_percent: 20}]}`);
  t.is(issueAt(result.issues, 'http[0].mirrors')?.message, 'HTTP route cannot contain both mirror and mirrors');
  t.is(issueAt(result.issues, 'http[0].mirror_percent')?.severity, 'warning');
});

test('redirect needs something to redirect to and a 3xx code', (t) => {
  const result = vs(`{hosts: [a], http: [{redirect: {redirectCode: 200, uri: /x}}, {redirect: {redirectCode: 301}}]}`);
  t.is(issueAt(result.issues, 'http[0].redirect.redirectCode')?.message, 'redirectCode must be a 3xx status');
  t.is(issueAt(result.issues, 'http[1].redirect')?.message, 'redirect must specify uri, authority, scheme, port or derivePort');
  const both = vs(`{hosts: [a], http: [{redirect: {uri: /x, port: 8080, derivePort: FROM_REQUEST_PORT}}]}`);
  t.regex(issueAt(both.issues, 'http[0].redirect')?.message ?? '', /only one of port, derivePort/);
});

test('header operations reject pseudo-headers and unbalanced %', (t) => {
  const result = vs(`
hosts: [a]
http:
- route: [{destination: {host: a}}]
  headers:
    request: {set: {":path": /x, x-pct: "50%"}}
    response: {remove: [host]}
`);
  t.is(issueAt(result.issues, 'http[0].headers.request.set[":path"]')?.message, 'header cannot have ":" prefix');
  t.regex(issueAt(result.issues, 'http[0].headers.request.set["x-pct"]')?.message ?? '', /single %/);
  t.is(issueAt(result.issues, 'http[0].headers.response.remove[0]')?.message, 'cannot set or remove the Host header here');
});

test('the mesh gateway cannot take the * host; hosts must not overlap', (t) => {
  const star = vs(`{hosts: ["*"], http: [{route: [{destination: {host: a}}]}]}`);
  t.is(issueAt(star.issues, 'hosts[0]')?.message, 'wildcard host * is not allowed for virtual services bound to the mesh gateway');
  const dup = vs(`{hosts: ["*.foo.com", "bar.foo.com"], gateways: [gw], http: [{route: [{destination: {host: a}}]}]}`);
  t.regex(issueAt(dup.issues, 'hosts[1]')?.message ?? '', /duplicate hosts/);
});

test('a TLS route SNI host must be covered by the VirtualService hosts', (t) => {
  const result = vs(`{hosts: ["*.bookinfo.com"], gateways: [gw], tls: [{match: [{sniHosts: [login.example.com]}], route: [{destination: {host: login}}]}]}`);
  t.regex(issueAt(result.issues, 'tls[0].match[0].sniHosts[0]')?.message ?? '', /not a compatible subset/);
});

test('CORS methods and maxAge precision are checked', (t) => {
  const result = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], corsPolicy: {allowMethods: [FETCH], maxAge: 1500ms}}]}`);
  t.is(issueAt(result.issues, 'http[0].corsPolicy.allowMethods[0]')?.message, 'not a supported HTTP method');
  t.is(issueAt(result.issues, 'http[0].corsPolicy.maxAge')?.message, 'maxAge is accurate only to seconds precision');
});

test('destination host * and invalid subset names are rejected', (t) => {
  const result = vs(`{hosts: [a], http: [{route: [{destination: {host: "*", subset: V_1}}]}]}`);
  t.regex(issueAt(result.issues, 'http[0].route[0].destination.host')?.message ?? '', /not \*/);
  t.is(issueAt(result.issues, 'http[0].route[0].destination.subset')?.message, 'subset name must be a DNS label');
});

test('ports outside 1..65535 fail in the schema with the path', (t) => {
  const result = vs(`{hosts: [a], http: [{route: [{destination: {host: a, port: {number: 70000}}}]}]}`);
  t.regex(issueAt(result.issues, 'http[0].route[0].destination.port.number')?.message ?? '', /1\.\.65535/);
});

test('a VirtualService needs at least one of http, tcp, tls', (t) => {
  const result = vs(`{hosts: [a]}`);
  t.is(issueAt(result.issues, '')?.message, 'http, tcp or tls must be provided in virtual service');
});

test('directResponse status must be 200-599 and bytes base64', (t) => {
  const result = vs(`{hosts: [a], http: [{directResponse: {status: 150, body: {bytes: "not base64!"}}}]}`);
  t.is(issueAt(result.issues, 'http[0].directResponse.status')?.message, 'status must be in the range 200-599');
  t.is(issueAt(result.issues, 'http[0].directResponse.body.bytes')?.message, 'bytes must be base64 encoded');
  const body = vs(`{hosts: [a], http: [{directResponse: {status: 200, body: {string: a, bytes: YQ==}}}]}`);
  t.regex(issueAt(body.issues, 'http[0].directResponse.body')?.message ?? '', /only one of string, bytes/);
});

test('rewrite needs a target, not both uri and uriRegexRewrite, and a valid regex', (t) => {
  const result = vs(`
hosts: [a]
http:
- route: [{destination: {host: a}}]
  rewrite: {}
- route: [{destination: {host: a}}]
  rewrite: {uri: /x, uriRegexRewrite: {match: "(?=x)", rewrite: /y}}
`);
  t.is(issueAt(result.issues, 'http[0].rewrite')?.message, 'rewrite must specify uri, authority or uriRegexRewrite');
  t.is(issueAt(result.issues, 'http[1].rewrite.uriRegexRewrite')?.message, 'rewrite may only contain one of uri or uriRegexRewrite');
  t.regex(issueAt(result.issues, 'http[1].rewrite.uriRegexRewrite.match')?.message ?? '', /lookahead/);
});

test('the authority may be rewritten only once', (t) => {
  const result = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], rewrite: {authority: b.example.com}, headers: {request: {set: {":authority": c.example.com}}}}]}`);
  t.regex(issueAt(result.issues, 'http[0].headers.request.set[":authority"]')?.message ?? '', /authority header cannot be set multiple times/);
});

test('JWT claim routing is only for gateways', (t) => {
  const mesh = vs(`{hosts: [a], http: [{match: [{headers: {"@request.auth.claims.group": {exact: eng}}}], route: [{destination: {host: a}}]}]}`);
  t.is(issueAt(mesh.issues, 'http[0].match[0].headers["@request.auth.claims.group"]')?.code, 'jwt-claim-route');
  const gateway = vs(`{hosts: [a.example.com], gateways: [istio-system/gw], http: [{match: [{headers: {"@request.auth.claims.group": {exact: eng}}}], route: [{destination: {host: a}}]}]}`);
  t.deepEqual(gateway.issues, []);
});

test('gateway references must be mesh, namespace/name or a name; legacy dotted names warn', (t) => {
  const result = vs(`{hosts: [a.example.com], gateways: ["ns/bad_name", "gw.istio-system"], http: [{route: [{destination: {host: a}}]}]}`);
  t.is(issueAt(result.issues, 'gateways[0]')?.code, 'invalid-gateway');
  const legacy = issueAt(result.issues, 'gateways[1]');
  t.is(legacy?.severity, 'warning');
  t.is(legacy?.message, 'legacy gateway name format; prefer "istio-system/gw"');
});

test('TCP matches need IP/CIDR subnets and valid source namespaces', (t) => {
  const result = vs(`{hosts: [db], tcp: [{match: [{destinationSubnets: [10.0.0.0/40], sourceNamespace: "Bad_NS"}], route: [{destination: {host: db}}]}]}`);
  t.is(issueAt(result.issues, 'tcp[0].match[0].destinationSubnets[0]')?.message, 'must be an IP address or CIDR block');
  t.is(issueAt(result.issues, 'tcp[0].match[0].sourceNamespace')?.message, 'sourceNamespace must be a valid namespace name');
});

test('TLS routes need matches with SNI hosts and a route', (t) => {
  const result = vs(`{hosts: [a.example.com], tls: [{match: [{port: 443}]}]}`);
  t.is(issueAt(result.issues, 'tls[0].match[0].sniHosts')?.message, 'TLS match must have at least one SNI host');
  t.is(issueAt(result.issues, 'tls[0].route')?.message, 'TLS route is required');
});

test('a delegate VirtualService cannot carry gateways, tcp or tls', (t) => {
  const result = vs(`{gateways: [gw], http: [{route: [{destination: {host: a}}]}], tcp: [{route: [{destination: {host: a}}]}]}`);
  t.is(issueAt(result.issues, 'gateways')?.code, 'invalid-delegate');
  t.is(issueAt(result.issues, 'tcp')?.code, 'invalid-delegate');
});

test('grpcStatus must be a status name; http2Error and exponentialDelay are unsupported', (t) => {
  const result = vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], fault: {abort: {grpcStatus: "14"}, delay: {exponentialDelay: 1s}}}]}`);
  t.regex(issueAt(result.issues, 'http[0].fault.abort.grpcStatus')?.message ?? '', /UNAVAILABLE/);
  t.is(issueAt(result.issues, 'http[0].fault.delay.exponentialDelay')?.code, 'unsupported-field');
  t.deepEqual(vs(`{hosts: [a], http: [{route: [{destination: {host: a}}], fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 5}}}}]}`).issues, []);
});
