// Tests of the config directory source on a real temp directory: recursive load, what is ignored,
// watch reactions (create, modify, delete, rename, atomic save, new subdirectory), missing dir.
import test, { type ExecutionContext } from 'ava';
import { mkdir, mkdtemp, rename, rm, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigDirectory, isConfigFileName, type ConfigSnapshot } from './config-dir';

const WATCH_DEADLINE_MS = 1000;

function destinationRule(name: string, subsets: string[], namespace = 'default'): string {
  const list = subsets.map((s) => `  - name: ${s}\n    labels: {version: ${s}}\n`).join('');
  return `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\nspec:\n  host: ${name}.internal\n  subsets:\n${list}`;
}

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'config-dir-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function open(t: ExecutionContext, dir: string, options: Partial<ConstructorParameters<typeof ConfigDirectory>[0]> = {}): ConfigDirectory {
  // A long safety rescan, so that what these tests see comes from the watcher.
  const source = new ConfigDirectory({ dir, pollIntervalMs: 60_000, ...options });
  t.teardown(() => source.stop());
  return source;
}

function rules(snapshot: ConfigSnapshot): string[] {
  return (snapshot.resources.get('DestinationRule') ?? []).map((r) => {
    const subsets = (r.spec as { subsets: Array<{ name: string }> }).subsets.map((s) => s.name).join('+');
    return `${r.metadata.name}:${subsets}@${r.origin.file}`;
  });
}

/** Polls until `predicate` holds; returns whether it did before the deadline. */
async function eventually(predicate: () => boolean, deadlineMs = WATCH_DEADLINE_MS): Promise<boolean> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (predicate()) return true;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return predicate();
}

test('loads YAML files recursively and ignores hidden files, editor temporaries and other names', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, 'team', 'nested'), { recursive: true });
  await mkdir(join(dir, '.git'));
  await writeFile(join(dir, 'a.yaml'), destinationRule('a', ['v1']));
  await writeFile(join(dir, 'team', 'b.yml'), destinationRule('b', ['v1']));
  await writeFile(join(dir, 'team', 'nested', 'c.yaml'), destinationRule('c', ['v1']));
  for (const ignored of ['.#a.yaml', 'a.yaml~', '.a.yaml.swp', '#a.yaml#', 'notes.txt', '.hidden.yaml']) {
    await writeFile(join(dir, ignored), 'not: [valid');
  }
  await writeFile(join(dir, '.git', 'd.yaml'), 'not: [valid');
  const source = open(t, dir);
  await source.start();
  await source.ready();
  const snapshot = source.snapshot();
  t.deepEqual(rules(snapshot), [`a:v1@${join(dir, 'a.yaml')}`, `b:v1@${join(dir, 'team', 'b.yml')}`, `c:v1@${join(dir, 'team', 'nested', 'c.yaml')}`]);
  t.deepEqual(snapshot.issues, []);
  t.like(source.status(), { ready: true, stats: { files: 3, rejectedFiles: 0, resources: 3 } });
});

test('file names the loader reads', (t) => {
  t.true(isConfigFileName('routes.yaml'));
  t.true(isConfigFileName('routes.yml'));
  for (const name of ['.#routes.yaml', 'routes.yaml~', '.routes.yaml.swp', '#routes.yaml#', 'routes.json', 'routes.yaml.tmp']) t.false(isConfigFileName(name), name);
});

test('create, modify and delete take effect within a second, and listeners hear of it', async (t) => {
  const dir = await tempDir(t);
  const source = open(t, dir);
  let changes = 0;
  source.onChange(() => changes++);
  await source.start();
  t.deepEqual(rules(source.snapshot()), []);
  const file = join(dir, 'reviews.yaml');

  await writeFile(file, destinationRule('reviews', ['v1']));
  t.true(await eventually(() => rules(source.snapshot()).join() === `reviews:v1@${file}`), 'create');
  await writeFile(file, destinationRule('reviews', ['v1', 'v2']));
  t.true(await eventually(() => rules(source.snapshot()).join() === `reviews:v1+v2@${file}`), 'modify');
  await unlink(file);
  t.true(await eventually(() => rules(source.snapshot()).length === 0), 'delete');
  t.true(changes >= 3);
});

