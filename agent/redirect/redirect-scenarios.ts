// End-to-end redirection scenarios shared by the per-backend test files: real rules in test
// namespaces, real TCP connections, and the addon reading where each connection was headed.
import type { ExecutionContext } from 'ava';
import { requireNetns } from '../../test/netns/guard';
import { probe, startReportServer, type ProbeResult } from '../../test/netns/tcp-probe';
import { createTestNetwork, type TestNetwork } from '../../test/netns/test-network';
import { redirectCommand, type RedirectCommandOptions } from '../../cli/redirect';
import { createCommandRunner } from './command-runner';
import type { BackendName, RedirectBackend } from './redirect-backend';
import { createRedirectPlan, type RedirectPlan, type RedirectPlanInput } from './redirect-plan';
import { createBackend } from './select-backend';

type Host = 'a' | 'b';
type Network = TestNetwork<Host>;

/** The uid the (pretend) agent runs as; clients run as it to prove its traffic is left alone. */
export const AGENT_UID = 1337;
/** Any other unprivileged uid: its traffic is captured like root's. */
const OTHER_UID = 4242;
const APP_PORT = 8080;
const EXCLUDED_INBOUND_PORT = 9090;

/** What differs per backend: how to look at, damage and decorate its rules from outside. */
interface BackendFixture {
  readonly tools: readonly string[];
  /** Everything the backend's tool lists, for comparing two installs. */
  dump(network: Network): Promise<string>;
  /** Deletes one of our rules behind the backend's back; returns how verify must name it. */
  deleteOneRule(network: Network): Promise<string>;
  /** Adds rules and chains that belong to somebody else, in the same tables as ours. */
  addForeignRules(network: Network): Promise<void>;
  /** The foreign rules' text as the tool lists it, which must survive our remove. */
  readonly foreignRuleTexts: readonly string[];
  /** Lists anything of ours the tool still shows (chain or table names). */
  leftovers(network: Network): Promise<string[]>;
}

function iptablesFixture(flavor: 'nft' | 'legacy'): BackendFixture {
  const v4 = `iptables-${flavor}`;
  const v6 = `ip6tables-${flavor}`;
  const saveBoth = async (network: Network) => {
    const four = await network.exec('a', [`${v4}-save`, '-t', 'nat']);
    const six = await network.exec('a', [`${v6}-save`, '-t', 'nat']);
    // Drop the "# Generated ... on <date>" lines and the chain packet counters ([packets:bytes]),
    // which change with any stray packet (IPv6 neighbour discovery) between two listings.
    return `${four.stdout}${six.stdout}`
      .split('\n')
      .filter((line) => !line.startsWith('#'))
      .map((line) => line.replace(/ \[\d+:\d+\]$/, ''))
      .join('\n');
  };
  return {
    tools: [`${v4}-restore`, `${v6}-restore`],
    dump: saveBoth,
    async deleteOneRule(network) {
      await network.exec('a', [v4, '-t', 'nat', '-D', 'MESH_OUTPUT', '-o', 'lo', '-j', 'RETURN']);
      return `${v4} -t nat -A MESH_OUTPUT -o lo -j RETURN`;
    },
    async addForeignRules(network) {
      for (const tool of [v4, v6]) {
        await network.exec('a', [tool, '-t', 'nat', '-A', 'OUTPUT', '-p', 'udp', '-m', 'udp', '--dport', '53', '-j', 'RETURN']);
        await network.exec('a', [tool, '-t', 'nat', '-N', 'OTHER_CHAIN']);
        await network.exec('a', [tool, '-t', 'nat', '-A', 'OTHER_CHAIN', '-p', 'tcp', '-j', 'RETURN']);
        await network.exec('a', [tool, '-t', 'nat', '-A', 'PREROUTING', '-j', 'OTHER_CHAIN']);
      }
    },
    foreignRuleTexts: [
      '-A OUTPUT -p udp -m udp --dport 53 -j RETURN',
      ':OTHER_CHAIN -',
      '-A OTHER_CHAIN -p tcp -j RETURN',
      '-A PREROUTING -j OTHER_CHAIN',
    ],
    async leftovers(network) {
      const saved = await saveBoth(network);
      return saved.split('\n').filter((line) => line.includes('MESH_'));
    },
  };
}

