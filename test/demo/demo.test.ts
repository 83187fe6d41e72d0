// meshctl demo end to end: the real command as a child process brings up the mesh in namespaces,
// the product page answers through it, Ctrl-C removes everything; a crashed child takes it all down
// and says why; a killed run's leftovers are removed at the next start; without root it refuses.
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { createCommandRunner, systemToolPath } from '../../agent/redirect/command-runner';
import { READY_LINE } from '../../cli/demo/demo';
import { demoNamespaces, namespacePids, removeLeftovers } from '../../cli/demo/leftovers';
import { demoUnavailableMessage } from '../../cli/demo/preflight';
import { httpGetInNamespace } from '../../cli/demo/probe';
import { RUN_RECORD_PATH } from '../../cli/demo/run-record';
import { CLIENT_HOST, MESH_HOSTS, NAMESPACE_PREFIX } from '../../cli/demo/topology';
import { eventually } from '../support/eventually';
import { requireNetns } from '../netns/guard';

const netnsTest = requireNetns(['curl', 'iptables', 'iptables-save'], { serial: true });

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const MESHCTL = [process.execPath, '--import', 'tsx', path.join(REPO_ROOT, 'cli', 'main.ts')];
/** The demo's own deadlines (server, agents, product page) add up to several minutes under tsx on a busy machine. */
const READY_DEADLINE_MS = 420_000;
const STOP_DEADLINE_MS = 90_000;
const PAGE = 'http://productpage:9080/';

/** A running `meshctl demo` and everything it printed so far. */
class DemoProcess {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    child.stdout!.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async waitForReady(): Promise<void> {
    await eventually('the demo to print its ready line', () => {
      if (this.stdout.includes(READY_LINE)) return true;
      if (!this.running) throw new Error(`the demo exited (${String(this.child.exitCode)}) before it was ready:\n${this.stdout}\n${this.stderr}`);
      return undefined;
    }, { timeoutMs: READY_DEADLINE_MS, intervalMs: 200 });
  }

  async exitCode(): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the demo did not exit within ${STOP_DEADLINE_MS} ms:\n${this.stdout}\n${this.stderr}`)), STOP_DEADLINE_MS);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The temp dir it named in "Logs of every program: DIR/logs/". */
  tempDir(): string | undefined {
    const match = /Logs of every program: (\S+)\/logs\//.exec(this.stdout);
    return match?.[1];
  }
}

/** Starts the demo; teardown stops it and removes whatever it left, even when the test failed. */
function startDemo(t: ExecutionContext, args: readonly string[] = []): DemoProcess {
  const demo = new DemoProcess(spawn(MESHCTL[0]!, [...MESHCTL.slice(1), 'demo', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, PATH: systemToolPath() },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  t.teardown(async () => {
    if (demo.running) {
      demo.child.kill('SIGTERM');
      await demo.exitCode().catch(() => demo.child.kill('SIGKILL'));
    }
    await removeLeftovers();
  });
  return demo;
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '(gone)';
  }
}

/** A process as pid plus start time, so a pid the kernel hands out again is not mistaken for it. */
interface ProcessId {
  readonly pid: number;
  readonly started: string | undefined;
  readonly command: string;
}

function startTime(pid: number): string | undefined {
  try {
    // Field 22 of /proc/PID/stat; the command name (field 2) may hold spaces, so count after its ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * Whether that very process still runs. A zombie does not: it has exited and waits to be reaped
 * (an agent's short-lived iptables child orphaned by the agent's exit waits for pid 1).
 */
function stillRunning(process: ProcessId): boolean {
  if (process.started === undefined || startTime(process.pid) !== process.started) return false;
  try {
    const stat = readFileSync(`/proc/${process.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function processesInDemoNamespaces(): Promise<ProcessId[]> {
  const pids = (await Promise.all((await demoNamespaces()).map(namespacePids))).flat();
  return pids.map((pid) => ({ pid, started: startTime(pid), command: commandLine(pid) })).filter((p) => p.started !== undefined);
}

/** Everything the demo created is gone: namespaces, /etc/netns folders, processes, temp dir, run record. */
async function assertNothingLeft(t: ExecutionContext, processes: readonly ProcessId[], tempDir: string | undefined): Promise<void> {
  t.deepEqual(await demoNamespaces(), []);
  t.deepEqual(MESH_HOSTS.filter((host) => existsSync(path.join('/etc/netns', host.namespace))).map((host) => host.namespace), []);
  const survivors = processes.filter(stillRunning).map(({ pid }) => `${pid}: ${commandLine(pid)}`);
  t.deepEqual(survivors, [], 'every process the demo started has exited');
  t.truthy(tempDir);
  t.false(existsSync(tempDir!), `temp dir ${String(tempDir)} removed`);
  t.false(existsSync(RUN_RECORD_PATH));
}

test('without the right environment the demo message says why and what to do', (t) => {
  t.is(demoUnavailableMessage(() => undefined), undefined);
  const message = demoUnavailableMessage(() => 'network namespaces need root (running as uid 1000)') ?? '';
  t.regex(message, /^meshctl demo cannot run: network namespaces need root \(running as uid 1000\)\./);
  t.regex(message, /sudo npm start/);
});

test('as an unprivileged user, meshctl demo exits 1 saying it needs root, and creates nothing', (t) => {
  const before = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', env: { ...process.env, PATH: systemToolPath() } }).stdout;
  const asNobody = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
  const command = [...asNobody, ...MESHCTL, 'demo'];
  const result = spawnSync(command[0]!, command.slice(1), {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    // tsx keeps its cache in the temp dir, which uid 65534 can write.
    env: { ...process.env, PATH: systemToolPath(), HOME: '/tmp' },
  });
  t.is(result.status, 1, result.stderr);
  t.regex(result.stderr, /meshctl demo cannot run: network namespaces need root \(running as uid \d+\)\. .*sudo npm start/s);
  const after = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', env: { ...process.env, PATH: systemToolPath() } }).stdout;
  t.is(after.split('\n').filter((l) => l.startsWith(NAMESPACE_PREFIX)).length, before.split('\n').filter((l) => l.startsWith(NAMESPACE_PREFIX)).length);
});

netnsTest('meshctl demo with a --config-dir that does not exist says so and creates nothing', (t) => {
  const missing = path.join(os.tmpdir(), `mesh-demo-test-missing-${process.pid}`);
  const result = spawnSync(MESHCTL[0]!, [...MESHCTL.slice(1), 'demo', '--config-dir', missing], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, PATH: systemToolPath() } });
  t.is(result.status, 1, result.stderr);
  t.is(result.stderr.trim(), `meshctl demo: --config-dir ${missing}: no such directory (it holds the Istio YAML mesh-server serves, like examples/)`);
  t.is(result.stdout, '');
});

