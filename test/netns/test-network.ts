// Simulated hosts for end-to-end tests: one network namespace per host, joined by veth pairs to a
// bridge in a namespace of its own, so the root namespace's devices and rules are never touched.
import { spawn as spawnProcess, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { createCommandRunner, systemToolPath, type CommandResult } from '../../agent/redirect/command-runner';

export interface TestHost {
  /** The name the test gave it (`a`, `b`, ...). */
  readonly name: string;
  /** Its network namespace, for `ip netns exec` or `meshctl redirect --netns`. */
  readonly namespace: string;
  /** IPv4 address on eth0 (prefix length `prefixLength`). */
  readonly ip: string;
  /** IPv6 ULA address on eth0 (/64), when the network was created with `ipv6: true`. */
  readonly ip6: string | undefined;
}

export interface ExecOptions {
  /** Kill the command and reject after this long (default 20 s). */
  readonly timeoutMs?: number;
  readonly input?: string;
  /** Resolve with a non-zero exit code instead of rejecting. */
  readonly allowFailure?: boolean;
}

export interface SpawnOptions {
  /** Run as this uid (and `gid`, default the same number) through setpriv, groups cleared. */
  readonly uid?: number;
  readonly gid?: number;
  /** Environment of the program (default: the test's own, with a PATH free of node_modules/.bin). */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly stdio?: StdioOptions;
}

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
const SETUP_TIMEOUT_MS = 20_000;
const LINK_UP_DEADLINE_MS = 10_000;
const KILL_GRACE_MS = 3_000;

let networksCreated = 0;
/** Namespaces and processes not yet cleaned up, for the last-resort exit hook. */
const liveNamespaces = new Set<string>();
const liveProcesses = new Set<ChildProcess>();
let exitHookInstalled = false;

export async function createTestNetwork<H extends string>(options: TestNetworkOptions<H>): Promise<TestNetwork<H>> {
  const names = [...options.hosts];
  if (names.length === 0 || names.length > 200) throw new Error('createTestNetwork: give 1..200 host names');
  for (const name of names) {
    if (!HOST_NAME.test(name)) throw new Error(`createTestNetwork: host name "${name}" must match ${HOST_NAME}`);
  }
  if (new Set(names).size !== names.length) throw new Error('createTestNetwork: host names must be unique');
  installExitHook();

  const sequence = ++networksCreated;
  const id = `mt${process.pid}n${sequence}`;
  // Each network's bridge is isolated in its own namespace, so overlapping subnets could not
  // collide; distinct ones still make packet captures and logs of parallel tests unambiguous.
  const subnetIndex = (process.pid * 64 + sequence) & 0xffff;
  const v4Prefix = `10.${subnetIndex >> 8}.${subnetIndex & 0xff}`;
  const v6Prefix = `fd6d:6573:${subnetIndex.toString(16)}:1`;
  const ipv6 = options.ipv6 ?? false;
  const bridgeNamespace = `${id}-br`;

  const hostList: TestHost[] = names.map((name, i) => ({
    name,
    namespace: `${id}-${name}`,
    ip: `${v4Prefix}.${i + 1}`,
    ip6: ipv6 ? `${v6Prefix}::${(i + 1).toString(16)}` : undefined,
  }));
  const hosts = Object.fromEntries(hostList.map((host) => [host.name, host])) as Record<H, TestHost>;
  const namespaces = [bridgeNamespace, ...hostList.map((host) => host.namespace)];
  const spawned = new Set<ChildProcess>();
  let destroyed: Promise<void> | undefined;

  const root = createCommandRunner({ timeoutMs: SETUP_TIMEOUT_MS });
  const resolve = (host: TestHost | H): TestHost => {
    const found = typeof host === 'string' ? hosts[host] : host;
    if (!found || hosts[found.name as H] !== found) throw new Error(`no host ${JSON.stringify(host)} in ${id}`);
    return found;
  };

  const destroy = (): Promise<void> => {
    destroyed ??= (async () => {
      await Promise.all([...spawned].map((child) => stopProcess(child)));
      for (const namespace of namespaces) {
        if (!liveNamespaces.has(namespace)) continue;
        await root.run(['ip', 'netns', 'delete', namespace], { allowFailure: true });
        liveNamespaces.delete(namespace);
      }
    })();
    return destroyed;
  };

  const network: TestNetwork<H> = {
    id,
    hosts,
    subnet: `${v4Prefix}.0/24`,
    subnet6: ipv6 ? `${v6Prefix}::/64` : undefined,
    bridgeNamespace,
    exec(host, command, execOptions = {}) {
      const runner = createCommandRunner({ netns: resolve(host).namespace, timeoutMs: execOptions.timeoutMs ?? 20_000 });
      return runner.run(command, { input: execOptions.input, allowFailure: execOptions.allowFailure });
    },
    spawn(host, command, spawnOptions = {}) {
      if (destroyed) throw new Error(`test network ${id} is destroyed`);
      const asUser =
        spawnOptions.uid === undefined
          ? []
          : ['setpriv', `--reuid=${spawnOptions.uid}`, `--regid=${spawnOptions.gid ?? spawnOptions.uid}`, '--clear-groups'];
      const env = spawnOptions.env ?? { ...process.env, PATH: systemToolPath() };
      const child = spawnProcess('ip', ['netns', 'exec', resolve(host).namespace, ...asUser, ...command], {
        env,
        cwd: spawnOptions.cwd,
        stdio: spawnOptions.stdio ?? ['ignore', 'pipe', 'pipe'],
      });
      spawned.add(child);
      liveProcesses.add(child);
      child.once('exit', () => {
        spawned.delete(child);
        liveProcesses.delete(child);
      });
      return child;
    },
    destroy,
  };

  try {
    for (const namespace of namespaces) {
      await root.run(['ip', 'netns', 'add', namespace]);
      liveNamespaces.add(namespace);
    }
    // Every command below names its namespace with -n, and veth ends are created straight into
    // their namespaces, so no device ever exists in the root namespace.
    const bridgeCommands = ['link set lo up', 'link add br0 type bridge', 'link set br0 up'];
    hostList.forEach((host, i) => {
      bridgeCommands.push(`link add v${i} type veth peer name eth0 netns ${host.namespace}`, `link set v${i} master br0 up`);
    });
    await root.run(['ip', '-n', bridgeNamespace, '-batch', '-'], { input: bridgeCommands.join('\n') + '\n' });
    for (const host of hostList) {
      const hostCommands = ['link set lo up', `addr add ${host.ip}/24 dev eth0`];
      // nodad: duplicate address detection would hold the address "tentative" (unusable) for
      // about a second; the addresses are unique by construction.
      if (host.ip6) hostCommands.push(`addr add ${host.ip6}/64 dev eth0 nodad`);
      hostCommands.push('link set eth0 up');
      await root.run(['ip', '-n', host.namespace, '-batch', '-'], { input: hostCommands.join('\n') + '\n' });
    }
    await waitForLinks(root, bridgeNamespace, hostList);
  } catch (error) {
    await destroy();
    throw error;
  }
  return network;
}

/** Polls until every host's eth0 and its bridge port report carrier, bounded by count and time. */
async function waitForLinks(
  root: ReturnType<typeof createCommandRunner>,
  bridgeNamespace: string,
  hosts: readonly TestHost[],
): Promise<void> {
  const deadline = Date.now() + LINK_UP_DEADLINE_MS;
  for (let attempt = 0; attempt < 500; attempt++) {
    const pending: string[] = [];
    const bridge = await root.run(['ip', '-n', bridgeNamespace, '-o', 'link', 'show', 'master', 'br0']);
    const upPorts = bridge.stdout.split('\n').filter((line) => /[<,]LOWER_UP[,>]/.test(line)).length;
    if (upPorts < hosts.length) pending.push(`bridge ports up: ${upPorts}/${hosts.length}`);
    for (const host of hosts) {
      const link = await root.run(['ip', '-n', host.namespace, '-o', 'link', 'show', 'dev', 'eth0']);
      if (!/[<,]LOWER_UP[,>]/.test(link.stdout)) pending.push(`${host.name}: eth0 has no carrier`);
    }
    if (pending.length === 0) return;
    if (Date.now() > deadline) throw new Error(`test network links did not come up: ${pending.join('; ')}`);
    await new Promise((done) => setTimeout(done, 20));
  }
  throw new Error('test network links did not come up within 500 polls');
}

/** SIGTERM, then SIGKILL after a grace period; resolves once the process has exited. */
function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    // If even SIGKILL does not produce an exit event (a zombie reaped elsewhere), stop waiting.
    const giveUp = setTimeout(finish, KILL_GRACE_MS * 2);
    function finish() {
      clearTimeout(killTimer);
      clearTimeout(giveUp);
      done();
    }
    child.once('exit', finish);
    child.kill('SIGTERM');
  });
}

