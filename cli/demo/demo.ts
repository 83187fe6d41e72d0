// meshctl demo: the whole mesh on this one machine. mesh-server and four hosts simulated with
// network namespaces, each with its agent (uid 1337, redirection on) and Bookinfo apps; it waits
// until everything answers, says what to try, and on Ctrl-C/SIGTERM takes it all down again.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { systemToolPath } from '../../agent/redirect/command-runner';
import { createHostNetwork, stopProcess, type HostNetwork } from '../../lib/netns/host-network';
import { writeAgentFiles } from './agent-files';
import { hostsFileText, removeNetnsEtc, writeHostsFile } from './hosts-files';
import { instructions } from './instructions';
import { agentTlsFor, caStateDir } from './mesh-identity';
import { demoNamespaces, removeLeftovers, removeNamespaces } from './leftovers';
import { demoUnavailableMessage } from './preflight';
import { httpGetInNamespace, Interrupted, pollUntil } from './probe';
import { locatePrograms, type Programs } from './programs';
import { removeRunRecord, writeRunRecord } from './run-record';
import { startWithLogs, type SupervisedProcess } from './supervised-process';
import {
  AGENT_READINESS_PORT, AGENT_UID, ALL_HOSTS, BRIDGE_NAMESPACE, CLIENT_HOST, CONTROL_PLANE, MESH_HOSTS, PREFIX_LENGTH,
  SECURE_XDS_PORT, SERVER_ADMIN_PORT, SERVICE_ADDRESSES, SERVICE_PORT, TEMP_DIR_PREFIX, type DemoHost,
} from './topology';

export interface DemoIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

export interface DemoOptions {
  /** Istio YAML mesh-server serves (default: the checkout's examples/). */
  readonly configDir?: string;
  /** Replaces the root/netns/tools check (tests). */
  readonly unavailable?: () => string | undefined;
}

/** The line printed once the mesh answers; scripts and tests wait for it. */
export const READY_LINE = 'mesh demo ready';
/** The uid the Bookinfo apps run as: unprivileged, and not the agent's, so their traffic is captured. */
const APP_UID = 65534;
/** Deadlines for a busy 2-core machine, where programs run from TypeScript take a while to start. */
const SERVER_READY_MS = 120_000;
const AGENTS_READY_MS = 180_000;
const FRONTEND_READY_MS = 90_000;
const AGENT_STOP_GRACE_MS = 10_000;
const PROCESS_STOP_GRACE_MS = 5_000;
const IN_FLIGHT_STEP_WAIT_MS = 30_000;
const FRONTEND_ANSWER = /^reviews: v\d/m;

export async function demoCommand(options: DemoOptions, io: DemoIo): Promise<number> {
  const unavailable = (options.unavailable ?? demoUnavailableMessage)();
  if (unavailable !== undefined) {
    io.stderr(unavailable);
    return 1;
  }
  const programs = locatePrograms();
  const configDir = path.resolve(options.configDir ?? programs.examplesDir);
  if (!statSync(configDir, { throwIfNoEntry: false })?.isDirectory()) {
    io.stderr(`meshctl demo: --config-dir ${configDir}: no such directory (it holds the Istio YAML mesh-server serves, like examples/)`);
    return 1;
  }
  return new DemoRun(programs, configDir, io).run();
}

