// Tests of `meshctl proxy-status` against a real mesh-server admin API on 127.0.0.1 serving fake
// sync data, and against addresses where nothing answers or something else does.
import test, { type ExecutionContext } from 'ava';
import net from 'node:net';
import { silentLogger } from '../lib/log';
import { createAdminServer } from '../server/admin/admin-server';
import { ServerMetrics } from '../server/admin/server-metrics';
import type { ClientSyncStatus } from '../server/xds/sync-status';
import { formatAge, proxyStatusCommand, renderProxyStatus, type CommandIo } from './proxy-status';

/** A fixed clock: ages in the table must not depend on how long the test took. */
const NOW = Date.now();

function minutesAgo(minutes: number): string {
  return new Date(NOW - minutes * 60_000).toISOString();
}

const statuses: ClientSyncStatus[] = [
  {
    node: 'host-b',
    stream: 's2',
    peer: '10.0.0.8:51002',
    connectedAt: minutesAgo(3),
    types: {
      CDS: { sent: '5f3c9a1b77e2d4c0', acked: '5f3c9a1b77e2d4c0', resources: 4, state: 'SYNCED' },
      LDS: { sent: 'b2', acked: 'b1', resources: 2, state: 'STALE' },
      EDS: { sent: 'e1', resources: 4, state: 'STALE' },
      RDS: {
        sent: 'r2',
        acked: 'r1',
        resources: 1,
        state: 'NACKED',
        lastNack: { version: 'r2', message: 'route reviews: unknown cluster outbound|9080|v3|reviews', at: minutesAgo(1) },
      },
    },
  },
  {
    node: 'host-a',
    stream: 's1',
    peer: '10.0.0.7:51001',
    connectedAt: minutesAgo(90),
    types: {
      CDS: { sent: 'c1', acked: 'c1', resources: 4, state: 'SYNCED' },
      LDS: { sent: 'l1', acked: 'l1', resources: 2, state: 'SYNCED' },
      EDS: { sent: 'e1', acked: 'e1', resources: 4, state: 'SYNCED' },
    },
  },
];

function captureIo(): CommandIo & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stdout(s: string) {
      io.out += s;
    },
    stderr(s: string) {
      io.err += s;
    },
  };
  return io;
}

async function startAdmin(t: ExecutionContext, data: ClientSyncStatus[]): Promise<string> {
  const server = createAdminServer({
    logger: silentLogger(),
    metrics: new ServerMetrics(),
    model: () => undefined,
    sources: () => ({}),
    syncStatus: () => data,
  });
  t.teardown(() => server.close());
  return (await server.listen('127.0.0.1', 0)).url;
}

