// What mesh mTLS costs on the tunnel: the same request/response exchanges over the h2c tunnel and
// over the mTLS tunnel on loopback (TLS 1.3, certificates from the real CA code), with p50/p99 per
// exchange, and how many exchanges paid for a TLS handshake (sessions created / streams opened) at
// steady load and across a certificate rotation.
//
//   node --import tsx bench/tunnel-mtls.ts [--requests N] [--concurrency C] [--payload BYTES]
import { mkdtempSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { createKeyAndCsr } from '../agent/identity/key-and-csr';
import type { TunnelCertificate, TunnelCredentials } from '../agent/tunnel/tunnel-credentials';
import { TunnelPool } from '../agent/tunnel/tunnel-pool';
import { TunnelServer } from '../agent/tunnel/tunnel-server';
import { loadCaKeys, type CaKeys } from '../server/ca/ca-keys';
import { signCsr } from '../server/ca/csr-signer';
import { distribution } from './support/distribution';

const TD = 'cluster.local';
const CLIENT_ID = 'spiffe://cluster.local/ns/bench/sa/client';
const SERVER_ID = 'spiffe://cluster.local/ns/bench/sa/server';
const DESTINATION = { address: '10.0.0.1', port: 8080 };

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} expects a positive integer`);
  return value;
}

const REQUESTS = flag('requests', 5000);
const CONCURRENCY = flag('concurrency', 8);
const PAYLOAD = Buffer.alloc(flag('payload', 128), 'x');

async function issue(keys: CaKeys, id: string): Promise<TunnelCertificate> {
  const { csrPem, privateKeyPem } = await createKeyAndCsr(id);
  const leaf = signCsr(keys, TD, csrPem, { requester: { node: 'bench' }, allowedIdentities: () => new Set([id]) });
  return { certificateChainPem: leaf.certificatePem, privateKeyPem };
}

function echoServer(): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => socket.pipe(socket));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as net.AddressInfo).port })));
}

/** One exchange: open a stream, send the payload, end, read the echo to the end. */
function exchange(stream: Duplex): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = 0;
    stream.on('data', (chunk: Buffer) => { received += chunk.length; });
    stream.once('end', () => (received === PAYLOAD.length ? resolve() : reject(new Error(`echo returned ${received} of ${PAYLOAD.length} bytes`))));
    stream.once('error', reject);
    stream.end(PAYLOAD);
  });
}

interface Run {
  latenciesMs: number[];
  failures: number;
  sessions: number;
  streams: number;
  seconds: number;
}

async function run(pool: TunnelPool, peer: { host: string; port: number }, midway?: () => Promise<void>): Promise<Run> {
  const latenciesMs: number[] = [];
  let failures = 0;
  let next = 0;
  let midwayDone = false;
  const before = pool.stats();
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < REQUESTS) {
      next++;
      if (midway && !midwayDone && next >= REQUESTS / 2) {
        midwayDone = true;
        await midway();
      }
      const t0 = performance.now();
      try {
        await exchange(await pool.open(peer, DESTINATION));
        latenciesMs.push(performance.now() - t0);
      } catch {
        failures++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const after = pool.stats();
  return { latenciesMs, failures, sessions: after.sessionsCreated - before.sessionsCreated, streams: after.streamsOpened - before.streamsOpened, seconds: (performance.now() - started) / 1000 };
}

function row(name: string, r: Run): string {
  const d = distribution(r.latenciesMs);
  const share = r.streams ? (100 * r.sessions) / r.streams : 0;
  return `| ${name} | ${r.streams} | ${r.failures} | ${r.sessions} | ${share.toFixed(3)}% | ${d.p50.toFixed(3)} | ${d.p99.toFixed(3)} | ${Math.round(r.streams / r.seconds)} |`;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-tunnel-mtls-'));
  const closers: Array<() => Promise<void> | void> = [() => rmSync(dir, { recursive: true, force: true })];
  try {
    const keys = await loadCaKeys({ trustDomain: TD, stateDir: dir });
    const echo = await echoServer();
    closers.push(() => new Promise<void>((resolve) => echo.server.close(() => resolve())));
    const certs = new Map<string, TunnelCertificate>([[CLIENT_ID, await issue(keys, CLIENT_ID)], [SERVER_ID, await issue(keys, SERVER_ID)]]);
    const credentials: TunnelCredentials = { certificate: (id) => certs.get(id), trustBundlePem: () => keys.trustBundle.pem };
    const target = () => ({ host: '127.0.0.1', port: echo.port });

    const plainServer = new TunnelServer({ resolveInbound: target });
    const plain = await plainServer.listen(0, '127.0.0.1');
    const mtlsServer = new TunnelServer({ resolveInbound: target, mtls: { credentials, identities: () => [SERVER_ID], defaultIdentity: () => SERVER_ID, trustDomain: TD } });
    mtlsServer.refreshCredentials();
    const mtls = await mtlsServer.listen(0, '127.0.0.1');
    closers.push(() => plainServer.close(100), () => mtlsServer.close(100));
    const plainPool = new TunnelPool();
    const mtlsPool = new TunnelPool({ mtls: { credentials, expectedIdentities: () => [SERVER_ID], defaultSource: () => CLIENT_ID } });
    closers.push(() => plainPool.close(100), () => mtlsPool.close(100));

    // Warm-up: JIT, first sessions.
    await run(plainPool, { host: '127.0.0.1', port: plain.port });
    await run(mtlsPool, { host: '127.0.0.1', port: mtls.port });

    const h2c = await run(plainPool, { host: '127.0.0.1', port: plain.port });
    const steady = await run(mtlsPool, { host: '127.0.0.1', port: mtls.port });
    const rotation = await run(mtlsPool, { host: '127.0.0.1', port: mtls.port }, async () => {
      certs.set(CLIENT_ID, await issue(keys, CLIENT_ID));
      certs.set(SERVER_ID, await issue(keys, SERVER_ID));
      mtlsServer.refreshCredentials();
      mtlsPool.rotate(CLIENT_ID);
    });
    const p = (r: Run, q: 'p50' | 'p99') => distribution(r.latenciesMs)[q];
    process.stdout.write([
      `tunnel exchanges on loopback: ${REQUESTS} per run, ${CONCURRENCY} concurrent, ${PAYLOAD.length} B echoed, node ${process.version}`,
      '',
      '| run | streams | failures | TLS sessions | handshake share | p50 ms | p99 ms | exchanges/s |',
      '|---|---|---|---|---|---|---|---|',
      row('h2c tunnel', h2c),
      row('mTLS tunnel, steady', steady),
      row('mTLS tunnel, certificates rotated midway', rotation),
      '',
      `added by mTLS at steady load: p50 ${(p(steady, 'p50') - p(h2c, 'p50')).toFixed(3)} ms, p99 ${(p(steady, 'p99') - p(h2c, 'p99')).toFixed(3)} ms`,
      '',
    ].join('\n'));
  } finally {
    for (const close of closers.reverse()) await close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench/tunnel-mtls: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
