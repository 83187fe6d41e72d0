// Benchmark: time from a config file change to the last ACK, with many simulated ADS clients
// (agent-like: LDS/CDS wildcard, EDS/RDS by name) against a real mesh-server child process.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { TYPE_SHORT_NAME, TypeUrl, type ResourceTypeUrl } from '../lib/xds/protos';
import type { XdsShortType } from '../server/xds/sync-status';
import { outboundClusterName } from '../server/translate/names';
import { distribution, type Distribution } from './support/distribution';
import { generateConfig, PORT, serviceEntry, workloadEntry, writeAtomically } from './support/generated-mesh-config';
import { REPO_ROOT as ROOT, startMeshServer, stopMeshServer, type MeshServerProcess as ServerProcess } from './support/mesh-server-process';
import { sampleProcess as sampleServer } from './support/process-sample';
import { ALL_TYPES, checkSyncz, createClient, discoverNames, mapLimited, sleep, waitFor, type SimClient } from './support/simulated-agents';
import { integerOption } from './support/integer-option';


interface Settings {
  services: number;
  endpoints: number;
  clients: number;
  rounds: number;
  debounceMs: number;
  /** Longest one round may take before the benchmark gives up. */
  roundTimeoutMs: number;
  /** Longest the initial sync of every client may take. */
  syncTimeoutMs: number;
  quick: boolean;
  /** Rewrite the same file every round instead of a different one (see the note on file watching). */
  sameFile: boolean;
  /** Run the server with --cpu-prof, writing the profile here when it stops. */
  cpuProfDir?: string;
}

function readSettings(): Settings {
  const { values } = parseArgs({
    options: {
      services: { type: 'string' },
      endpoints: { type: 'string' },
      clients: { type: 'string' },
      rounds: { type: 'string' },
      'debounce-ms': { type: 'string' },
      'round-timeout-ms': { type: 'string' },
      'sync-timeout-ms': { type: 'string' },
      quick: { type: 'boolean', default: false },
      'same-file': { type: 'boolean', default: false },
      'cpu-prof-dir': { type: 'string' },
    },
    strict: true,
  });
  const quick = values.quick === true;
  const services = integerOption('services', values.services, quick ? 100 : 1000, 10, 100_000);
  return {
    services,
    endpoints: integerOption('endpoints', values.endpoints, quick ? 1000 : 10_000, services, 1_000_000),
    clients: integerOption('clients', values.clients, quick ? 20 : 100, 1, 10_000),
    rounds: integerOption('rounds', values.rounds, quick ? 2 : 5, 1, 100),
    debounceMs: integerOption('debounce-ms', values['debounce-ms'], 100, 0, 60_000),
    roundTimeoutMs: integerOption('round-timeout-ms', values['round-timeout-ms'], 60_000, 1000, 600_000),
    syncTimeoutMs: integerOption('sync-timeout-ms', values['sync-timeout-ms'], 120_000, 1000, 600_000),
    quick,
    sameFile: values['same-file'] === true,
    cpuProfDir: values['cpu-prof-dir'] === undefined ? undefined : path.resolve(values['cpu-prof-dir']),
  };
}

function benchCpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

// ---------- scenarios ----------


interface RoundResult {
  scenario: string;
  round: number;
  /** Write (after rename) to the client having every expected type: over clients. */
  convergedMs: Distribution;
  /** The same per resource type that changed, including types that changed for some clients only. */
  perTypeMs: Partial<Record<XdsShortType, Distribution & { clients: number }>>;
  serverCpuMs: number;
  benchCpuMs: number;
  serverRssMb: number;
}

interface Scenario {
  key: string;
  title: string;
  expected: readonly ResourceTypeUrl[];
  /** Makes the change; returns the write time. May set per-client hooks first. */
  apply: (round: number) => number;
}

