// Unit tests of the command runner with harmless commands (sh, cat): captured output, stdin,
// errors that carry the command and its stderr, the timeout, and the PATH it gives tools.
import test from 'ava';
import { CommandError, createCommandRunner, systemToolPath } from './command-runner';

test('output is captured and input reaches stdin', async (t) => {
  const runner = createCommandRunner();
  const result = await runner.run(['sh', '-c', 'cat; echo oops >&2'], { input: 'rules\n' });
  t.deepEqual(result, { stdout: 'rules\n', stderr: 'oops\n', exitCode: 0 });
});

test('a failing command rejects with the command line, exit code and stderr', async (t) => {
  const runner = createCommandRunner();
  const error = await t.throwsAsync(runner.run(['sh', '-c', 'echo "line 3 failed" >&2; exit 4']), { instanceOf: CommandError });
  t.is(error?.exitCode, 4);
  t.deepEqual(error?.command, ['sh', '-c', 'echo "line 3 failed" >&2; exit 4']);
  t.is(error?.message, '`sh -c echo "line 3 failed" >&2; exit 4` exited with code 4: line 3 failed');
  const tolerated = await runner.run(['sh', '-c', 'exit 3'], { allowFailure: true });
  t.is(tolerated.exitCode, 3);
});

test('a missing program and a hung command are errors, not hangs', async (t) => {
  const runner = createCommandRunner({ timeoutMs: 200 });
  await t.throwsAsync(runner.run(['no-such-program-for-mesh']), { message: /could not be started/ });
  await t.throwsAsync(runner.run(['sleep', '20']), { message: /`sleep 20` timed out after 200 ms/ });
  t.false(await runner.has('no-such-program-for-mesh'));
  t.true(await runner.has('sh'));
});

test('with a namespace, commands go through `ip netns exec`, and bad names are refused', async (t) => {
  const runner = createCommandRunner({ netns: 'mesh-test-no-such-namespace' });
  t.is(runner.netns, 'mesh-test-no-such-namespace');
  const error = await t.throwsAsync(runner.run(['true']), { instanceOf: CommandError });
  t.deepEqual(error?.command, ['ip', 'netns', 'exec', 'mesh-test-no-such-namespace', 'true']);
  t.throws(() => createCommandRunner({ netns: 'bad name; rm' }), { message: /must contain only/ });
});

test('the tool PATH drops node_modules/.bin (it holds an unrelated `nft`) and has the sbin folders', (t) => {
  const path = systemToolPath('/work/main/node_modules/.bin:/node_modules/.bin:/home/u/bin:/usr/bin').split(':');
  t.false(path.some((dir) => dir.includes('node_modules')));
  t.is(path[0], '/home/u/bin');
  t.true(path.includes('/usr/sbin'));
  t.true(path.includes('/sbin'));
  t.is(path.filter((dir) => dir === '/usr/bin').length, 1);
});