/**
 * Last resort when a test process exits without its teardown running (a crash, ava's timeout):
 * namespaces would otherwise outlive the run. Synchronous because 'exit' handlers cannot wait.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of liveProcesses) {
      if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          // Already gone between the check and the kill.
        }
      }
    }
    for (const namespace of liveNamespaces) {
      spawnSync('ip', ['netns', 'delete', namespace], { stdio: 'ignore', timeout: 5_000 });
    }
  });
}

/**
 * Why namespace tests cannot run here, or undefined when they can: they need root, a working
 * `ip netns`, and the listed tools (e.g. nft, iptables-legacy, setpriv).
 */
export function netnsUnavailableReason(tools: readonly string[] = []): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespace tests need root';
  const env = { ...process.env, PATH: systemToolPath() };
  const ip = spawnSync('ip', ['netns', 'list'], { env, encoding: 'utf8', timeout: 5_000 });
  if (ip.error || ip.status !== 0) return `\`ip netns\` is unavailable (${ip.error?.message ?? ip.stderr.trim()})`;
  for (const tool of ['setpriv', ...tools]) {
    const found = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { env, timeout: 5_000 });
    if (found.status !== 0) return `${tool} is not installed (packaging/setup-dev.sh installs it)`;
  }
  return undefined;
}
