// Tests of one-file parsing: YAML streams, the resource envelope, spec errors as ConfigIssues,
// and the refusal of oversized and binary files. Uses its own small kind so it tests only parsing.
import test from 'ava';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { formatIssue, type ConfigIssue } from '../../lib/config/issue';
import type { KindDefinition } from './kind';
import { hasErrors, parseConfigText, readConfigFile } from './parse-file';

const routeSpec = z.strictObject({
  hosts: z.array(z.string()),
  http: z.array(z.strictObject({
    route: z.array(z.strictObject({
      destination: z.strictObject({ host: z.string(), subset: z.string().optional() }),
      weight: z.number().int().optional(),
    })),
  })).optional(),
});
type RouteSpec = z.infer<typeof routeSpec>;

const routeKind: KindDefinition<RouteSpec> = {
  group: 'networking.istio.io',
  kind: 'VirtualService',
  versions: ['v1alpha3', 'v1beta1', 'v1'],
  spec: routeSpec,
  check(spec, report) {
    spec.http?.forEach((http, i) => {
      const sum = http.route.reduce((total, route) => total + (route.weight ?? 0), 0);
      if (http.route.length > 1 && sum !== 100) report(`http[${i}]`, `weights must sum to 100, got ${sum}`, sum, 'weights-sum');
    });
  },
};
const kinds = [routeKind as KindDefinition];

function only(issues: ConfigIssue[], code: string): ConfigIssue {
  const found = issues.filter((issue) => issue.code === code);
  if (found.length !== 1) throw new Error(`expected one ${code} issue, got ${JSON.stringify(issues, null, 1)}`);
  return found[0]!;
}

const good = (name: string, extra = '') => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ${name}
${extra}spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
`;

test('documents are numbered from 1 counting empty ones, which are skipped', (t) => {
  const text = `---\n# only a comment\n---\n${good('a')}---\n---\n${good('b', '  namespace: shop\n')}`;
  const parsed = parseConfigText('/etc/mesh/r.yaml', text, { kinds });
  t.deepEqual(parsed.issues, []);
  t.deepEqual(parsed.resources.map((r) => [r.metadata.name, r.metadata.namespace, r.origin.document]), [['a', 'default', 2], ['b', 'shop', 4]]);
  t.is(parsed.resources[0]!.kind, 'VirtualService');
  t.deepEqual(parsed.resources[0]!.spec, { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews', subset: 'v1' } }] }] });
});

test('an unknown spec field is named with its full path and value', (t) => {
  const text = good('a').replace('subset: v1}', 'subset: v1, subsett: v2}');
  const parsed = parseConfigText('/etc/mesh/r.yaml', text, { kinds });
  const issue = only(parsed.issues, 'unknown-field');
  t.is(issue.path, 'spec.http[0].route[0].destination.subsett');
  t.is(issue.value, 'v2');
  t.is(issue.document, 1);
  t.deepEqual(parsed.resources, []);
  t.is(formatIssue(issue), '/etc/mesh/r.yaml, document 1 (VirtualService default/a), spec.http[0].route[0].destination.subsett: unknown field "subsett" (got "v2")');
});

test('a wrong type says what was expected and what was found', (t) => {
  const text = good('a').replace('subset: v1}', 'subset: v1}\n      weight: "ten"');
  const issue = only(parseConfigText('f.yaml', text, { kinds }).issues, 'invalid-type');
  t.is(issue.path, 'spec.http[0].route[0].weight');
  t.is(issue.message, 'expected number, found string');
  t.is(issue.value, 'ten');
  const fraction = only(parseConfigText('f.yaml', good('a').replace('subset: v1}', 'subset: v1}\n      weight: 1.5'), { kinds }).issues, 'invalid-type');
  t.is(fraction.message, 'expected integer, found number');
});

test('a missing required spec field is reported at its path', (t) => {
  const issue = only(parseConfigText('f.yaml', good('a').replace('{host: reviews, subset: v1}', '{subset: v1}'), { kinds }).issues, 'missing-field');
  t.is(issue.path, 'spec.http[0].route[0].destination.host');
});

test('the kind check runs after the schema and its paths are under spec', (t) => {
  const text = good('a').replace('subset: v1}', 'subset: v1}\n      weight: 60\n    - destination: {host: reviews, subset: v2}\n      weight: 30');
  const issue = only(parseConfigText('r.yaml', text, { kinds }).issues, 'weights-sum');
  t.is(issue.path, 'spec.http[0]');
  t.is(issue.value, 90);
  t.is(issue.severity, 'error');
});

test('unknown top-level fields are errors; status is tolerated', (t) => {
  const parsed = parseConfigText('f.yaml', `${good('a')}status: {}\nspecs: {}\n`, { kinds });
  const issue = only(parsed.issues, 'unknown-field');
  t.is(issue.path, 'specs');
  t.deepEqual(parsed.resources, []);
});

