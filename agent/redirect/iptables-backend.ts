// Redirection with iptables (nf_tables or legacy flavour): chains of our own in the nat table,
// reached by one jump from OUTPUT and one from PREROUTING, written with iptables-restore.
//
// Layout (IPv4 and IPv6 alike, like istio-iptables' ISTIO_OUTPUT / ISTIO_INBOUND chains):
//   OUTPUT     -p tcp --syn                                  -> MESH_OUTPUT
//   PREROUTING -p tcp --syn, destination is a local address  -> MESH_PREROUTING
//   MESH_OUTPUT:     RETURN agent uid, loopback, excluded CIDRs and ports; else -> MESH_REDIRECT
//   MESH_REDIRECT:   REDIRECT to the outbound port
//   MESH_PREROUTING: RETURN never-captured ports (SSH first); captured ports -> MESH_INBOUND
//   MESH_INBOUND:    REDIRECT to the inbound port
// Each install rewrites our chains in one iptables-restore transaction (declaring a chain under
// --noflush empties it), so there is no moment with half a rule set, and a second install yields
// the same rules.
import { iptablesCidrText } from './cidr';
import type { CommandRunner } from './command-runner';
import { compareRules, type BackendName, type RedirectBackend, type VerifyResult } from './redirect-backend';
import type { RedirectPlan } from './redirect-plan';

export type IptablesFlavor = 'nft' | 'legacy';
export type IpFamily = 4 | 6;

export const MESH_OUTPUT = 'MESH_OUTPUT';
export const MESH_REDIRECT = 'MESH_REDIRECT';
export const MESH_PREROUTING = 'MESH_PREROUTING';
export const MESH_INBOUND = 'MESH_INBOUND';
/** Our chains, in the order iptables-save lists user chains (by name). */
export const MESH_CHAINS: readonly string[] = [MESH_INBOUND, MESH_OUTPUT, MESH_PREROUTING, MESH_REDIRECT];

/** The rules a plan needs in one family's nat table, exactly as iptables-save prints them. */
export interface IptablesRuleSet {
  /** Rules in built-in chains that jump into ours. */
  readonly jumps: readonly string[];
  /** Rules of each of our chains, in order. */
  readonly chains: ReadonlyMap<string, readonly string[]>;
}

export function iptablesRules(plan: RedirectPlan, family: IpFamily): IptablesRuleSet {
  const tcpPort = (chain: string, port: number, target: string) => `-A ${chain} -p tcp -m tcp --dport ${port} -j ${target}`;
  const output = [
    // The agent's own connections (to upstreams and peers) must leave untouched or they would
    // come straight back to its outbound listener.
    `-A ${MESH_OUTPUT} -m owner --uid-owner ${plan.agentUid} -j RETURN`,
    // Loopback covers 127.0.0.0/8, ::1 and the host's own addresses: local traffic is not meshed.
    `-A ${MESH_OUTPUT} -o lo -j RETURN`,
    ...plan.excludeOutboundCidrs
      .filter((cidr) => cidr.family === family)
      .map((cidr) => `-A ${MESH_OUTPUT} -d ${iptablesCidrText(cidr)} -j RETURN`),
    ...plan.excludeOutboundPorts.map((port) => tcpPort(MESH_OUTPUT, port, 'RETURN')),
    `-A ${MESH_OUTPUT} -j ${MESH_REDIRECT}`,
  ];
  const prerouting = [
    ...plan.neverCaptureInboundPorts.map((port) => tcpPort(MESH_PREROUTING, port, 'RETURN')),
    ...(plan.inbound.mode === 'all'
      ? [`-A ${MESH_PREROUTING} -p tcp -j ${MESH_INBOUND}`]
      : plan.inbound.ports.map((port) => tcpPort(MESH_PREROUTING, port, MESH_INBOUND))),
  ];
  return {
    // Only connection openers (SYN without ACK) jump. A connection open before the rules existed
    // has no conntrack entry; its next segment would be picked up mid-stream as a new flow and
    // redirected to our listener, which answers with a reset (seen on the agent's own xDS stream:
    // test/e2e/xds-push-after-redirect.test.ts). A real new connection always starts with a SYN.
    jumps: [
      `-A OUTPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ${MESH_OUTPUT}`,
      // Only connections to this host: forwarded traffic (containers, routed hosts) is not ours.
      `-A PREROUTING -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m addrtype --dst-type LOCAL -j ${MESH_PREROUTING}`,
    ],
    chains: new Map([
      [MESH_INBOUND, [`-A ${MESH_INBOUND} -p tcp -j REDIRECT --to-ports ${plan.inboundPort}`]],
      [MESH_OUTPUT, output],
      [MESH_PREROUTING, prerouting],
      [MESH_REDIRECT, [`-A ${MESH_REDIRECT} -p tcp -j REDIRECT --to-ports ${plan.outboundPort}`]],
    ]),
  };
}

