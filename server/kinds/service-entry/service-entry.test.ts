// Tests of the ServiceEntry schema and checks: Istio's documented examples pass, and the rules on
// hosts, addresses, ports and resolution/endpoint consistency report the offending path.
import test from 'ava';
import { issueAt, lines, validateYaml } from '../testing';
import { serviceEntryKind } from './schema';

const se = (yaml: string) => validateYaml(serviceEntryKind, yaml);

test('the documented external HTTPS services entry (resolution DNS, no endpoints) is accepted', (t) => {
  const result = se(`
hosts:
- api.dropboxapi.com
- www.googleapis.com
- api.facebook.com
location: MESH_EXTERNAL
ports:
- number: 443
  name: https
  protocol: TLS
resolution: DNS
`);
  t.deepEqual(result.issues, []);
});

test('the documented MongoDB cluster with VIP CIDR and static endpoints is accepted', (t) => {
  const result = se(`
hosts:
- mymongodb.somedomain # not used
addresses:
- 192.192.192.192/24 # VIPs
ports:
- number: 27018
  name: mongodb
  protocol: MONGO
location: MESH_INTERNAL
resolution: STATIC
endpoints:
- address: 2.2.2.2
- address: 3.3.3.3
`);
  t.deepEqual(result.issues, []);
});

test('the documented DNS endpoints with per-endpoint ports, unix socket and workloadSelector entries are accepted', (t) => {
  const dns = se(`
hosts: [foo.bar.com]
location: MESH_EXTERNAL
ports:
- number: 80
  name: http
  protocol: HTTP
resolution: DNS
endpoints:
- address: us.foo.bar.com
  ports:
    http: 8080
- address: uk.foo.bar.com
  ports:
    http: 9080
  locality: eu-west/zone1
  weight: 2
  labels: {region: uk}
`);
  t.deepEqual(dns.issues, []);
  const unix = se(`
hosts: [unix.svc.somedomain]
location: MESH_EXTERNAL
ports: [{number: 80, name: http, protocol: HTTP}]
resolution: STATIC
endpoints:
- address: unix:///var/run/example/socket
`);
  t.deepEqual(unix.issues, []);
  const selector = se(`
hosts: [details.bookinfo.com]
location: MESH_INTERNAL
ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
resolution: STATIC
workloadSelector:
  labels:
    app: details-legacy
exportTo: ["."]
subjectAltNames: ["spiffe://cluster.local/ns/bookinfo/sa/details-legacy"]
`);
  t.deepEqual(selector.issues, []);
});

test('resolution NONE must not have endpoints', (t) => {
  const result = se(`{hosts: [a.example.com], ports: [{number: 80, name: http, protocol: HTTP}], resolution: NONE, endpoints: [{address: 1.1.1.1}]}`);
  t.is(issueAt(result.issues, 'endpoints')?.message, 'no endpoints should be provided for resolution NONE');
});

test('resolution DNS without endpoints needs FQDN hosts, not wildcards', (t) => {
  const result = se(`{hosts: ["*.example.com"], ports: [{number: 443, name: tls, protocol: TLS}], resolution: DNS}`);
  t.is(issueAt(result.issues, 'hosts[0]')?.message, 'hosts must be FQDN if no endpoints are provided for resolution DNS');
});

test('resolution STATIC endpoints must be IP addresses', (t) => {
  const result = se(`{hosts: [a.example.com], ports: [{number: 80, name: http, protocol: HTTP}], resolution: STATIC, endpoints: [{address: db.example.com}]}`);
  t.regex(issueAt(result.issues, 'endpoints[0].address')?.message ?? '', /must be an IP address/);
});

test('CIDR addresses need resolution NONE or STATIC', (t) => {
  const result = se(`{hosts: [a.example.com], addresses: [10.0.0.0/16], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS}`);
  t.is(issueAt(result.issues, 'resolution')?.message, 'CIDR addresses are allowed only for NONE/STATIC resolution types');
  const bad = se(`{hosts: [a.example.com], addresses: [10.0.0.300]}`);
  t.is(issueAt(bad.issues, 'addresses[0]')?.code, 'invalid-address');
});

test('port names and numbers must be unique', (t) => {
  const result = se(`
hosts: [a.example.com]
ports:
- {number: 80, name: http, protocol: HTTP}
- {number: 80, name: http, protocol: HTTP}
`);
  t.is(issueAt(result.issues, 'ports[1].name')?.message, 'service entry port name already defined');
  t.is(issueAt(result.issues, 'ports[1].number')?.message, 'service entry port number already defined');
});

