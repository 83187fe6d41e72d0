// Tests of the Sidecar schema and checks: Istio's documented examples pass, and listener, host,
// bind and egress-proxy rules report the offending field's path.
import test from 'ava';
import { issueAt, lines, validateYaml } from '../testing';
import { sidecarKind } from './schema';

const sc = (yaml: string) => validateYaml(sidecarKind, yaml);

test('the documented namespace-wide default Sidecar is accepted', (t) => {
  const result = sc(`
egress:
- hosts:
  - "prod-us1/*"
  - "prod-apis/*"
  - "istio-system/*"
`);
  t.deepEqual(result.issues, []);
});

test('the documented ratings and productpage Sidecars (unix socket, capture NONE, catch-all) are accepted', (t) => {
  const ratings = sc(`
workloadSelector:
  labels:
    app: ratings
ingress:
- port:
    number: 9080
    protocol: HTTP
    name: somename
  defaultEndpoint: unix:///var/run/someuds.sock
egress:
- port:
    number: 9080
    protocol: HTTP
    name: egresshttp
  hosts:
  - "prod-us1/*"
- hosts:
  - "istio-system/*"
`);
  t.deepEqual(ratings.issues, []);
  const productpage = sc(`
workloadSelector:
  labels:
    app: productpage
ingress:
- port:
    number: 9080
    protocol: HTTP
    name: somename
  defaultEndpoint: 127.0.0.1:8080
  captureMode: NONE
egress:
- bind: 127.0.0.1
  captureMode: NONE
  port:
    number: 3306
    protocol: MYSQL
    name: egressmysql
  hosts:
  - "*/mysql.foo.com"
- hosts:
  - "istio-system/*"
  - "./*"
  - "bar/*"
`);
  t.deepEqual(productpage.issues, []);
});

test('a TLS ingress listener, connection pools and an egress proxy are accepted', (t) => {
  const result = sc(`
workloadSelector: {labels: {app: httpbin}}
ingress:
- port: {number: 8443, protocol: HTTPS, name: external}
  defaultEndpoint: 0.0.0.0:9080
  tls:
    mode: SIMPLE
    privateKey: "/etc/istio/tls-certs/tls.key"
    serverCertificate: "/etc/istio/tls-certs/tls.crt"
  connectionPool: {http: {http1MaxPendingRequests: 1024, idleTimeout: 30s}}
inboundConnectionPool: {tcp: {maxConnections: 100}}
outboundTrafficPolicy:
  mode: ALLOW_ANY
  egressProxy:
    host: foo.bar.svc.cluster.local
    subset: v1
    port:
      number: 80
`);
  t.deepEqual(lines(result.issues), []);
});

test('an empty Sidecar is an error', (t) => {
  t.is(issueAt(sc(`{workloadSelector: {labels: {app: a}}}`).issues, '')?.message, 'sidecar: empty configuration provided');
});

test('the catch-all egress listener must be last and unique', (t) => {
  const result = sc(`{egress: [{hosts: ["./*"]}, {port: {number: 80, protocol: HTTP, name: http}, hosts: ["./*"]}]}`);
  t.is(issueAt(result.issues, 'egress[0]')?.message, 'the egress listener with empty port should be the last listener in the list');
  const twice = sc(`{egress: [{hosts: ["./*"]}, {hosts: ["*/*"]}]}`);
  t.is(issueAt(twice.issues, 'egress[1]')?.message, 'egress can have only one listener with empty port');
});

test('egress hosts must be namespace/dnsName with FQDNs', (t) => {
  const result = sc(`{egress: [{hosts: [reviews.default.svc.cluster.local, "default/reviews", "bad_ns/*"]}]}`);
  t.is(issueAt(result.issues, 'egress[0].hosts[0]')?.message, 'host must be of the form namespace/dnsName');
  t.is(issueAt(result.issues, 'egress[0].hosts[1]')?.message, 'short names (non FQDN) are not allowed');
  t.regex(issueAt(result.issues, 'egress[0].hosts[2]')?.message ?? '', /invalid namespace/);
});

test('duplicate egress hosts are a warning', (t) => {
  const result = sc(`{egress: [{hosts: ["ns1/*", "ns1/a.example.com"]}]}`);
  t.deepEqual(lines(result.issues), []);
  t.is(issueAt(result.issues, 'egress[0].hosts[1]')?.severity, 'warning');
});