/** Our part of one family's nat table as found in iptables-save output. */
export interface InstalledIptablesRules {
  /** Whether the nat table exists at all (legacy tables appear only once something used them). */
  readonly tableExists: boolean;
  /** Our chains that exist, with their rules in order. */
  readonly chains: ReadonlyMap<string, readonly string[]>;
  /** Rules in any other chain that jump or go to one of ours. */
  readonly jumps: readonly string[];
}

export function parseIptablesSave(text: string): InstalledIptablesRules {
  const chains = new Map<string, string[]>();
  const jumps: string[] = [];
  let inNat = false;
  let tableExists = false;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line.startsWith('*')) {
      inNat = line === '*nat';
      tableExists ||= inNat;
      continue;
    }
    if (!inNat || line === '' || line.startsWith('#')) continue;
    if (line === 'COMMIT') {
      inNat = false;
      continue;
    }
    if (line.startsWith(':')) {
      const name = line.slice(1).split(/\s+/)[0] ?? '';
      if (MESH_CHAINS.includes(name)) chains.set(name, chains.get(name) ?? []);
      continue;
    }
    const words = tokenize(line);
    if (words[0] !== '-A' || words[1] === undefined) continue;
    const chain = words[1];
    const ours = chains.get(chain);
    if (ours) {
      ours.push(line);
      continue;
    }
    const targetIndex = words.findIndex((word, i) => (word === '-j' || word === '-g') && i > 1);
    const target = targetIndex === -1 ? undefined : words[targetIndex + 1];
    if (target !== undefined && MESH_CHAINS.includes(target)) jumps.push(line);
  }
  return { tableExists, chains, jumps };
}

/** Splits a rule line into words, keeping double-quoted strings (comments) as one word. */
function tokenize(line: string): string[] {
  const words: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let match = pattern.exec(line); match !== null; match = pattern.exec(line)) {
    words.push(match[1] !== undefined ? `"${match[1]}"` : (match[2] ?? ''));
  }
  return words;
}

interface FamilyCommands {
  /** The iptables command operators would type for this family (used in readable rule text). */
  readonly iptables: string;
  readonly save: string;
  readonly restore: string;
  /** Legacy tables are listed here once they exist; reading it has no side effect. */
  readonly legacyTablesFile: string | undefined;
}

export class IptablesBackend implements RedirectBackend {
  readonly name: BackendName;
  private commands: Promise<Record<IpFamily, FamilyCommands>> | undefined;

  constructor(
    private readonly runner: CommandRunner,
    readonly flavor: IptablesFlavor,
  ) {
    this.name = flavor === 'nft' ? 'iptables' : 'iptables-legacy';
  }

  async install(plan: RedirectPlan): Promise<void> {
    for (const family of [4, 6] as const) {
      if (!familyEnabled(plan, family)) {
        await this.removeFamily(family);
        continue;
      }
      const commands = await this.familyCommands(family);
      const installed = await this.read(family);
      const wanted = iptablesRules(plan, family);
      const lines = ['*nat', ...MESH_CHAINS.map((chain) => `:${chain} - [0:0]`)];
      // Jumps outside our chains survive the flush, so reconcile them one by one: keep one copy of
      // each wanted jump, delete stale or duplicate ones (e.g. from an older agent version).
      const keep = new Map<string, number>();
      for (const jump of wanted.jumps) keep.set(jump, (keep.get(jump) ?? 0) + 1);
      for (const jump of installed.jumps) {
        const count = keep.get(jump) ?? 0;
        if (count > 0) keep.set(jump, count - 1);
        else lines.push(deleteRule(jump));
      }
      for (const [jump, count] of keep) for (let i = 0; i < count; i++) lines.push(jump);
      for (const rules of wanted.chains.values()) lines.push(...rules);
      lines.push('COMMIT', '');
      await this.runner.run([commands.restore, '--noflush'], { input: lines.join('\n') });
    }
  }

  async remove(): Promise<void> {
    for (const family of [4, 6] as const) await this.removeFamily(family);
  }

  async verify(plan: RedirectPlan): Promise<VerifyResult> {
    const expected: string[] = [];
    const actual: string[] = [];
    const orderScopes = new Map<string, { expected: readonly string[]; actual: readonly string[] }>();
    for (const family of [4, 6] as const) {
      const commands = await this.familyCommands(family);
      const label = (line: string) => `${commands.iptables} -t nat ${line}`;
      const installed = await this.read(family);
      if (familyEnabled(plan, family)) {
        const wanted = iptablesRules(plan, family);
        expected.push(...MESH_CHAINS.map((chain) => label(`-N ${chain}`)), ...wanted.jumps.map(label));
        for (const [chain, rules] of wanted.chains) {
          expected.push(...rules.map(label));
          orderScopes.set(label(chain), { expected: rules, actual: installed.chains.get(chain) ?? [] });
        }
      }
      actual.push(...[...installed.chains.keys()].map((chain) => label(`-N ${chain}`)), ...installed.jumps.map(label));
      for (const rules of installed.chains.values()) actual.push(...rules.map(label));
    }
    return compareRules(expected, actual, orderScopes);
  }

