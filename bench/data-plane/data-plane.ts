// Data-plane benchmark: HTTP/1.1 with 1 KB responses over four paths between network-namespaced
// hosts (direct, nginx reverse proxy, one agent hop, the full mesh path), unloaded, at a fixed
// open-loop rate and at saturation, with the agents' CPU and memory read from /proc.
import type { ChildProcess } from 'node:child_process';
import { chmod, chown, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { GENERATED_ROOT_CERT_FILE } from '../../server/ca/ca-keys';
import { JoinTokens, JOIN_SECRET_FILE } from '../../server/ca/join-token';
import { createTestNetwork, type TestNetwork } from '../../test/netns/test-network';
import { generateConfig } from '../support/generated-mesh-config';
import { programArgs, REPO_ROOT } from '../support/mesh-server-process';
import { cpuMsSince, sampleProcess } from '../support/process-sample';
import { appConfig, nginxCommand, proxyConfig, RESPONSE_BYTES, waitForNginx } from './nginx';
import { detectOutboundMode } from './agent-outbound-mode';
import { detectTunnelMode } from './tunnel-mode';

export interface DataPlaneSettings {
  services: number;
  endpoints: number;
  unloadedSeconds: number;
  openLoopSeconds: number;
  openLoopRate: number;
  openLoopConnections: number;
  saturationSeconds: number;
  saturationConnections: number;
  /** Longest a program may take to start (tsx compiles on start; the machine may be loaded). */
  startTimeoutMs: number;
}

export type PathName = 'direct' | 'nginx' | 'oneHop' | 'mesh';
export const PATH_TITLES: Record<PathName, string> = {
  direct: 'direct to the app',
  nginx: 'nginx reverse proxy (1 worker, upstream keep-alive)',
  oneHop: 'one agent hop (plain inbound :15006)',
  mesh: 'mesh path (agent, tunnel, agent)',
};
const PATHS: readonly PathName[] = ['direct', 'nginx', 'oneHop', 'mesh'];

export interface Latencies {
  p50Us: number;
  p90Us: number;
  p99Us: number;
}

export interface DataPlaneResult {
  tunnelMode: string;
  outboundMode: string;
  programs: string;
  pinning: string;
  unloaded: Record<PathName, Latencies & { requests: number }>;
  /** `incomplete`: requests unanswered when the run was cut off at twice its length (a path that cannot keep up). */
  openLoop: Record<PathName, Latencies & { requests: number; incomplete: number; achievedRate: number; maxQueue: number }>;
  /** Agents' CPU per 1000 requests/s at the open-loop rate, in vCPU. */
  agentCpuPer1000Rps: { oneHop: number; meshPerAgent: number; meshClientAgent: number; meshServerAgent: number };
  saturation: {
    nginx: { rps: number; cores: number; rpsPerCore: number };
    oneHop: { rps: number; cores: number; rpsPerCore: number };
    mesh: { rps: number; cores: number; rpsPerCore: number };
    oneHopRatio: number;
    meshRatio: number;
  };
  agentMemory: { steadyRssMb: number; afterLoadRssMb: number; peakRssMb: number };
  config: { services: number; endpoints: number; clustersOnAgent: number };
}

type Host = 'cp' | 'a' | 'b';
const AGENT_UID = 1337;
/** The app on b: 8080 is meshed (captured inbound), 8081 is the same app left alone (direct, nginx's upstream). */
const APP_PORT = 8080;
const APP_DIRECT_PORT = 8081;
const NGINX_PORT = 8090;
/** mesh-server's xDS + CA port over TLS: the agents join with a token, as in production. */
const SECURE_XDS_PORT = 15012;

interface Pinning {
  load: string | undefined;
  app: string | undefined;
  proxy: string | undefined;
  description: string;
}

/** Agents and nginx (the proxies measured) on the last core; load generator and app elsewhere. */
function choosePinning(): Pinning {
  const cores = os.cpus().length;
  if (cores < 2) return { load: undefined, app: undefined, proxy: undefined, description: 'not pinned (1 core)' };
  const proxy = String(cores - 1);
  const app = cores >= 3 ? String(cores - 2) : '0';
  const load = cores >= 3 ? (cores >= 4 ? `0-${cores - 3}` : '0') : '0';
  return {
    load, app, proxy,
    description: `taskset: agents and the nginx proxy on CPU ${proxy}; load generator (wrk, open-loop client) on CPU ${load}; app (nginx) on CPU ${app}; mesh-server not pinned`,
  };
}

function pinned(cpu: string | undefined, command: readonly string[]): string[] {
  return cpu === undefined ? [...command] : ['taskset', '-c', cpu, ...command];
}

/** Consumes a child's stdout line by line (a full pipe would stall it) and waits for one line. */
class LineWatcher {
  private readonly lines: string[] = [];
  private readonly waiters = new Set<() => void>();
  stderr = '';

  constructor(readonly child: ChildProcess) {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      if (this.lines.length < 2000) this.lines.push(line);
      for (const wake of this.waiters) wake();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4000);
    });
  }

  waitFor(what: string, predicate: (line: string) => boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.lines.some(predicate)) finish();
      };
      const onExit = (code: number | null) => finish(new Error(`${what}: exited (${String(code)}); stderr: ${this.stderr}; last lines: ${this.lines.slice(-5).join('\n')}`));
      const timer = setTimeout(() => finish(new Error(`${what}: not within ${timeoutMs} ms; stderr: ${this.stderr}; last lines: ${this.lines.slice(-5).join('\n')}`)), timeoutMs);
      const finish = (error?: Error) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        this.child.off('exit', onExit);
        if (error) reject(error);
        else resolve();
      };
      this.waiters.add(check);
      this.child.once('exit', onExit);
      check();
    });
  }
}

