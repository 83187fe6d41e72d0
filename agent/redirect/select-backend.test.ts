// Tests of backend choice on `auto`, in test namespaces: the backend holding our rules wins, then
// the iptables flavour holding anybody's rules, then what `iptables` itself is.
import test, { type ExecutionContext } from 'ava';
import { requireNetns } from '../../test/netns/guard';
import { createTestNetwork } from '../../test/netns/test-network';
import { createCommandRunner } from './command-runner';
import { createRedirectPlan } from './redirect-plan';
import { createBackend, installedBackends, selectBackend } from './select-backend';

const netnsTest = requireNetns(['iptables-nft-restore', 'iptables-legacy-restore', 'nft']);

async function oneHost(t: ExecutionContext) {
  const network = await createTestNetwork({ hosts: ['a'] });
  t.teardown(() => network.destroy());
  return { network, runner: createCommandRunner({ netns: network.hosts.a.namespace }) };
}

test('an explicit choice is taken as is', async (t) => {
  const runner = createCommandRunner({ netns: 'mesh-test-never-used' });
  const selected = await selectBackend(runner, 'iptables-legacy');
  t.is(selected.backend.name, 'iptables-legacy');
  t.regex(selected.reason, /chosen explicitly/);
});

netnsTest('auto on an empty namespace picks the flavour `iptables` runs', async (t) => {
  const { network, runner } = await oneHost(t);
  const version = await network.exec('a', ['iptables', '--version']);
  const selected = await selectBackend(runner, 'auto');
  t.is(selected.backend.name, version.stdout.includes('nf_tables') ? 'iptables' : 'iptables-legacy');
  t.regex(selected.reason, /what `iptables` runs/);
  t.deepEqual(await installedBackends(runner), []);
  const legacyTables = await network.exec('a', ['cat', '/proc/net/ip_tables_names'], { allowFailure: true });
  t.is(legacyTables.stdout.trim(), '', 'detection created no legacy table');
});

netnsTest('auto follows the iptables flavour that already holds rules (legacy here)', async (t) => {
  const { network, runner } = await oneHost(t);
  await network.exec('a', ['iptables-legacy', '-t', 'filter', '-A', 'INPUT', '-p', 'tcp', '--dport', '7', '-j', 'ACCEPT']);
  const selected = await selectBackend(runner, 'auto');
  t.is(selected.backend.name, 'iptables-legacy');
  t.regex(selected.reason, /legacy holds 1 rules/);
});

netnsTest('auto picks the backend holding the mesh rules, and remove on auto finds it', async (t) => {
  const { runner } = await oneHost(t);
  await createBackend(runner, 'nftables').install(createRedirectPlan({ agentUid: 1337 }));
  const selected = await selectBackend(runner, 'auto');
  t.is(selected.backend.name, 'nftables');
  t.regex(selected.reason, /holds the mesh rules already/);
  t.deepEqual(
    (await installedBackends(runner)).map((backend) => backend.name),
    ['nftables'],
  );
});