test('an unknown kind or apiVersion names both and lists what is accepted', (t) => {
  const badVersion = only(parseConfigText('f.yaml', good('a').replace('networking.istio.io/v1', 'networking.istio.io/v2'), { kinds }).issues, 'unknown-api-version');
  t.is(badVersion.value, 'networking.istio.io/v2');
  t.is(badVersion.message, 'kind VirtualService is not served at this apiVersion; accepted: networking.istio.io/v1alpha3, networking.istio.io/v1beta1, networking.istio.io/v1');
  const badKind = only(parseConfigText('f.yaml', good('a').replace('kind: VirtualService', 'kind: VirtualServce'), { kinds }).issues, 'unknown-kind');
  t.is(badKind.value, 'VirtualServce');
  t.is(badKind.message, 'unknown kind for apiVersion "networking.istio.io/v1" (did you mean VirtualService?); accepted: networking.istio.io/{v1alpha3,v1beta1,v1}: VirtualService');
  t.is(formatIssue(badKind), 'f.yaml, document 1 (VirtualServce default/a), kind: unknown kind for apiVersion "networking.istio.io/v1" (did you mean VirtualService?); accepted: networking.istio.io/{v1alpha3,v1beta1,v1}: VirtualService (got "VirtualServce")');
});

test('metadata: name rules, namespace rules, label values must be strings', (t) => {
  const parsed = parseConfigText('f.yaml', good('Reviews_1', '  namespace: Shop\n  labels: {version: 1}\n  owner: me\n'), { kinds });
  t.deepEqual(parsed.issues.map((i) => [i.code, i.path]).sort(), [
    ['invalid-name', 'metadata.name'],
    ['invalid-name', 'metadata.namespace'],
    ['invalid-type', 'metadata.labels.version'],
    ['unknown-field', 'metadata.owner'],
  ]);
  const missing = only(parseConfigText('f.yaml', 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {}\nspec: {hosts: [a]}\n', { kinds }).issues, 'missing-field');
  t.is(missing.path, 'metadata.name');
});

test('a YAML syntax error gives line and column, and other documents are still checked', (t) => {
  const text = `${good('a')}---\nkind: [oops\n---\n${good('c').replace('hosts:', 'hostz:')}`;
  const parsed = parseConfigText('f.yaml', text, { kinds });
  const syntax = parsed.issues.find((i) => i.code === 'yaml-syntax');
  t.truthy(syntax);
  t.is(syntax!.document, 2);
  t.regex(syntax!.message, /at line \d+, column \d+/);
  t.true(parsed.issues.some((i) => i.document === 3 && i.path === 'spec.hostz'));
  t.true(hasErrors(parsed.issues));
});

test('duplicate keys in a mapping are a syntax error', (t) => {
  const parsed = parseConfigText('f.yaml', good('a').replace('  name: a\n', '  name: a\n  name: b\n'), { kinds });
  t.regex(only(parsed.issues, 'yaml-syntax').message, /line 5, column 3: Map keys must be unique/);
});

test('a document that is not a mapping is rejected', (t) => {
  const issue = only(parseConfigText('f.yaml', '- a\n- b\n', { kinds }).issues, 'not-a-mapping');
  t.regex(issue.message, /found a list/);
});

test('a Kubernetes List is read item by item with item paths', (t) => {
  const item = (name: string) => `- apiVersion: networking.istio.io/v1beta1\n  kind: VirtualService\n  metadata: {name: ${name}}\n  spec: {hosts: [x]}\n`;
  const parsed = parseConfigText('f.yaml', `apiVersion: v1\nkind: List\nitems:\n${item('one')}${item('two')}- {apiVersion: networking.istio.io/v1, kind: VirtualService, metadata: {name: three}, spec: {hosts: 1}}\n`, { kinds });
  t.deepEqual(parsed.resources.map((r) => r.metadata.name), ['one', 'two']);
  t.is(only(parsed.issues, 'invalid-type').path, 'items[2].spec.hosts');
});

test('a 50 MB file is refused without being read, naming its size and the limit', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'parse-file-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'huge.yaml');
  await writeFile(file, '');
  await truncate(file, 50 * 1024 * 1024);
  const parsed = await readConfigFile(file, { kinds });
  const issue = only(parsed.issues, 'file-too-large');
  t.is(issue.file, file);
  t.regex(issue.message, /52428800 bytes, over the 8 MiB limit/);
  const small = parseConfigText('f.yaml', good('a'), { kinds, maxBytes: 100 });
  t.regex(only(small.issues, 'file-too-large').message, /over the 100-byte limit/);
});

test('binary content is refused: NUL bytes and invalid UTF-8', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'parse-file-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'app.yaml');
  await writeFile(file, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x00, 0x00]));
  t.regex(only((await readConfigFile(file, { kinds })).issues, 'binary-file').message, /NUL byte at offset 6/);
  const latin1 = Buffer.concat([Buffer.from('apiVersion: v1 # caf'), Buffer.from([0xe9]), Buffer.from('\n')]);
  t.regex(only(parseConfigText('f.yaml', latin1, { kinds }).issues, 'binary-file').message, /invalid UTF-8/);
  const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(good('a'))]);
  t.deepEqual(parseConfigText('f.yaml', withBom, { kinds }).issues, []);
});

test('a check warning code (as the kinds list them) lets the resource through', (t) => {
  const warningKind: KindDefinition<RouteSpec> = {
    ...routeKind,
    check(_spec, report) {
      report('hosts[0]', 'this field is deprecated', 'reviews', 'deprecated-field');
    },
  };
  const parsed = parseConfigText('f.yaml', good('a'), { kinds: [warningKind as KindDefinition] });
  t.is(parsed.resources.length, 1);
  t.is(only(parsed.issues, 'deprecated-field').severity, 'warning');
  t.is(parsed.issues[0]!.path, 'spec.hosts[0]');
});
