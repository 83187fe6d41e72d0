// Tests of the WorkloadEntry schema and checks: Istio's documented VM workload passes, and the
// address, port and locality rules report the offending field's path.
import test from 'ava';
import { issueAt, lines, validateYaml } from '../testing';
import { workloadEntryKind } from './schema';

const we = (yaml: string) => validateYaml(workloadEntryKind, yaml);

test('the documented details-legacy VM workload is accepted', (t) => {
  const result = we(`
serviceAccount: details-legacy
address: 2.2.2.2
labels:
  app: details-legacy
  instance-id: vm1
`);
  t.deepEqual(result.issues, []);
  t.is(result.spec?.serviceAccount, 'details-legacy');
});

test('a workload with every field (ports, network, locality, weight) is accepted', (t) => {
  const result = we(`
address: vm1.example.internal
ports: {http: 8080, grpc-api: 9090}
labels: {app: reviews, version: v3}
network: vm-network
locality: us-east1/us-east1-b/rack7
weight: 5
serviceAccount: reviews
`);
  t.deepEqual(lines(result.issues), []);
});

test('an address is required unless a network is given', (t) => {
  t.is(issueAt(we(`{labels: {app: a}}`).issues, 'address')?.code, 'missing-address');
  t.deepEqual(we(`{network: remote-net, labels: {app: a}}`).issues, []);
});

test('an address must be an IP, a DNS name or a unix socket without ports', (t) => {
  t.is(issueAt(we(`{address: "not an address"}`).issues, 'address')?.message, 'endpoint address is not a valid FQDN or an IP address');
  const unix = we(`{address: "unix:///var/run/app.sock", ports: {http: 80}}`);
  t.is(issueAt(unix.issues, 'ports')?.message, 'unix endpoint must not include ports');
  t.is(issueAt(we(`{address: "unix://relative.sock"}`).issues, 'address')?.code, 'invalid-address');
});

test('port names must be DNS labels and numbers in range', (t) => {
  const result = we(`{address: 10.0.0.1, ports: {http: 0, "bad_name": 80}}`);
  t.is(issueAt(result.issues, 'ports.http')?.message, 'port must be in the range 1..65535');
  t.is(issueAt(result.issues, 'ports.bad_name')?.message, 'port name must be a DNS label');
});

test('locality must be region/zone/subzone', (t) => {
  t.is(issueAt(we(`{address: 10.0.0.1, locality: "a/b/c/d"}`).issues, 'locality')?.code, 'invalid-locality');
});

test('unknown fields and wrong types are reported at their path', (t) => {
  t.is(issueAt(we(`{address: 10.0.0.1, weigth: 3}`).issues, 'weigth')?.code, 'unknown-field');
  t.is(issueAt(we(`{address: 10.0.0.1, weight: -1}`).issues, 'weight')?.code, 'invalid-value');
  t.is(issueAt(we(`{address: 10.0.0.1, ports: {http: "80"}}`).issues, 'ports.http')?.code, 'invalid-type');
});
