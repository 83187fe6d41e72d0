import test from 'ava';
import { eventually, until } from './eventually';

test('eventually returns the first real value, counting 0 and empty strings as values', async (t) => {
  let calls = 0;
  t.is(await eventually('the third call', () => (++calls < 3 ? undefined : 0)), 0);
  t.is(calls, 3);
  let flips = 0;
  t.is(await eventually('a string', async () => (++flips < 2 ? false : '')), '');
});

test('a probe that never yields fails at the deadline, naming what was awaited', async (t) => {
  await t.throwsAsync(eventually('the impossible', () => undefined, { timeoutMs: 30 }), { message: 'timed out after 30 ms waiting for the impossible' });
  await t.throwsAsync(until(() => false, 'never', 30, 0), { message: 'timed out after 30 ms waiting for never' });
});