test('rename, atomic save via rename and a new subdirectory take effect within a second', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'old.yaml'), destinationRule('reviews', ['v1']));
  const source = open(t, dir);
  await source.start();

  await rename(join(dir, 'old.yaml'), join(dir, 'new.yaml'));
  t.true(await eventually(() => rules(source.snapshot()).join() === `reviews:v1@${join(dir, 'new.yaml')}`), 'rename');

  // What editors do: write a temporary file beside the target, then rename it over the target.
  await writeFile(join(dir, '.new.yaml.tmp'), destinationRule('reviews', ['v1', 'v2']));
  await rename(join(dir, '.new.yaml.tmp'), join(dir, 'new.yaml'));
  t.true(await eventually(() => rules(source.snapshot()).join() === `reviews:v1+v2@${join(dir, 'new.yaml')}`), 'atomic save');

  await mkdir(join(dir, 'later', 'deeper'), { recursive: true });
  await writeFile(join(dir, 'later', 'deeper', 'ratings.yaml'), destinationRule('ratings', ['v3']));
  t.true(await eventually(() => rules(source.snapshot()).includes(`ratings:v3@${join(dir, 'later', 'deeper', 'ratings.yaml')}`)), 'new subdirectory');

  await rm(join(dir, 'later'), { recursive: true });
  t.true(await eventually(() => rules(source.snapshot()).length === 1), 'subdirectory removed');
});

test('repeated atomic saves and then in-place writes of one file in a subdirectory each take effect within a second', async (t) => {
  // Node 20's recursive fs.watch on Linux goes deaf to a file after it was atomically replaced
  // twice; with the safety rescan pushed far out, only working watchers can pass this.
  const dir = await tempDir(t);
  await mkdir(join(dir, 'team'));
  const file = join(dir, 'team', 'reviews.yaml');
  await writeFile(file, destinationRule('reviews', ['v0']));
  const source = open(t, dir);
  await source.start();
  for (let round = 1; round <= 4; round++) {
    await writeFile(join(dir, 'team', '.reviews.yaml.tmp'), destinationRule('reviews', [`v${round}`]));
    await rename(join(dir, 'team', '.reviews.yaml.tmp'), file);
    t.true(await eventually(() => rules(source.snapshot()).join() === `reviews:v${round}@${file}`), `atomic save ${round}`);
  }
  await writeFile(file, destinationRule('reviews', ['v9']));
  t.true(await eventually(() => rules(source.snapshot()).join() === `reviews:v9@${file}`), 'in-place write after atomic saves');
});

test('a bad edit is rejected whole and the previous version keeps serving; the others still apply', async (t) => {
  const dir = await tempDir(t);
  const reviews = join(dir, 'reviews.yaml');
  await writeFile(reviews, destinationRule('reviews', ['v1']));
  await writeFile(join(dir, 'ratings.yaml'), destinationRule('ratings', ['v1']));
  const source = open(t, dir);
  await source.start();

  await writeFile(reviews, `${destinationRule('reviews', ['v1', 'v2'])}---\n${destinationRule('extra', ['v1']).replace('host:', 'hostt:')}`);
  await writeFile(join(dir, 'ratings.yaml'), destinationRule('ratings', ['v1', 'v2']));
  t.true(await eventually(() => rules(source.snapshot()).includes(`ratings:v1+v2@${join(dir, 'ratings.yaml')}`)));
  t.true(await eventually(() => source.snapshot().issues.some((i) => i.file === reviews && i.severity === 'error')));
  t.true(rules(source.snapshot()).includes(`reviews:v1@${reviews}`), 'the last good version serves');
  const errors = source.snapshot().issues.filter((i) => i.file === reviews && i.severity === 'error');
  t.deepEqual(errors.map((i) => [i.document, i.path, i.code]), [[2, 'spec.host', 'missing-field'], [2, 'spec.hostt', 'unknown-field']]);
  t.like(source.files().find((f) => f.file === reviews), { state: 'rejected', serving: 'previous' });
  t.like(source.status(), { detail: '1 config file(s) rejected' });
});

