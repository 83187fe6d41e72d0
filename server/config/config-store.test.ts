// Tests of the config store: whole-file rejection with the last good version serving, blame for
// cross-file problems, retry of held-back files, ordering and the change counter. Real kinds.
import test from 'ava';
import { ConfigStore } from './config-store';
import type { ConfigIssue } from '../../lib/config/issue';
import { parseConfigText } from './parse-file';
import type { ConfigResource } from './resource';
import type { Service } from '../registry/service';

const reviewsService: Service = {
  hostname: 'reviews.service.consul',
  namespace: 'default',
  aliases: ['reviews'],
  addresses: [],
  ports: [{ name: 'http', number: 9080, protocol: 'HTTP' }],
  resolution: 'STATIC',
  location: 'MESH_INTERNAL',
  endpoints: [],
  source: 'consul',
  exportTo: ['*'],
  subjectAltNames: [],
};

function virtualService(name: string, subsets: Array<[string, number]>, namespace = 'default'): string {
  const routes = subsets.map(([subset, weight]) => `    - destination: {host: reviews, subset: ${subset}}\n      weight: ${weight}\n`).join('');
  return `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n${routes}`;
}

function destinationRule(name: string, subsets: string[]): string {
  const list = subsets.map((s) => `  - name: ${s}\n    labels: {version: ${s}}\n`).join('');
  return `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: ${name}\nspec:\n  host: reviews\n  subsets:\n${list}`;
}

function newStore(): ConfigStore {
  return new ConfigStore({ externalServices: [reviewsService] });
}

function names(store: ConfigStore, kind: string): string[] {
  return (store.resources().get(kind) ?? []).map((r) => `${r.metadata.namespace}/${r.metadata.name}@${r.origin.file}`);
}

function errorsOf(store: ConfigStore, file: string): ConfigIssue[] {
  return store.issues().filter((issue) => issue.file === file && issue.severity === 'error');
}

function weightsOf(resource: ConfigResource | undefined): number[] {
  const spec = resource?.spec as { http: Array<{ route: Array<{ weight: number }> }> };
  return spec.http[0]!.route.map((r) => r.weight);
}

test('a bad file is rejected whole while others apply, and its last good version keeps serving', (t) => {
  const store = newStore();
  t.like(store.apply('/m/dr.yaml', destinationRule('reviews', ['v1', 'v2'])), { state: 'applied', serving: 'current', resources: 1 });
  t.like(store.apply('/m/vs.yaml', virtualService('reviews', [['v1', 90], ['v2', 10]])), { state: 'applied', resources: 1 });

  const bad = `${virtualService('reviews', [['v1', 50], ['v2', 50]])}---\n${virtualService('other', [['v1', 100]]).replace('hosts:', 'hostz:')}`;
  t.like(store.apply('/m/vs.yaml', bad), { state: 'rejected', serving: 'previous', resources: 1 });
  t.deepEqual(weightsOf(store.resources().get('VirtualService')?.[0]), [90, 10], 'the previous version still serves');
  const [error] = errorsOf(store, '/m/vs.yaml');
  t.like(error, { code: 'unknown-field', document: 2, path: 'spec.hostz', kind: 'VirtualService', name: 'other' });
  t.true(store.issues().some((i) => i.code === 'file-rejected' && i.file === '/m/vs.yaml'));

  t.like(store.apply('/m/other.yaml', virtualService('ratings-route', [['v2', 100]]).replace('hosts: [reviews]', 'hosts: [ratings]')), { state: 'applied' });
  t.deepEqual(names(store, 'VirtualService'), ['default/ratings-route@/m/other.yaml', 'default/reviews@/m/vs.yaml']);

  t.like(store.apply('/m/vs.yaml', virtualService('reviews', [['v1', 50], ['v2', 50]])), { state: 'applied', serving: 'current' });
  t.deepEqual(weightsOf(store.resources().get('VirtualService')?.find((r) => r.metadata.name === 'reviews')), [50, 50]);
  t.deepEqual(errorsOf(store, '/m/vs.yaml'), []);
  t.false(store.issues().some((i) => i.code === 'file-rejected'));
});

test('a file that was never valid serves nothing', (t) => {
  const store = newStore();
  t.like(store.apply('/m/bad.yaml', 'apiVersion: networking.istio.io/v1\nkind: VirtualService\n'), { state: 'rejected', serving: 'none', resources: 0 });
  t.is(store.resources().size, 0);
  t.like(errorsOf(store, '/m/bad.yaml')[0], { code: 'missing-field', path: 'metadata', document: 1 });
});

