// Tests of `meshctl analyze`: exit codes, human and JSON output, files and directories, and that
// it applies the server's rules (whole-file rejection, cross-file analysis, file registry).
import test, { type ExecutionContext } from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzeCommand } from './analyze';
import type { ConfigIssue } from '../lib/config/issue';

const serviceEntry = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts: [reviews.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http, protocol: HTTP}
  workloadSelector:
    labels: {app: reviews}
`;
const workloadEntry = `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-vm1
  annotations: {mesh.io/node: vm1}
spec:
  address: 10.0.0.1
  labels: {app: reviews, version: v1}
`;
const destinationRule = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews.internal
  subsets:
  - {name: v1, labels: {version: v1}}
`;
const virtualService = (subset: string, host = 'reviews.internal') => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews.internal]
  http:
  - route:
    - destination: {host: ${host}, subset: ${subset}}
`;

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meshctl-analyze-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function run(paths: string[], output: 'human' | 'json' = 'human') {
  let stdout = '';
  let stderr = '';
  const code = await analyzeCommand(paths, { output }, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

test('a clean directory exits 0 with a summary', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'services'));
  await writeFile(join(dir, 'services', 'reviews.yaml'), `${serviceEntry}---\n${workloadEntry}`);
  await writeFile(join(dir, 'routing.yaml'), `${destinationRule}---\n${virtualService('v1')}`);
  const result = await run([dir]);
  t.is(result.code, 0, result.stdout);
  t.is(result.stdout, 'No validation issues found when analyzing 2 files (4 valid resources).\n');
  t.is(result.stderr, '');
});

test('errors exit 1 and each line names file, document, resource, path and value', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'services.yaml'), `${serviceEntry}---\n${workloadEntry}`);
  await writeFile(join(dir, 'routing.yaml'), `${destinationRule}---\n${virtualService('v2')}`);
  await writeFile(join(dir, 'typo.yaml'), destinationRule.replace('name: reviews', 'name: other').replace('host:', 'hots:'));
  const result = await run([dir]);
  t.is(result.code, 1);
  const lines = result.stdout.trimEnd().split('\n');
  t.true(lines.includes(`Error [undefined-subset] ${dir}/routing.yaml, document 2 (VirtualService default/reviews), spec.http[0].route[0].destination.subset: Referenced host+subset in destinationrule not found: "reviews.internal+v2"; DestinationRule default/reviews defines only "v1" (IST0101 ReferencedResourceNotFound) (got "v2")`), result.stdout);
  t.true(lines.includes(`Error [unknown-field] ${dir}/typo.yaml, document 1 (DestinationRule default/other), spec.hots: unknown field "hots" (got "reviews.internal")`), result.stdout);
  t.is(lines[lines.length - 1], '3 errors, 0 warnings in 3 files (2 valid resources); 2 files would be rejected.');
});

test('JSON output is an array of issues with file, document, path and value', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'routing.yaml');
  await writeFile(file, `${serviceEntry}---\n${destinationRule}---\n${virtualService('v9')}`);
  const result = await run([file], 'json');
  t.is(result.code, 1);
  const issues = JSON.parse(result.stdout) as ConfigIssue[];
  t.deepEqual(issues.map((i) => ({ severity: i.severity, code: i.code, file: i.file, document: i.document, path: i.path, value: i.value })), [
    { severity: 'error', code: 'undefined-subset', file, document: 3, path: 'spec.http[0].route[0].destination.subset', value: 'v9' },
  ]);
});

test('warnings alone exit 0', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'routing.yaml'), virtualService('v1', 'nowhere.internal').replace(', subset: v1', ''));
  const result = await run([dir], 'json');
  t.is(result.code, 0);
  const issues = JSON.parse(result.stdout) as ConfigIssue[];
  t.deepEqual(issues.map((i) => [i.severity, i.code, i.value]), [['warning', 'unknown-host', 'nowhere.internal']]);
});

test('a missing path or no path at all is a usage error (exit 2)', async (t) => {
  const dir = await tempDir(t);
  const missing = await run([dir, join(dir, 'nope.yaml')]);
  t.is(missing.code, 2);
  t.is(missing.stdout, '');
  t.is(missing.stderr, `meshctl analyze: no such file or directory: ${join(dir, 'nope.yaml')}\n`);
  const none = await run([]);
  t.is(none.code, 2);
  t.regex(none.stderr, /give at least one file or directory/);
});

test('a file named twice (directly and through its directory) is read once', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'rules.yaml'), destinationRule);
  const result = await run([dir, join(dir, 'rules.yaml')], 'json');
  t.is(result.code, 0, result.stdout);
  t.deepEqual(JSON.parse(result.stdout), [], 'no duplicate-resource error');
});
