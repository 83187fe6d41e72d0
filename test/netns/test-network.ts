// Simulated hosts for end-to-end tests: names, addresses and namespace names unique per test run,
// over the product's host network (lib/netns), which keeps the root namespace untouched.
import type { ChildProcess } from 'node:child_process';
import type { CommandResult } from '../../agent/redirect/command-runner';
import { createHostNetwork, type ExecOptions, type HostSpec, type SpawnOptions as HostSpawnOptions } from '../../lib/netns/host-network';

export { netnsUnavailableReason } from '../../lib/netns/netns-support';
export type { ExecOptions } from '../../lib/netns/host-network';

export interface TestHost extends HostSpec {
  /** The name the test gave it (`a`, `b`, ...). */
  readonly name: string;
  /** IPv6 ULA address on eth0 (/64), when the network was created with `ipv6: true`. */
  readonly ip6: string | undefined;
}

export type SpawnOptions = Omit<HostSpawnOptions, 'capabilities' | 'detached'>;

export interface TestNetwork<H extends string> {
  /** Unique per test network; part of every namespace name. */
  readonly id: string;
  readonly hosts: Readonly<Record<H, TestHost>>;
  /** The IPv4 /24 all hosts share, e.g. `10.23.7.0/24`, and the IPv6 /64 when enabled. */
  readonly subnet: string;
  readonly subnet6: string | undefined;
  readonly bridgeNamespace: string;
  /** Runs a command to completion inside the host's namespace, output captured. */
  exec(host: TestHost | H, command: readonly string[], options?: ExecOptions): Promise<CommandResult>;
  /**
   * Starts a long-running program inside the host's namespace. `ip netns exec` and setpriv both
   * exec, so the returned pid is the program's own. destroy() kills it.
   */
  spawn(host: TestHost | H, command: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Kills every spawned program (by pid) and deletes every namespace; safe to call twice. */
  destroy(): Promise<void>;
}

export interface TestNetworkOptions<H extends string> {
  readonly hosts: readonly H[];
  readonly ipv6?: boolean;
}

const HOST_NAME = /^[a-z][a-z0-9]{0,9}$/;

let networksCreated = 0;

export async function createTestNetwork<H extends string>(options: TestNetworkOptions<H>): Promise<TestNetwork<H>> {
  const names = [...options.hosts];
  if (names.length === 0 || names.length > 200) throw new Error('createTestNetwork: give 1..200 host names');
  for (const name of names) {
    if (!HOST_NAME.test(name)) throw new Error(`createTestNetwork: host name "${name}" must match ${HOST_NAME}`);
  }
  if (new Set(names).size !== names.length) throw new Error('createTestNetwork: host names must be unique');

  const sequence = ++networksCreated;
  const id = `mt${process.pid}n${sequence}`;
  // Each network's bridge is isolated in its own namespace, so overlapping subnets could not
  // collide; distinct ones still make packet captures and logs of parallel tests unambiguous.
  const subnetIndex = (process.pid * 64 + sequence) & 0xffff;
  const v4Prefix = `10.${subnetIndex >> 8}.${subnetIndex & 0xff}`;
  const v6Prefix = `fd6d:6573:${subnetIndex.toString(16)}:1`;
  const ipv6 = options.ipv6 ?? false;

  const hostList: TestHost[] = names.map((name, i) => ({
    name,
    namespace: `${id}-${name}`,
    ip: `${v4Prefix}.${i + 1}`,
    ip6: ipv6 ? `${v6Prefix}::${(i + 1).toString(16)}` : undefined,
  }));
  const hosts = Object.fromEntries(hostList.map((host) => [host.name, host])) as Record<H, TestHost>;
  const network = await createHostNetwork({ bridgeNamespace: `${id}-br`, hosts: hostList, prefixLength: 24 });
  const resolve = (host: TestHost | H): TestHost => {
    const found = typeof host === 'string' ? hosts[host] : host;
    if (!found || hosts[found.name as H] !== found) throw new Error(`no host ${JSON.stringify(host)} in ${id}`);
    return found;
  };

  return {
    id,
    hosts,
    subnet: `${v4Prefix}.0/24`,
    subnet6: ipv6 ? `${v6Prefix}::/64` : undefined,
    bridgeNamespace: network.bridgeNamespace,
    exec: (host, command, execOptions) => network.exec(resolve(host), command, execOptions),
    spawn: (host, command, spawnOptions) => network.spawn(resolve(host), command, spawnOptions),
    destroy: () => network.destroy(),
  };
}
