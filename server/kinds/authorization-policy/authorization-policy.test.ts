// Tests of the AuthorizationPolicy schema and checks: Istio's documented ALLOW, DENY, CUSTOM and
// waypoint examples pass, and provider, rule, wildcard, path and condition rules report their path.
import test from 'ava';
import { issueAt, lines, validateYaml } from '../testing';
import { authorizationPolicyKind } from './schema';

const ap = (yaml: string) => validateYaml(authorizationPolicyKind, yaml);

test('the documented httpbin ALLOW policy is accepted', (t) => {
  const result = ap(`
action: ALLOW
rules:
- from:
  - source:
      principals: ["cluster.local/ns/default/sa/sleep"]
  - source:
      namespaces: ["test"]
  to:
  - operation:
      methods: ["GET"]
      paths: ["/info*"]
  - operation:
      methods: ["POST"]
      paths: ["/data"]
  when:
  - key: request.auth.claims[iss]
    values: ["https://accounts.google.com"]
`);
  t.deepEqual(result.issues, []);
});

test('policies using every source, operation and condition field are accepted', (t) => {
  const result = ap(`
selector: {matchLabels: {app: httpbin, version: v1}}
action: DENY
rules:
- from:
  - source:
      notPrincipals: ["cluster.local/ns/prod/sa/*", "*"]
      requestPrincipals: ["https://issuer.example.com/*"]
      notRequestPrincipals: ["*"]
      notNamespaces: ["foo"]
      ipBlocks: ["203.0.113.4", "203.0.113.0/24"]
      notIpBlocks: ["2001:db8::/32"]
      remoteIpBlocks: ["198.51.100.0/24"]
      notRemoteIpBlocks: ["198.51.100.7"]
  to:
  - operation:
      hosts: ["*.example.com", "api.example.com:*"]
      notHosts: ["admin.example.com"]
      ports: ["8080"]
      notPorts: ["9090"]
      notMethods: ["PATCH"]
      paths: ["/api/*", "*.png", "/foo/{*}/bar/{**}"]
      notPaths: ["/healthz"]
  when:
  - key: request.headers[x-token]
    notValues: ["admin"]
  - key: source.ip
    values: ["10.0.0.0/8"]
  - key: destination.port
    values: ["443"]
  - key: request.auth.claims[groups][0]
    values: ["eng"]
  - key: connection.sni
    values: ["*.example.com"]
`);
  t.deepEqual(lines(result.issues), []);
});

test('the documented allow-nothing, deny-all and waypoint policies are accepted, CUSTOM is reported as not supported', (t) => {
  t.deepEqual(ap(`{}`).issues, []);
  t.deepEqual(ap(`{action: DENY, rules: [{}]}`).issues, []);
  const custom = ap(`
selector:
  matchLabels:
    app: httpbin
action: CUSTOM
provider:
  name: "my-custom-authz"
rules:
- to:
  - operation:
      paths: ["/admin/*"]
`);
  // Well-formed, but mesh-agent has no external authorizer: analysis says so rather than ignore it.
  t.deepEqual(custom.issues.map((i) => [i.path, i.code]), [['action', 'custom-not-supported']]);
  t.regex(custom.issues[0]!.message, /CUSTOM \(external authorization through provider "my-custom-authz"\) is not supported by mesh-agent/);
  const waypoint = ap(`
targetRefs:
- kind: Gateway
  group: gateway.networking.k8s.io
  name: waypoint
action: ALLOW
rules:
- from: [{source: {principals: ["cluster.local/ns/default/sa/curl"]}}]
`);
  t.deepEqual(waypoint.issues, []);
});

test('CUSTOM requires provider.name, others must not set a provider', (t) => {
  const custom = ap(`{action: CUSTOM, rules: [{}]}`);
  t.is(issueAt(custom.issues, 'provider.name')?.code, 'provider-required');
  const allow = ap(`{action: ALLOW, provider: {name: ext}, rules: [{}]}`);
  const issue = issueAt(allow.issues, 'provider');
  t.is(issue?.message, 'provider must not be set with action ALLOW, only with CUSTOM');
  t.is(issue?.code, 'provider-not-allowed');
  const deny = ap(`{action: DENY, provider: {name: ext}, rules: [{}]}`);
  t.is(issueAt(deny.issues, 'provider')?.code, 'provider-not-allowed');
});