test('a duplicate introduced by a second file is blamed on that file; the first keeps serving', (t) => {
  const store = newStore();
  store.apply('/m/a.yaml', destinationRule('reviews', ['v1']));
  t.like(store.apply('/m/0-copy.yaml', destinationRule('reviews', ['v1'])), { state: 'rejected', serving: 'none' });
  const [duplicate] = errorsOf(store, '/m/0-copy.yaml');
  t.like(duplicate, { code: 'duplicate-resource', path: 'metadata.name', document: 1 });
  t.regex(duplicate!.message, /already defined in \/m\/a\.yaml, document 1/);
  t.deepEqual(names(store, 'DestinationRule'), ['default/reviews@/m/a.yaml']);
  t.deepEqual(errorsOf(store, '/m/a.yaml'), []);

  // Edited in the same batch, the file that already owned the name still wins.
  store.update([
    { file: '/m/a.yaml', parsed: parseConfigText('/m/a.yaml', destinationRule('reviews', ['v1', 'v2'])) },
    { file: '/m/0-copy.yaml', parsed: parseConfigText('/m/0-copy.yaml', destinationRule('reviews', ['v9'])) },
  ]);
  t.deepEqual(names(store, 'DestinationRule'), ['default/reviews@/m/a.yaml']);
  t.deepEqual(store.fileStatuses().map((s) => [s.file, s.state]), [['/m/0-copy.yaml', 'rejected'], ['/m/a.yaml', 'applied']]);

  // Once the first file lets go of the name, the held-back copy applies without being touched.
  store.remove('/m/a.yaml');
  t.deepEqual(names(store, 'DestinationRule'), ['default/reviews@/m/0-copy.yaml']);
});

test('a fresh load with a duplicate blames the later path', (t) => {
  const store = newStore();
  store.update([
    { file: '/m/b.yaml', parsed: parseConfigText('/m/b.yaml', destinationRule('reviews', ['v1'])) },
    { file: '/m/a.yaml', parsed: parseConfigText('/m/a.yaml', destinationRule('reviews', ['v1'])) },
  ]);
  t.deepEqual(names(store, 'DestinationRule'), ['default/reviews@/m/a.yaml']);
  t.is(errorsOf(store, '/m/b.yaml')[0]!.code, 'duplicate-resource');
});

test('a route to an undefined subset rejects its file until another file defines the subset', (t) => {
  const store = newStore();
  store.apply('/m/dr.yaml', destinationRule('reviews', ['v1']));
  t.like(store.apply('/m/vs.yaml', virtualService('reviews', [['v1', 50], ['v3', 50]])), { state: 'rejected', serving: 'none' });
  t.like(errorsOf(store, '/m/vs.yaml')[0], { code: 'undefined-subset', document: 1, path: 'spec.http[0].route[1].destination.subset', value: 'v3' });
  t.is(store.resources().get('VirtualService'), undefined);

  store.apply('/m/dr.yaml', destinationRule('reviews', ['v1', 'v3']));
  t.like(store.fileStatus('/m/vs.yaml'), { state: 'applied', serving: 'current' });
  t.deepEqual(names(store, 'VirtualService'), ['default/reviews@/m/vs.yaml']);
  t.deepEqual(store.issues().filter((i) => i.severity === 'error'), []);
});

test('a change that breaks an unchanged file applies; the error is reported on the unchanged file', (t) => {
  const store = newStore();
  store.apply('/m/dr.yaml', destinationRule('reviews', ['v1', 'v2']));
  store.apply('/m/vs.yaml', virtualService('reviews', [['v1', 50], ['v2', 50]]));
  t.like(store.apply('/m/dr.yaml', destinationRule('reviews', ['v1'])), { state: 'applied' });
  t.like(store.fileStatus('/m/vs.yaml'), { state: 'applied', serving: 'current' });
  t.like(errorsOf(store, '/m/vs.yaml')[0], { code: 'undefined-subset', value: 'v2' });
});

test('the change counter moves on real changes only', (t) => {
  const store = newStore();
  const start = store.version;
  store.apply('/m/dr.yaml', destinationRule('reviews', ['v1']));
  const afterApply = store.version;
  t.true(afterApply > start);
  store.apply('/m/dr.yaml', `# a comment only\n${destinationRule('reviews', ['v1'])}`);
  t.is(store.version, afterApply, 'same resources: no change');
  store.apply('/m/dr.yaml', destinationRule('reviews', ['v1', 'v2']));
  t.true(store.version > afterApply);
  const beforeRemove = store.version;
  store.remove('/m/dr.yaml');
  t.true(store.version > beforeRemove);
  t.is(store.resources().size, 0);
});

test('resources are grouped by kind and ordered by namespace then name', (t) => {
  const store = newStore();
  store.apply('/m/z.yaml', [
    virtualService('b', [['v1', 100]], 'shop').replace('hosts: [reviews]', 'hosts: [b.example]'),
    virtualService('a', [['v1', 100]], 'shop').replace('hosts: [reviews]', 'hosts: [a.example]'),
    virtualService('z', [['v1', 100]], 'admin').replace('hosts: [reviews]', 'hosts: [z.example]'),
    destinationRule('reviews', ['v1']),
  ].join('---\n'));
  t.deepEqual([...store.resources().keys()], ['DestinationRule', 'VirtualService']);
  t.deepEqual(names(store, 'VirtualService'), ['admin/z@/m/z.yaml', 'shop/a@/m/z.yaml', 'shop/b@/m/z.yaml']);
});

test('the file registry and the external services both count as known hosts', (t) => {
  const store = new ConfigStore();
  store.apply('/m/vs.yaml', virtualService('reviews', [['v1', 100]]));
  t.true(store.issues().some((i) => i.code === 'unknown-host' && i.severity === 'warning'));
  t.like(store.fileStatus('/m/vs.yaml'), { state: 'rejected' }, 'the subset is undefined: an error');
  store.setExternalServices([reviewsService]);
  t.false(store.issues().some((i) => i.code === 'unknown-host'));
});
