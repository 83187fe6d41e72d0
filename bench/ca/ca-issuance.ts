// Certificate issuance of the mesh CA on one core: signs pre-generated P-256 CSRs in a loop for a
// bounded time (throughput per CPU-second), then at a fixed open-loop rate (latency from when each
// signing was due, so a slow signing delays the ones queued behind it and shows in the tail).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { loadCaKeys, type CaKeys } from '../../server/ca/ca-keys';
import { signCsr, type SignRequest } from '../../server/ca/csr-signer';
import { makeCsr, uriSan } from '../../server/ca/testing';
import { distribution, type Distribution } from '../support/distribution';

const TRUST_DOMAIN = 'cluster.local';
const DISTINCT_CSRS = 200;

export interface CaSettings {
  /** How long to sign back to back. */
  throughputSeconds: number;
  /** Open-loop rate and duration for the latency figure. */
  latencyRate: number;
  latencySeconds: number;
}

export interface CaResult {
  certificates: number;
  wallSeconds: number;
  cpuSeconds: number;
  certsPerWallSecond: number;
  certsPerCpuSecond: number;
  /** Latency at `latencyRate` per second, from the due time, in ms. */
  latencyMs: Distribution;
  latencyRate: number;
}

interface Signer {
  keys: CaKeys;
  csrs: string[];
  request: SignRequest;
}

async function prepare(stateDir: string): Promise<Signer> {
  const keys = await loadCaKeys({ trustDomain: TRUST_DOMAIN, stateDir });
  const identities = Array.from({ length: DISTINCT_CSRS }, (_, i) => `spiffe://${TRUST_DOMAIN}/ns/bench/sa/workload-${i}`);
  const csrs = await Promise.all(identities.map((id) => makeCsr({ sans: uriSan(id) })));
  const allowed = new Set(identities);
  const request: SignRequest = { requester: { node: 'bench-node' }, allowedIdentities: () => allowed };
  return { keys, csrs, request };
}

function sign(signer: Signer, i: number): void {
  signCsr(signer.keys, TRUST_DOMAIN, signer.csrs[i % DISTINCT_CSRS]!, signer.request);
}

export async function runCaIssuance(settings: CaSettings): Promise<CaResult> {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'mesh-ca-bench-'));
  try {
    const signer = await prepare(stateDir);
    // Warm-up, so the JIT and the library's lazy set-up do not count against the rate.
    for (let i = 0; i < 200; i++) sign(signer, i);

    const cpuStart = process.cpuUsage();
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(Math.round(settings.throughputSeconds * 1e9));
    let issued = 0;
    while (process.hrtime.bigint() < deadline) {
      for (let i = 0; i < 100; i++) sign(signer, issued + i);
      issued += 100;
    }
    const wallSeconds = Number(process.hrtime.bigint() - start) / 1e9;
    const cpu = process.cpuUsage(cpuStart);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;

    const total = Math.max(1, Math.round(settings.latencyRate * settings.latencySeconds));
    const latencies = new Float64Array(total);
    const intervalMs = 1000 / settings.latencyRate;
    const begin = performance.now();
    let done = 0;
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        // Every signing that has come due runs now; its latency counts from when it was due.
        const due = Math.min(total, Math.floor((performance.now() - begin) / intervalMs) + 1);
        while (done < due) {
          sign(signer, done);
          latencies[done] = performance.now() - (begin + done * intervalMs);
          done++;
        }
        if (done < total) setTimeout(tick, Math.max(0, begin + done * intervalMs - performance.now()));
        else resolve();
      };
      tick();
    });
    return {
      certificates: issued, wallSeconds, cpuSeconds,
      certsPerWallSecond: issued / wallSeconds,
      certsPerCpuSecond: issued / cpuSeconds,
      latencyMs: distribution(latencies),
      latencyRate: settings.latencyRate,
    };
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}

function secondsArgument(): number {
  const at = process.argv.indexOf('--seconds');
  const value = at === -1 ? 5 : Number(process.argv[at + 1]);
  if (!(value > 0)) throw new Error('--seconds needs a positive number');
  return value;
}

if (require.main === module) {
  runCaIssuance({ throughputSeconds: secondsArgument(), latencyRate: 100, latencySeconds: 5 }).then((result) => {
    console.table([{
      certificates: result.certificates,
      'wall s': result.wallSeconds.toFixed(2),
      'cpu s (all threads)': result.cpuSeconds.toFixed(2),
      'certs/s (wall)': Math.round(result.certsPerWallSecond),
      'certs/s per cpu-second': Math.round(result.certsPerCpuSecond),
      'µs per cert': Math.round((result.wallSeconds * 1e6) / result.certificates),
      [`p99 ms at ${result.latencyRate}/s`]: result.latencyMs.p99.toFixed(2),
    }]);
  }, (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