netnsTest('meshctl demo: the product page answers through the mesh, a weight edit shifts it, then Ctrl-C removes every namespace and process', async (t) => {
  t.timeout(READY_DEADLINE_MS + 4 * STOP_DEADLINE_MS);
  // A copy of examples/, so the test can shift the weights as a user would without touching the checkout.
  const configDir = await mkdtemp(path.join(os.tmpdir(), 'mesh-demo-test-config-'));
  t.teardown(() => rm(configDir, { recursive: true, force: true }));
  await cp(path.join(REPO_ROOT, 'examples'), configDir, { recursive: true });
  const demo = startDemo(t, ['--config-dir', configDir]);
  await demo.waitForReady();
  const processes = await processesInDemoNamespaces();
  // mesh-server, four agents, six apps.
  t.true(processes.length >= 11, `processes in the demo's namespaces: ${processes.map((p) => commandLine(p.pid)).join('; ')}`);

  // The page names the reviews version that answered and what it got from ratings.
  const page = await httpGetInNamespace(CLIENT_HOST.namespace, PAGE, [], 15_000);
  t.is(page.status, 200, page.body);
  const reviews = /^reviews: (v[123]) on (host-[a-d])(.*)$/m.exec(page.body);
  t.truthy(reviews, page.body);
  const [, version, node, rest] = reviews!;
  t.is(node, version === 'v3' ? 'host-c' : 'host-b');
  if (version === 'v1') t.is(rest, ', no ratings');
  else t.regex(rest!, new RegExp(`ratings: Reviewer1 ★★★★★, Reviewer2 ★★★★☆ in ${version === 'v2' ? 'black' : 'red'} \\(ratings v1 on host-d\\)`));
  t.regex(page.body, /^details: "The Comedy of Errors" by William Shakespeare \(details v1 on host-b\)$/m);

  // The agents route each request: without jason's header the reviews VirtualService's canary
  // route applies (v1 90%, v2 10%), never v3; v1 shows up in 20 requests but with chance 0.1^20.
  const versions: string[] = [];
  for (let i = 0; i < 20; i++) {
    const answer = await httpGetInNamespace(CLIENT_HOST.namespace, PAGE, [], 15_000);
    versions.push(/^reviews: (v\d)/m.exec(answer.body)?.[1] ?? `none in ${answer.status} ${answer.body}`);
  }
  t.deepEqual(versions.filter((v) => v !== 'v1' && v !== 'v2'), [], versions.join(' '));
  t.true(versions.includes('v1'), versions.join(' '));

  // Agents talk mTLS: host-b's agent logs the SPIFFE identity of productpage calling reviews there.
  const hostBLog = await readFile(path.join(demo.tempDir()!, 'logs', 'mesh-agent-host-b.log'), 'utf8');
  t.regex(hostBLog, /"principal":"spiffe:\/\/cluster\.local\/ns\/default\/sa\/bookinfo-productpage","destination":"10\.77\.0\.12:908[12]"/);

  // User jason is routed to v3, which asks ratings: red stars from host-d.
  const jason = await httpGetInNamespace(CLIENT_HOST.namespace, PAGE, ['end-user: jason'], 15_000);
  t.regex(jason.body, /^reviews: v3 on host-c, ratings: Reviewer1 ★★★★★, Reviewer2 ★★★★☆ in red \(ratings v1 on host-d\)$/m);

  // Shifting the weights in the file the demo names moves every request to v2 within seconds.
  const trafficFile = path.join(configDir, 'bookinfo', 'traffic.yaml');
  t.regex(demo.stdout, /edit \S*traffic\.yaml, line \d+ \(weight: 90\) and line \d+ \(weight: 10\)/);
  await writeFile(trafficFile, (await readFile(trafficFile, 'utf8')).replace('weight: 90', 'weight: 0').replace('weight: 10', 'weight: 100'));
  let streak = 0;
  await eventually('10 answers in a row from reviews v2 after the weights moved to 0/100', async () => {
    const answer = await httpGetInNamespace(CLIENT_HOST.namespace, PAGE, [], 15_000);
    streak = /^reviews: v2 on host-b, ratings: .* in black/m.test(answer.body) ? streak + 1 : 0;
    return streak >= 10;
  }, { timeoutMs: 30_000, intervalMs: 50 });

  // A second demo refuses to start and leaves the running one alone.
  const second = spawnSync(MESHCTL[0]!, [...MESHCTL.slice(1), 'demo'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, PATH: systemToolPath() } });
  t.is(second.status, 1, second.stderr);
  t.regex(second.stderr, new RegExp(`another meshctl demo is running \\(pid ${demo.child.pid}\\)`));
  t.is((await httpGetInNamespace(CLIENT_HOST.namespace, PAGE, [], 15_000)).status, 200);
  // Node programs only: the agents' short-lived iptables commands come and go on their own.
  const programs = processes.filter((p) => p.command.startsWith(process.execPath));
  t.true(programs.length >= 11 && programs.every(stillRunning), `the first demo's programs still run: ${programs.map((p) => p.command).join('; ')}`);

  // The agents' redirection is in force inside the hosts.
  const rules = await createCommandRunner({ netns: MESH_HOSTS[1]!.namespace }).run(['iptables-save', '-t', 'nat']);
  t.regex(rules.stdout, /MESH_OUTPUT/);

  const tempDir = demo.tempDir();
  demo.child.kill('SIGINT');
  t.is(await demo.exitCode(), 0, demo.stderr);
  t.regex(demo.stdout, /Stopped; namespaces and temp files removed\./);
  await assertNothingLeft(t, processes, tempDir);
});

