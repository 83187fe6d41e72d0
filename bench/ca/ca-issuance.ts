// Certificate issuance of the mesh CA, as issue 6 asks for it: certificates signed per second per
// core (issued over the real gRPC service of a real mesh-server process, per CPU-second that process
// used), and the p99 latency of CreateCertificate at a fixed open-loop rate of 100/s. The signing
// code alone (signCsr in this process, no gRPC, no TLS) is measured too, to show what the service
// around it costs.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CaClient } from '../../agent/identity/ca-client';
import { createCertificateServiceClient, type CertificateServiceClient } from '../../lib/ca/ca-service';
import { CertificateSource } from '../../lib/ca/certificate-source';
import { GENERATED_ROOT_CERT_FILE, loadCaKeys } from '../../server/ca/ca-keys';
import { signCsr, type SignRequest } from '../../server/ca/csr-signer';
import { JOIN_SECRET_FILE, JoinTokens } from '../../server/ca/join-token';
import { makeCsr, uriSan } from '../../server/ca/testing';
import { distribution, type Distribution } from '../support/distribution';
import { startMeshServer, stopMeshServer } from '../support/mesh-server-process';
import { cpuMsSince, sampleProcess } from '../support/process-sample';

const TRUST_DOMAIN = 'cluster.local';
const NODE = 'bench-node';
const NODE_ID = `spiffe://${TRUST_DOMAIN}/node/${NODE}`;
/** CSRs are made up front (key generation is the agent's cost, not the CA's) and used in turn. */
const DISTINCT_CSRS = 200;
/** Calls in flight during the throughput phase: enough that mesh-server never waits for the client. */
const IN_FLIGHT = 16;
const CALL_TIMEOUT_MS = 30_000;

export interface CaSettings {
  /** How long to issue back to back. */
  throughputSeconds: number;
  /** Open-loop rate and duration for the latency figure. */
  latencyRate: number;
  latencySeconds: number;
}

export interface CaResult {
  /** Certificates issued over gRPC in the throughput phase. */
  certificates: number;
  wallSeconds: number;
  /** CPU (user + system) mesh-server used for them, as the kernel accounts it. */
  cpuSeconds: number;
  certsPerWallSecond: number;
  /** The issue's figure: certificates issued over gRPC per CPU-second of mesh-server. */
  certsPerCpuSecond: number;
  /** CreateCertificate at `latencyRate` per second, from when each call was due to its answer, in ms. */
  latencyMs: Distribution;
  latencyRate: number;
  /** signCsr alone in the benchmark's own process: the share of the cost that is signing. */
  signerOnly: { certificates: number; cpuSeconds: number; certsPerCpuSecond: number };
  /** How mesh-server was run, for the report. */
  server: string;
}

async function makeCsrs(spiffeId: string): Promise<string[]> {
  return Promise.all(Array.from({ length: DISTINCT_CSRS }, () => makeCsr({ sans: uriSan(spiffeId) })));
}