async function runRound(scenario: Scenario, round: number, clients: SimClient[], server: ServerProcess, settings: Settings): Promise<RoundResult> {
  for (const client of clients) {
    client.arrivals = new Map();
    client.before = new Map(ALL_TYPES.map((type) => [type, client.ads.version(type)]));
    client.watchFrom = 0;
  }
  const serverBefore = sampleServer(server.pid);
  const benchBefore = benchCpuMs();
  const written = scenario.apply(round);
  const complete = (client: SimClient) => scenario.expected.every((type) => client.arrivals.has(type));
  await waitFor(`scenario ${scenario.key} round ${round + 1}`, settings.roundTimeoutMs, () => clients.every(complete), () => {
    const late = clients.filter((client) => !complete(client));
    const types = scenario.expected.filter((type) => late.some((client) => !client.arrivals.has(type))).map((type) => TYPE_SHORT_NAME[type]);
    return `${late.length} of ${clients.length} clients still lack an update of ${types.join(', ')} (e.g. ${late.slice(0, 3).map((c) => c.node).join(', ')})`;
  });
  // Stragglers of other types (e.g. LDS for the node that got a new workload) land in the settle time.
  await sleep(Math.max(300, settings.debounceMs * 3));
  const serverAfter = sampleServer(server.pid);
  const benchAfter = benchCpuMs();
  for (const client of clients) {
    client.watchFrom = Infinity;
    client.onCds = undefined;
  }
  const converged = clients.map((client) => Math.max(...scenario.expected.map((type) => client.arrivals.get(type)!)) - written);
  const perTypeMs: RoundResult['perTypeMs'] = {};
  for (const type of ALL_TYPES) {
    const times = clients.flatMap((client) => (client.arrivals.has(type) ? [client.arrivals.get(type)! - written] : []));
    if (times.length > 0) perTypeMs[TYPE_SHORT_NAME[type]] = { ...distribution(times), clients: times.length };
  }
  return {
    scenario: scenario.key,
    round: round + 1,
    convergedMs: distribution(converged),
    perTypeMs,
    serverCpuMs: serverAfter.cpuMs - serverBefore.cpuMs,
    benchCpuMs: benchAfter - benchBefore,
    serverRssMb: serverAfter.rssMb,
  };
}


// ---------- output ----------

