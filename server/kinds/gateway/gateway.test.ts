// Tests of the Gateway schema and checks: Istio's documented my-gateway example passes, and host,
// port, bind and TLS rules report the offending field's path.
import test from 'ava';
import { issueAt, lines, validateYaml } from '../testing';
import { gatewayKind } from './schema';

const gw = (yaml: string) => validateYaml(gatewayKind, yaml);

test('the documented my-gateway example is accepted', (t) => {
  const result = gw(`
selector:
  app: my-gateway-controller
servers:
- port:
    number: 80
    name: http
    protocol: HTTP
  hosts:
  - uk.bookinfo.com
  - eu.bookinfo.com
  tls:
    httpsRedirect: true # sends 301 redirect for http requests
- port:
    number: 443
    name: https-443
    protocol: HTTPS
  hosts:
  - uk.bookinfo.com
  - eu.bookinfo.com
  tls:
    mode: SIMPLE # enables HTTPS on this port
    serverCertificate: /etc/certs/servercert.pem
    privateKey: /etc/certs/privatekey.pem
- port:
    number: 9443
    name: https-9443
    protocol: HTTPS
  hosts:
  - "bookinfo-namespace/*.bookinfo.com"
  tls:
    mode: SIMPLE # enables HTTPS on this port
    credentialName: bookinfo-secret # fetches certs from Kubernetes secret
- port:
    number: 9080
    name: http-wildcard
    protocol: HTTP
  hosts:
  - "*"
- port:
    number: 2379 # to expose internal service via external port 2379
    name: mongo
    protocol: MONGO
  hosts:
  - "*"
- port: {number: 15443, name: tls-mtls, protocol: TLS}
  hosts: ["*.global"]
  tls:
    mode: MUTUAL
    serverCertificate: /etc/certs/server.pem
    privateKey: /etc/certs/key.pem
    caCertificates: /etc/certs/ca.pem
    subjectAltNames: [spiffe://cluster.local/ns/a/sa/b]
    minProtocolVersion: TLSV1_2
    maxProtocolVersion: TLSV1_3
    cipherSuites: [ECDHE-ECDSA-AES256-GCM-SHA384]
- port: {number: 15444, name: tls-passthrough, protocol: TLS}
  hosts: ["./*.internal.example.com"]
  bind: 0.0.0.0
  tls: {mode: PASSTHROUGH}
`);
  t.deepEqual(lines(result.issues), []);
  t.deepEqual(lines(result.issues, 'warning'), []);
});

test('a gateway needs servers, and each server hosts', (t) => {
  t.is(issueAt(gw(`{selector: {app: gw}}`).issues, 'servers')?.message, 'gateway must have at least one server');
  const noHosts = gw(`{servers: [{port: {number: 80, name: http, protocol: HTTP}}]}`);
  t.is(issueAt(noHosts.issues, 'servers[0].hosts')?.message, 'server must contain at least one host');
});

test('port names must be unique across servers', (t) => {
  const result = gw(`
servers:
- {port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}
- {port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}
`);
  t.regex(issueAt(result.issues, 'servers[1].port.name')?.message ?? '', /port names in servers must be unique/);
});

test('unknown protocols, missing names and out-of-range ports are reported on the port', (t) => {
  const result = gw(`{servers: [{port: {number: 70000, protocol: QUIC}, hosts: ["*"]}]}`);
  t.regex(issueAt(result.issues, 'servers[0].port.protocol')?.message ?? '', /invalid protocol/);
  t.is(issueAt(result.issues, 'servers[0].port.number')?.message, 'port must be in the range 1..65535');
  t.is(issueAt(result.issues, 'servers[0].port.name')?.message, 'port name must be set');
});

test('HTTPS servers need TLS settings and SIMPLE TLS needs certificate and key', (t) => {
  const noTls = gw(`{servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com]}]}`);
  t.is(issueAt(noTls.issues, 'servers[0].tls')?.message, 'server must have TLS settings for HTTPS/TLS protocols');
  const simple = gw(`{servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com], tls: {mode: SIMPLE}}]}`);
  t.is(issueAt(simple.issues, 'servers[0].tls.serverCertificate')?.message, 'SIMPLE TLS requires a server certificate');
  t.is(issueAt(simple.issues, 'servers[0].tls.privateKey')?.message, 'SIMPLE TLS requires a private key');
});

