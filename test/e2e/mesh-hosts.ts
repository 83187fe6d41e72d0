// A whole mesh on network-namespaced hosts for e2e tests: mesh-server in its own host, mesh-agents
// as uid 1337 with iptables redirection, apps, config edits, restarts, and cleanup on any outcome.
import type { ChildProcess } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import test from 'ava';
import { stringify } from 'yaml';
import { waitForExit } from '../netns/tcp-probe';
import { createTestNetwork, type SpawnOptions, type TestHost, type TestNetwork } from '../netns/test-network';
import { eventually } from '../support/eventually';
import { LogTail } from './log-tail';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** Programs run from source through tsx, so a test sees the tree as it is, not the last build. */
export const NODE_TS: readonly string[] = [process.execPath, '--import', 'tsx'];
export const AGENT_UID = 1337;
export const XDS_PORT = 15010;
export const READINESS_PORT = 15021;
/** tsx compiles the programs on start; on a busy 2-core machine that takes a while. */
const START_DEADLINE_MS = 90_000;
/** A program asked to stop gets this long before SIGKILL. */
const STOP_GRACE_MS = 10_000;

/** A long-running app: `node -e source ...args` in `host`; ready once it logs `{"msg":"listening"}`. */
export interface AppSpec<H extends string> {
  readonly host: H;
  /** Unique in the mesh; `app(name)` returns its log. */
  readonly name: string;
  readonly source: string;
  readonly args?: readonly string[];
}