function ms(value: number): string {
  return value.toFixed(value < 10 ? 1 : 0);
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const settings = readSettings();
  const commandLine = `node --import tsx bench/control-plane-push.ts ${process.argv.slice(2).join(' ')}`.trim();
  const started = performance.now();
  const loadBefore = os.loadavg();
  const config = generateConfig(settings);
  let server: ServerProcess | undefined;
  const clients: SimClient[] = [];
  try {
    server = await startMeshServer({ configDir: config.dir, debounceMs: settings.debounceMs, cpuProfDir: settings.cpuProfDir });
    const serverReady = sampleServer(server.pid);
    console.log(`mesh-server pid ${server.pid} (${server.how.startsWith('node dist') ? 'built dist/server/main.js' : 'TypeScript source via tsx'}), xds ${server.xds}`);
    console.log(`config: ${settings.services} ServiceEntries, ${settings.endpoints} WorkloadEntries, ${config.routedServices} VirtualService+DestinationRule pairs in ${config.files} files under ${config.dir}`);

    const nodes = Array.from({ length: settings.clients }, (_, i) => `host-${i}`);
    const discoveryStarted = performance.now();
    const names = await mapLimited(nodes, 8, (node) => discoverNames(server!.xds, node, settings.syncTimeoutMs));
    const discoveryMs = performance.now() - discoveryStarted;

    const syncStarted = performance.now();
    const serverBeforeSync = sampleServer(server.pid);
    for (let i = 0; i < nodes.length; i++) clients.push(createClient(server.xds, nodes[i]!, names[i]!));
    await waitFor('initial sync', settings.syncTimeoutMs, () => clients.every((c) => ALL_TYPES.every((type) => c.ads.version(type) !== undefined)), () => {
      const late = clients.filter((c) => ALL_TYPES.some((type) => c.ads.version(type) === undefined));
      const first = late[0]!;
      return `${late.length} of ${clients.length} clients do not hold all of LDS, CDS, EDS, RDS (e.g. ${first.node} lacks ${ALL_TYPES.filter((t) => first.ads.version(t) === undefined).map((t) => TYPE_SHORT_NAME[t]).join(', ')})`;
    });
    const syncMs = performance.now() - syncStarted;
    const serverAfterSync = sampleServer(server.pid);
    console.log(`discovery (decoding probes, setup only): ${ms(discoveryMs)} ms; initial sync of ${clients.length} clients (${names[0]!.eds.length} EDS, ${names[0]!.rds.length} RDS names each): ${ms(syncMs)} ms, server CPU ${ms(serverAfterSync.cpuMs - serverBeforeSync.cpuMs)} ms`);

    const servicesDir = config.dir;
    const scenarios: Scenario[] = [
      {
        key: 'a-vs-weight',
        title: '(a) VirtualService weight edit -> RDS',
        expected: [TypeUrl.RouteConfiguration],
        apply: (round) => {
          const file = config.trafficFile(settings.sameFile ? 0 : round % config.trafficFiles, 80 - round);
          return writeAtomically(path.join(servicesDir, file.name), file.content);
        },
      },
      {
        key: 'b-endpoint-address',
        title: '(b) one WorkloadEntry address -> EDS',
        expected: [TypeUrl.ClusterLoadAssignment],
        apply: (round) => {
          const file = config.workloadsFile(settings.sameFile ? 0 : round % config.workloadFiles, `10.201.${round % 256}.1`);
          return writeAtomically(path.join(servicesDir, file.name), file.content);
        },
      },
      {
        key: 'c-new-service',
        title: '(c) new ServiceEntry file -> CDS+EDS+RDS',
        expected: [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.RouteConfiguration],
        apply: (round) => {
          const name = `svc-added-${round}`;
          const cluster = outboundClusterName(PORT, name);
          for (const client of clients) {
            // The agent sees the new cluster, then asks for its endpoints (the EDS arrival that counts).
            client.onCds = () => {
              client.edsNames = [...client.edsNames, cluster];
              client.ads.subscribe(TypeUrl.ClusterLoadAssignment, client.edsNames);
            };
          }
          const docs = [serviceEntry(name), workloadEntry(`we-added-${round}`, name, 'host-0', `10.202.${round % 256}.1`, 'v1')];
          return writeAtomically(path.join(servicesDir, `added-${String(round).padStart(3, '0')}.yaml`), docs.join('\n---\n') + '\n');
        },
      },
    ];

    const results: RoundResult[] = [];
    for (const scenario of scenarios) {
      for (let round = 0; round < settings.rounds; round++) {
        await sleep(Math.max(500, settings.debounceMs * 3));
        results.push(await runRound(scenario, round, clients, server, settings));
      }
    }
    const syncz = await checkSyncz(server.admin, clients);
    const serverEnd = sampleServer(server.pid);

    const rows = results.map((r) => [
      scenarios.find((s) => s.key === r.scenario)!.title,
      String(r.round),
      ms(r.convergedMs.min), ms(r.convergedMs.p50), ms(r.convergedMs.p99), ms(r.convergedMs.max),
      Object.entries(r.perTypeMs).map(([type, d]) => `${type}:${ms(d.max)}${d.clients < clients.length ? `(${d.clients})` : ''}`).join(' '),
      ms(r.serverCpuMs), ms(r.benchCpuMs),
    ]);
    const summary = scenarios.map((scenario) => {
      const mine = results.filter((r) => r.scenario === scenario.key);
      const maxes = mine.map((r) => r.convergedMs.max);
      return {
        scenario: scenario.key,
        title: scenario.title,
        rounds: mine.length,
        firstMsMedian: distribution(mine.map((r) => r.convergedMs.min)).p50,
        p50MsMedian: distribution(mine.map((r) => r.convergedMs.p50)).p50,
        p99MsMedian: distribution(mine.map((r) => r.convergedMs.p99)).p50,
        lastAckMsMedian: distribution(maxes).p50,
        lastAckMsWorst: Math.max(...maxes),
        serverCpuMsMean: mine.reduce((sum, r) => sum + r.serverCpuMs, 0) / mine.length,
        benchCpuMsMean: mine.reduce((sum, r) => sum + r.benchCpuMs, 0) / mine.length,
      };
    });
    const machine = {
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cpus: os.cpus().length,
      memoryGb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      node: process.version,
      os: `${os.type()} ${os.release()}`,
      loadAverage1m: { atStart: loadBefore[0]!, atEnd: os.loadavg()[0]! },
    };

    console.log('');
    console.log(`machine: ${machine.cpus} x ${machine.cpu}, ${machine.memoryGb} GB, node ${machine.node}, ${machine.os}; 1-min load average ${machine.loadAverage1m.atStart.toFixed(1)} at start, ${machine.loadAverage1m.atEnd.toFixed(1)} at end`);
    console.log(`command: ${commandLine}`);
    console.log(`server:  ${server.how}`);
    console.log(`size:    ${settings.clients} clients, ${settings.services} services, ${settings.endpoints} endpoints, ${settings.rounds} rounds, debounce ${settings.debounceMs} ms`);
    console.log(`Times in ms from the rename of the changed file to the update (ACKed synchronously) at each client; server and bench share the machine's ${machine.cpus} CPUs (with anything else running).`);
    console.log(`Each round rewrites ${settings.sameFile ? 'the same file (--same-file)' : 'a different file (--same-file to rewrite one file every round)'}.`);
    console.log('"types" lists the max per type that changed, with (n) when only n clients got it. CPU columns: ms of CPU used during the round.');
    console.log('');
    console.log(table(['scenario', 'round', 'first', 'p50', 'p99', 'max(last ACK)', 'types (max)', 'server CPU', 'bench CPU'], rows));
    console.log('');
    console.log(table(
      ['summary (median over rounds)', 'rounds', 'first', 'p50', 'p99', 'last ACK', 'worst last ACK', 'server CPU/round', 'bench CPU/round'],
      summary.map((s) => [s.title, String(s.rounds), ms(s.firstMsMedian), ms(s.p50MsMedian), ms(s.p99MsMedian), ms(s.lastAckMsMedian), ms(s.lastAckMsWorst), ms(s.serverCpuMsMean), ms(s.benchCpuMsMean)]),
    ));
    console.log('');
    console.log(`server memory: RSS ${serverEnd.rssMb.toFixed(0)} MB at end (${serverReady.rssMb.toFixed(0)} MB after first load), peak VmHWM ${serverEnd.hwmMb.toFixed(0)} MB; server CPU total ${ms(serverEnd.cpuMs)} ms, bench CPU total ${ms(benchCpuMs())} ms`);
    console.log(`/debug/syncz: ${syncz.ok ? `every client acked the version sent for LDS, CDS, EDS and RDS (${clients.length} clients)` : `${syncz.problems.length} mismatches, e.g. ${syncz.problems.slice(0, 5).join('; ')}`}`);

    const output = {
      benchmark: 'control-plane-push',
      at: new Date().toISOString(),
      command: commandLine,
      server: { command: server.how, source: server.how.startsWith('node dist') ? 'dist' : 'tsx' },
      machine,
      note: 'mesh-server and the bench clients run on the same machine and share its CPUs; latency includes the config directory watcher debounce and the ADS debounce',
      settings,
      config: { files: config.files, routedServices: config.routedServices },
      setup: { discoveryMs, initialSyncMs: syncMs, initialSyncServerCpuMs: serverAfterSync.cpuMs - serverBeforeSync.cpuMs, edsNamesPerClient: names[0]!.eds.length, rdsNamesPerClient: names[0]!.rds.length },
      rounds: results,
      summary,
      serverMemory: { rssMbAfterFirstLoad: serverReady.rssMb, rssMbAtEnd: serverEnd.rssMb, hwmMb: serverEnd.hwmMb },
      cpuTotals: { serverMs: serverEnd.cpuMs, benchMs: benchCpuMs() },
      syncz,
      wallMs: performance.now() - started,
    };
    const resultsDir = path.join(ROOT, 'bench', 'results');
    fs.mkdirSync(resultsDir, { recursive: true });
    fs.writeFileSync(path.join(resultsDir, 'control-plane-push.json'), JSON.stringify(output, null, 2) + '\n');
    console.log(`results: bench/results/control-plane-push.json (wall ${ms((performance.now() - started) / 1000)} s)`);
    if (!syncz.ok) process.exitCode = 1;
  } finally {
    for (const client of clients) client.ads.close();
    if (server) await stopMeshServer(server);
    fs.rmSync(config.dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`control-plane-push: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
