// Redirection with nftables: one table of our own, `inet mesh`, replaced atomically with `nft -f`
// and deleted whole on removal, so no rule of anybody else's is ever edited.
//
// Layout (one inet table serves IPv4 and IPv6; a disabled family is filtered at the hook chains):
//   chain output     (nat hook output, priority -100):     tcp SYN -> jump outbound
//   chain prerouting (nat hook prerouting, priority -100): tcp SYN to a local address -> jump inbound
// Only connection openers jump: see the iptables backend for the mid-stream pickup this prevents.
//   chain outbound: return agent uid, loopback, excluded CIDRs and ports; else redirect to :outbound
//   chain inbound:  return never-captured ports (SSH first); captured ports redirect to :inbound
import { nftCidrText, type Cidr } from './cidr';
import type { CommandRunner } from './command-runner';
import { compareRules, type RedirectBackend, type VerifyResult } from './redirect-backend';
import type { RedirectPlan } from './redirect-plan';

export const NFT_FAMILY = 'inet';
export const NFT_TABLE = 'mesh';
const TABLE = `${NFT_FAMILY} ${NFT_TABLE}`;

/** A TCP segment with SYN set and ACK, FIN, RST clear, as `nft list` prints it (the tcp match implies l4proto tcp). */
const TCP_SYN = 'tcp flags syn / fin,syn,rst,ack';

/** Same priority as iptables' nat chains (NF_IP_PRI_NAT_DST). */
const NAT_PRIORITY = -100;

/** A chain of our table: a base chain has a hook header, a regular chain only rules. */
export interface NftChain {
  readonly name: string;
  /** e.g. `type nat hook output priority -100; policy accept;` (numeric priority). */
  readonly header?: string;
  readonly rules: readonly string[];
}

/** The chains a plan needs, in definition order, with rules exactly as `nft list` prints them. */
export function nftablesChains(plan: RedirectPlan): NftChain[] {
  // Inside an inet table a rule without a family match sees both families; with one family
  // disabled, the hook chains let only the other one through.
  const familyMatch = plan.ipv4 && plan.ipv6 ? '' : plan.ipv4 ? 'meta nfproto ipv4 ' : 'meta nfproto ipv6 ';
  const cidrRule = (cidr: Cidr) => `${cidr.family === 4 ? 'ip' : 'ip6'} daddr ${nftCidrText(cidr)} return`;
  const inboundRedirect = `redirect to :${plan.inboundPort}`;
  return [
    {
      name: 'output',
      header: `type nat hook output priority ${NAT_PRIORITY}; policy accept;`,
      rules: [`${familyMatch}${TCP_SYN} jump outbound`],
    },
    {
      name: 'prerouting',
      header: `type nat hook prerouting priority ${NAT_PRIORITY}; policy accept;`,
      // Only connections to this host: forwarded traffic (containers, routed hosts) is not ours.
      rules: [`${familyMatch}fib daddr type local ${TCP_SYN} jump inbound`],
    },
    {
      name: 'outbound',
      rules: [
        // The agent's own connections must leave untouched or they would loop back to it.
        `meta skuid ${plan.agentUid} return`,
        // Loopback covers 127.0.0.0/8, ::1 and the host's own addresses: local traffic is not meshed.
        'oifname "lo" return',
        ...plan.excludeOutboundCidrs
          .filter((cidr) => (cidr.family === 4 ? plan.ipv4 : plan.ipv6))
          .map(cidrRule),
        ...plan.excludeOutboundPorts.map((port) => `tcp dport ${port} return`),
        `meta l4proto tcp redirect to :${plan.outboundPort}`,
      ],
    },
    {
      name: 'inbound',
      rules: [
        ...plan.neverCaptureInboundPorts.map((port) => `tcp dport ${port} return`),
        ...(plan.inbound.mode === 'all'
          ? [`meta l4proto tcp ${inboundRedirect}`]
          : plan.inbound.ports.map((port) => `tcp dport ${port} ${inboundRedirect}`)),
      ],
    },
  ];
}

/**
 * The `nft -f` script that makes our table equal to the plan in one transaction: declaring the
 * table first makes the delete succeed whether or not it existed, and the new definition follows.
 */
export function nftablesScript(plan: RedirectPlan): string {
  const lines = [`table ${TABLE}`, `delete table ${TABLE}`, `table ${TABLE} {`];
  for (const chain of nftablesChains(plan)) {
    lines.push(`\tchain ${chain.name} {`);
    if (chain.header) lines.push(`\t\t${chain.header}`);
    for (const rule of chain.rules) lines.push(`\t\t${rule}`);
    lines.push('\t}');
  }
  lines.push('}', '');
  return lines.join('\n');
}