  async isInstalled(): Promise<boolean> {
    for (const family of [4, 6] as const) {
      const installed = await this.read(family);
      if (installed.chains.size > 0 || installed.jumps.length > 0) return true;
    }
    return false;
  }

  private async removeFamily(family: IpFamily): Promise<void> {
    const installed = await this.read(family);
    if (installed.chains.size === 0 && installed.jumps.length === 0) return;
    const commands = await this.familyCommands(family);
    const present = [...installed.chains.keys()];
    // Declaring a chain under --noflush empties it, so the chains no longer reference each other
    // and -X can delete them once the jumps into them are gone.
    const lines = [
      '*nat',
      ...present.map((chain) => `:${chain} - [0:0]`),
      ...installed.jumps.map(deleteRule),
      ...present.map((chain) => `-X ${chain}`),
      'COMMIT',
      '',
    ];
    await this.runner.run([commands.restore, '--noflush'], { input: lines.join('\n') });
  }

  private async read(family: IpFamily): Promise<InstalledIptablesRules> {
    const commands = await this.familyCommands(family);
    if (commands.legacyTablesFile !== undefined) {
      // Listing a legacy table creates it (and it can never be removed again), so look first.
      const tables = await this.runner.run(['cat', commands.legacyTablesFile], { allowFailure: true });
      if (!tables.stdout.split('\n').includes('nat')) return { tableExists: false, chains: new Map(), jumps: [] };
    }
    const saved = await this.runner.run([commands.save, '-t', 'nat']);
    return parseIptablesSave(saved.stdout);
  }

  private familyCommands(family: IpFamily): Promise<FamilyCommands> {
    if (this.commands === undefined) {
      const lookup = resolveCommands(this.runner, this.flavor);
      this.commands = lookup;
      // A failed lookup (tool missing) is not cached, so installing the tool and retrying works.
      lookup.catch(() => {
        if (this.commands === lookup) this.commands = undefined;
      });
    }
    return this.commands.then((byFamily) => byFamily[family]);
  }
}

function familyEnabled(plan: RedirectPlan, family: IpFamily): boolean {
  return family === 4 ? plan.ipv4 : plan.ipv6;
}

function deleteRule(appendLine: string): string {
  return `-D${appendLine.slice(2)}`;
}

/**
 * Finds the binaries of the wanted flavour. Debian and Fedora ship `iptables-nft*` and
 * `iptables-legacy*` next to an `iptables` that points at one of them; where only the plain names
 * exist, `iptables --version` says which flavour they are ("(nf_tables)" or "(legacy)").
 */
async function resolveCommands(runner: CommandRunner, flavor: IptablesFlavor): Promise<Record<IpFamily, FamilyCommands>> {
  const resolveFamily = async (family: IpFamily): Promise<FamilyCommands> => {
    const base = family === 4 ? 'iptables' : 'ip6tables';
    const legacyTablesFile = flavor === 'legacy' ? `/proc/net/${family === 4 ? 'ip' : 'ip6'}_tables_names` : undefined;
    const suffixed = `${base}-${flavor}`;
    if (await runner.has(`${suffixed}-restore`)) {
      return { iptables: suffixed, save: `${suffixed}-save`, restore: `${suffixed}-restore`, legacyTablesFile };
    }
    if (await runner.has(`${base}-restore`)) {
      const version = await runner.run([base, '--version'], { allowFailure: true });
      if (iptablesFlavorOfVersion(version.stdout) === flavor) {
        return { iptables: base, save: `${base}-save`, restore: `${base}-restore`, legacyTablesFile };
      }
    }
    throw new Error(
      `${base} with the ${flavor === 'nft' ? 'nf_tables' : 'legacy'} backend is not installed` +
        (runner.netns ? ` (looked inside network namespace ${runner.netns})` : '') +
        '; install the iptables package or choose another backend',
    );
  };
  return { 4: await resolveFamily(4), 6: await resolveFamily(6) };
}

/** "iptables v1.8.9 (nf_tables)" -> 'nft'; "iptables v1.8.9 (legacy)" or older without a tag -> 'legacy'. */
export function iptablesFlavorOfVersion(versionOutput: string): IptablesFlavor | undefined {
  if (!/ip6?tables v\d/.test(versionOutput)) return undefined;
  return versionOutput.includes('nf_tables') ? 'nft' : 'legacy';
}
