// Control-plane benchmark at fleet size: M simulated agents (ADS clients, each on its own HTTP/2
// connection) in this process, N services with E endpoints in the Consul simulator, a real
// mesh-server child. Measures push of one deregistration to every agent, server CPU and memory
// per connected agent, and how long the fleet takes to be in sync again after a server restart.
import { mkdtemp, rm } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { TYPE_SHORT_NAME, TypeUrl, type ResourceTypeUrl } from '../../lib/xds/protos';
import { ConsulSimulator } from '../../test/consul/consul-simulator';
import { distribution, type Distribution } from '../support/distribution';
import { PORT } from '../support/generated-mesh-config';
import { startMeshServer, stopMeshServer, type MeshServerProcess } from '../support/mesh-server-process';
import { sampleProcess } from '../support/process-sample';
import { ALL_TYPES, checkSyncz, createClient, discoverNames, sleep, waitFor, type SimClient } from '../support/simulated-agents';

export interface FleetSettings {
  clients: number;
  services: number;
  endpoints: number;
  /** Deregistrations measured one after the other. */
  rounds: number;
  debounceMs: number;
  syncTimeoutMs: number;
  roundTimeoutMs: number;
  /** Run the server with --cpu-prof, one profile per server process, written here. */
  cpuProfDir?: string;
  /** Further mesh-server flags (e.g. --consul-max-connections), printed with the server's command. */
  serverArgs?: readonly string[];
}

export interface FleetResult {
  server: string;
  initialSyncMs: number;
  /** From the deregistration in the catalog to each client's ACK of the new EDS; worst round's figures. */
  pushMs: Distribution;
  pushRounds: Distribution[];
  /**
   * The same arrivals from the server's model change (its mesh_model_version moving, polled every
   * 20 ms), which leaves out how long Consul watching took to notice; worst round's figures.
   */
  pushFromModelMs: Distribution;
  /** Per round: deregistration to the model change, in ms. */
  modelChangeDelayMs: number[];
  serverCpuMsPerPush: number;
  /** withFleet: once every client ACKed its initial sync; atSync: when the last one held every type. */
  serverRssMb: { beforeFleet: number; atSync: number; withFleet: number; peak: number };
  serverMemoryPerAgentMb: number;
  /** Server CPU from the fleet's first request (discovery probe included) to the fleet in sync, in ms. */
  initialSyncServerCpuMs: number;
  /** From the old server's exit to every client in sync; and from the new server serving. */
  resyncAfterRestartMs: number;
  resyncAfterServingMs: number;
  reconnectsObserved: number;
}

/**
 * Each client on its own connection, as separate agents would be (grpc-js otherwise shares one
 * HTTP/2 connection between channels to the same target). Backoff: AdsClient's defaults, as mesh-agent's.
 */
const CLIENT_CHANNEL = { 'grpc.use_local_subchannel_pool': 1 } as const;

function endpointAddress(j: number): string {
  return `10.200.${Math.floor(j / 250) % 256}.${(j % 250) + 1}`;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The server's current model version, from its metrics. */
async function modelVersion(admin: string): Promise<number> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const match = /^mesh_model_version (\d+)$/m.exec(text);
  if (!match) throw new Error(`${admin}/metrics has no mesh_model_version`);
  return Number(match[1]);
}

/** Polls /debug/syncz until every client's every type is sent, ACKed and held alike. */
async function waitForSyncz(admin: string, clients: SimClient[], timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const { ok, problems } = await checkSyncz(admin, clients);
    if (ok) return;
    if (performance.now() > deadline) throw new Error(`${what}: not done after ${timeoutMs} ms: ${problems.length} problems, e.g. ${problems.slice(0, 3).join('; ')}`);
    await sleep(200);
  }
}

