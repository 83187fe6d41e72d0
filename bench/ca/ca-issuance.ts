// Certificate issuance rate of the mesh CA on one core: signs pre-generated P-256 CSRs in a loop
// for a bounded time (default 5 s, `--seconds N`) and prints certificates per second.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { loadCaKeys } from '../server/ca/ca-keys';
import { signCsr, type SignRequest } from '../server/ca/csr-signer';
import { makeCsr, uriSan } from '../server/ca/testing';

const TRUST_DOMAIN = 'cluster.local';
const DISTINCT_CSRS = 200;

function secondsArgument(): number {
  const at = process.argv.indexOf('--seconds');
  const value = at === -1 ? 5 : Number(process.argv[at + 1]);
  if (!(value > 0)) throw new Error('--seconds needs a positive number');
  return value;
}

async function main(): Promise<void> {
  const seconds = secondsArgument();
  const stateDir = mkdtempSync(path.join(tmpdir(), 'mesh-ca-bench-'));
  try {
    const keys = await loadCaKeys({ trustDomain: TRUST_DOMAIN, stateDir });
    const identities = Array.from({ length: DISTINCT_CSRS }, (_, i) => `spiffe://${TRUST_DOMAIN}/ns/bench/sa/workload-${i}`);
    const csrs = await Promise.all(identities.map((id) => makeCsr({ sans: uriSan(id) })));
    const allowed = new Set(identities);
    const request: SignRequest = { requester: { node: 'bench-node' }, allowedIdentities: () => allowed };
    // Warm-up, so the JIT and the library's lazy set-up do not count against the rate.
    for (let i = 0; i < 200; i++) signCsr(keys, TRUST_DOMAIN, csrs[i % DISTINCT_CSRS]!, request);

    const cpuStart = process.cpuUsage();
    const start = process.hrtime.bigint();
    const deadline = start + BigInt(Math.round(seconds * 1e9));
    let issued = 0;
    while (process.hrtime.bigint() < deadline) {
      for (let i = 0; i < 100; i++) signCsr(keys, TRUST_DOMAIN, csrs[(issued + i) % DISTINCT_CSRS]!, request);
      issued += 100;
    }
    const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
    const cpu = process.cpuUsage(cpuStart);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    console.table([{
      certificates: issued,
      'wall s': elapsed.toFixed(2),
      'cpu s (all threads)': cpuSeconds.toFixed(2),
      'certs/s (wall)': Math.round(issued / elapsed),
      'certs/s per cpu-second': Math.round(issued / cpuSeconds),
      'µs per cert': Math.round((elapsed * 1e6) / issued),
    }]);
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