export interface MeshHostsOptions<H extends string> {
  /** Every host, in the order their addresses are given out. */
  readonly hosts: readonly H[];
  /** Where mesh-server runs; it has no agent. */
  readonly server: H;
  /** Hosts that run a mesh-agent. */
  readonly agents: readonly H[];
  /** The config directory's files (name to Istio YAML), once addresses are known. */
  readonly config: (hosts: Readonly<Record<H, TestHost>>) => Readonly<Record<string, string>>;
  /** Apps started before the agents. */
  readonly apps?: (hosts: Readonly<Record<H, TestHost>>) => readonly AppSpec<H>[];
  /** Fields of a host's agent.yaml on top of server, node, stateDir and the iptables backend. */
  readonly agentConfig?: (host: H, hosts: Readonly<Record<H, TestHost>>) => Record<string, unknown>;
  /** Default `info`; `debug` adds per-connection close records (bytes, reset). */
  readonly agentLogLevel?: 'info' | 'debug';
  /** More mesh-server flags (e.g. `--log-level debug`). */
  readonly serverArgs?: readonly string[];
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Readiness {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

interface AgentProcess {
  readonly dir: string;
  log: LogTail;
}

/**
 * One mesh per test file: started by the first test that asks (so a skipped file starts nothing),
 * shared by the file's serial tests, destroyed after the last one whatever happened.
 */
export function meshPerFile<H extends string>(options: MeshHostsOptions<H>): () => Promise<MeshHosts<H>> {
  let started: Promise<MeshHosts<H>> | undefined;
  test.after.always('destroy the mesh hosts', async () => {
    const mesh = await started?.catch(() => undefined);
    await mesh?.destroy();
  });
  return () => (started ??= startMeshHosts(options));
}

/** Creates the network, writes the config, starts server, apps and agents; cleans up itself if any step fails. */
export async function startMeshHosts<H extends string>(options: MeshHostsOptions<H>): Promise<MeshHosts<H>> {
  for (const agent of options.agents) {
    if (!options.hosts.includes(agent)) throw new Error(`startMeshHosts: agent host "${agent}" is not in hosts [${options.hosts.join(', ')}]`);
    if (agent === options.server) throw new Error(`startMeshHosts: "${agent}" runs mesh-server and cannot also run an agent`);
  }
  if (!options.hosts.includes(options.server)) throw new Error(`startMeshHosts: server host "${options.server}" is not in hosts [${options.hosts.join(', ')}]`);
  const network = await createTestNetwork<H>({ hosts: options.hosts });
  const mesh = new MeshHosts(network, options);
  try {
    await mesh.setUp();
  } catch (error) {
    await mesh.destroy();
    throw error;
  }
  return mesh;
}

export class MeshHosts<H extends string> {
  readonly hosts: Readonly<Record<H, TestHost>>;
  /** The temporary tree: `config/` (mesh-server's), `agent-HOST/` (agent.yaml and `state/`). */
  baseDir = '';
  configDir = '';
  private server: LogTail | undefined;
  private readonly agents = new Map<H, AgentProcess>();
  private readonly apps = new Map<string, LogTail>();
  private writes = 0;
  private destroyed: Promise<void> | undefined;

  constructor(
    readonly network: TestNetwork<H>,
    private readonly options: MeshHostsOptions<H>,
  ) {
    this.hosts = network.hosts;
  }

  /** The xDS address agents are given. */
  get serverAddress(): string {
    return `${this.hosts[this.options.server].ip}:${XDS_PORT}`;
  }

  /** @internal startMeshHosts's steps. */
  async setUp(): Promise<void> {
    this.baseDir = await mkdtemp(path.join(os.tmpdir(), `mesh-e2e-${this.network.id}-`));
    // Agents run as uid 1337 and must reach their own directories below.
    await chmod(this.baseDir, 0o755);
    this.configDir = path.join(this.baseDir, 'config');
    await mkdir(this.configDir);
    for (const [file, content] of Object.entries(this.options.config(this.hosts))) await this.writeConfig(file, content);
    const apps = this.options.apps?.(this.hosts) ?? [];
    await Promise.all([this.startServer(), ...apps.map((app) => this.startApp(app))]);
    for (const host of this.options.agents) {
      const dir = path.join(this.baseDir, `agent-${host}`);
      await mkdir(path.join(dir, 'state'), { recursive: true });
      const agentYaml = {
        server: this.serverAddress,
        node: host,
        stateDir: path.join(dir, 'state'),
        logLevel: this.options.agentLogLevel ?? 'info',
        redirect: { backend: 'iptables' },
        ...this.options.agentConfig?.(host, this.hosts),
      };
      await writeFile(path.join(dir, 'agent.yaml'), stringify(agentYaml));
      await Promise.all([chown(dir, AGENT_UID, AGENT_UID), chown(path.join(dir, 'state'), AGENT_UID, AGENT_UID), chown(path.join(dir, 'agent.yaml'), AGENT_UID, AGENT_UID)]);
    }
    await Promise.all(this.options.agents.map((host) => this.startAgent(host)));
  }

  /** Runs a command to completion inside `host`. */
  exec(host: H, command: readonly string[], options?: { timeoutMs?: number; input?: string; allowFailure?: boolean }): ReturnType<TestNetwork<H>['exec']> {
    return this.network.exec(host, command, options);
  }

  /** Starts a long-running program inside `host`; destroy() stops it. */
  spawn(host: H, command: readonly string[], options?: SpawnOptions): ChildProcess {
    return this.network.spawn(host, command, options);
  }

  /** `node -e source ...args` in `host` to completion, as `uid` when given (an app user, never captured as the agent). */
  async runNode(host: H, source: string, args: readonly string[] = [], options: { timeoutMs?: number; uid?: number } = {}): Promise<RunResult> {
    const child = this.network.spawn(host, [process.execPath, '-e', source, ...args], { uid: options.uid, cwd: REPO_ROOT });
    return waitForExit(child, options.timeoutMs ?? 30_000);
  }

  /** Starts an app and waits until it listens. */
  async startApp(app: AppSpec<H>): Promise<LogTail> {
    if (this.apps.has(app.name)) throw new Error(`an app named "${app.name}" is already running`);
    const child = this.network.spawn(app.host, [process.execPath, '-e', app.source, ...(app.args ?? [])], { cwd: REPO_ROOT });
    const log = new LogTail(child);
    this.apps.set(app.name, log);
    await log.waitFor(`app ${app.name} on ${app.host} listening`, (line) => line.msg === 'listening', START_DEADLINE_MS);
    return log;
  }

  app(name: string): LogTail {
    const log = this.apps.get(name);
    if (!log) throw new Error(`no app named "${name}" (apps: ${[...this.apps.keys()].join(', ')})`);
    return log;
  }

  /**
   * Writes a config file the way editors save: a hidden temporary (the watcher ignores those)
   * renamed over the target, so mesh-server sees one complete change, never a half-written file.
   */
  async writeConfig(file: string, content: string): Promise<void> {
    const target = this.configPath(file);
    await mkdir(path.dirname(target), { recursive: true });
    const temporary = path.join(path.dirname(target), `.${path.basename(target)}.${++this.writes}.tmp`);
    await writeFile(temporary, content);
    await rename(temporary, target);
  }

  async removeConfig(file: string): Promise<void> {
    await unlink(this.configPath(file));
  }

  serverLog(): LogTail {
    if (!this.server) throw new Error('mesh-server is not running');
    return this.server;
  }

  /** Starts mesh-server (again) on the config directory and waits until it serves. */
  async startServer(): Promise<LogTail> {
    if (this.server && this.server.child.exitCode === null && this.server.child.signalCode === null) throw new Error('mesh-server is already running');
    const child = this.network.spawn(this.options.server, [
      ...NODE_TS, path.join(REPO_ROOT, 'server', 'main.ts'),
      '--config-dir', this.configDir, '--xds-address', `0.0.0.0:${XDS_PORT}`, '--admin-address', '127.0.0.1:15014',
      ...(this.options.serverArgs ?? []),
    ], { cwd: REPO_ROOT });
    const log = new LogTail(child);
    this.server = log;
    await log.waitFor('mesh-server serving', (line) => line.msg === 'mesh-server serving', START_DEADLINE_MS);
    return log;
  }

  /** SIGTERM, SIGKILL after a grace period; resolves with how it exited. */
  async stopServer(): Promise<string> {
    return stopChild(this.serverLog().child, 'SIGTERM');
  }

  agentLog(host: H): LogTail {
    const agent = this.agents.get(host);
    if (!agent) throw new Error(`no agent was started on ${host}`);
    return agent.log;
  }

  /** The agent's state directory (its xDS snapshot is `xds/snapshot.json` there). */
  agentStateDir(host: H): string {
    return path.join(this.baseDir, `agent-${host}`, 'state');
  }

  /** Starts (or restarts) the agent of `host` as uid 1337 and waits until :15021 says ready. */
  async startAgent(host: H): Promise<LogTail> {
    if (!this.options.agents.includes(host)) throw new Error(`${host} is not an agent host (agents: ${this.options.agents.join(', ')})`);
    const current = this.agents.get(host);
    if (current && current.log.child.exitCode === null && current.log.child.signalCode === null) throw new Error(`the agent on ${host} is already running`);
    const dir = path.join(this.baseDir, `agent-${host}`);
    // The agent's own uid with only the capability its redirection needs, as its systemd unit runs it.
    const asAgent = ['setpriv', `--reuid=${AGENT_UID}`, `--regid=${AGENT_UID}`, '--clear-groups', '--inh-caps=+net_admin', '--ambient-caps=+net_admin'];
    const child = this.network.spawn(host, [
      ...asAgent, ...NODE_TS, path.join(REPO_ROOT, 'agent', 'main.ts'), '--config', path.join(dir, 'agent.yaml'), '--drain-ms', '1000',
    ], { cwd: REPO_ROOT });
    const log = new LogTail(child);
    this.agents.set(host, { dir, log });
    await this.waitReady(host, log);
    return log;
  }

  /** Stops the agent: SIGTERM drains and removes its rules; SIGKILL leaves them, as a crash would. */
  stopAgent(host: H, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<string> {
    return stopChild(this.agentLog(host).child, signal);
  }

  async restartAgent(host: H): Promise<LogTail> {
    const how = await this.stopAgent(host);
    if (how !== 'exit 0') throw new Error(`the agent on ${host} did not stop cleanly: ${how}; stderr: ${this.agentLog(host).stderr}`);
    return this.startAgent(host);
  }

  /** GET /healthz/ready on the host's :15021, from inside the host. */
  async readiness(host: H): Promise<Readiness> {
    const result = await this.network.exec(host, ['curl', '-s', '-m', '5', '-w', '\n%{http_code}', `http://127.0.0.1:${READINESS_PORT}/healthz/ready`], { allowFailure: true });
    const newline = result.stdout.lastIndexOf('\n');
    const status = Number(result.stdout.slice(newline + 1));
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(result.stdout.slice(0, Math.max(newline, 0))) as Record<string, unknown>;
    } catch {
      // Connection refused while binding, or a body that is not JSON: the status says enough.
    }
    return { status, body };
  }

  /** Kills every process, deletes the namespaces (and with them the rules in them) and the files; safe twice. */
  destroy(): Promise<void> {
    this.destroyed ??= (async () => {
      await this.network.destroy();
      if (this.baseDir) await rm(this.baseDir, { recursive: true, force: true });
    })();
    return this.destroyed;
  }

  private configPath(file: string): string {
    const target = path.resolve(this.configDir, file);
    if (!target.startsWith(this.configDir + path.sep)) throw new Error(`config file "${file}" is outside the config directory`);
    return target;
  }

  private async waitReady(host: H, log: LogTail): Promise<void> {
    let last: Readiness | undefined;
    try {
      await eventually(`agent on ${host} ready on :${READINESS_PORT}`, async () => {
        if (log.child.exitCode !== null || log.child.signalCode !== null) {
          throw new Error(`the agent on ${host} exited (${log.child.signalCode ?? String(log.child.exitCode)}) before it was ready; last lines: ${JSON.stringify(log.lines.slice(-4))}; stderr: ${log.stderr}`);
        }
        last = await this.readiness(host);
        return last.status === 200;
      }, { timeoutMs: START_DEADLINE_MS, intervalMs: 200 });
    } catch (error) {
      // Say why it was not ready: the probe's own reason and what the agent logged last.
      throw new Error(`${(error as Error).message}; last readiness: ${JSON.stringify(last)}; last lines: ${JSON.stringify(log.lines.slice(-4))}`);
    }
  }
}

/** Sends `signal`, then SIGKILL after the grace period; resolves with `exit N` or `signal S`. */
function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<string> {
  const describe = (): string => (child.signalCode ? `signal ${child.signalCode}` : `exit ${String(child.exitCode)}`);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(describe());
  return new Promise((resolve) => {
    const killTimer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(killTimer);
      resolve(describe());
    });
    child.kill(signal);
  });
}