test('ports outside 1..65535 fail in the schema; unknown protocols in the checks', (t) => {
  const range = se(`{hosts: [a.example.com], ports: [{number: 0, name: http}]}`);
  t.regex(issueAt(range.issues, 'ports[0].number')?.message ?? '', /1\.\.65535/);
  const protocol = se(`{hosts: [a.example.com], ports: [{number: 80, name: http, protocol: SPDY}]}`);
  t.is(issueAt(protocol.issues, 'ports[0].protocol')?.message, 'unsupported protocol');
});

test('hosts must not be empty or the full wildcard', (t) => {
  t.is(issueAt(se(`{hosts: []}`).issues, 'hosts')?.message, 'service entry must have at least one host');
  t.regex(issueAt(se(`{hosts: ["*"]}`).issues, 'hosts[0]')?.message ?? '', /full wildcard/);
});

test('workloadSelector and endpoints are exclusive', (t) => {
  const result = se(`{hosts: [a.example.com], resolution: STATIC, workloadSelector: {labels: {app: a}}, endpoints: [{address: 1.1.1.1}]}`);
  t.is(issueAt(result.issues, 'workloadSelector')?.code, 'endpoints-conflict');
});

test('endpoint ports must name a service port', (t) => {
  const result = se(`{hosts: [a.example.com], ports: [{number: 80, name: http, protocol: HTTP}], resolution: STATIC, endpoints: [{address: 1.1.1.1, ports: {grpc: 9090}}]}`);
  t.is(issueAt(result.issues, 'endpoints[0].ports.grpc')?.message, 'endpoint port is not defined by the service entry');
});

test('several hosts with a plain TCP port need resolution NONE', (t) => {
  const result = se(`{hosts: [a.example.com, b.example.com], ports: [{number: 3306, name: mysql, protocol: TCP}], resolution: DNS}`);
  t.is(issueAt(result.issues, 'ports[0].protocol')?.message, 'multiple hosts provided with non-HTTP, non-TLS ports');
});

test('DNS_ROUND_ROBIN allows at most one endpoint', (t) => {
  const result = se(`{hosts: [a.example.com], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS_ROUND_ROBIN, endpoints: [{address: x.example.com}, {address: y.example.com}]}`);
  t.is(issueAt(result.issues, 'endpoints')?.code, 'resolution');
});

test('exportTo accepts ~ for ServiceEntry but not together with others', (t) => {
  t.deepEqual(lines(se(`{hosts: [a.example.com], exportTo: ["~"]}`).issues), []);
  t.is(issueAt(se(`{hosts: [a.example.com], exportTo: ["~", "ns1"]}`).issues, 'exportTo')?.message, 'cannot export to no one (~) and someone');
});

test('unknown fields and wrong enum values are reported at their path', (t) => {
  t.is(issueAt(se(`{hosts: [a.example.com], resolution: DNS, endpoint: []}`).issues, 'endpoint')?.code, 'unknown-field');
  t.truthy(issueAt(se(`{hosts: [a.example.com], resolution: DYNAMIC}`).issues, 'resolution'));
  t.is(issueAt(se(`{hosts: [a.example.com], endpoints: [{address: 1.1.1.1, lables: {}}]}`).issues, 'endpoints[0].lables')?.code, 'unknown-field');
});

test('unix socket endpoints need exactly one service port', (t) => {
  const result = se(`{hosts: [a.example.com], ports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: http2, protocol: HTTP}], resolution: STATIC, endpoints: [{address: "unix:///run/a.sock"}]}`);
  t.is(issueAt(result.issues, 'ports')?.message, 'exactly 1 service port required for unix endpoints');
});

test('DNS endpoints must be IPs or hostnames, and endpoint addresses are required', (t) => {
  const result = se(`{hosts: [a.example.com], ports: [{number: 80, name: http, protocol: HTTP}], resolution: DNS, endpoints: [{address: "not valid"}, {labels: {a: b}}]}`);
  t.is(issueAt(result.issues, 'endpoints[0].address')?.message, 'endpoint address is not a valid FQDN or an IP address');
  t.is(issueAt(result.issues, 'endpoints[1].address')?.code, 'missing-address');
});

test('addresses with several hosts and a TCP port warn with resolution DNS', (t) => {
  const result = se(`{hosts: [a.example.com, b.example.com], addresses: [10.1.1.1], ports: [{number: 80, name: http, protocol: HTTP}, {number: 9000, name: tcp, protocol: TCP}], resolution: DNS}`);
  t.is(issueAt(result.issues, 'hosts')?.severity, 'warning');
});