test('CUSTOM cannot match on principals or namespaces, and needs rules', (t) => {
  const result = ap(`{action: CUSTOM, provider: {name: ext}, rules: [{from: [{source: {principals: [a]}}], when: [{key: request.auth.principal, values: [x]}]}]}`);
  t.is(issueAt(result.issues, 'rules[0].from[0].source.principals')?.code, 'custom-unsupported');
  t.is(issueAt(result.issues, 'rules[0].when[0].key')?.code, 'custom-unsupported');
  t.is(issueAt(ap(`{action: CUSTOM, provider: {name: ext}}`).issues, 'rules')?.code, 'missing-rules');
});

test('DENY without rules is an error', (t) => {
  t.regex(issueAt(ap(`{action: DENY}`).issues, 'rules')?.message ?? '', /DENY action without rules/);
});

test('* may only be a prefix, suffix or the whole value in principals, namespaces and hosts', (t) => {
  const result = ap(`{rules: [{from: [{source: {principals: ["cluster.local/*/sa/sleep"], namespaces: ["*prod*"]}}], to: [{operation: {hosts: ["a.*.com"]}}]}]}`);
  t.is(issueAt(result.issues, 'rules[0].from[0].source.principals[0]')?.code, 'invalid-wildcard');
  t.is(issueAt(result.issues, 'rules[0].from[0].source.namespaces[0]')?.message, 'only exact, prefix (abc*), suffix (*abc) or presence (*) matching is supported');
  t.is(issueAt(result.issues, 'rules[0].to[0].operation.hosts[0]')?.code, 'invalid-wildcard');
});

test('paths must start with / and templates use whole-segment operators; methods are upper case', (t) => {
  const result = ap(`{rules: [{to: [{operation: {paths: ["api/v1", "/a/{**}/b", "/x{*}"], methods: [get, "GE T"]}}]}]}`);
  t.regex(issueAt(result.issues, 'rules[0].to[0].operation.paths[0]')?.message ?? '', /must start with \//);
  t.is(issueAt(result.issues, 'rules[0].to[0].operation.paths[1]')?.message, '{**} must be the last segment of a path template');
  t.is(issueAt(result.issues, 'rules[0].to[0].operation.paths[2]')?.message, 'path template operators must be whole segments: {*} or {**}');
  t.is(issueAt(result.issues, 'rules[0].to[0].operation.methods[0]')?.message, 'HTTP methods are case-sensitive; did you mean GET?');
  t.is(issueAt(result.issues, 'rules[0].to[0].operation.methods[1]')?.message, 'not an HTTP method');
});

test('sources and operations must not be empty; IPs and ports must parse', (t) => {
  const result = ap(`{rules: [{from: [{source: {}}, {}], to: [{operation: {ports: ["http", "70000"]}}], when: [{key: source.ip, values: [not-an-ip]}]}]}`);
  t.is(issueAt(result.issues, 'rules[0].from[0].source')?.message, 'from.source must not be empty');
  t.is(issueAt(result.issues, 'rules[0].from[1].source')?.message, 'from.source must be set');
  t.is(issueAt(result.issues, 'rules[0].to[0].operation.ports[0]')?.code, 'port-range');
  t.is(issueAt(result.issues, 'rules[0].to[0].operation.ports[1]')?.code, 'port-range');
  t.is(issueAt(result.issues, 'rules[0].when[0].values[0]')?.code, 'invalid-address');
  const ips = ap(`{rules: [{from: [{source: {ipBlocks: ["10.0.0.0/33"]}}]}]}`);
  t.is(issueAt(ips.issues, 'rules[0].from[0].source.ipBlocks[0]')?.message, 'must be an IP address or CIDR block');
});

test('conditions need a known key and values or notValues', (t) => {
  const result = ap(`{rules: [{when: [{key: request.path, values: ["/x"]}, {key: "request.headers[x-a]"}, {key: "request.headers[x"}]}]}`);
  t.is(issueAt(result.issues, 'rules[0].when[0].key')?.message, 'unknown attribute');
  t.is(issueAt(result.issues, 'rules[0].when[1]')?.message, 'at least one of values or notValues must be set for key request.headers[x-a]');
  t.is(issueAt(result.issues, 'rules[0].when[2].key')?.code, 'invalid-condition');
});

test('unknown fields, wrong types and unknown actions are reported at their path', (t) => {
  t.is(issueAt(ap(`{rules: [{from: [{source: {principal: [a]}}]}]}`).issues, 'rules[0].from[0].source.principal')?.code, 'unknown-field');
  t.is(issueAt(ap(`{rules: [{to: [{operation: {ports: [8080]}}]}]}`).issues, 'rules[0].to[0].operation.ports[0]')?.code, 'invalid-type');
  t.truthy(issueAt(ap(`{action: REJECT}`).issues, 'action'));
});
