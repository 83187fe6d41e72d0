// Unit tests of rule comparison for verify: multiset differences, duplicates, and reordering,
// which changes behaviour because the first matching rule wins.
import test from 'ava';
import { compareRules } from './redirect-backend';

test('equal rule lists are ok', (t) => {
  t.deepEqual(compareRules(['a', 'b'], ['a', 'b']), { ok: true, missing: [], unexpected: [] });
});

test('missing and unexpected rules are listed by their text', (t) => {
  t.deepEqual(compareRules(['a', 'b', 'c'], ['a', 'x']), { ok: false, missing: ['b', 'c'], unexpected: ['x'] });
});

test('a duplicated rule is unexpected once', (t) => {
  t.deepEqual(compareRules(['a', 'b'], ['a', 'b', 'a']), { ok: false, missing: [], unexpected: ['a'] });
});

test('the same rules in another order are reported per chain', (t) => {
  const scopes = new Map([
    ['chain X', { expected: ['a', 'b'], actual: ['b', 'a'] }],
    ['chain Y', { expected: ['c'], actual: ['c'] }],
  ]);
  t.deepEqual(compareRules(['a', 'b', 'c'], ['b', 'a', 'c'], scopes), {
    ok: false,
    missing: [],
    unexpected: ['chain X: rules are in a different order than planned'],
  });
});
