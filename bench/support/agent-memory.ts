// One mesh-agent's memory with a large config loaded, in isolation: mesh-server with the generated
// config (every agent a client of every service) and one agent, both in a network namespace of
// their own (the agent binds its fixed ports 15001/15006/15008 there), no redirection. Prints VmRSS
// once the config is in force and has settled, and VmHWM (peak), from /proc like the other benches.
//
//   node --import tsx bench/support/agent-memory.ts [--services 1000] [--endpoints 10000]
//        [--settle-seconds 10] [--heap-snapshot-dir DIR] [--agent-node-option OPT]... [--build-dir DIR]
//
// --build-dir runs server/main.js and agent/main.js of a build made elsewhere (`tsc --outDir DIR`
// with DIR/node_modules linked to the repository's), so that the measurement is of compiled code
// even while the sources are being edited; by default dist/ is used when it is fresh, else tsx.
//
// Where the RSS goes comes from a Node diagnostic report taken at the same moment (SIGUSR2): the V8
// heap spaces' committed and used sizes, and what lies outside the V8 heap. --heap-snapshot-dir also
// writes a heap snapshot there (SIGTTIN), to open in Chrome DevTools (Memory tab).
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { parseArgs } from 'node:util';
import { createTestNetwork, netnsUnavailableReason } from '../../test/netns/test-network';
import { generateConfig } from './generated-mesh-config';
import { integerOption } from './integer-option';
import { programArgs, REPO_ROOT } from './mesh-server-process';
import { sampleProcess } from './process-sample';

const XDS_PORT = 15010;
const START_TIMEOUT_MS = 180_000;
const NODE_NAME = 'bench-agent';

interface AgentMemoryResult {
  services: number;
  endpoints: number;
  clusters: number;
  /** `dist`, `tsx`, or the --build-dir the programs ran from. */
  source: string;
  agentCommand: string;
  /** VmRSS after the config is applied and `settleSeconds` have passed, MB. */
  steadyRssMb: number;
  /** VmHWM, the highest RSS the agent reached from start to the end of the settle time, MB. */
  peakRssMb: number;
  /** Milliseconds from the agent's start to its "config applied" log line with the full config. */
  configAppliedMs: number;
  /** MB from the diagnostic report at the steady sample. */
  breakdown: {
    heapCommittedMb: number;
    heapUsedMb: number;
    /** Committed size per V8 space (new_space, old_space, code_space, large_object_space, ...). */
    spacesCommittedMb: Record<string, number>;
    /** RSS not committed to the V8 heap: code of node itself, buffers, malloc (gRPC, TLS, zlib). */
    outsideHeapMb: number;
  };
  heapSnapshot?: string;
}

interface DiagnosticReport {
  javascriptHeap: { totalMemory: number | string; usedMemory: number | string; heapSpaces: Record<string, { memorySize: number | string; used: number | string }> };
}

const mb = (bytes: number | string) => Math.round(Number(bytes) / 104857.6) / 10;

/** Collects a child's stdout lines and lets callers wait for one that matches, with a deadline. */
function watchLines(child: ChildProcess, name: string): { waitFor: (what: string, match: (line: string) => boolean, timeoutMs: number) => Promise<string> } {
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  readline.createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    if (lines.length > 500) lines.shift();
    for (const wake of [...waiters]) wake();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  return {
    waitFor: (what, match, timeoutMs) => new Promise((resolve, reject) => {
      const finish = (error: Error | undefined, line?: string) => {
        clearTimeout(timer);
        waiters.delete(check);
        child.off('exit', onExit);
        if (error) reject(error);
        else resolve(line!);
      };
      const check = () => {
        const found = lines.find(match);
        if (found !== undefined) finish(undefined, found);
      };
      const onExit = (code: number | null) => finish(new Error(`${name}: exited (${String(code)}) before ${what}; stderr: ${stderr}`));
      const timer = setTimeout(() => finish(new Error(`${name}: no ${what} within ${timeoutMs} ms; stderr: ${stderr}; last lines:\n${lines.slice(-5).join('\n')}`)), timeoutMs);
      waiters.add(check);
      child.once('exit', onExit);
      check();
    }),
  };
}