async function waitForReady(admin: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let last = '';
  while (performance.now() < deadline) {
    try {
      const response = await fetch(`${admin}/ready`);
      if (response.status === 200) return;
      last = await response.text();
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`mesh-server not ready within ${timeoutMs} ms: ${last}`);
}

export async function runFleet(settings: FleetSettings, log: (line: string) => void): Promise<FleetResult> {
  const consul = await ConsulSimulator.start({ jitter: false });
  const configDir = await mkdtemp(path.join(os.tmpdir(), 'mesh-bench-fleet-'));
  const nodes = Array.from({ length: settings.clients }, (_, i) => `host-${i}`);
  const instanceIds: Array<{ node: string; id: string }> = [];
  for (let i = 0; i < nodes.length; i++) consul.registerNode(nodes[i]!, `10.199.${Math.floor(i / 250) % 256}.${(i % 250) + 1}`);
  for (let j = 0; j < settings.endpoints; j++) {
    const node = nodes[j % nodes.length]!;
    const name = `svc-${j % settings.services}`;
    const id = consul.registerInstance({ node, id: `${name}-${j}`, name, address: endpointAddress(j), port: PORT, meta: { protocol: 'http', version: j % 2 === 0 ? 'v1' : 'v2' } });
    instanceIds.push({ node, id });
  }
  const xdsAddress = `127.0.0.1:${await freePort()}`;
  const serverOptions = { configDir, debounceMs: settings.debounceMs, xdsAddress, extraArgs: ['--consul-address', consul.address, ...(settings.serverArgs ?? [])], startTimeoutMs: settings.syncTimeoutMs, cpuProfDir: settings.cpuProfDir };
  let server: MeshServerProcess | undefined;
  const clients: SimClient[] = [];
  try {
    server = await startMeshServer(serverOptions);
    await waitForReady(server.admin, settings.syncTimeoutMs);
    const beforeFleet = sampleProcess(server.pid);
    log(`control plane: mesh-server pid ${server.pid} (${server.source}), Consul simulator ${consul.address} with ${settings.services} services, ${settings.endpoints} instances on ${settings.clients} nodes`);

    // Without a Sidecar every agent sees every service: one probe finds the EDS and RDS names all subscribe to.
    const names = await discoverNames(server.xds, nodes[0]!, settings.syncTimeoutMs);
    const syncStarted = performance.now();
    for (const node of nodes) clients.push(createClient(server.xds, node, names, CLIENT_CHANNEL));
    const allHeld = () => clients.every((c) => ALL_TYPES.every((type) => c.ads.version(type) !== undefined));
    await waitFor('initial sync of the fleet', settings.syncTimeoutMs, allHeld, () => `${clients.filter((c) => ALL_TYPES.some((t) => c.ads.version(t) === undefined)).length} clients lack a type`);
    const initialSyncMs = performance.now() - syncStarted;
    const atSync = sampleProcess(server.pid);
    // Memory per agent as the connected fleet costs it, not the responses still on their way: every
    // ACK in means every response left the server's write buffers (the peak is reported apart).
    await waitForSyncz(server.admin, clients, settings.syncTimeoutMs, 'every ACK of the initial sync');
    const withFleet = sampleProcess(server.pid);
    log(`  initial sync of ${clients.length} clients (${names.eds.length} EDS names each): ${initialSyncMs.toFixed(0)} ms; server RSS ${beforeFleet.rssMb.toFixed(0)} MB before, ${atSync.rssMb.toFixed(0)} MB when the last client held every type, ${withFleet.rssMb.toFixed(0)} MB with every ACK in`);

    const pushRounds: Distribution[] = [];
    const fromModelRounds: Distribution[] = [];
    const modelChangeDelayMs: number[] = [];
    let pushCpuMs = 0;
    for (let round = 0; round < settings.rounds; round++) {
      await sleep(Math.max(500, settings.debounceMs * 3));
      for (const client of clients) {
        client.arrivals = new Map();
        client.before = new Map(ALL_TYPES.map((type) => [type, client.ads.version(type)]));
        client.watchFrom = 0;
      }
      const cpuBefore = sampleProcess(server.pid).cpuMs;
      const admin = server.admin;
      const versionBefore = await modelVersion(admin);
      // Instances of different services and nodes each round, so every round is a real change.
      const victim = instanceIds[(round * 7919) % instanceIds.length]!;
      const changed = performance.now();
      consul.deregisterInstance(victim.node, victim.id);
      let modelChanged: number | undefined;
      const watchDeadline = changed + settings.roundTimeoutMs;
      const modelWatch = (async () => {
        while (modelChanged === undefined && performance.now() < watchDeadline) {
          if ((await modelVersion(admin)) !== versionBefore) modelChanged = performance.now();
          else await sleep(20);
        }
      })();
      const eds: ResourceTypeUrl = TypeUrl.ClusterLoadAssignment;
      await waitFor(`deregistration ${round + 1}`, settings.roundTimeoutMs, () => clients.every((c) => c.arrivals.has(eds)),
        () => `${clients.filter((c) => !c.arrivals.has(eds)).length} of ${clients.length} clients have no new ${TYPE_SHORT_NAME[eds]}`);
      pushCpuMs += sampleProcess(server.pid).cpuMs - cpuBefore;
      for (const client of clients) client.watchFrom = Infinity;
      await modelWatch;
      if (modelChanged === undefined) throw new Error(`deregistration ${round + 1}: mesh_model_version never moved from ${versionBefore}`);
      const times = clients.map((c) => c.arrivals.get(eds)! - changed);
      pushRounds.push(distribution(times));
      fromModelRounds.push(distribution(clients.map((c) => c.arrivals.get(eds)! - modelChanged!)));
      modelChangeDelayMs.push(modelChanged - changed);
      const [all, fromModel] = [pushRounds[round]!, fromModelRounds[round]!];
      log(`  deregistration ${round + 1}: p50 ${all.p50.toFixed(0)} ms, p99 ${all.p99.toFixed(0)} ms, max ${all.max.toFixed(0)} ms; model changed after ${(modelChanged - changed).toFixed(0)} ms, from then p50 ${fromModel.p50.toFixed(0)} ms, p99 ${fromModel.p99.toFixed(0)} ms, max ${fromModel.max.toFixed(0)} ms`);
    }
    const worst = pushRounds.reduce((a, b) => (b.max > a.max ? b : a));
    const worstFromModel = fromModelRounds.reduce((a, b) => (b.max > a.max ? b : a));

    // Restart with the fleet connected: the clients reconnect with their backoff and resend their versions.
    const reconnectsBefore = clients.reduce((sum, c) => sum + c.ads.stats().reconnects, 0);
    const peak = sampleProcess(server.pid);
    await stopMeshServer(server);
    const stopped = performance.now();
    server = await startMeshServer(serverOptions);
    const serving = performance.now();
    const restarted = server;
    const inSync = async () => (await checkSyncz(restarted.admin, clients)).ok;
    const deadline = performance.now() + settings.syncTimeoutMs;
    while (!(await inSync())) {
      if (performance.now() > deadline) {
        const { problems } = await checkSyncz(restarted.admin, clients);
        throw new Error(`fleet not in sync ${settings.syncTimeoutMs} ms after the restart: ${problems.length} problems, e.g. ${problems.slice(0, 3).join('; ')}`);
      }
      await sleep(200);
    }
    const synced = performance.now();
    const reconnectsObserved = clients.reduce((sum, c) => sum + c.ads.stats().reconnects, 0) - reconnectsBefore;
    log(`  restart: in sync ${(synced - stopped).toFixed(0)} ms after the old server exited (${(synced - serving).toFixed(0)} ms after the new one served), ${reconnectsObserved} reconnects`);

    return {
      server: server.how.replace(consul.address, '<consul simulator>'),
      initialSyncMs,
      pushMs: worst,
      pushRounds,
      pushFromModelMs: worstFromModel,
      modelChangeDelayMs,
      serverCpuMsPerPush: pushCpuMs / settings.rounds,
      serverRssMb: { beforeFleet: beforeFleet.rssMb, atSync: atSync.rssMb, withFleet: withFleet.rssMb, peak: peak.hwmMb },
      serverMemoryPerAgentMb: (withFleet.rssMb - beforeFleet.rssMb) / settings.clients,
      initialSyncServerCpuMs: atSync.cpuMs - beforeFleet.cpuMs,
      resyncAfterRestartMs: synced - stopped,
      resyncAfterServingMs: synced - serving,
      reconnectsObserved,
    };
  } finally {
    for (const client of clients) client.ads.close();
    if (server) await stopMeshServer(server);
    await consul.close();
    await rm(configDir, { recursive: true, force: true });
  }
}

/**
 * `node --import tsx bench/control-plane/fleet.ts [--clients N] ...`: the fleet part of `npm run bench`
 * alone, to measure and profile the control plane without the data-plane and CA parts.
 */
if (require.main === module) {
  void (async () => {
    const { parseArgs } = await import('node:util');
    const { integerOption } = await import('../support/integer-option');
    const { values } = parseArgs({
      options: {
        clients: { type: 'string' }, services: { type: 'string' }, endpoints: { type: 'string' }, rounds: { type: 'string' },
        'cpu-prof-dir': { type: 'string' }, 'server-arg': { type: 'string', multiple: true },
      },
      strict: true,
    });
    const services = integerOption('services', values.services, 1000, 1, 100_000);
    const settings: FleetSettings = {
      clients: integerOption('clients', values.clients, 1000, 1, 10_000),
      services,
      endpoints: integerOption('endpoints', values.endpoints, 10_000, services, 1_000_000),
      rounds: integerOption('rounds', values.rounds, 2, 1, 100),
      debounceMs: 100,
      syncTimeoutMs: 300_000,
      roundTimeoutMs: 240_000,
      cpuProfDir: values['cpu-prof-dir'] === undefined ? undefined : path.resolve(values['cpu-prof-dir']),
      serverArgs: values['server-arg'],
    };
    const result = await runFleet(settings, (line) => console.log(line));
    console.log(JSON.stringify(result, null, 2));
  })().catch((error: unknown) => {
    process.stderr.write(`fleet: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  });
}
