// The 64-bit hash behind ring hash, maglev and hash policies: pinned values (changing them would
// move every session on upgrade), spread of positions, and bigint ↔ position agreement.
import test from 'ava';
import { POSITION_SPACE, hashHigh, hashLow, hashPosition, murmur3, position, toPosition } from './hash64';

test('murmur3 is MurmurHash3 x86_32 over the string\'s UTF-16LE bytes (reference vectors)', (t) => {
  t.is(murmur3('', 0), 0);
  t.is(murmur3('', 1), 0x514e28b7);
  t.is(murmur3('', 0xffffffff), 0x81f16f39);
  t.is(murmur3('\u0000\u0000', 0), 0x2362f9de);
  t.is(murmur3('\u4321\u8765', 0), 0xf55b516b);
  t.is(murmur3('\u4321\u8765', 0x5082edee), 0x2362f9de);
  t.is(murmur3('\u4321', 0), 0xa0f7b07a);
});

test('hash values are pinned: changing them would move every consistent-hash session on upgrade', (t) => {
  t.deepEqual(['alice', '10.0.0.1:9080_0', 'é-ü', 'odd'].map((s) => [hashHigh(s), hashLow(s), hashPosition(s)]), [
    [2186220666, 779946473, 4584837042524065],
    [2893045257, 2886785671, 6067155648217627],
    [218623944, 216810655, 458487641513352],
    [3085026028, 2646390725, 6469768505964438],
  ]);
});

test('the two halves differ (two seeds) and positions stay below 2^53', (t) => {
  for (let i = 0; i < 1000; i++) {
    const key = `key-${i}`;
    t.not(hashHigh(key), hashLow(key));
    const p = hashPosition(key);
    t.true(Number.isSafeInteger(p) && p >= 0 && p < POSITION_SPACE);
  }
});

test('similar keys spread evenly: 20 000 sequential keys over 10 buckets, each within 10% of its share', (t) => {
  const buckets = new Array<number>(10).fill(0);
  for (let i = 0; i < 20_000; i++) buckets[Math.floor((hashPosition(`10.0.0.${i % 250}:80_${i}`) / POSITION_SPACE) * 10)]!++;
  for (const n of buckets) t.true(Math.abs(n - 2000) <= 200, `${buckets.join(' ')}`);
});

test('a bigint 64-bit hash keeps its top 53 bits as the position', (t) => {
  t.is(toPosition((BigInt(position(0xdeadbeef, 0x12345678)) << 11n) | 0x678n), position(0xdeadbeef, 0x12345678));
  t.is(toPosition(-1n), POSITION_SPACE - 1);
  t.is(toPosition(42), 42);
});
