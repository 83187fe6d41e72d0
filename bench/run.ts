// `npm run bench`: every benchmark of issue 6 in one run on one machine (data plane against direct
// and nginx, control plane at fleet size, CA), printed as one table against the targets and written
// as JSON to bench/results/<timestamp>.json. `--quick` runs the same code paths with small counts.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { runCaIssuance, type CaResult, type CaSettings } from './ca/ca-issuance';
import { runFleet, type FleetResult, type FleetSettings } from './control-plane/fleet';
import { PATH_TITLES, runDataPlane, type DataPlaneResult, type DataPlaneSettings, type PathName } from './data-plane/data-plane';
import { figures, type Figure } from './targets';
import { integerOption } from './support/integer-option';

export interface BenchSettings {
  quick: boolean;
  dataPlane: DataPlaneSettings;
  fleet: FleetSettings;
  ca: CaSettings;
}

export interface BenchReport {
  benchmark: 'mesh';
  at: string;
  command: string;
  quick: boolean;
  machine: { cpu: string; cpus: number; memoryGb: number; node: string; os: string; loadAverage1m: { atStart: number; atEnd: number } };
  settings: BenchSettings;
  figures: Figure[];
  dataPlane: DataPlaneResult;
  controlPlane: FleetResult;
  ca: CaResult;
  wallSeconds: number;
  resultsFile: string;
}

export function readSettings(argv: readonly string[]): BenchSettings {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean', default: false },
      clients: { type: 'string' },
      services: { type: 'string' },
      endpoints: { type: 'string' },
      'open-loop-seconds': { type: 'string' },
    },
    strict: true,
  });
  const quick = values.quick === true;
  const services = integerOption('services', values.services, quick ? 100 : 1000, 1, 100_000);
  const endpoints = integerOption('endpoints', values.endpoints, quick ? 1000 : 10_000, services, 1_000_000);
  return {
    quick,
    dataPlane: {
      services, endpoints,
      unloadedSeconds: quick ? 1 : 5,
      openLoopSeconds: integerOption('open-loop-seconds', values['open-loop-seconds'], quick ? 2 : 60, 1, 600),
      openLoopRate: 1000,
      openLoopConnections: 16,
      saturationSeconds: quick ? 2 : 8,
      saturationConnections: 32,
      startTimeoutMs: 120_000,
    },
    fleet: {
      // The issue's fleet size.
      clients: integerOption('clients', values.clients, quick ? 10 : 1000, 1, 10_000),
      services, endpoints,
      rounds: quick ? 1 : 2,
      debounceMs: 100,
      syncTimeoutMs: 300_000,
      // Generous: with 1000 services a change can wait a minute or more for its Consul watch (README).
      roundTimeoutMs: 240_000,
    },
    ca: { throughputSeconds: quick ? 1 : 5, latencyRate: 100, latencySeconds: quick ? 1 : 10 },
  };
}

function pad(cells: readonly string[], widths: readonly number[], right: ReadonlySet<number>): string {
  return cells.map((cell, i) => (right.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
}

export function renderTable(headers: readonly string[], rows: readonly string[][], right: ReadonlySet<number> = new Set()): string {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => row[i]!.length)));
  return [pad(headers, widths, right), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map((row) => pad(row, widths, right))].join('\n');
}

const us = (value: number) => `${Math.round(value)} µs`;

function dataPlaneDetail(result: DataPlaneResult): string {
  const names = Object.keys(PATH_TITLES) as PathName[];
  const direct = { unloaded: result.unloaded.direct, openLoop: result.openLoop.direct };
  const rows = names.map((name) => {
    const u = result.unloaded[name];
    const o = result.openLoop[name];
    const sat = name === 'direct' ? undefined : result.saturation[name];
    return [
      PATH_TITLES[name],
      us(u.p50Us), us(u.p90Us), name === 'direct' ? '' : us(u.p50Us - direct.unloaded.p50Us),
      us(o.p50Us), us(o.p90Us), us(o.p99Us),
      name === 'direct' ? '' : `${us(o.p90Us - direct.openLoop.p90Us)} / ${us(o.p99Us - direct.openLoop.p99Us)}`,
      sat ? `${Math.round(sat.rps)} rps / ${sat.cores.toFixed(2)} cores` : '',
    ];
  });
  return renderTable(
    ['path', 'unloaded p50', 'p90', 'added p50', '1000 rps p50', 'p90', 'p99', 'added p90 / p99', 'saturation (proxies\' CPU)'],
    rows, new Set([1, 2, 3, 4, 5, 6, 7]),
  );
}

