// Tests of `meshctl proxy-config` against a real mesh-agent admin API on 127.0.0.1 serving
// translator output, and against an address where nothing answers.
import test, { type ExecutionContext } from 'ava';
import net from 'node:net';
import { silentLogger } from '../lib/log';
import { createAgentAdmin } from '../agent/admin/agent-admin';
import { ECHO_CLUSTER, WEB_CLUSTER, translatedView } from '../agent/admin/testing';
import { proxyConfigCommand, type ProxyConfigKind } from './proxy-config';
import type { CommandIo } from './proxy-status';

function capture(): CommandIo & { out: string; err: string } {
  const io = { out: '', err: '', stdout: (s: string) => (io.out += s), stderr: (s: string) => (io.err += s) };
  return io;
}

async function agentUrl(t: ExecutionContext): Promise<string> {
  const view = translatedView();
  const admin = createAgentAdmin({ logger: silentLogger(), config: () => ({ view, appliedAt: new Date() }), stats: () => ({}) });
  t.teardown(() => admin.close());
  return (await admin.listen('127.0.0.1:0')).url;
}

async function run(t: ExecutionContext, kind: ProxyConfigKind, output: 'table' | 'json' = 'table'): Promise<string[]> {
  const io = capture();
  t.is(await proxyConfigCommand(kind, { agent: await agentUrl(t), output }, io), 0, io.err);
  t.is(io.err, '');
  return io.out.trimEnd().split('\n');
}

/** The cells of the row whose first cell is `name`, split on the column gaps. */
function row(lines: readonly string[], name: string): string[] | undefined {
  return lines.map((line) => line.split(/ {3,}/)).find((cells) => cells[0] === name);
}

test('listeners: name, address:port and number of filter chains per listener', async (t) => {
  const lines = await run(t, 'listeners');
  t.deepEqual(lines[0]?.split(/ {3,}/), ['NAME', 'ADDRESS:PORT', 'CHAINS']);
  t.deepEqual(row(lines, 'virtualOutbound')?.slice(0, 2), ['virtualOutbound', '0.0.0.0:15001']);
  t.deepEqual(row(lines, '0.0.0.0_8080')?.slice(0, 2), ['0.0.0.0_8080', '0.0.0.0:8080']);
  t.regex(row(lines, 'virtualInbound')?.[2] ?? '', /^\d+$/);
});

test('routes: name, number of virtual hosts and their first domains', async (t) => {
  const lines = await run(t, 'routes');
  t.deepEqual(lines[0]?.split(/ {3,}/), ['NAME', 'VIRTUAL HOSTS', 'DOMAINS']);
  t.deepEqual(row(lines, '8080'), ['8080', '2', 'web, web:8080, *']);
});

test('clusters: name, discovery type and load-balancing policy, with Envoy\'s defaults for absent fields', async (t) => {
  const lines = await run(t, 'clusters');
  t.deepEqual(lines[0]?.split(/ {3,}/), ['NAME', 'TYPE', 'LB']);
  t.deepEqual(row(lines, ECHO_CLUSTER), [ECHO_CLUSTER, 'EDS', 'LEAST_REQUEST']);
  t.deepEqual(row(lines, 'PassthroughCluster'), ['PassthroughCluster', 'ORIGINAL_DST', 'CLUSTER_PROVIDED']);
  t.deepEqual(row(lines, 'BlackHoleCluster'), ['BlackHoleCluster', 'STATIC', 'ROUND_ROBIN']);
});

test('endpoints: cluster, address:port and health of every endpoint', async (t) => {
  const lines = await run(t, 'endpoints');
  t.deepEqual(lines.map((line) => line.split(/ {3,}/)), [
    ['CLUSTER', 'ENDPOINT', 'HEALTH'],
    [ECHO_CLUSTER, '10.1.0.2:7000', 'HEALTHY'],
    [WEB_CLUSTER, '10.1.0.4:8080', 'UNHEALTHY'],
  ]);
});

test('-o json prints the resources of the kind asked for', async (t) => {
  const lines = await run(t, 'clusters', 'json');
  const clusters = JSON.parse(lines.join('\n')) as Array<{ name: string; '@type': string }>;
  t.true(clusters.some((c) => c.name === WEB_CLUSTER));
  t.true(clusters.every((c) => c['@type'] === 'type.googleapis.com/envoy.config.cluster.v3.Cluster'));
});

test('an agent that does not answer: exit 1 with the URL and the socket error', async (t) => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const io = capture();
  t.is(await proxyConfigCommand('listeners', { agent: `http://127.0.0.1:${port}`, output: 'table' }, io), 1);
  t.is(io.out, '');
  t.regex(io.err, new RegExp(`^meshctl proxy-config listeners: cannot reach the mesh-agent admin API at http://127\\.0\\.0\\.1:${port}/config_dump: .*ECONNREFUSED`));
});

test('an agent without config yet: exit 1 with its 503 reason', async (t) => {
  const admin = createAgentAdmin({ logger: silentLogger(), config: () => undefined, stats: () => ({}) });
  t.teardown(() => admin.close());
  const { url } = await admin.listen('127.0.0.1:0');
  const io = capture();
  t.is(await proxyConfigCommand('routes', { agent: url, output: 'table' }, io), 1);
  t.is(io.err, `meshctl proxy-config routes: ${url}/config_dump answered HTTP 503: no xDS config has been received from the server or read from a snapshot yet\n`);
});
