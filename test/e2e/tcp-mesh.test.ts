// The first real data path end to end: mesh-server on host cp, mesh-agents on hosts a and b as
// uid 1337 with iptables redirection in their namespaces, unmodified TCP clients and an echo app.
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { ExecutionContext } from 'ava';
import { requireNetns } from '../netns/guard';
import { waitForExit } from '../netns/tcp-probe';
import { createTestNetwork, type TestNetwork } from '../netns/test-network';

const netnsTest = requireNetns(['iptables', 'iptables-save'], { serial: true });

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const NODE_TS = [process.execPath, '--import', 'tsx'];
const AGENT_UID = 1337;
const ECHO_PORT = 7000;
const OUTSIDE_PORT = 7100;
const STRAY_PORT = 7200;
/** tsx compiles the programs on start; on a busy 2-core machine that takes a while. */
const START_DEADLINE_MS = 60_000;

type Host = 'cp' | 'a' | 'b';
type LogLine = Record<string, unknown>;

/**
 * An app that echoes, and after the client's FIN still answers "bye" before closing: proof that
 * half-close travels the whole path. Each accepted connection is reported as a JSON line.
 */
const ECHO_APP = `
const net = require('node:net');
const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  console.log(JSON.stringify({ event: 'connection', remote: socket.remoteAddress.replace(/^::ffff:/, '') }));
  socket.on('error', () => {});
  socket.on('data', (chunk) => socket.write(chunk));
  socket.on('end', () => socket.end('bye'));
});
server.listen(Number(process.argv[1]), '0.0.0.0', () => console.log('listening'));
`;

/** An unmodified client: writes, half-closes, prints everything it read once the server ends. */
const CLIENT = `
const net = require('node:net');
const chunks = [];
const socket = net.connect({ host: process.argv[1], port: Number(process.argv[2]), allowHalfOpen: true }, () => socket.end('hello'));
socket.setTimeout(10000, () => { console.error('timeout'); process.exit(1); });
socket.on('data', (chunk) => chunks.push(chunk));
socket.on('end', () => { process.stdout.write(Buffer.concat(chunks)); process.exit(0); });
socket.on('error', (error) => { console.error(error.code || error.message); process.exit(1); });
`;

/** JSON log lines of a child, and a bounded wait for one that matches. */
class LogTail {
  readonly lines: LogLine[] = [];
  private readonly waiters = new Set<() => void>();
  stderr = '';

  constructor(readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        this.lines.push(JSON.parse(line) as LogLine);
      } catch {
        this.lines.push({ msg: line });
      }
      for (const wake of this.waiters) wake();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
  }

  waitFor(what: string, predicate: (line: LogLine) => boolean, timeoutMs: number): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const found = this.lines.find(predicate);
        if (found) finish(undefined, found);
      };
      const onExit = (code: number | null): void => finish(new Error(`exited (${String(code)}) before ${what}; stderr: ${this.stderr}`));
      const timer = setTimeout(() => finish(new Error(`${what}: not seen within ${timeoutMs} ms; last lines: ${JSON.stringify(this.lines.slice(-4))}; stderr: ${this.stderr}`)), timeoutMs);
      const finish = (error: Error | undefined, line?: LogLine): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        this.child.off('exit', onExit);
        if (error) reject(error);
        else resolve(line!);
      };
      this.waiters.add(check);
      this.child.once('exit', onExit);
      check();
    });
  }
}

function meshConfig(bIp: string): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: echo
spec:
  hosts: [echo.mesh]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: ${ECHO_PORT}, name: tcp-echo, protocol: TCP }
  workloadSelector:
    labels: { app: echo }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: echo-b
  annotations: { mesh.io/node: b }
spec:
  address: ${bIp}
  labels: { app: echo }
  ports: { tcp-echo: ${ECHO_PORT} }
---
# Claims to run on node "c" at b's address: b's agent does not serve it, so its tunnel refuses it.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: stray
spec:
  hosts: [stray.mesh]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: ${STRAY_PORT}, name: tcp-stray, protocol: TCP }
  workloadSelector:
    labels: { app: stray }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: stray-c
  annotations: { mesh.io/node: c }
spec:
  address: ${bIp}
  labels: { app: stray }
  ports: { tcp-stray: ${STRAY_PORT} }