export async function runBench(settings: BenchSettings, command: string, log: (line: string) => void): Promise<BenchReport> {
  const started = performance.now();
  const loadAtStart = os.loadavg()[0]!;
  log(`mesh benchmark${settings.quick ? ' (--quick: small counts, same code paths; figures are not meaningful)' : ''}`);
  const dataPlane = await runDataPlane(settings.dataPlane, log);
  const controlPlane = await runFleet(settings.fleet, log);
  const ca = await runCaIssuance(settings.ca);
  log(`CA: ${Math.round(ca.certsPerCpuSecond)} certificates per CPU-second (${Math.round(ca.certsPerWallSecond)} per wall second); p99 ${ca.latencyMs.p99.toFixed(2)} ms at ${ca.latencyRate}/s`);

  const machine = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    memoryGb: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    loadAverage1m: { atStart: loadAtStart, atEnd: os.loadavg()[0]! },
  };
  const at = new Date();
  const resultsDir = path.join(__dirname, 'results');
  const resultsFile = path.join(resultsDir, `${at.toISOString().replace(/[:.]/g, '-')}.json`);
  const report: BenchReport = {
    benchmark: 'mesh', at: at.toISOString(), command, quick: settings.quick, machine, settings,
    figures: figures(dataPlane, controlPlane, ca, settings.fleet.clients),
    dataPlane, controlPlane, ca,
    wallSeconds: (performance.now() - started) / 1000,
    resultsFile: path.relative(path.join(__dirname, '..'), resultsFile),
  };
  fs.mkdirSync(resultsDir, { recursive: true });
  fs.writeFileSync(resultsFile, JSON.stringify(report, null, 2) + '\n');
  return report;
}

export function renderReport(report: BenchReport): string {
  const { machine, dataPlane, controlPlane, ca } = report;
  const lines = [
    '',
    `machine: ${machine.cpus} x ${machine.cpu}, ${machine.memoryGb} GB, node ${machine.node}, ${machine.os}; 1-min load average ${machine.loadAverage1m.atStart.toFixed(1)} at start, ${machine.loadAverage1m.atEnd.toFixed(1)} at end`,
    `command: ${report.command}`,
    `data plane: ${dataPlane.tunnelMode}; ${dataPlane.outboundMode}; ${dataPlane.programs}`,
    `pinning: ${dataPlane.pinning}`,
    `config on the agents: ${dataPlane.config.services} services, ${dataPlane.config.endpoints} endpoints (${dataPlane.config.clustersOnAgent} clusters on agent a)`,
    `control plane: ${report.settings.fleet.clients} simulated agents, ${report.settings.fleet.services} services, ${report.settings.fleet.endpoints} endpoints in the Consul simulator; ${controlPlane.server}`,
    '',
    renderTable(['figure', 'measured', 'target', 'met', 'anchor'], report.figures.map((f) => [f.figure, f.measured, f.target, f.met ? 'yes' : 'NO', f.anchor])),
    '',
    dataPlaneDetail(dataPlane),
    '',
    `agents' CPU per 1000 rps: one hop ${dataPlane.agentCpuPer1000Rps.oneHop.toFixed(3)} vCPU; mesh path client agent ${dataPlane.agentCpuPer1000Rps.meshClientAgent.toFixed(3)}, server agent ${dataPlane.agentCpuPer1000Rps.meshServerAgent.toFixed(3)} vCPU`,
    `agent RSS: ${dataPlane.agentMemory.steadyRssMb.toFixed(0)} MB with config loaded before traffic, ${dataPlane.agentMemory.afterLoadRssMb.toFixed(0)} MB after the load runs, peak (VmHWM) ${dataPlane.agentMemory.peakRssMb.toFixed(0)} MB`,
    `control plane: initial sync of the fleet ${(controlPlane.initialSyncMs / 1000).toFixed(1)} s (server CPU ${(controlPlane.initialSyncServerCpuMs / 1000).toFixed(1)} s); push p50/p99/max ${controlPlane.pushMs.p50.toFixed(0)}/${controlPlane.pushMs.p99.toFixed(0)}/${controlPlane.pushMs.max.toFixed(0)} ms (worst of ${controlPlane.pushRounds.length} rounds; from the server's model change ${controlPlane.pushFromModelMs.p50.toFixed(0)}/${controlPlane.pushFromModelMs.p99.toFixed(0)}/${controlPlane.pushFromModelMs.max.toFixed(0)} ms), server CPU ${controlPlane.serverCpuMsPerPush.toFixed(0)} ms per push; server RSS ${controlPlane.serverRssMb.beforeFleet.toFixed(0)} MB without agents, ${controlPlane.serverRssMb.withFleet.toFixed(0)} MB with (all ACKed; ${controlPlane.serverRssMb.atSync.toFixed(0)} MB as the last response arrived), peak ${controlPlane.serverRssMb.peak.toFixed(0)} MB; restart: in sync ${(controlPlane.resyncAfterServingMs / 1000).toFixed(1)} s after the new server served`,
    `CA: ${ca.certificates} certificates in ${ca.wallSeconds.toFixed(1)} s wall, ${ca.cpuSeconds.toFixed(1)} s CPU; at ${ca.latencyRate}/s p50 ${ca.latencyMs.p50.toFixed(2)} ms, p99 ${ca.latencyMs.p99.toFixed(2)} ms`,
    `results: ${report.resultsFile} (wall ${report.wallSeconds.toFixed(0)} s)`,
  ];
  return lines.join('\n');
}

if (require.main === module) {
  const argv = process.argv.slice(2);
  const command = `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`;
  let settings: BenchSettings;
  try {
    settings = readSettings(argv);
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    process.exit(2);
  }
  runBench(settings, command, (line) => console.log(line)).then(
    (report) => console.log(renderReport(report)),
    (error: unknown) => {
      process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
