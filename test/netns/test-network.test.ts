// Tests of the network-namespace harness: hosts get their addresses and reach each other over the
// bridge, the root namespace gains no device, spawn/exec behave as documented, destroy cleans up.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { requireNetns } from './guard';
import { waitForExit } from './tcp-probe';
import { createTestNetwork, netnsUnavailableReason } from './test-network';

const netnsTest = requireNetns(['ping']);

function namespaceNames(): string[] {
  const listed = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return listed.stdout.split('\n').map((line) => line.split(' ')[0] ?? '').filter(Boolean);
}

function rootLinkNames(): string[] {
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  return links.stdout
    .split('\n')
    .map((line) => line.split(': ')[1]?.split('@')[0] ?? '')
    .filter(Boolean)
    .sort();
}

async function commandNameOnceSettled(pid: number, expected: string): Promise<string> {
  const deadline = Date.now() + 5_000;
  let name = '';
  for (let attempt = 0; attempt < 500 && Date.now() < deadline; attempt++) {
    name = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    if (name === expected) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return name;
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('the guard names a missing tool', (t) => {
  const reason = netnsUnavailableReason(['no-such-tool-for-mesh-tests']);
  t.truthy(reason);
  if (process.getuid?.() === 0) t.regex(reason ?? '', /no-such-tool-for-mesh-tests is not installed/);
  else t.regex(reason ?? '', /root/);
});

netnsTest('three hosts get distinct addresses and reach each other over IPv4 and IPv6', async (t) => {
  const rootLinksBefore = rootLinkNames();
  const network = await createTestNetwork({ hosts: ['a', 'b', 'c'], ipv6: true });
  t.teardown(() => network.destroy());

  const { a, b, c } = network.hosts;
  t.deepEqual(new Set([a.ip, b.ip, c.ip]).size, 3);
  t.deepEqual(new Set([a.ip6, b.ip6, c.ip6]).size, 3);
  t.true(namespaceNames().includes(a.namespace));
  t.true(namespaceNames().includes(network.bridgeNamespace));
  t.true(a.namespace.includes(String(process.pid)), 'namespace names carry the test pid');

  const addresses = await network.exec(b, ['ip', '-o', 'addr', 'show', 'dev', 'eth0']);
  t.true(addresses.stdout.includes(`${b.ip}/24`));
  t.true(addresses.stdout.includes(`${b.ip6 ?? 'missing'}/64`));
  const loopback = await network.exec(c, ['ip', '-o', 'link', 'show', 'dev', 'lo']);
  t.regex(loopback.stdout, /[<,]UP[,>]/);

  for (const target of [b.ip, c.ip, b.ip6 ?? '', c.ip6 ?? '']) {
    const ping = await network.exec(a, ['ping', '-c', '1', '-W', '3', target], { allowFailure: true });
    t.is(ping.exitCode, 0, `a reaches ${target}: ${ping.stdout}${ping.stderr}`);
  }
  t.deepEqual(rootLinkNames(), rootLinksBefore, 'no device was created in the root namespace');
});

netnsTest('two test networks get different subnets and cannot reach each other', async (t) => {
  const first = await createTestNetwork({ hosts: ['a'] });
  t.teardown(() => first.destroy());
  const second = await createTestNetwork({ hosts: ['a'] });
  t.teardown(() => second.destroy());

  t.not(first.subnet, second.subnet);
  t.not(first.hosts.a.namespace, second.hosts.a.namespace);
  const ping = await first.exec('a', ['ping', '-c', '1', '-W', '1', second.hosts.a.ip], { allowFailure: true });
  t.not(ping.exitCode, 0);
});

netnsTest('spawn runs the program itself as the given uid inside the namespace', async (t) => {
  const network = await createTestNetwork({ hosts: ['a'] });
  t.teardown(() => network.destroy());

  const id = network.spawn('a', ['id', '-u'], { uid: 4242 });
  const idResult = await waitForExit(id, 10_000);
  t.is(idResult.stdout.trim(), '4242');

  const sleeper = network.spawn('a', ['sleep', '60']);
  const pid = sleeper.pid ?? -1;
  // `ip netns exec` execs the program in place, so the same pid turns into `sleep` shortly.
  t.is(await commandNameOnceSettled(pid, 'sleep'), 'sleep', 'the pid is the program, not a wrapper');
  const namespaceOfSleeper = fs.readlinkSync(`/proc/${pid}/ns/net`);
  const namespaceOfHost = await network.exec('a', ['readlink', '/proc/self/ns/net']);
  t.is(namespaceOfSleeper, namespaceOfHost.stdout.trim());
  t.not(namespaceOfSleeper, fs.readlinkSync('/proc/self/ns/net'));

  await network.destroy();
  t.false(processExists(pid), 'destroy killed the spawned program');
  const names = namespaceNames();
  t.false(names.includes(network.hosts.a.namespace));
  t.false(names.includes(network.bridgeNamespace));
  await t.notThrowsAsync(network.destroy(), 'destroy is idempotent');
  t.throws(() => network.spawn('a', ['true']), { message: /destroyed/ });
});

netnsTest('exec captures output, reports failures with stderr, and enforces its timeout', async (t) => {
  const network = await createTestNetwork({ hosts: ['a'] });
  t.teardown(() => network.destroy());

  const echoed = await network.exec('a', ['cat'], { input: 'hello' });
  t.is(echoed.stdout, 'hello');
  await t.throwsAsync(network.exec('a', ['ls', '/no/such/path']), { message: /ls \/no\/such\/path.*No such file/s });
  const started = Date.now();
  await t.throwsAsync(network.exec('a', ['sleep', '30'], { timeoutMs: 300 }), { message: /timed out after 300 ms/ });
  t.true(Date.now() - started < 10_000);
  t.throws(() => network.exec('z' as 'a', ['true']), { message: /no host/ });
});