function benchServiceConfig(bIp: string): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: bench-app
spec:
  hosts: [bench-app.mesh]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: ${APP_PORT}, name: http, protocol: HTTP }
  workloadSelector:
    labels: { app: bench-app }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: bench-app-b
  annotations: { mesh.io/node: b }
spec:
  address: ${bIp}
  labels: { app: bench-app }
  ports: { http: ${APP_PORT} }
`;
}

/** The agent's own config: the direct port and nginx's port stay outside inbound capture. */
function agentYaml(server: string, node: Host, stateDir: string, tls: { caFile: string; joinToken: string }): string {
  return `server: ${server}
node: ${node}
stateDir: ${stateDir}
tls:
  caFile: ${tls.caFile}
  joinToken: ${tls.joinToken}
redirect:
  backend: iptables
  excludeInboundPorts: [${APP_DIRECT_PORT}, ${NGINX_PORT}]
`;
}

interface WrkReport {
  requests: number;
  durationUs: number;
  errors: number;
  non2xx: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
}

export async function runDataPlane(settings: DataPlaneSettings, log: (line: string) => void): Promise<DataPlaneResult> {
  const pinning = choosePinning();
  const work = await mkdtemp(path.join(os.tmpdir(), 'mesh-bench-dataplane-'));
  // The agents (uid 1337) read their config files in here.
  await chmod(work, 0o755);
  let network: TestNetwork<Host> | undefined;
  try {
    network = await createTestNetwork<Host>({ hosts: ['cp', 'a', 'b'] });
    const net = network;
    const { cp, a, b } = net.hosts;
    const node = process.execPath;

    // Control plane with the large config plus the benchmark's own service; its CA gives the agents
    // their workload certificates, so the mesh path runs over the mTLS tunnel as in production.
    const caStateDir = path.join(work, 'ca-state');
    await mkdir(caStateDir, { mode: 0o700 });
    const configDir = generateConfig({ services: settings.services, endpoints: settings.endpoints, clients: settings.services }).dir;
    await writeFile(path.join(configDir, 'bench-app.yaml'), benchServiceConfig(b.ip));
    const server = net.spawn('cp', [node, ...programArgs('server').args,
      '--config-dir', configDir, '--secure-xds-address', `0.0.0.0:${SECURE_XDS_PORT}`, '--ca-state-dir', caStateDir, '--admin-address', '127.0.0.1:15014', '--debounce-ms', '20', '--log-level', 'info',
    ], { cwd: REPO_ROOT });
    const serverLog = new LineWatcher(server);
    try {
      await serverLog.waitFor('mesh-server serving', (line) => line.includes('"mesh-server serving"'), settings.startTimeoutMs);
    } finally {
      await rm(configDir, { recursive: true, force: true }).catch(() => undefined);
    }

    // The app and the reference proxy, both nginx with one worker, on b.
    const app = net.spawn('b', pinned(pinning.app, nginxCommand(work, 'app', appConfig(work, [APP_PORT, APP_DIRECT_PORT]))));
    new LineWatcher(app);
    await waitForNginx(app, work, 'app', settings.startTimeoutMs);
    const proxy = net.spawn('b', pinned(pinning.proxy, nginxCommand(work, 'proxy', proxyConfig(work, NGINX_PORT, `127.0.0.1:${APP_DIRECT_PORT}`))));
    new LineWatcher(proxy);
    const nginxWorkers = await waitForNginx(proxy, work, 'proxy', settings.startTimeoutMs);

    // Agents as their systemd unit runs them: own uid, only CAP_NET_ADMIN, redirection installed,
    // joining the CA with a token. The CA's state is root-only; the agents get a readable root copy.
    const rootFile = path.join(work, 'root.pem');
    await copyFile(path.join(caStateDir, GENERATED_ROOT_CERT_FILE), rootFile);
    await chmod(rootFile, 0o644);
    const joinTokens = new JoinTokens(await readFile(path.join(caStateDir, JOIN_SECRET_FILE)));
    const agentProgram = programArgs('agent');
    const startAgent = async (host: Host): Promise<ChildProcess> => {
      const stateDir = path.join(work, `agent-${host}`);
      await mkdir(stateDir);
      await chown(stateDir, AGENT_UID, AGENT_UID);
      const configFile = path.join(work, `agent-${host}.yaml`);
      await writeFile(configFile, agentYaml(`${cp.ip}:${SECURE_XDS_PORT}`, host, stateDir, { caFile: rootFile, joinToken: joinTokens.issue(host, { ttlMs: 10 * 60_000 }) }));
      const asAgent = ['setpriv', `--reuid=${AGENT_UID}`, `--regid=${AGENT_UID}`, '--clear-groups', '--inh-caps=+net_admin', '--ambient-caps=+net_admin'];
      const child = net.spawn(host, pinned(pinning.proxy, [...asAgent, node, ...agentProgram.args, '--config', configFile, '--drain-ms', '500', '--log-level', 'info']), { cwd: REPO_ROOT });
      await new LineWatcher(child).waitFor(`agent ${host} ready`, (line) => line.includes('"mesh-agent ready"'), settings.startTimeoutMs);
      return child;
    };
    const [agentA, agentB] = await Promise.all([startAgent('a'), startAgent('b')]);
    const agentPids = [agentA.pid!, agentB.pid!];

    const target: Record<PathName, { from: Host; ip: string; port: number }> = {
      direct: { from: 'cp', ip: b.ip, port: APP_DIRECT_PORT },
      nginx: { from: 'cp', ip: b.ip, port: NGINX_PORT },
      oneHop: { from: 'cp', ip: b.ip, port: APP_PORT },
      mesh: { from: 'a', ip: b.ip, port: APP_PORT },
    };
    // Every path answers 1 KB before anything is measured (and the mesh path has its tunnel up).
    for (const name of PATHS) {
      const { from, ip, port } = target[name];
      const probe = await net.exec(from, ['curl', '-sS', '--max-time', '10', '-o', '/dev/null', '-w', '%{http_code} %{size_download}', `http://${ip}:${port}/`], { allowFailure: true, timeoutMs: 20_000 });
      if (probe.stdout.trim() !== `200 ${RESPONSE_BYTES}`) throw new Error(`path ${name} (${from} -> ${ip}:${port}) does not answer 200 with ${RESPONSE_BYTES} bytes: ${probe.stdout} ${probe.stderr}`);
    }
    const tunnelMode = await detectTunnelMode(net, 'a', b.ip, 'b');
    const clustersOnAgent = await countClusters(net, 'a');
    const steady = agentPids.map((pid) => sampleProcess(pid));
    log(`data plane: hosts cp ${cp.ip}, a ${a.ip}, b ${b.ip}; ${tunnelMode}; agent a holds ${clustersOnAgent} clusters; ${pinning.description}`);

    const wrk = async (name: PathName, connections: number, seconds: number): Promise<WrkReport> => {
      const { from, ip, port } = target[name];
      const command = pinned(pinning.load, ['wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', path.join(__dirname, 'wrk-report.lua'), `http://${ip}:${port}/`]);
      const result = await net.exec(from, command, { timeoutMs: (seconds + 30) * 1000 });
      const line = result.stdout.trim().split('\n').pop() ?? '';
      const report = JSON.parse(line) as WrkReport;
      if (report.errors > 0 || report.non2xx > 0) throw new Error(`wrk on path ${name}: ${report.errors} socket errors, ${report.non2xx} non-2xx responses`);
      return report;
    };

    const unloaded = {} as DataPlaneResult['unloaded'];
    for (const name of PATHS) {
      const report = await wrk(name, 1, settings.unloadedSeconds);
      unloaded[name] = { p50Us: report.p50Us, p90Us: report.p90Us, p99Us: report.p99Us, requests: report.requests };
      log(`  unloaded ${name}: p50 ${report.p50Us} µs, p90 ${report.p90Us} µs (${report.requests} requests)`);
    }

    const openLoop = {} as DataPlaneResult['openLoop'];
    const openLoopCpu = {} as Record<PathName, number[]>;
    const loadClient = [node, '--import', 'tsx', path.join(__dirname, 'open-loop-client.ts')];
    for (const name of PATHS) {
      const { from, ip, port } = target[name];
      const before = agentPids.map((pid) => sampleProcess(pid));
      const command = pinned(pinning.load, [...loadClient, '--host', ip, '--port', String(port), '--rate', String(settings.openLoopRate),
        '--connections', String(settings.openLoopConnections), '--seconds', String(settings.openLoopSeconds)]);
      const result = await net.exec(from, command, { timeoutMs: (settings.openLoopSeconds * 2 + 60) * 1000 });
      const report = JSON.parse(result.stdout.trim().split('\n').pop() ?? '') as DataPlaneResult['openLoop'][PathName] & { non2xx: number; seconds: number };
      if (report.non2xx > 0) throw new Error(`open loop on path ${name}: ${report.non2xx} non-2xx responses`);
      openLoopCpu[name] = agentPids.map((pid, i) => (sampleProcess(pid).cpuMs - before[i]!.cpuMs) / 1000 / report.seconds);
      openLoop[name] = { p50Us: report.p50Us, p90Us: report.p90Us, p99Us: report.p99Us, requests: report.requests, incomplete: report.incomplete, achievedRate: report.achievedRate, maxQueue: report.maxQueue };
      log(`  open loop ${name}: ${report.achievedRate.toFixed(0)} rps${report.incomplete > 0 ? ` (${report.incomplete} unanswered when cut off)` : ''}, p50 ${report.p50Us.toFixed(0)} µs, p90 ${report.p90Us.toFixed(0)} µs, p99 ${report.p99Us.toFixed(0)} µs`);
    }
    const per1000 = (vcpu: number) => vcpu / (settings.openLoopRate / 1000);
    const [meshA, meshB] = openLoopCpu.mesh;
    const agentCpuPer1000Rps = {
      oneHop: per1000(openLoopCpu.oneHop[1]!),
      meshPerAgent: per1000((meshA! + meshB!) / 2),
      meshClientAgent: per1000(meshA!),
      meshServerAgent: per1000(meshB!),
    };

    // Saturation: closed loop, as many requests as the path takes; cores = CPU seconds / wall seconds.
    const saturate = async (name: PathName, pids: number[]) => {
      const before = pids.map((pid) => sampleProcess(pid));
      const report = await wrk(name, settings.saturationConnections, settings.saturationSeconds);
      const seconds = report.durationUs / 1e6;
      const cores = cpuMsSince(pids, before) / 1000 / seconds;
      const rps = report.requests / seconds;
      log(`  saturation ${name}: ${rps.toFixed(0)} rps on ${cores.toFixed(2)} cores of the proxies`);
      return { rps, cores, rpsPerCore: rps / cores };
    };
    const nginxSat = await saturate('nginx', nginxWorkers);
    const oneHopSat = await saturate('oneHop', [agentB.pid!]);
    const meshSat = await saturate('mesh', agentPids);
    const after = agentPids.map((pid) => sampleProcess(pid));
    const outboundMode = await detectOutboundMode(net, 'a');

    return {
      tunnelMode,
      outboundMode,
      programs: `agents and mesh-server from ${agentProgram.source === 'dist' ? 'dist/ (compiled JavaScript)' : 'TypeScript via tsx'}; app and reference proxy: nginx (1 worker each)`,
      pinning: pinning.description,
      unloaded,
      openLoop,
      agentCpuPer1000Rps,
      saturation: {
        nginx: nginxSat,
        oneHop: oneHopSat,
        // Per agent core: the pair's requests count once per agent.
        mesh: { ...meshSat, rpsPerCore: (meshSat.rps * 2) / meshSat.cores },
        oneHopRatio: oneHopSat.rpsPerCore / nginxSat.rpsPerCore,
        meshRatio: (meshSat.rps * 2) / meshSat.cores / nginxSat.rpsPerCore,
      },
      agentMemory: {
        steadyRssMb: Math.max(...steady.map((s) => s.rssMb)),
        afterLoadRssMb: Math.max(...after.map((s) => s.rssMb)),
        peakRssMb: Math.max(...after.map((s) => s.hwmMb)),
      },
      config: { services: settings.services, endpoints: settings.endpoints, clustersOnAgent },
    };
  } finally {
    if (network) await network.destroy();
    await rm(work, { recursive: true, force: true });
  }
}

/** Clusters in the agent's config, from its admin API: proof the large config was loaded. */
async function countClusters(network: TestNetwork<Host>, host: Host): Promise<number> {
  const result = await network.exec(host, ['curl', '-sS', '--max-time', '10', 'http://127.0.0.1:15000/clusters?format=json'], { allowFailure: true });
  try {
    const parsed = JSON.parse(result.stdout) as { cluster_statuses?: unknown[] };
    if (Array.isArray(parsed.cluster_statuses)) return parsed.cluster_statuses.length;
  } catch {
    // Not JSON: count the cluster names in the text form below.
  }
  const names = new Set(result.stdout.split('\n').map((line) => line.split('::')[0]).filter((name) => name && name.includes('|')));
  return names.size;
}
