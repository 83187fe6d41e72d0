// Tests of the PeerAuthentication schema and checks: Istio's documented namespace-wide and
// workload-scoped examples pass; port-level mTLS without a selector and bad ports are reported.
import test from 'ava';
import { issueAt, validateYaml } from '../testing';
import { peerAuthenticationKind } from './schema';

const pa = (yaml: string) => validateYaml(peerAuthenticationKind, yaml);

test('the documented namespace-wide STRICT policy is accepted', (t) => {
  const result = pa(`
mtls:
  mode: STRICT
`);
  t.deepEqual(result.issues, []);
  t.is(result.spec?.mtls?.mode, 'STRICT');
});

test('the documented workload policy with port-level mTLS is accepted', (t) => {
  const result = pa(`
selector:
  matchLabels:
    app: finance
mtls:
  mode: STRICT
portLevelMtls:
  8080:
    mode: DISABLE
`);
  t.deepEqual(result.issues, []);
  t.is(result.spec?.portLevelMtls?.['8080']?.mode, 'DISABLE');
});

test('portLevelMtls requires a workload selector', (t) => {
  const result = pa(`{mtls: {mode: STRICT}, portLevelMtls: {8080: {mode: DISABLE}}}`);
  const issue = issueAt(result.issues, 'portLevelMtls');
  t.regex(issue?.message ?? '', /requires a workload selector/);
  t.is(issue?.code, 'selector-required');
  const emptyLabels = pa(`{selector: {matchLabels: {}}, portLevelMtls: {8080: {mode: DISABLE}}}`);
  t.is(issueAt(emptyLabels.issues, 'portLevelMtls')?.code, 'selector-required');
});

test('portLevelMtls, when present, is not empty and uses ports 1..65535', (t) => {
  const empty = pa(`{selector: {matchLabels: {app: a}}, portLevelMtls: {}}`);
  t.is(issueAt(empty.issues, 'portLevelMtls')?.message, 'portLevelMtls, if defined, must have at least one element');
  const zero = pa(`{selector: {matchLabels: {app: a}}, portLevelMtls: {0: {mode: DISABLE}}}`);
  t.is(issueAt(zero.issues, 'portLevelMtls["0"]')?.message, 'port must be in the range 1..65535');
  const named = pa(`{selector: {matchLabels: {app: a}}, portLevelMtls: {http: {mode: DISABLE}}}`);
  t.truthy(issueAt(named.issues, 'portLevelMtls.http'));
});

test('unknown modes, unknown fields and wrong types are reported at their path', (t) => {
  t.truthy(issueAt(pa(`{mtls: {mode: MUTUAL}}`).issues, 'mtls.mode'));
  t.is(issueAt(pa(`{mtls: {mode: STRICT}, mTLS: {}}`).issues, 'mTLS')?.code, 'unknown-field');
  t.is(issueAt(pa(`{selector: {matchLabels: [app]}}`).issues, 'selector.matchLabels')?.code, 'invalid-type');
});