`;
}

async function tempDir(t: ExecutionContext, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function startEcho(network: TestNetwork<Host>, host: Host, port: number): Promise<LogTail> {
  const child = network.spawn(host, [process.execPath, '-e', ECHO_APP, String(port)]);
  const tail = new LogTail(child);
  await tail.waitFor(`echo app on ${host}`, (line) => line.msg === 'listening', START_DEADLINE_MS);
  return tail;
}

async function startAgent(t: ExecutionContext, network: TestNetwork<Host>, host: Host, server: string): Promise<LogTail> {
  const stateDir = await tempDir(t, `mesh-agent-${host}-`);
  await chown(stateDir, AGENT_UID, AGENT_UID);
  // The agent's own uid with only the capability its redirection needs, as its systemd unit runs it.
  const asAgent = ['setpriv', `--reuid=${AGENT_UID}`, `--regid=${AGENT_UID}`, '--clear-groups', '--inh-caps=+net_admin', '--ambient-caps=+net_admin'];
  const child = network.spawn(host, [
    ...asAgent, ...NODE_TS, path.join(REPO_ROOT, 'agent', 'main.ts'),
    '--config', path.join(stateDir, 'absent-agent.yaml'),
    '--server', server, '--node', host, '--state-dir', stateDir,
    '--redirect-backend', 'iptables', '--drain-ms', '1000',
  ], { cwd: REPO_ROOT });
  const tail = new LogTail(child);
  await tail.waitFor(`agent ${host} ready`, (line) => line.msg === 'mesh-agent ready', START_DEADLINE_MS);
  return tail;
}

/** Runs the client from `from` and returns what it read, or throws with its error output. */
async function talk(network: TestNetwork<Host>, from: Host, address: string, port: number): Promise<string> {
  const child = network.spawn(from, [process.execPath, '-e', CLIENT, address, String(port)]);
  const { code, stdout, stderr } = await waitForExit(child, 20_000);
  if (code !== 0) throw new Error(`client on ${from} to ${address}:${port} failed (${String(code)}): ${stderr.trim()}`);
  return stdout;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

netnsTest('TCP through the mesh: a-agent tunnels to b-agent, half-close holds, outside destinations pass through', async (t) => {
  t.timeout(240_000);
  const network = await createTestNetwork<Host>({ hosts: ['cp', 'a', 'b'] });
  t.teardown(() => network.destroy());
  const { cp, a, b } = network.hosts;

  const configDir = await tempDir(t, 'mesh-config-');
  await writeFile(path.join(configDir, 'echo.yaml'), meshConfig(b.ip));
  const server = network.spawn('cp', [
    ...NODE_TS, path.join(REPO_ROOT, 'server', 'main.ts'),
    '--config-dir', configDir, '--xds-address', '0.0.0.0:15010', '--admin-address', '127.0.0.1:15014', '--debounce-ms', '20',
  ], { cwd: REPO_ROOT });
  const serverLog = new LogTail(server);
  await serverLog.waitFor('mesh-server serving', (line) => line.msg === 'mesh-server serving', START_DEADLINE_MS);

  const echo = await startEcho(network, 'b', ECHO_PORT);
  const outside = await startEcho(network, 'cp', OUTSIDE_PORT);
  const [agentA, agentB] = await Promise.all([startAgent(t, network, 'a', `${cp.ip}:15010`), startAgent(t, network, 'b', `${cp.ip}:15010`)]);

  // Mesh destination: echo's reply to "hello", then "bye" sent after the client's FIN.
  t.is(await talk(network, 'a', b.ip, ECHO_PORT), 'hellobye');
  const decision = await agentA.waitFor('tunnel decision on a', (line) => line.msg === 'outbound connection', 5_000);
  t.like(decision.decision, { action: 'tunnel', destination: `${b.ip}:${ECHO_PORT}`, cluster: `outbound|${ECHO_PORT}||echo.mesh`, peer: `${b.ip}:15008`, node: 'b' });
  const stream = await agentB.waitFor('tunnel stream on b', (line) => line.msg === 'inbound tunnel stream', 5_000);
  t.like(stream, { peer: a.ip, destination: `${b.ip}:${ECHO_PORT}` });
  // The app saw b-agent (its own host address over loopback), not a's address: the tunnel carried it.
  const seen = await echo.waitFor('echo connection', (line) => line.event === 'connection', 5_000);
  t.is(seen.remote, b.ip);

  // Not in the registry, ALLOW_ANY (no Sidecar says otherwise): a-agent connects to it directly.
  t.is(await talk(network, 'a', cp.ip, OUTSIDE_PORT), 'hellobye');
  const passthrough = await agentA.waitFor('passthrough decision on a', (line) => line.msg === 'outbound connection' && (line.decision as LogLine).action === 'passthrough', 5_000);
  t.like(passthrough.decision, { destination: `${cp.ip}:${OUTSIDE_PORT}`, cluster: 'PassthroughCluster' });
  t.is((await outside.waitFor('outside connection', (line) => line.event === 'connection', 5_000)).remote, a.ip);

  // A client without an agent (cp) reaches b's workload through b's plain inbound listener (PERMISSIVE).
  t.is(await talk(network, 'cp', b.ip, ECHO_PORT), 'hellobye');
  const plain = await agentB.waitFor('plain inbound on b', (line) => line.msg === 'plain inbound connection', 5_000);
  t.like(plain, { client: cp.ip, destination: `${b.ip}:${ECHO_PORT}` });
  t.is(echo.lines.filter((line) => line.event === 'connection').length, 2);
  t.true(echo.lines.filter((line) => line.event === 'connection').every((line) => line.remote === b.ip));

  // The tunnel's refusal closes the client's connection, and a-agent logs it with its decision.
  await t.throwsAsync(talk(network, 'a', b.ip, STRAY_PORT), { message: /client on a .* failed/ });
  const refused = await agentA.waitFor('refused tunnel on a', (line) => line.msg === 'outbound upstream failed; client closed', 5_000);
  t.like(refused.decision, { action: 'tunnel', destination: `${b.ip}:${STRAY_PORT}`, node: 'c' });
  t.regex(String(refused.err), /403: no local workload serves/);

  // A clean stop removes the redirection it installed and exits 0.
  const before = await network.exec('b', ['iptables-save', '-t', 'nat']);
  t.regex(before.stdout, /MESH_OUTPUT/);
  agentB.child.kill('SIGTERM');
  t.is(await exited(agentB.child), 0);
  const after = await network.exec('b', ['iptables-save', '-t', 'nat']);
  t.notRegex(after.stdout, /MESH_/);
});