test('listener ports must be unique and in range', (t) => {
  const result = sc(`
ingress:
- {port: {number: 9080, protocol: HTTP, name: a}, defaultEndpoint: "127.0.0.1:8080"}
- {port: {number: 9080, protocol: HTTP, name: b}, defaultEndpoint: "127.0.0.1:8081"}
- {port: {number: 0, protocol: HTTP, name: c}}
`);
  t.is(issueAt(result.issues, 'ingress[1].port.number')?.message, 'ports on IP bound listeners must be unique');
  t.is(issueAt(result.issues, 'ingress[2].port.number')?.message, 'port must be in the range 1..65535');
});

test('defaultEndpoint must be loopback/any address with a port, or a unix socket', (t) => {
  const result = sc(`{ingress: [{port: {number: 9080, protocol: HTTP, name: a}, defaultEndpoint: "10.0.0.1:8080"}, {port: {number: 9081, protocol: HTTP, name: b}, defaultEndpoint: "127.0.0.1:http"}]}`);
  t.regex(issueAt(result.issues, 'ingress[0].defaultEndpoint')?.message ?? '', /must be of form 127\.0\.0\.1/);
  t.regex(issueAt(result.issues, 'ingress[1].defaultEndpoint')?.message ?? '', /port must be a number/);
});

test('an egress port 0 needs a unix socket bind', (t) => {
  const result = sc(`{egress: [{port: {number: 0, protocol: HTTP, name: uds}, bind: 127.0.0.1, hosts: ["./*"]}]}`);
  t.is(issueAt(result.issues, 'egress[0].bind')?.message, 'ports with 0 value must have a unix domain socket bind address');
});

test('ingress TLS is limited to HTTPS/TLS ports and file certificates', (t) => {
  const result = sc(`{ingress: [{port: {number: 9080, protocol: HTTP, name: a}, tls: {mode: ISTIO_MUTUAL}}]}`);
  t.is(issueAt(result.issues, 'ingress[0].tls.mode')?.message, 'cannot set mode to ISTIO_MUTUAL in sidecar ingress tls');
  t.is(issueAt(result.issues, 'ingress[0].tls')?.message, 'listener cannot have TLS settings for non HTTPS/TLS ports');
});

test('egressProxy only with ALLOW_ANY', (t) => {
  const result = sc(`{outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: proxy.example.com, port: {number: 3128}}}}`);
  t.is(issueAt(result.issues, 'outboundTrafficPolicy.egressProxy')?.code, 'invalid-egress-proxy');
});

test('unknown fields and wrong enum values are reported at their path', (t) => {
  t.is(issueAt(sc(`{egress: [{hosts: ["./*"], port: {number: 80, protocl: HTTP}}]}`).issues, 'egress[0].port.protocl')?.code, 'unknown-field');
  t.truthy(issueAt(sc(`{egress: [{hosts: ["./*"], captureMode: TPROXY}]}`).issues, 'egress[0].captureMode'));
  t.is(issueAt(sc(`{egress: [{hosts: "./*"}]}`).issues, 'egress[0].hosts')?.code, 'invalid-type');
});

test('unix socket egress listeners capture only with DEFAULT or NONE and need unique binds', (t) => {
  const result = sc(`
egress:
- {port: {number: 0, protocol: HTTP, name: a}, bind: "unix:///run/a.sock", captureMode: IPTABLES, hosts: ["./*"]}
- {port: {number: 0, protocol: HTTP, name: b}, bind: "unix:///run/a.sock", hosts: ["./*"]}
`);
  t.is(issueAt(result.issues, 'egress[0].captureMode')?.message, 'captureMode must be DEFAULT or NONE for unix domain socket listeners');
  t.is(issueAt(result.issues, 'egress[1].bind')?.message, 'unix domain socket values for listeners must be unique');
});

test('egress listener binds must be IPs and egress hosts non-empty', (t) => {
  const result = sc(`{egress: [{port: {number: 80, protocol: HTTP, name: http}, bind: localhost, hosts: []}]}`);
  t.is(issueAt(result.issues, 'egress[0].bind')?.message, 'bind must be an IP address');
  t.is(issueAt(result.issues, 'egress[0].hosts')?.message, 'egress listener must contain at least one host');
});