async function waitForFile(dir: string, suffix: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // The directory itself may not exist yet (the agent creates it on its first save).
    const found = (await readdir(dir).catch(() => [] as string[])).find((name) => name.endsWith(suffix));
    if (found) return path.join(dir, found);
    if (Date.now() > deadline) throw new Error(`no *${suffix} in ${dir} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Node writes a heap snapshot in place: it is complete once its size stops changing. */
async function waitForStableSize(file: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = -1;
  for (;;) {
    const size = (await stat(file)).size;
    if (size > 0 && size === last) return;
    if (Date.now() > deadline) throw new Error(`${file} still growing after ${timeoutMs} ms`);
    last = size;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function programFrom(buildDir: string | undefined, program: 'server' | 'agent'): { args: string[]; source: string } {
  if (!buildDir) return programArgs(program);
  const main = path.join(buildDir, program, 'main.js');
  if (!existsSync(main)) throw new Error(`--build-dir ${buildDir}: no ${program}/main.js in it (build with tsc -p tsconfig.json --outDir ${buildDir})`);
  return { args: [main], source: buildDir };
}

export async function measureAgentMemory(options: { services: number; endpoints: number; settleSeconds: number; heapSnapshotDir?: string; agentNodeOptions: string[]; buildDir?: string }): Promise<AgentMemoryResult> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'mesh-bench-agent-memory-'));
  const network = await createTestNetwork({ hosts: ['m'] });
  try {
    const configDir = generateConfig({ services: options.services, endpoints: options.endpoints, clients: options.services }).dir;
    const server = network.spawn('m', [process.execPath, ...programFrom(options.buildDir, 'server').args,
      '--config-dir', configDir, '--xds-address', `127.0.0.1:${XDS_PORT}`, '--admin-address', '127.0.0.1:15014', '--debounce-ms', '20', '--log-level', 'info',
    ], { cwd: REPO_ROOT });
    try {
      await watchLines(server, 'mesh-server').waitFor('"mesh-server serving"', (line) => line.includes('"mesh-server serving"'), START_TIMEOUT_MS);
    } finally {
      await rm(configDir, { recursive: true, force: true });
    }

    const configFile = path.join(work, 'agent.yaml');
    await writeFile(configFile, `server: 127.0.0.1:${XDS_PORT}\nnode: ${NODE_NAME}\nstateDir: ${path.join(work, 'state')}\n`);
    const agentProgram = programFrom(options.buildDir, 'agent');
    const nodeOptions = [...options.agentNodeOptions];
    const reportDir = path.join(work, 'report');
    await mkdir(reportDir);
    nodeOptions.push('--report-on-signal', '--report-signal=SIGUSR2', `--report-directory=${reportDir}`);
    if (options.heapSnapshotDir) nodeOptions.push('--heapsnapshot-signal=SIGTTIN', `--diagnostic-dir=${options.heapSnapshotDir}`);
    const agentArgs = [...nodeOptions, ...agentProgram.args, '--config', configFile, '--no-redirect', '--log-level', 'info'];
    const started = Date.now();
    const agent = network.spawn('m', [process.execPath, ...agentArgs], { cwd: REPO_ROOT });
    const agentLines = watchLines(agent, 'mesh-agent');
    // The full config, not the first partial one: at least one cluster per generated service.
    const applied = await agentLines.waitFor('"config applied" with every cluster', (line) => {
      if (!line.includes('"config applied"')) return false;
      const record = JSON.parse(line) as { clusters?: number; source?: string };
      return record.source === 'server' && (record.clusters ?? 0) >= options.services;
    }, START_TIMEOUT_MS);
    const configAppliedMs = Date.now() - started;
    const clusters = (JSON.parse(applied) as { clusters: number }).clusters;
    // The snapshot is written after the config is applied; its serialisation is part of the peak.
    await waitForFile(path.join(work, 'state', 'xds'), 'snapshot.json', START_TIMEOUT_MS);
    await new Promise((resolve) => setTimeout(resolve, options.settleSeconds * 1000));
    const sample = sampleProcess(agent.pid!);
    agent.kill('SIGUSR2');
    const reportFile = await waitForFile(reportDir, '.json', 60_000);
    await waitForStableSize(reportFile, 60_000);
    const report = JSON.parse(await readFile(reportFile, 'utf8')) as DiagnosticReport;
    const heap = report.javascriptHeap;
    const breakdown = {
      heapCommittedMb: mb(heap.totalMemory),
      heapUsedMb: mb(heap.usedMemory),
      spacesCommittedMb: Object.fromEntries(Object.entries(heap.heapSpaces).map(([name, space]) => [name, mb(space.memorySize)])),
      outsideHeapMb: Math.round((sample.rssMb - Number(heap.totalMemory) / 1048576) * 10) / 10,
    };
    let heapSnapshot: string | undefined;
    if (options.heapSnapshotDir) {
      agent.kill('SIGTTIN');
      heapSnapshot = await waitForFile(options.heapSnapshotDir, '.heapsnapshot', 120_000);
      await waitForStableSize(heapSnapshot, 120_000);
    }
    return {
      services: options.services,
      endpoints: options.endpoints,
      clusters,
      source: agentProgram.source,
      agentCommand: `node ${agentArgs.map((a) => path.relative(REPO_ROOT, a) || a).join(' ')}`,
      steadyRssMb: Math.round(sample.rssMb * 10) / 10,
      peakRssMb: Math.round(sample.hwmMb * 10) / 10,
      configAppliedMs,
      breakdown,
      heapSnapshot,
    };
  } finally {
    await network.destroy();
    await rm(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const unavailable = netnsUnavailableReason();
  if (unavailable) throw new Error(`agent-memory needs network namespaces: ${unavailable}`);
  const { values } = parseArgs({
    options: {
      services: { type: 'string' },
      endpoints: { type: 'string' },
      'settle-seconds': { type: 'string' },
      'heap-snapshot-dir': { type: 'string' },
      'agent-node-option': { type: 'string', multiple: true, default: [] },
      'build-dir': { type: 'string' },
    },
  });
  const result = await measureAgentMemory({
    services: integerOption('services', values.services, 1000, 1, 100_000),
    endpoints: integerOption('endpoints', values.endpoints, 10_000, 1, 1_000_000),
    settleSeconds: integerOption('settle-seconds', values['settle-seconds'], 10, 0, 600),
    heapSnapshotDir: values['heap-snapshot-dir'] ? path.resolve(values['heap-snapshot-dir']) : undefined,
    agentNodeOptions: values['agent-node-option'],
    buildDir: values['build-dir'] ? path.resolve(values['build-dir']) : undefined,
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`agent-memory: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  });
}