test('ISTIO_MUTUAL cannot carry certificates; plain TCP cannot carry TLS', (t) => {
  const mutual = gw(`{servers: [{port: {number: 443, name: tls, protocol: TLS}, hosts: ["*"], tls: {mode: ISTIO_MUTUAL, caCertificates: /ca.pem}}]}`);
  t.is(issueAt(mutual.issues, 'servers[0].tls.caCertificates')?.code, 'invalid-tls');
  const tcp = gw(`{servers: [{port: {number: 31400, name: tcp, protocol: TCP}, hosts: ["*"], tls: {mode: SIMPLE, credentialName: c}}]}`);
  t.is(issueAt(tcp.issues, 'servers[0].tls')?.message, 'server cannot have TLS settings for non HTTPS/TLS ports');
});

test('httpsRedirect on a non-HTTP server is a warning', (t) => {
  const result = gw(`{servers: [{port: {number: 443, name: tls, protocol: TLS}, hosts: ["*"], tls: {mode: PASSTHROUGH, httpsRedirect: true}}]}`);
  t.deepEqual(lines(result.issues), []);
  t.is(issueAt(result.issues, 'servers[0].tls.httpsRedirect')?.severity, 'warning');
});

test('hosts must be FQDNs, optionally namespace-qualified', (t) => {
  const result = gw(`{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [reviews, "bad_ns/a.example.com"]}]}`);
  t.is(issueAt(result.issues, 'servers[0].hosts[0]')?.message, 'short names (non FQDN) are not allowed');
  t.regex(issueAt(result.issues, 'servers[0].hosts[1]')?.message ?? '', /invalid namespace/);
});

test('a unix socket bind requires port number 0', (t) => {
  const result = gw(`{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"], bind: "unix:///var/run/gw.sock"}]}`);
  t.is(issueAt(result.issues, 'servers[0].port.number')?.message, 'port number must be 0 for a unix domain socket bind');
  const ok = gw(`{servers: [{port: {number: 0, name: http, protocol: HTTP}, hosts: ["*"], bind: "unix:///var/run/gw.sock"}]}`);
  t.deepEqual(ok.issues, []);
});

test('unknown fields and wrong types in servers are reported at their path', (t) => {
  const unknown = gw(`{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"], tls: {redirect: true}}]}`);
  t.is(issueAt(unknown.issues, 'servers[0].tls.redirect')?.code, 'unknown-field');
  const wrong = gw(`{servers: [{port: {number: "80", name: http, protocol: HTTP}, hosts: ["*"]}]}`);
  t.is(issueAt(wrong.issues, 'servers[0].port.number')?.code, 'invalid-type');
});

test('TLS protocol versions must be ordered and credential sources exclusive', (t) => {
  const result = gw(`{servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*"], tls: {mode: SIMPLE, credentialName: a, credentialNames: [b], minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_2}}]}`);
  t.regex(issueAt(result.issues, 'servers[0].tls')?.message ?? '', /only one of credentialName, credentialNames or tlsCertificates/);
  t.is(issueAt(result.issues, 'servers[0].tls.minProtocolVersion')?.message, 'minProtocolVersion is higher than maxProtocolVersion TLSV1_2');
});

test('MUTUAL TLS needs a client CA bundle; PASSTHROUGH with certificates warns', (t) => {
  const mutual = gw(`{servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*"], tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}}]}`);
  t.is(issueAt(mutual.issues, 'servers[0].tls.caCertificates')?.message, 'MUTUAL TLS requires a client CA bundle');
  const passthrough = gw(`{servers: [{port: {number: 443, name: tls, protocol: TLS}, hosts: ["*"], tls: {mode: PASSTHROUGH, serverCertificate: /c.pem}}]}`);
  t.is(issueAt(passthrough.issues, 'servers[0].tls')?.severity, 'warning');
});

test('a bind must be an IP address or a unix socket', (t) => {
  const result = gw(`{servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"], bind: localhost}]}`);
  t.is(issueAt(result.issues, 'servers[0].bind')?.message, 'bind must be an IP address or unix://path');
});