/** A port that was just free: bound on 127.0.0.1:0, then released. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('the table names every node with its per-type state, acked version, peer and age', async (t) => {
  const base = await startAdmin(t, statuses);
  const io = captureIo();
  const code = await proxyStatusCommand({ server: base, output: 'table', now: () => NOW }, io);
  t.is(code, 0, io.err);
  t.is(io.err, '');

  const lines = io.out.split('\n');
  t.regex(lines[0] ?? '', /^NAME\s+CDS\s+LDS\s+EDS\s+RDS\s+PEER\s+CONNECTED$/);
  // Sorted by node, columns aligned under the header.
  t.true(lines[1]?.startsWith('host-a '));
  t.true(lines[2]?.startsWith('host-b '));
  t.is(lines[1]?.indexOf('SYNCED'), lines[0]?.indexOf('CDS'));
  t.is(lines[2]?.indexOf('10.0.0.8:51002'), lines[0]?.indexOf('PEER'));

  const hostA = (lines[1] ?? '').split(/\s{2,}/);
  t.deepEqual(hostA, ['host-a', 'SYNCED (c1)', 'SYNCED (l1)', 'SYNCED (e1)', 'NOT SENT', '10.0.0.7:51001', '1h30m']);
  const hostB = (lines[2] ?? '').split(/\s{2,}/);
  t.deepEqual(hostB, ['host-b', 'SYNCED (5f3c9a1b)', 'STALE (b1)', 'STALE (never acked)', 'NACKED (r1)', '10.0.0.8:51002', '3m0s']);

  t.regex(io.out, /NACKED:\n {2}host-b RDS version r2: route reviews: unknown cluster outbound\|9080\|v3\|reviews\n/);
});

test('--node asks the server for one node only', async (t) => {
  const base = await startAdmin(t, statuses);
  const io = captureIo();
  t.is(await proxyStatusCommand({ server: `${base}/`, output: 'table', node: 'host-a' }, io), 0, io.err);
  t.true(io.out.includes('host-a'));
  t.false(io.out.includes('host-b'));
});

test('an unknown --node is exit 1 with the node named', async (t) => {
  const base = await startAdmin(t, statuses);
  const io = captureIo();
  t.is(await proxyStatusCommand({ server: base, output: 'table', node: 'host-z' }, io), 1);
  t.regex(io.err, /no xDS client with node id "host-z"/);
  t.is(io.out, '');
});

test('-o json prints the sync states as the server returned them', async (t) => {
  const base = await startAdmin(t, statuses);
  const io = captureIo();
  t.is(await proxyStatusCommand({ server: base, output: 'json' }, io), 0, io.err);
  t.deepEqual(JSON.parse(io.out), statuses);
});

test('with no clients connected the table is just the header', async (t) => {
  const base = await startAdmin(t, []);
  const io = captureIo();
  t.is(await proxyStatusCommand({ server: base, output: 'table' }, io), 0, io.err);
  t.is(io.out.trim().split('\n').length, 1);
});

test('an unreachable server is exit 1 with the URL and the socket error', async (t) => {
  const port = await closedPort();
  const io = captureIo();
  const code = await proxyStatusCommand({ server: `http://127.0.0.1:${port}`, output: 'table' }, io);
  t.is(code, 1);
  t.true(io.err.includes(`http://127.0.0.1:${port}/debug/syncz`), io.err);
  t.regex(io.err, /ECONNREFUSED/);
  t.is(io.out, '');
});

test('a server that never answers is exit 1 after the timeout', async (t) => {
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((socket) => sockets.add(socket));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address() as net.AddressInfo;
  const io = captureIo();
  const code = await proxyStatusCommand({ server: `http://127.0.0.1:${port}`, output: 'table', timeoutMs: 200 }, io);
  t.is(code, 1);
  t.regex(io.err, /cannot reach the mesh-server admin API at http:\/\/127\.0\.0\.1:\d+\/debug\/syncz: no answer within 200 ms/);
});

test('an HTTP error from the server is exit 1 with status and message', async (t) => {
  const base = await startAdmin(t, statuses);
  const io = captureIo();
  t.is(await proxyStatusCommand({ server: `${base}/wrong-prefix`, output: 'table' }, io), 1);
  t.regex(io.err, /wrong-prefix\/debug\/syncz answered HTTP 404: no route GET \/wrong-prefix\/debug\/syncz/);
});

test('an invalid --server is exit 1 naming it', async (t) => {
  const io = captureIo();
  t.is(await proxyStatusCommand({ server: 'not a url', output: 'table' }, io), 1);
  t.regex(io.err, /"not a url" is not a URL/);
});

test('ages read like kubectl', (t) => {
  const now = Date.parse('2026-01-02T03:04:05Z');
  t.is(formatAge('2026-01-02T03:04:00Z', now), '5s');
  t.is(formatAge('2026-01-02T03:00:00Z', now), '4m5s');
  t.is(formatAge('2026-01-02T01:00:00Z', now), '2h4m');
  t.is(formatAge('2025-12-30T01:00:00Z', now), '3d2h');
  t.is(formatAge('2026-01-02T03:04:09Z', now), '0s', 'clock skew never shows a negative age');
});

test('renderProxyStatus puts NOT SENT where a type was never sent', (t) => {
  const out = renderProxyStatus([{ node: 'n', stream: 's', peer: 'p', connectedAt: 'x', types: {} }], 0);
  t.deepEqual(out.split('\n')[1]?.split(/\s{2,}/), ['n', 'NOT SENT', 'NOT SENT', 'NOT SENT', 'NOT SENT', 'p', 'x']);
});