netnsTest('meshctl demo removes a killed run\'s leftovers at start, and a crashed app takes everything down with its last output', async (t) => {
  t.timeout(READY_DEADLINE_MS + 3 * STOP_DEADLINE_MS);
  // A leftover as a killed run leaves it: a namespace with the demo's prefix and a process inside.
  const leftover = `${NAMESPACE_PREFIX}leftover`;
  const root = createCommandRunner({ timeoutMs: 20_000 });
  await root.run(['ip', 'netns', 'add', leftover]);
  t.teardown(() => root.run(['ip', 'netns', 'delete', leftover], { allowFailure: true }).then(() => undefined));
  const sleeper = spawn('ip', ['netns', 'exec', leftover, 'sleep', '600'], { stdio: 'ignore', env: { ...process.env, PATH: systemToolPath() } });
  t.teardown(() => void sleeper.kill('SIGKILL'));
  const sleeperPid = await eventually('the leftover process inside its namespace', async () => (await namespacePids(leftover)).find((pid) => pid === sleeper.pid));
  const sleeperStarted = startTime(sleeperPid);

  const demo = startDemo(t);
  await demo.waitForReady();
  t.regex(demo.stdout, new RegExp(`Removed what an earlier demo run left behind when it was killed: namespaces ${leftover} \\(1 process in them stopped\\)`));
  t.false(stillRunning({ pid: sleeperPid, started: sleeperStarted, command: 'sleep' }));
  t.false((await demoNamespaces()).includes(leftover));

  const processes = await processesInDemoNamespaces();
  const hostD = MESH_HOSTS.find((host) => host.name === 'host-d')!;
  const ratings = (await namespacePids(hostD.namespace)).find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('ratings.js'));
  t.truthy(ratings, 'the ratings app runs on host-d');
  const tempDir = demo.tempDir();
  process.kill(ratings!, 'SIGKILL');

  t.is(await demo.exitCode(), 1);
  t.regex(demo.stderr, /ratings-v1 exited unexpectedly \(signal SIGKILL\); its last output:\n {2}ratings listening on :9080/);
  t.regex(demo.stderr, /taking everything down/);
  await assertNothingLeft(t, processes, tempDir);
});
