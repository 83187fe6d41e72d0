// Chooses the redirection backend: the one named, or on `auto` the one this host already uses.
// Two firewall backends in one namespace see each other's NAT half-way, so guessing wrong matters.
import type { CommandRunner } from './command-runner';
import { IptablesBackend, iptablesFlavorOfVersion, type IptablesFlavor } from './iptables-backend';
import { NftablesBackend } from './nftables-backend';
import type { BackendName, RedirectBackend } from './redirect-backend';

export type BackendChoice = BackendName | 'auto';

export interface SelectedBackend {
  readonly backend: RedirectBackend;
  /** Why this backend, for logs and `meshctl redirect` output. */
  readonly reason: string;
}

export function createBackend(runner: CommandRunner, name: BackendName): RedirectBackend {
  switch (name) {
    case 'iptables':
      return new IptablesBackend(runner, 'nft');
    case 'iptables-legacy':
      return new IptablesBackend(runner, 'legacy');
    case 'nftables':
      return new NftablesBackend(runner);
  }
}

/**
 * On `auto`: the backend already holding our rules (so verify and remove find them); otherwise the
 * iptables flavour already holding anybody's rules (like istio-iptables, which counts rules in both
 * flavours), then the flavour `iptables` itself is, then nftables when no iptables is installed.
 */
export async function selectBackend(runner: CommandRunner, choice: BackendChoice): Promise<SelectedBackend> {
  if (choice !== 'auto') return { backend: createBackend(runner, choice), reason: `${choice} (chosen explicitly)` };

  const available = await availableBackends(runner);
  if (available.length === 0) {
    throw new Error(
      'no redirection backend found' + (runner.netns ? ` in network namespace ${runner.netns}` : '') +
        ': install iptables or nftables',
    );
  }

  for (const name of available) {
    const backend = createBackend(runner, name);
    if (await backend.isInstalled()) return { backend, reason: `${name} (it holds the mesh rules already)` };
  }

  const counts = new Map<IptablesFlavor, number>();
  if (available.includes('iptables')) counts.set('nft', await countIptablesRules(runner, 'nft'));
  if (available.includes('iptables-legacy')) counts.set('legacy', await countIptablesRules(runner, 'legacy'));
  const nftRules = counts.get('nft') ?? 0;
  const legacyRules = counts.get('legacy') ?? 0;
  if (nftRules > 0 && legacyRules === 0) {
    return { backend: createBackend(runner, 'iptables'), reason: `iptables (nf_tables holds ${nftRules} rules, legacy none)` };
  }
  if (legacyRules > 0 && nftRules === 0) {
    return {
      backend: createBackend(runner, 'iptables-legacy'),
      reason: `iptables-legacy (legacy holds ${legacyRules} rules, nf_tables none)`,
    };
  }
  const plain = await plainIptablesFlavor(runner);
  if (plain !== undefined) {
    const name: BackendName = plain === 'nft' ? 'iptables' : 'iptables-legacy';
    return { backend: createBackend(runner, name), reason: `${name} (what \`iptables\` runs on this host)` };
  }
  const first = available[0] as BackendName;
  return { backend: createBackend(runner, first), reason: `${first} (the only backend installed)` };
}

/** Every backend whose tools are installed and that holds mesh rules now. */
export async function installedBackends(runner: CommandRunner): Promise<RedirectBackend[]> {
  const found: RedirectBackend[] = [];
  for (const name of await availableBackends(runner)) {
    const backend = createBackend(runner, name);
    if (await backend.isInstalled()) found.push(backend);
  }
  return found;
}

/** Backends whose tools exist where the runner runs commands, in order of preference. */
export async function availableBackends(runner: CommandRunner): Promise<BackendName[]> {
  const plain = await plainIptablesFlavor(runner);
  const available: BackendName[] = [];
  if ((await runner.has('iptables-nft-restore')) || plain === 'nft') available.push('iptables');
  if ((await runner.has('iptables-legacy-restore')) || plain === 'legacy') available.push('iptables-legacy');
  if (await runner.has('nft')) available.push('nftables');
  return available;
}

async function plainIptablesFlavor(runner: CommandRunner): Promise<IptablesFlavor | undefined> {
  if (!(await runner.has('iptables'))) return undefined;
  const version = await runner.run(['iptables', '--version'], { allowFailure: true });
  return iptablesFlavorOfVersion(version.stdout);
}

async function countIptablesRules(runner: CommandRunner, flavor: IptablesFlavor): Promise<number> {
  let total = 0;
  for (const base of ['iptables', 'ip6tables']) {
    if (flavor === 'legacy') {
      // Listing a legacy table creates it; without any table there is nothing to count.
      const file = `/proc/net/${base === 'iptables' ? 'ip' : 'ip6'}_tables_names`;
      const tables = await runner.run(['cat', file], { allowFailure: true });
      if (tables.stdout.trim() === '') continue;
    }
    const suffixed = `${base}-${flavor}-save`;
    const save = (await runner.has(suffixed)) ? suffixed : `${base}-save`;
    // Without -t, the save tools print only tables that exist and create none.
    const result = await runner.run([save], { allowFailure: true });
    total += result.stdout.split('\n').filter((line) => line.startsWith('-A ')).length;
  }
  return total;
}
