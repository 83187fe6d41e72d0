// Tests of `meshctl redirect`: option errors exit 2 before any command runs, and install, verify
// and remove on `auto` in a test namespace print what they did. Damaged rules: redirect-scenarios.ts.
import test from 'ava';
import { requireNetns } from '../test/netns/guard';
import { createTestNetwork } from '../test/netns/test-network';
import { redirectCommand } from './redirect';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { stdout: (s: string) => void out.push(s), stderr: (s: string) => void err.push(s) }, out, err };
}

// A namespace that does not exist: should a command run by mistake, it fails in `ip netns exec`
// and never reaches a firewall tool in the root namespace.
const NOWHERE = 'mesh-test-no-such-namespace';

test('install and verify need the agent uid; the error says why and exits 2', async (t) => {
  for (const action of ['install', 'verify'] as const) {
    const { io, err, out } = capture();
    t.is(await redirectCommand(action, { netns: NOWHERE }, io), 2);
    t.regex(err.join(''), /agentUid: is required: the uid mesh-agent runs as/);
    t.deepEqual(out, []);
  }
});

test('a bad CIDR or port exits 2 naming the option', async (t) => {
  const cidr = capture();
  t.is(await redirectCommand('install', { netns: NOWHERE, agentUid: 1, excludeOutboundCidrs: ['10.0.0.0/40'] }, cidr.io), 2);
  t.regex(cidr.err.join(''), /invalid option excludeOutboundCidrs\[0\]: "10.0.0.0\/40": prefix length/);
  const port = capture();
  t.is(await redirectCommand('verify', { netns: NOWHERE, agentUid: 1, inboundPorts: [22] }, port.io), 2);
  t.regex(port.err.join(''), /port 22 is never captured \(SSH\)/);
});

test('a failing firewall command exits 1 with the command in the message', async (t) => {
  const { io, err } = capture();
  t.is(await redirectCommand('install', { netns: NOWHERE, agentUid: 1, backend: 'nftables' }, io), 1);
  t.regex(err.join(''), /meshctl redirect install: `ip netns exec mesh-test-no-such-namespace nft -f -` exited/);
});

const netnsTest = requireNetns(['nft', 'iptables-nft-restore']);

netnsTest('auto: install reports backend and plan, verify passes, remove finds the rules, then nothing', async (t) => {
  const network = await createTestNetwork({ hosts: ['a'] });
  t.teardown(() => network.destroy());
  const options = { netns: network.hosts.a.namespace, agentUid: 1337, excludeOutboundPorts: [53], ipv6: false };

  const install = capture();
  t.is(await redirectCommand('install', options, install.io), 0, install.err.join(''));
  const installed = install.out.join('');
  t.regex(installed, /installed the mesh redirection rules with iptables/);
  t.regex(installed, new RegExp(`in network namespace ${network.hosts.a.namespace}`));
  t.regex(installed, /families: IPv4\n/);
  t.regex(installed, /except uid 1337, loopback, ports 53/);

  const verify = capture();
  t.is(await redirectCommand('verify', options, verify.io), 0);
  t.regex(verify.out.join(''), /match the plan \(iptables \(it holds the mesh rules already\)\)/);

  const mismatch = capture();
  t.is(await redirectCommand('verify', { ...options, agentUid: 999 }, mismatch.io), 1);
  t.regex(mismatch.out.join(''), /  - iptables-nft -t nat -A MESH_OUTPUT -m owner --uid-owner 999 -j RETURN/);
  t.regex(mismatch.out.join(''), /  \+ iptables-nft -t nat -A MESH_OUTPUT -m owner --uid-owner 1337 -j RETURN/);

  const remove = capture();
  t.is(await redirectCommand('remove', { netns: options.netns }, remove.io), 0);
  t.regex(remove.out.join(''), /removed the mesh redirection rules \(iptables\)/);
  const saved = await network.exec('a', ['iptables-nft-save', '-t', 'nat']);
  t.false(saved.stdout.includes('MESH_'));

  const again = capture();
  t.is(await redirectCommand('remove', { netns: options.netns }, again.io), 0);
  t.regex(again.out.join(''), /no mesh redirection rules found/);
});
