// Simulated hosts on one machine: one network namespace per host, joined by veth pairs to a bridge
// in a namespace of its own, so the root namespace's devices and rules are never touched.
import { spawn as spawnProcess, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { createCommandRunner, systemToolPath, type CommandResult, type CommandRunner } from '../../agent/redirect/command-runner';

export interface HostSpec {
  /** The name callers use for it (`a`, `host-a`, ...). */
  readonly name: string;
  /** Its network namespace, for `ip netns exec` or `meshctl redirect --netns`. */
  readonly namespace: string;
  /** IPv4 address on eth0, with the network's `prefixLength`. */
  readonly ip: string;
  /** IPv6 address on eth0 (/64), if any. */
  readonly ip6?: string | undefined;
}

export interface HostNetworkOptions<S extends HostSpec> {
  readonly bridgeNamespace: string;
  readonly hosts: readonly S[];
  /** IPv4 prefix length of every host's address (default 24). */
  readonly prefixLength?: number;
  /** Kill spawned programs and delete the namespaces when this process exits without destroy(). */
  readonly cleanupOnExit?: boolean;
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
  /** Capabilities kept across the uid change (inheritable and ambient), e.g. `['net_admin']`. */
  readonly capabilities?: readonly string[];
  /** Environment of the program (default: this process's, with a PATH free of node_modules/.bin). */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly stdio?: StdioOptions;
  /** A process group of its own, so a terminal's Ctrl-C reaches only the caller, which stops it in order. */
  readonly detached?: boolean;
}

export interface HostNetwork<S extends HostSpec> {
  readonly hosts: readonly S[];
  readonly bridgeNamespace: string;
  /** Every namespace it created, bridge first. */
  readonly namespaces: readonly string[];
  /** Runs a command to completion inside the host's namespace, output captured. */
  exec(host: S, command: readonly string[], options?: ExecOptions): Promise<CommandResult>;
  /**
   * Starts a long-running program inside the host's namespace. `ip netns exec` and setpriv both
   * exec, so the returned pid is the program's own. destroy() stops it.
   */
  spawn(host: S, command: readonly string[], options?: SpawnOptions): ChildProcess;
  /** Stops every spawned program still running (by pid) and deletes every namespace; safe to call twice. */
  destroy(): Promise<void>;
}

const SETUP_TIMEOUT_MS = 20_000;
const LINK_UP_DEADLINE_MS = 10_000;
const KILL_GRACE_MS = 3_000;
const NAMESPACE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Namespaces and processes not yet cleaned up, for the last-resort exit hook. */
const liveNamespaces = new Set<string>();
const liveProcesses = new Set<ChildProcess>();
let exitHookInstalled = false;

export async function createHostNetwork<S extends HostSpec>(options: HostNetworkOptions<S>): Promise<HostNetwork<S>> {
  const hostList = [...options.hosts];
  const prefixLength = options.prefixLength ?? 24;
  const bridgeNamespace = options.bridgeNamespace;
  const namespaces = [bridgeNamespace, ...hostList.map((host) => host.namespace)];
  for (const namespace of namespaces) {
    if (!NAMESPACE_NAME.test(namespace)) throw new Error(`createHostNetwork: namespace name "${namespace}" must match ${NAMESPACE_NAME}`);
  }
  if (new Set(namespaces).size !== namespaces.length) throw new Error('createHostNetwork: namespace names must be unique');
  if (hostList.length === 0 || hostList.length > 200) throw new Error('createHostNetwork: give 1..200 hosts');
  if (options.cleanupOnExit ?? true) installExitHook();

  const spawned = new Set<ChildProcess>();
  let destroyed: Promise<void> | undefined;
  const root = createCommandRunner({ timeoutMs: SETUP_TIMEOUT_MS });
  const known = new Set<S>(hostList);
  const check = (host: S): S => {
    if (!known.has(host)) throw new Error(`host ${JSON.stringify(host.name)} is not part of the network of ${bridgeNamespace}`);
    return host;
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

  const network: HostNetwork<S> = {
    hosts: hostList,
    bridgeNamespace,
    namespaces,
    exec(host, command, execOptions = {}) {
      const runner = createCommandRunner({ netns: check(host).namespace, timeoutMs: execOptions.timeoutMs ?? 20_000 });
      return runner.run(command, { input: execOptions.input, allowFailure: execOptions.allowFailure });
    },
    spawn(host, command, spawnOptions = {}) {
      if (destroyed) throw new Error(`the network of ${bridgeNamespace} is destroyed`);
      const child = spawnProcess('ip', ['netns', 'exec', check(host).namespace, ...asUser(spawnOptions), ...command], {
        env: spawnOptions.env ?? { ...process.env, PATH: systemToolPath() },
        cwd: spawnOptions.cwd,
        stdio: spawnOptions.stdio ?? ['ignore', 'pipe', 'pipe'],
        detached: spawnOptions.detached ?? false,
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
      const hostCommands = ['link set lo up', `addr add ${host.ip}/${prefixLength} dev eth0`];
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

function asUser(options: SpawnOptions): string[] {
  if (options.uid === undefined) return [];
  const command = ['setpriv', `--reuid=${options.uid}`, `--regid=${options.gid ?? options.uid}`, '--clear-groups'];
  const caps = (options.capabilities ?? []).map((cap) => `+${cap}`).join(',');
  if (caps !== '') command.push(`--inh-caps=${caps}`, `--ambient-caps=${caps}`);
  return command;
}

/** Polls until every host's eth0 and its bridge port report carrier, bounded by count and time. */
async function waitForLinks(root: CommandRunner, bridgeNamespace: string, hosts: readonly HostSpec[]): Promise<void> {
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
    if (Date.now() > deadline) throw new Error(`host network links did not come up: ${pending.join('; ')}`);
    await new Promise((done) => setTimeout(done, 20));
  }
  throw new Error('host network links did not come up within 500 polls');
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited (or clearly will not say so). */
export function stopProcess(child: ChildProcess, graceMs: number = KILL_GRACE_MS): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const killTimer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    // If even SIGKILL does not produce an exit event (a zombie reaped elsewhere), stop waiting.
    const giveUp = setTimeout(finish, graceMs * 2);
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
 * Last resort when this process exits without destroy() having run (a crash, a test runner's
 * timeout): namespaces would otherwise outlive it. Synchronous because 'exit' handlers cannot wait.
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
