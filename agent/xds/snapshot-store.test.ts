// SnapshotStore on a real temp directory: round trip of the exact Any bytes, a crash before the
// rename, damaged files moved aside, and the permissions of what is written.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { packAny, TypeUrl, unpackAny } from '../../lib/xds/protos';
import { SNAPSHOT_FILE, SnapshotStore, type XdsSnapshot } from './snapshot-store';

async function stateDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'agent-snapshot-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function captureLog(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({ write(chunk: Buffer, _encoding, done) { lines.push(JSON.parse(chunk.toString())); done(); } });
  return { logger: pino({ level: 'info' }, stream), lines };
}

const listener = (name: string, port: number) => packAny(TypeUrl.Listener, { name, address: { socket_address: { address: '0.0.0.0', port_value: port } } });
const assignment = (name: string) => packAny(TypeUrl.ClusterLoadAssignment, {
  cluster_name: name,
  endpoints: [{ locality: { region: 'eu' }, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 9080 } } }, load_balancing_weight: { value: 3 } }] }],
});

function snapshotOf(listenerPort: number): XdsSnapshot {
  return new Map([
    [TypeUrl.Listener, { version: `l${listenerPort}`, resources: new Map([['in', listener('in', listenerPort)]]) }],
    [TypeUrl.ClusterLoadAssignment, { version: 'e1', resources: new Map([['outbound|9080||reviews', assignment('outbound|9080||reviews')]]) }],
  ]);
}

test('a saved snapshot loads back with the same versions and the exact Any bytes', async (t) => {
  const dir = await stateDir(t);
  const saved = snapshotOf(15006);
  await new SnapshotStore({ stateDir: dir }).save(saved);
  const loaded = await new SnapshotStore({ stateDir: dir }).load();
  t.truthy(loaded);
  t.deepEqual([...loaded!.keys()].sort(), [TypeUrl.ClusterLoadAssignment, TypeUrl.Listener].sort());
  for (const [typeUrl, stored] of saved) {
    t.is(loaded!.get(typeUrl)!.version, stored.version);
    t.deepEqual(loaded!.get(typeUrl)!.resources, stored.resources);
  }
  t.like(unpackAny(loaded!.get(TypeUrl.Listener)!.resources.get('in')!), { name: 'in', address: { socket_address: { port_value: 15006 } } });
});

test('nothing saved loads as undefined', async (t) => {
  t.is(await new SnapshotStore({ stateDir: await stateDir(t) }).load(), undefined);
});

test('the last save wins when saves overlap', async (t) => {
  const dir = await stateDir(t);
  const store = new SnapshotStore({ stateDir: dir });
  await Promise.all([store.save(snapshotOf(1)), store.save(snapshotOf(2)), store.save(snapshotOf(3))]);
  t.is((await store.load())!.get(TypeUrl.Listener)!.version, 'l3');
  t.deepEqual(await readdir(path.join(dir, 'xds')), [SNAPSHOT_FILE], 'no temp files are left behind');
});

test('a crash between writing the temp file and the rename leaves the previous snapshot in force', async (t) => {
  const dir = await stateDir(t);
  const store = new SnapshotStore({ stateDir: dir });
  await store.save(snapshotOf(1));
  // What a crash leaves: a complete or half-written temp file next to the snapshot, never renamed.
  const orphan = path.join(store.dir, `.${SNAPSHOT_FILE}.4242.deadbeef.tmp`);
  await writeFile(orphan, '{"format":1,"types":{"half');
  const loaded = await new SnapshotStore({ stateDir: dir }).load();
  t.is(loaded!.get(TypeUrl.Listener)!.version, 'l1');
  t.deepEqual(await readdir(store.dir), [SNAPSHOT_FILE], 'the orphaned temp file is removed');
});

for (const [what, damage] of [
  ['truncated JSON', (text: string) => text.slice(0, text.length / 2)],
  ['a changed byte inside a resource', (text: string) => text.replace(/"any":"(.)/, (_m, c: string) => `"any":"${c === 'A' ? 'B' : 'A'}`)],
  ['an unknown format', (text: string) => text.replace('"format":1', '"format":9')],
] as const) {
  test(`a snapshot with ${what} is reported, moved aside to .corrupt and ignored`, async (t) => {
    const dir = await stateDir(t);
    const store = new SnapshotStore({ stateDir: dir });
    await store.save(snapshotOf(1));
    const damaged = damage(await readFile(store.file, 'utf8'));
    await writeFile(store.file, damaged);
    const { logger, lines } = captureLog();
    t.is(await new SnapshotStore({ stateDir: dir, logger }).load(), undefined);
    t.deepEqual(await readdir(store.dir), [`${SNAPSHOT_FILE}.corrupt`]);
    t.is(await readFile(`${store.file}.corrupt`, 'utf8'), damaged, 'kept for inspection as it was');
    t.true(lines.some((line) => line.level === 50 && line.file === store.file && typeof line.problem === 'string'));
    // The next save starts afresh.
    await store.save(snapshotOf(2));
    t.is((await store.load())!.get(TypeUrl.Listener)!.version, 'l2');
  });
}

test('the snapshot file is 0600 and its directory 0700, whatever the umask', async (t) => {
  const dir = await stateDir(t);
  const previous = process.umask(0o000);
  t.teardown(() => process.umask(previous));
  const store = new SnapshotStore({ stateDir: dir });
  await store.save(snapshotOf(1));
  t.is((await stat(store.file)).mode & 0o777, 0o600);
  t.is((await stat(store.dir)).mode & 0o777, 0o700);
});