/** signCsr back to back for `seconds` in this process; CPU of this process only (it runs nothing else then). */
async function measureSignerOnly(csrs: readonly string[], seconds: number): Promise<CaResult['signerOnly']> {
  const stateDir = mkdtempSync(path.join(tmpdir(), 'mesh-ca-bench-signer-'));
  try {
    const keys = await loadCaKeys({ trustDomain: TRUST_DOMAIN, stateDir });
    const allowed = new Set([NODE_ID]);
    const request: SignRequest = { requester: { node: NODE }, allowedIdentities: () => allowed };
    // Warm-up, so the JIT and lazy set-up do not count against the rate.
    for (let i = 0; i < 200; i++) signCsr(keys, TRUST_DOMAIN, csrs[i % csrs.length]!, request);
    const cpuStart = process.cpuUsage();
    const deadline = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
    let issued = 0;
    while (process.hrtime.bigint() < deadline) {
      for (let i = 0; i < 100; i++) signCsr(keys, TRUST_DOMAIN, csrs[(issued + i) % csrs.length]!, request);
      issued += 100;
    }
    const cpu = process.cpuUsage(cpuStart);
    const cpuSeconds = (cpu.user + cpu.system) / 1e6;
    return { certificates: issued, cpuSeconds, certsPerCpuSecond: issued / cpuSeconds };
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}

function createCertificate(client: CertificateServiceClient, csr: string): Promise<string> {
  return new Promise((resolve, reject) => {
    client.CreateCertificate({ csr, validity_duration: '0' }, new grpc.Metadata(), { deadline: Date.now() + CALL_TIMEOUT_MS }, (error, response) => {
      if (error) reject(error);
      else if (!response || response.cert_chain.length === 0) reject(new Error('CreateCertificate answered without a certificate'));
      else resolve(response.cert_chain[0]!);
    });
  });
}

/** The node's own certificate, obtained the way an agent does: a join token, then mTLS from there on. */
async function joinAsNode(target: string, caStateDir: string): Promise<{ client: CertificateServiceClient; rootPem: string }> {
  const rootPem = readFileSync(path.join(caStateDir, GENERATED_ROOT_CERT_FILE), 'utf8');
  const token = new JoinTokens(readFileSync(path.join(caStateDir, JOIN_SECRET_FILE))).issue(NODE, { ttlMs: 10 * 60_000 });
  const source = new CertificateSource();
  const caClient = new CaClient({ server: target, source, bootstrapTrustPem: rootPem, serverSpiffeId: `spiffe://${TRUST_DOMAIN}/ns/istio-system/sa/mesh-server` });
  const node = await caClient.bootstrap(NODE_ID, token);
  source.update({ certificateChainPem: node.certificateChainPem, privateKeyPem: node.privateKeyPem, trustBundlePem: node.trustBundlePem });
  return { client: createCertificateServiceClient(target, caClient.channelCredentials()), rootPem };
}

/** `total` calls with at most IN_FLIGHT outstanding, or until `deadlineNs`; returns how many were answered. */
async function closedLoop(client: CertificateServiceClient, csrs: readonly string[], total: number, deadlineNs: bigint): Promise<number> {
  let started = 0;
  let answered = 0;
  const worker = async (): Promise<void> => {
    while (started < total && process.hrtime.bigint() < deadlineNs) {
      const csr = csrs[started++ % csrs.length]!;
      await createCertificate(client, csr);
      answered++;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return answered;
}

/** One call every 1/rate seconds whatever the answers do (open loop); latency counts from when a call was due. */
async function openLoop(client: CertificateServiceClient, csrs: readonly string[], rate: number, seconds: number): Promise<Distribution> {
  const total = Math.max(1, Math.round(rate * seconds));
  const latencies = new Float64Array(total);
  const intervalMs = 1000 / rate;
  const begin = performance.now();
  const calls: Promise<void>[] = [];
  await new Promise<void>((resolve) => {
    let sent = 0;
    const tick = (): void => {
      // Every call that has come due goes out now: a late timer shows up as latency, not as a lower rate.
      const due = Math.min(total, Math.floor((performance.now() - begin) / intervalMs) + 1);
      for (; sent < due; sent++) {
        const i = sent;
        const dueAt = begin + i * intervalMs;
        calls.push(createCertificate(client, csrs[i % csrs.length]!).then(() => {
          latencies[i] = performance.now() - dueAt;
        }));
      }
      if (sent < total) setTimeout(tick, Math.max(0, begin + sent * intervalMs - performance.now()));
      else resolve();
    };
    tick();
  });
  await Promise.all(calls);
  return distribution(latencies);
}

export async function runCaIssuance(settings: CaSettings): Promise<CaResult> {
  const csrs = await makeCsrs(NODE_ID);
  const signerOnly = await measureSignerOnly(csrs, settings.throughputSeconds);

  const configDir = mkdtempSync(path.join(tmpdir(), 'mesh-ca-bench-config-'));
  const caStateDir = mkdtempSync(path.join(tmpdir(), 'mesh-ca-bench-state-'));
  let server: Awaited<ReturnType<typeof startMeshServer>> | undefined;
  let client: CertificateServiceClient | undefined;
  try {
    server = await startMeshServer({
      configDir, debounceMs: 100, startTimeoutMs: 120_000,
      extraArgs: ['--secure-xds-address', '127.0.0.1:0', '--ca-state-dir', caStateDir],
      ...(process.env.MESH_BENCH_CA_CPU_PROF_DIR ? { cpuProfDir: process.env.MESH_BENCH_CA_CPU_PROF_DIR } : {}),
    });
    if (!server.secureXds) throw new Error('mesh-server did not report its TLS port (secureXds) in its "mesh-server serving" line');
    const joined = await joinAsNode(server.secureXds, caStateDir);
    client = joined.client;

    // A leaf that does not verify would make every figure below meaningless.
    const first = new X509Certificate(await createCertificate(client, csrs[0]!));
    if (!first.verify(new X509Certificate(joined.rootPem).publicKey) || first.subjectAltName !== `URI:${NODE_ID}`) {
      throw new Error(`mesh-server issued a leaf that does not verify with its root or names ${first.subjectAltName}`);
    }
    // Warm-up: JIT, TLS session and HTTP/2 stream set-up do not count against the rate.
    await closedLoop(client, csrs, 500, process.hrtime.bigint() + 30_000_000_000n);

    const before = [sampleProcess(server.pid)];
    const start = process.hrtime.bigint();
    const issued = await closedLoop(client, csrs, Number.MAX_SAFE_INTEGER, start + BigInt(Math.round(settings.throughputSeconds * 1e9)));
    const wallSeconds = Number(process.hrtime.bigint() - start) / 1e9;
    const cpuSeconds = cpuMsSince([server.pid], before) / 1000;

    const latencyMs = await openLoop(client, csrs, settings.latencyRate, settings.latencySeconds);
    return {
      certificates: issued, wallSeconds, cpuSeconds,
      certsPerWallSecond: issued / wallSeconds,
      certsPerCpuSecond: issued / cpuSeconds,
      latencyMs, latencyRate: settings.latencyRate,
      signerOnly,
      server: `${server.how} (${server.source})`,
    };
  } finally {
    client?.close();
    if (server) await stopMeshServer(server);
    rmSync(configDir, { recursive: true, force: true });
    rmSync(caStateDir, { recursive: true, force: true });
  }
}

function secondsArgument(): number {
  const at = process.argv.indexOf('--seconds');
  const value = at === -1 ? 5 : Number(process.argv[at + 1]);
  if (!(value > 0)) throw new Error('--seconds needs a positive number');
  return value;
}

if (require.main === module) {
  const loadAtStart = loadavg()[0]!;
  runCaIssuance({ throughputSeconds: secondsArgument(), latencyRate: 100, latencySeconds: 10 }).then((result) => {
    console.log(`mesh-server: ${result.server}`);
    // CPU time per certificate grows when other processes evict the caches between calls: say so.
    console.log(`load average (1 min): ${loadAtStart.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at end, on ${availableParallelism()} CPUs`);
    console.table([{
      'over gRPC: certificates': result.certificates,
      'wall s': result.wallSeconds.toFixed(2),
      'server cpu s': result.cpuSeconds.toFixed(2),
      'certs/s (wall)': Math.round(result.certsPerWallSecond),
      'certs per server cpu-second': Math.round(result.certsPerCpuSecond),
      [`p50 ms at ${result.latencyRate}/s`]: result.latencyMs.p50.toFixed(2),
      [`p99 ms at ${result.latencyRate}/s`]: result.latencyMs.p99.toFixed(2),
      'signCsr alone per cpu-second': Math.round(result.signerOnly.certsPerCpuSecond),
    }]);
  }, (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
