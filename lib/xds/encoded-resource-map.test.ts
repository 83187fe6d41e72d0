import test from 'ava';
import { EncodedResourceMap } from './encoded-resource-map';
import { packAny, TypeUrl, type PackedAny } from './protos';

function cluster(name: string): PackedAny {
  return packAny(TypeUrl.Cluster, { name, type: 3, connect_timeout: { seconds: 1 } });
}

test('reads decode the held bytes; the map answers like a Map of the decoded resources', (t) => {
  const map = new EncodedResourceMap(new Map([['a', cluster('a')], ['b', cluster('b')]]));
  t.is(map.size, 2);
  t.true(map.has('a'));
  t.false(map.has('c'));
  t.is(map.get('c'), undefined);
  t.is(map.get('b')!.name, 'b');
  t.deepEqual([...map.keys()], ['a', 'b']);
  t.deepEqual([...map].map(([name, resource]) => [name, resource.name, resource.type]), [['a', 'a', 'EDS'], ['b', 'b', 'EDS']]);
  t.deepEqual([...map.values()].map((resource) => resource.name), ['a', 'b']);
  const seen: string[] = [];
  map.forEach((resource, name) => seen.push(`${name}=${String(resource.name)}`));
  t.deepEqual(seen, ['a=a', 'b=b']);
});

test('decoded objects are shared while held and let go once released', (t) => {
  const map = new EncodedResourceMap(new Map([['a', cluster('a')]]));
  t.not(map.get('a'), map.get('a'), 'not held: every read decodes anew, nothing stays alive');
  map.holdDecoded();
  const held = map.get('a');
  t.is(map.get('a'), held);
  t.is([...map.values()][0], held!);
  map.releaseDecoded();
  t.not(map.get('a'), held);
  t.deepEqual(map.get('a'), held);
});

test('seeded objects are served until released', (t) => {
  const seed = { name: 'a', seeded: true };
  const map = new EncodedResourceMap(new Map([['a', cluster('a')]]), new Map([['a', seed]]));
  t.is(map.get('a'), seed);
  map.releaseDecoded();
  t.is(map.get('a')!.seeded, undefined);
});