/** Our table as found in `nft list table inet mesh` output. */
export interface InstalledNftTable {
  readonly chains: readonly NftChain[];
  /** Anything else found in the table (sets, maps, flowtables), by its first line. */
  readonly otherObjects: readonly string[];
}

// nft prints standard priorities by name where one applies to the hook (nft >= 0.9.6); compare
// numbers so that either spelling matches.
const PRIORITY_NAMES: Readonly<Record<string, number>> = {
  raw: -300,
  mangle: -150,
  dstnat: -100,
  filter: 0,
  security: 50,
  srcnat: 100,
};

function normalizeHeader(header: string): string {
  return header.replace(/\bpriority ([a-z]+)(\s*[+-]\s*\d+)?;/, (whole, name: string, offset: string | undefined) => {
    const base = PRIORITY_NAMES[name];
    if (base === undefined) return whole;
    const delta = offset ? Number(offset.replace(/\s+/g, '')) : 0;
    return `priority ${base + delta};`;
  });
}

export function parseNftTable(listing: string): InstalledNftTable {
  const chains: NftChain[] = [];
  const otherObjects: string[] = [];
  let depth = 0;
  let current: { name: string; header?: string; rules: string[] } | undefined;
  for (const rawLine of listing.split('\n')) {
    const line = rawLine.trim();
    if (line === '') continue;
    if (line.endsWith('{')) {
      depth++;
      if (depth === 2) {
        const chain = /^chain (\S+) \{$/.exec(line);
        if (chain?.[1] !== undefined) current = { name: chain[1], rules: [] };
        else otherObjects.push(line.slice(0, -1).trim());
      }
      continue;
    }
    if (line === '}') {
      if (depth === 2 && current) {
        chains.push(current);
        current = undefined;
      }
      depth--;
      continue;
    }
    if (depth === 2 && current) {
      if (/^type \S+ hook /.test(line)) current.header = normalizeHeader(line);
      else current.rules.push(line);
    }
  }
  return { chains, otherObjects };
}

export class NftablesBackend implements RedirectBackend {
  readonly name = 'nftables' as const;

  constructor(private readonly runner: CommandRunner) {}

  async install(plan: RedirectPlan): Promise<void> {
    await this.runner.run(['nft', '-f', '-'], { input: nftablesScript(plan) });
  }

  async remove(): Promise<void> {
    await this.runner.run(['nft', '-f', '-'], { input: `table ${TABLE}\ndelete table ${TABLE}\n` });
  }

  async verify(plan: RedirectPlan): Promise<VerifyResult> {
    const expected = describeTable(nftablesChains(plan), []);
    const installed = await this.read();
    const actual = installed ? describeTable(installed.chains, installed.otherObjects) : [];
    const orderScopes = new Map<string, { expected: readonly string[]; actual: readonly string[] }>();
    for (const chain of nftablesChains(plan)) {
      const found = installed?.chains.find((c) => c.name === chain.name);
      orderScopes.set(`chain ${TABLE} ${chain.name}`, { expected: chain.rules, actual: found?.rules ?? [] });
    }
    return compareRules(expected, actual, orderScopes);
  }

  async isInstalled(): Promise<boolean> {
    const tables = await this.runner.run(['nft', 'list', 'tables', NFT_FAMILY]);
    return tables.stdout.split('\n').some((line) => line.trim() === `table ${TABLE}`);
  }

  private async read(): Promise<InstalledNftTable | undefined> {
    if (!(await this.isInstalled())) return undefined;
    const listing = await this.runner.run(['nft', 'list', 'table', NFT_FAMILY, NFT_TABLE]);
    return parseNftTable(listing.stdout);
  }
}

/** Readable items for verify: the table, each chain (with its hook), each rule with its chain. */
function describeTable(chains: readonly NftChain[], otherObjects: readonly string[]): string[] {
  const items = [`table ${TABLE}`];
  for (const chain of chains) {
    items.push(chain.header ? `chain ${TABLE} ${chain.name} { ${chain.header} }` : `chain ${TABLE} ${chain.name}`);
  }
  for (const chain of chains) {
    for (const rule of chain.rules) items.push(`rule ${TABLE} ${chain.name}: ${rule}`);
  }
  items.push(...otherObjects.map((object) => `${TABLE}: ${object}`));
  return items;
}