const nftablesFixture: BackendFixture = {
  tools: ['nft'],
  async dump(network) {
    return (await network.exec('a', ['nft', 'list', 'ruleset'])).stdout;
  },
  async deleteOneRule(network) {
    const listing = await network.exec('a', ['nft', '-a', 'list', 'chain', 'inet', 'mesh', 'outbound']);
    const handle = /oifname "lo" return # handle (\d+)/.exec(listing.stdout)?.[1];
    if (handle === undefined) throw new Error(`no loopback rule in:\n${listing.stdout}`);
    await network.exec('a', ['nft', 'delete', 'rule', 'inet', 'mesh', 'outbound', 'handle', handle]);
    return 'rule inet mesh outbound: oifname "lo" return';
  },
  async addForeignRules(network) {
    await network.exec('a', ['nft', '-f', '-'], {
      input: [
        'table inet other {',
        '  chain output { type nat hook output priority 0; policy accept; udp dport 53 return; }',
        '}',
        'table ip nat {',
        '  chain prerouting { type nat hook prerouting priority -100; policy accept; tcp dport 7000 return; }',
        '}',
        '',
      ].join('\n'),
    });
  },
  foreignRuleTexts: ['table inet other', 'udp dport 53 return', 'table ip nat', 'tcp dport 7000 return'],
  async leftovers(network) {
    const listing = await network.exec('a', ['nft', 'list', 'tables']);
    return listing.stdout.split('\n').filter((line) => line.trim() === 'table inet mesh');
  },
};

const FIXTURES: Record<BackendName, BackendFixture> = {
  iptables: iptablesFixture('nft'),
  'iptables-legacy': iptablesFixture('legacy'),
  nftables: nftablesFixture,
};

function planInput(overrides: Partial<RedirectPlanInput> = {}): RedirectPlanInput {
  return {
    agentUid: AGENT_UID,
    excludeOutboundPorts: [5432],
    excludeOutboundCidrs: ['192.0.2.0/24', '2001:db8::/32'],
    inboundPorts: '*',
    excludeInboundPorts: [EXCLUDED_INBOUND_PORT],
    ...overrides,
  };
}

/** Options for `redirectCommand` equal to `planInput()` on this backend and host. */
function commandOptions(name: BackendName, network: Network): RedirectCommandOptions {
  const input = planInput();
  return {
    backend: name,
    netns: network.hosts.a.namespace,
    agentUid: input.agentUid,
    excludeOutboundPorts: [...(input.excludeOutboundPorts ?? [])],
    excludeOutboundCidrs: [...(input.excludeOutboundCidrs ?? [])],
    inboundPorts: '*',
    excludeInboundPorts: [...(input.excludeInboundPorts ?? [])],
  };
}

interface Setup {
  readonly network: Network;
  readonly backend: RedirectBackend;
  readonly plan: RedirectPlan;
}

/** A two-host network (IPv4 + IPv6) with `backend` on host a; torn down by the test. */
async function setUp(t: ExecutionContext, name: BackendName, input: RedirectPlanInput = planInput()): Promise<Setup> {
  const network = await createTestNetwork<Host>({ hosts: ['a', 'b'], ipv6: true });
  t.teardown(() => network.destroy());
  const backend = createBackend(createCommandRunner({ netns: network.hosts.a.namespace }), name);
  return { network, backend, plan: createRedirectPlan(input) };
}

function answeredBy(result: ProbeResult): string {
  return result.connected ? result.report.server : `(not connected: ${result.error})`;
}

function collectIo(): { io: { stdout(s: string): void; stderr(s: string): void }; out: () => string } {
  let text = '';
  return {
    io: {
      stdout: (s) => {
        text += s;
      },
      stderr: (s) => {
        text += s;
      },
    },
    out: () => text,
  };
}