test('a 50 MB file and a binary file in the directory are rejected with clear issues', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'good.yaml'), destinationRule('reviews', ['v1']));
  await writeFile(join(dir, 'huge.yaml'), '');
  await truncate(join(dir, 'huge.yaml'), 50 * 1024 * 1024);
  await writeFile(join(dir, 'binary.yaml'), Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe]));
  const source = open(t, dir);
  await source.start();
  const issues = source.snapshot().issues;
  t.deepEqual(issues.map((i) => [i.file, i.code]), [[join(dir, 'binary.yaml'), 'binary-file'], [join(dir, 'huge.yaml'), 'file-too-large']]);
  t.regex(issues[1]!.message, /52428800 bytes, over the 8 MiB limit/);
  t.deepEqual(rules(source.snapshot()), [`reviews:v1@${join(dir, 'good.yaml')}`]);
});

test('a missing directory is an empty config with an issue, picked up once it appears', async (t) => {
  const parent = await tempDir(t);
  const dir = join(parent, 'mesh');
  const source = open(t, dir, { missingPollMs: 50 });
  await source.start();
  await source.ready();
  t.like(source.snapshot().issues[0], { code: 'config-dir-missing', severity: 'error', file: dir });
  t.like(source.status(), { ready: true, detail: `config directory ${dir} does not exist` });

  await mkdir(dir);
  await writeFile(join(dir, 'reviews.yaml'), destinationRule('reviews', ['v1']));
  t.true(await eventually(() => rules(source.snapshot()).length === 1));
  t.false(source.snapshot().issues.some((i) => i.code === 'config-dir-missing'));

  // Watched from now on: a later edit arrives through the watcher.
  await writeFile(join(dir, 'reviews.yaml'), destinationRule('reviews', ['v1', 'v2']));
  t.true(await eventually(() => rules(source.snapshot()).join().includes('v1+v2')));
});

test('reload re-reads everything without a watcher and changes nothing when nothing changed', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'reviews.yaml');
  await writeFile(file, destinationRule('reviews', ['v1']));
  const source = open(t, dir);
  let changes = 0;
  const unsubscribe = source.onChange(() => changes++);
  await source.reload();
  t.deepEqual(rules(source.snapshot()), [`reviews:v1@${file}`]);
  t.is(changes, 1);
  const version = source.snapshot().version;
  await source.reload();
  t.is(source.snapshot().version, version);
  t.is(changes, 1);
  await writeFile(file, destinationRule('reviews', ['v2']));
  unsubscribe();
  await source.reload();
  t.deepEqual(rules(source.snapshot()), [`reviews:v2@${file}`]);
  t.is(changes, 1, 'unsubscribed');
});

test('a deleted directory keeps the last config serving with an issue; recreated, it is read afresh', async (t) => {
  const parent = await tempDir(t);
  const dir = join(parent, 'mesh');
  await mkdir(dir);
  await writeFile(join(dir, 'reviews.yaml'), destinationRule('reviews', ['v1']));
  const source = open(t, dir, { missingPollMs: 50 });
  await source.start();

  await rm(dir, { recursive: true });
  t.true(await eventually(() => source.snapshot().issues.some((i) => i.code === 'config-dir-missing')));
  t.deepEqual(rules(source.snapshot()), [`reviews:v1@${join(dir, 'reviews.yaml')}`], 'still serving');

  await mkdir(dir);
  await writeFile(join(dir, 'ratings.yaml'), destinationRule('ratings', ['v2']));
  t.true(await eventually(() => rules(source.snapshot()).join() === `ratings:v2@${join(dir, 'ratings.yaml')}`));
  t.deepEqual(source.snapshot().issues, []);
});

test('a ConfigMap-style symlink swap (..data) is picked up', async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, '..v1'));
  await writeFile(join(dir, '..v1', 'reviews.yaml'), destinationRule('reviews', ['v1']));
  await symlink('..v1', join(dir, '..data'));
  await symlink(join('..data', 'reviews.yaml'), join(dir, 'reviews.yaml'));
  const source = open(t, dir);
  await source.start();
  t.deepEqual(rules(source.snapshot()), [`reviews:v1@${join(dir, 'reviews.yaml')}`]);

  await mkdir(join(dir, '..v2'));
  await writeFile(join(dir, '..v2', 'reviews.yaml'), destinationRule('reviews', ['v1', 'v2']));
  await symlink('..v2', join(dir, '..data_tmp'));
  await rename(join(dir, '..data_tmp'), join(dir, '..data'));
  t.true(await eventually(() => rules(source.snapshot()).join() === `reviews:v1+v2@${join(dir, 'reviews.yaml')}`));
});