class DemoRun {
  private readonly processes: SupervisedProcess[] = [];
  private network: HostNetwork<DemoHost> | undefined;
  private tempDir: string | undefined;
  private stopRequested = false;
  /** Set once no other demo runs: only then are the prefix's namespaces and the run record this run's to remove. */
  private ownsPrefix = false;
  private exitCode = 0;
  private wakeStop!: () => void;
  private readonly stopped = new Promise<void>((resolve) => (this.wakeStop = resolve));
  /** The setup step in progress, awaited before teardown so nothing is created after it. */
  private inFlight: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly programs: Programs,
    private readonly configDir: string,
    private readonly io: DemoIo,
  ) {}

  async run(): Promise<number> {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals === 1) {
        this.io.stdout(`\n${signal}: stopping the mesh (again to force)`);
        this.requestStop(0);
      } else {
        this.forceStop();
      }
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      await this.setUp();
      this.io.stdout(instructions({ configDir: this.configDir, logDir: this.logDir(), meshctl: this.programs.meshctlHint }));
      this.io.stdout(READY_LINE);
      await this.stopped;
    } catch (error) {
      if (!(error instanceof Interrupted)) {
        this.io.stderr(`meshctl demo: ${error instanceof Error ? error.message : String(error)}`);
        this.exitCode = 1;
        this.stopRequested = true;
      }
    } finally {
      await this.tearDown();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    return this.exitCode;
  }

  private logDir(): string {
    return path.join(this.tempDir ?? os.tmpdir(), 'logs');
  }

  private requestStop(exitCode: number): void {
    if (this.stopRequested) return;
    this.stopRequested = true;
    this.exitCode = exitCode;
    this.wakeStop();
  }

  /** Runs one setup step; a stop request (signal or crash) abandons the wait and goes to teardown. */
  private async step<T>(work: Promise<T>): Promise<T> {
    this.inFlight = work.catch(() => undefined);
    if (this.stopRequested) throw new Interrupted('stopping');
    return Promise.race([work, this.stopped.then((): never => { throw new Interrupted('stopping'); })]);
  }

  private async setUp(): Promise<void> {
    const leftovers = await this.step(removeLeftovers());
    this.ownsPrefix = true;
    if (leftovers) {
      const parts = [leftovers.namespaces.length > 0 ? `namespaces ${leftovers.namespaces.join(', ')} (${leftovers.processes} ${leftovers.processes === 1 ? 'process' : 'processes'} in them stopped)` : '', leftovers.tempDir ? `temp dir ${leftovers.tempDir}` : ''].filter(Boolean);
      this.io.stdout(`Removed what an earlier demo run left behind when it was killed: ${parts.join('; ') || 'its run record'}.`);
    }

    const tempDir = mkdtempSync(path.join(os.tmpdir(), TEMP_DIR_PREFIX));
    this.tempDir = tempDir;
    // Agents run as uid 1337 and must reach their agent.yaml and state dir inside it.
    chmodSync(tempDir, 0o755);
    mkdirSync(this.logDir(), { mode: 0o755 });
    writeRunRecord({ pid: process.pid, tempDir });

    for (const host of ALL_HOSTS) writeHostsFile(host.namespace, hostsFileText(SERVICE_ADDRESSES, host.node, host.ip));
    this.io.stdout(`Creating ${ALL_HOSTS.length} hosts (network namespaces ${ALL_HOSTS.map((h) => h.namespace).join(', ')}) on bridge namespace ${BRIDGE_NAMESPACE}`);
    this.network = await this.step(createHostNetwork({ bridgeNamespace: BRIDGE_NAMESPACE, hosts: ALL_HOSTS, prefixLength: PREFIX_LENGTH, cleanupOnExit: false }));

    this.io.stdout(`Starting mesh-server on ${CONTROL_PLANE.name} (${CONTROL_PLANE.ip}) with --config-dir ${this.configDir}`);
    const caDir = caStateDir(tempDir);
    this.start(CONTROL_PLANE, 'mesh-server', [
      ...this.programs.server, '--config-dir', this.configDir,
      '--secure-xds-address', `0.0.0.0:${SECURE_XDS_PORT}`, '--serving-ip', CONTROL_PLANE.ip, '--ca-state-dir', caDir,
      '--admin-address', `0.0.0.0:${SERVER_ADMIN_PORT}`,
    ]);
    await this.step(this.waitForHttp(CONTROL_PLANE, `http://127.0.0.1:${SERVER_ADMIN_PORT}/ready`, 'mesh-server /ready', SERVER_READY_MS));

    const server = `${CONTROL_PLANE.ip}:${SECURE_XDS_PORT}`;
    // mesh-server has written its CA state by the time it is ready.
    const tls = agentTlsFor(tempDir, caDir, MESH_HOSTS.map((host) => host.node!));
    this.io.stdout(`Starting mesh-agent (uid ${AGENT_UID}, redirection on, mTLS with a join token each) and the Bookinfo apps on ${MESH_HOSTS.map((h) => h.name).join(', ')}`);
    for (const host of MESH_HOSTS) {
      const config = writeAgentFiles(tempDir, host, server, tls.get(host.node!)!);
      this.start(host, `mesh-agent-${host.name}`, [...this.programs.agent, '--config', config, '--drain-ms', '1000'], { uid: AGENT_UID, capabilities: ['net_admin'] });
    }
    for (const host of MESH_HOSTS) {
      for (const app of host.apps) {
        this.start(host, app.workload, [process.execPath, path.join(this.programs.appsDir, app.script)], {
          uid: APP_UID,
          env: { PORT: String(app.port), SERVICE_VERSION: app.version, NODE_NAME: host.name },
        });
      }
    }
    await this.step(Promise.all(MESH_HOSTS.map((host) =>
      this.waitForHttp(host, `http://127.0.0.1:${AGENT_READINESS_PORT}/healthz/ready`, `mesh-agent on ${host.name} /healthz/ready`, AGENTS_READY_MS))));
    this.io.stdout('Every agent is ready; asking the product page through the mesh');

    let last = '';
    await this.step(pollUntil('the product page to answer through the mesh', async () => {
      const answer = await httpGetInNamespace(CLIENT_HOST.namespace, `http://productpage:${SERVICE_PORT}/`);
      last = `${answer.status} ${answer.body.trim()}`;
      return answer.status === 200 && FRONTEND_ANSWER.test(answer.body) ? answer : undefined;
    }, { deadlineMs: FRONTEND_READY_MS, intervalMs: 500, stopped: () => this.stopRequested, lastProblem: () => last }));
    this.io.stdout(`\n$ ip netns exec ${CLIENT_HOST.namespace} curl -s http://productpage:${SERVICE_PORT}/\n${last.replace(/^200 /, '')}`);
  }

  private async waitForHttp(host: DemoHost, url: string, what: string, deadlineMs: number): Promise<void> {
    let last = '';
    await pollUntil(what, async () => {
      const answer = await httpGetInNamespace(host.namespace, url, [], 3_000);
      last = answer.status === 0 ? answer.body : `${answer.status} ${answer.body.trim().slice(0, 300)}`;
      return answer.status === 200 ? true : undefined;
    }, { deadlineMs, intervalMs: 300, stopped: () => this.stopRequested, lastProblem: () => last });
  }

  /** Starts a program in `host`, in a process group of its own (Ctrl-C reaches only the demo, which stops things in order). */
  private start(host: DemoHost, name: string, command: readonly string[], options: { uid?: number; capabilities?: string[]; env?: NodeJS.ProcessEnv } = {}): SupervisedProcess {
    const network = this.network!;
    const proc = startWithLogs(this.logDir(), name, (stdout, stderr) =>
      network.spawn(host, command, {
        uid: options.uid,
        capabilities: options.capabilities,
        cwd: this.programs.repoRoot,
        env: { ...process.env, PATH: systemToolPath(), ...options.env },
        stdio: ['ignore', stdout, stderr],
        detached: true,
      }));
    this.processes.push(proc);
    proc.child.on('error', (error) => this.crashed(proc, `could not be started: ${error.message}`));
    void proc.exited.then(({ code, signal }) => {
      if (!proc.stopping && !this.stopRequested) this.crashed(proc, `exited unexpectedly (${signal ? `signal ${signal}` : `code ${String(code)}`})`);
    });
    return proc;
  }

  private crashed(proc: SupervisedProcess, what: string): void {
    if (this.stopRequested) return;
    const lines = proc.lastLines();
    this.io.stderr(`meshctl demo: ${proc.name} ${what}; ${lines.length > 0 ? `its last output:\n  ${lines.join('\n  ')}` : 'it wrote nothing'}`);
    this.io.stderr('meshctl demo: taking everything down');
    this.requestStop(1);
  }

  private async tearDown(): Promise<void> {
    await Promise.race([this.inFlight, new Promise((resolve) => setTimeout(resolve, IN_FLIGHT_STEP_WAIT_MS).unref())]);
    const stopAll = (procs: SupervisedProcess[], graceMs: number): Promise<void[]> =>
      Promise.all(procs.map((proc) => {
        proc.stopping = true;
        return stopProcess(proc.child, graceMs);
      }));
    // Workloads first, as a host is drained: their connections through the agents end, so each
    // agent's drain has nothing left to wait for; it then removes its redirection. The server last,
    // so agents never log a lost control plane while stopping.
    const agents = this.processes.filter((proc) => proc.name.startsWith('mesh-agent-'));
    const server = this.processes.filter((proc) => proc.name === 'mesh-server');
    await stopAll(this.processes.filter((proc) => !agents.includes(proc) && !server.includes(proc)), PROCESS_STOP_GRACE_MS);
    await stopAll(agents, AGENT_STOP_GRACE_MS);
    await stopAll(server, PROCESS_STOP_GRACE_MS);
    await this.network?.destroy();
    if (this.ownsPrefix) {
      // Namespaces a setup step created after it was abandoned, or that a stray process holds.
      const remaining = await demoNamespaces().catch(() => []);
      if (remaining.length > 0) await removeNamespaces(remaining);
      for (const host of ALL_HOSTS) removeNetnsEtc(host.namespace);
      removeRunRecord();
    }
    if (this.tempDir) rmSync(this.tempDir, { recursive: true, force: true });
    if (this.ownsPrefix) this.io.stdout(this.exitCode === 0 ? 'Stopped; namespaces and temp files removed.' : 'Everything the demo started is stopped and removed.');
  }

  /** Second Ctrl-C: no more waiting. Kill by pid, delete the namespaces, exit. */
  private forceStop(): never {
    if (!this.ownsPrefix) process.exit(130);
    this.io.stderr('Forcing: killing every program the demo started and deleting its namespaces');
    for (const proc of this.processes) {
      if (proc.running && proc.pid !== undefined) {
        try {
          process.kill(proc.pid, 'SIGKILL');
        } catch {
          // Exited meanwhile.
        }
      }
    }
    for (const namespace of [BRIDGE_NAMESPACE, ...ALL_HOSTS.map((host) => host.namespace)]) {
      spawnSync('ip', ['netns', 'delete', namespace], { stdio: 'ignore', timeout: 5_000, env: { ...process.env, PATH: systemToolPath() } });
      removeNetnsEtc(namespace);
    }
    if (this.tempDir) rmSync(this.tempDir, { recursive: true, force: true });
    removeRunRecord();
    process.exit(130);
  }
}