/** Registers every scenario for one backend. Each test builds and destroys its own network. */
export function registerRedirectScenarios(name: BackendName): void {
  const fixture = FIXTURES[name];
  // Serial within the file: each scenario starts several node processes and the machines have
  // two cores; the other backend files still run alongside.
  const netnsTest = requireNetns(fixture.tools, { serial: true });
  const scenario = (title: string, implementation: (t: ExecutionContext) => Promise<void>) =>
    netnsTest(`${name}: ${title}`, implementation);

  scenario('install then verify is ok, and installing twice leaves exactly the same rules', async (t) => {
    const { network, backend, plan } = await setUp(t, name);
    await backend.install(plan);
    t.deepEqual(await backend.verify(plan), { ok: true, missing: [], unexpected: [] });
    const first = await fixture.dump(network);
    await backend.install(plan);
    t.is(await fixture.dump(network), first, 'a second install changes nothing');
    t.deepEqual(await backend.verify(plan), { ok: true, missing: [], unexpected: [] });
    t.true(await backend.isInstalled());
  });

  scenario('outbound IPv4 and IPv6 connections are redirected to :15001, which reads the original destination', async (t) => {
    const { network, backend, plan } = await setUp(t, name);
    const { b } = network.hosts;
    await Promise.all([
      startReportServer(network, 'b', { name: 'b-app', port: APP_PORT }),
      // Dual-stack listener: redirected IPv4 arrives as IPv4-mapped, IPv6 as IPv6.
      startReportServer(network, 'a', { name: 'outbound', port: plan.outboundPort, listen: '::' }),
    ]);
    await backend.install(plan);

    const viaIpv4 = await probe(network, 'a', b.ip, APP_PORT);
    t.is(answeredBy(viaIpv4), 'outbound');
    if (viaIpv4.connected) {
      t.deepEqual(viaIpv4.report.original, { address: b.ip, port: APP_PORT });
      t.is(viaIpv4.report.localPort, plan.outboundPort);
    }
    const viaIpv6 = await probe(network, 'a', b.ip6 ?? '', APP_PORT);
    t.is(answeredBy(viaIpv6), 'outbound');
    if (viaIpv6.connected) t.deepEqual(viaIpv6.report.original, { address: b.ip6, port: APP_PORT });

    const otherUser = await probe(network, 'a', b.ip, APP_PORT, { uid: OTHER_UID });
    t.is(answeredBy(otherUser), 'outbound', 'a uid other than the agent is captured');
  });

  scenario('connections from the agent uid, to excluded ports and to excluded CIDRs are not redirected', async (t) => {
    const { network, backend, plan } = await setUp(t, name, planInput({ excludeOutboundPorts: [APP_PORT + 1] }));
    const { b } = network.hosts;
    await Promise.all([
      startReportServer(network, 'b', { name: 'b-app', port: APP_PORT }),
      startReportServer(network, 'b', { name: 'b-excluded-port', port: APP_PORT + 1 }),
      startReportServer(network, 'a', { name: 'outbound', port: plan.outboundPort }),
    ]);
    await backend.install(plan);

    const asAgent = await probe(network, 'a', b.ip, APP_PORT, { uid: AGENT_UID });
    t.is(answeredBy(asAgent), 'b-app');
    // b has no NAT rules, so the kernel knows no original destination for this connection.
    if (asAgent.connected) t.is(asAgent.report.original, null);
    const asAgent6 = await probe(network, 'a', b.ip6 ?? '', APP_PORT, { uid: AGENT_UID });
    t.is(answeredBy(asAgent6), 'b-app');
    t.is(answeredBy(await probe(network, 'a', b.ip, APP_PORT + 1)), 'b-excluded-port');

    await backend.install(createRedirectPlan(planInput({ excludeOutboundCidrs: [`${b.ip}/32`] })));
    t.is(answeredBy(await probe(network, 'a', b.ip, APP_PORT)), 'b-app', 'excluded IPv4 destination');
    t.is(answeredBy(await probe(network, 'a', b.ip6 ?? '', APP_PORT)), 'outbound', 'IPv6 still captured');
  });

  scenario('inbound to a captured port reaches the 0.0.0.0:15006 listener with the original port; 22 never', async (t) => {
    const { network, backend, plan } = await setUp(t, name);
    const { a } = network.hosts;
    await Promise.all([
      startReportServer(network, 'a', { name: 'inbound', port: plan.inboundPort, listen: '0.0.0.0' }),
      startReportServer(network, 'a', { name: 'a-app', port: APP_PORT }),
      startReportServer(network, 'a', { name: 'a-ssh', port: 22 }),
      startReportServer(network, 'a', { name: 'a-excluded', port: EXCLUDED_INBOUND_PORT }),
    ]);
    t.is(answeredBy(await probe(network, 'b', a.ip, APP_PORT)), 'a-app', 'before install the app answers');
    await backend.install(plan);

    const captured = await probe(network, 'b', a.ip, APP_PORT);
    t.is(answeredBy(captured), 'inbound');
    if (captured.connected) {
      t.deepEqual(captured.report.original, { address: a.ip, port: APP_PORT });
      t.is(captured.report.localPort, plan.inboundPort);
    }
    t.is(answeredBy(await probe(network, 'b', a.ip, 22)), 'a-ssh', 'SSH is never captured');
    t.is(answeredBy(await probe(network, 'b', a.ip, EXCLUDED_INBOUND_PORT)), 'a-excluded');
  });

  scenario('inbound IPv6 to a captured port reaches a [::]:15006 listener with the original destination', async (t) => {
    const { network, backend, plan } = await setUp(t, name);
    const { a } = network.hosts;
    await Promise.all([
      startReportServer(network, 'a', { name: 'inbound', port: plan.inboundPort, listen: '::' }),
      startReportServer(network, 'a', { name: 'a-ssh', port: 22 }),
    ]);
    await backend.install(plan);

    const captured = await probe(network, 'b', a.ip6 ?? '', APP_PORT);
    t.is(answeredBy(captured), 'inbound');
    if (captured.connected) t.deepEqual(captured.report.original, { address: a.ip6, port: APP_PORT });
    t.is(answeredBy(await probe(network, 'b', a.ip6 ?? '', 22)), 'a-ssh');
  });

  scenario('with IPv6 off, IPv6 connections are left alone and verify expects no IPv6 rules', async (t) => {
    const { network, backend } = await setUp(t, name);
    const { b } = network.hosts;
    const plan = createRedirectPlan(planInput({ ipv6: false }));
    await Promise.all([
      startReportServer(network, 'b', { name: 'b-app', port: APP_PORT }),
      startReportServer(network, 'a', { name: 'outbound', port: plan.outboundPort }),
    ]);
    await backend.install(createRedirectPlan(planInput()));
    await backend.install(plan);

    t.deepEqual(await backend.verify(plan), { ok: true, missing: [], unexpected: [] });
    t.is(answeredBy(await probe(network, 'a', b.ip6 ?? '', APP_PORT)), 'b-app');
    t.is(answeredBy(await probe(network, 'a', b.ip, APP_PORT)), 'outbound');
  });

  scenario('a rule deleted behind our back is reported missing, and `redirect verify` exits non-zero', async (t) => {
    const { network, backend, plan } = await setUp(t, name);
    const options = commandOptions(name, network);
    const installOutput = collectIo();
    t.is(await redirectCommand('install', options, installOutput.io), 0, installOutput.out());
    const okOutput = collectIo();
    t.is(await redirectCommand('verify', options, okOutput.io), 0, okOutput.out());
    t.regex(okOutput.out(), /match the plan/);

    const deleted = await fixture.deleteOneRule(network);
    const result = await backend.verify(plan);
    t.false(result.ok);
    t.deepEqual(result.missing, [deleted]);
    t.deepEqual(result.unexpected, []);

    const output = collectIo();
    t.is(await redirectCommand('verify', options, output.io), 1);
    t.true(output.out().includes(`  - ${deleted}`), output.out());
    t.regex(output.out(), /1 missing, 0 unexpected/);

    t.is(await redirectCommand('install', options, collectIo().io), 0);
    t.true((await backend.verify(plan)).ok, 'install repairs it');
  });

  scenario('remove deletes every chain or table of ours and nothing else; verify then reports all missing', async (t) => {
    const { network, backend, plan } = await setUp(t, name);
    const { b } = network.hosts;
    await fixture.addForeignRules(network);
    const everything = (await backend.verify(plan)).missing;
    await backend.install(plan);
    await Promise.all([
      startReportServer(network, 'b', { name: 'b-app', port: APP_PORT }),
      startReportServer(network, 'a', { name: 'outbound', port: plan.outboundPort }),
    ]);
    t.is(answeredBy(await probe(network, 'a', b.ip, APP_PORT)), 'outbound');
    t.true((await backend.verify(plan)).ok);

    await backend.remove();
    const afterRemove = await backend.verify(plan);
    t.false(afterRemove.ok);
    t.deepEqual(afterRemove.unexpected, []);
    t.deepEqual(afterRemove.missing, everything, 'everything the plan needs is missing again');
    t.true(everything.length > 10);
    t.deepEqual(await fixture.leftovers(network), []);
    t.false(await backend.isInstalled());
    const dump = await fixture.dump(network);
    for (const foreign of fixture.foreignRuleTexts) t.true(dump.includes(foreign), `still there: ${foreign}`);
    t.is(answeredBy(await probe(network, 'a', b.ip, APP_PORT)), 'b-app', 'traffic is no longer captured');

    await t.notThrowsAsync(backend.remove(), 'remove is idempotent');
    t.is(await fixture.dump(network), dump);
  });
}
