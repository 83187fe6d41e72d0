// Tests of ConsulSource against the Consul API simulator: loading, long-poll propagation, index
// resets, failures, outages, ACLs, TLS, filters, bounded connections with many services, and the
// mapping to the mesh's Service model.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { createLogger, silentLogger, type Logger } from '../../lib/log';
import type { Service } from '../registry/service';
import { ConsulSimulator, type SimulatorOptions } from '../../test/consul/consul-simulator';
import { ConsulSource, type ConsulSourceOptions } from './consul-source';
import { until } from '../../test/support/eventually';

const WEB = '/v1/health/service/web';
const DB = '/v1/health/service/db';
const CATALOG = '/v1/catalog/services';
const CHECKS = '/v1/health/state/any';
const NODES = '/v1/catalog/nodes';
/** The three long polls the source holds, whatever the number of services. */
const TABLE_POLLS = [NODES, CATALOG, CHECKS];

/** Full health queries of a service (a probe carries a filter and asks only for the index). */
function fetches(sim: ConsulSimulator, path: string): number {
  return sim.requests.filter((request) => request.path === path && !new URLSearchParams(request.query).has('filter')).length;
}

function probes(sim: ConsulSimulator, path: string): number {
  return sim.requests.filter((request) => request.path === path && new URLSearchParams(request.query).has('filter')).length;
}

async function startSimulator(t: ExecutionContext, options: SimulatorOptions = {}): Promise<ConsulSimulator> {
  const sim = await ConsulSimulator.start(options);
  t.teardown(() => sim.close());
  return sim;
}

/** A source with test-sized backoff and rate limits; the wait stays long so only long polls can be fast. */
function createSource(t: ExecutionContext, sim: ConsulSimulator, options: Partial<ConsulSourceOptions> = {}): ConsulSource {
  const source = new ConsulSource({
    address: sim.address,
    logger: silentLogger(),
    waitMs: 30_000,
    backoff: { baseMs: 5, maxMs: 50 },
    rateLimit: { burst: 20, intervalMs: 10 },
    ...options,
  });
  t.teardown(() => source.stop());
  return source;
}


function service(source: ConsulSource, name: string): Service | undefined {
  return source.services().find((candidate) => candidate.hostname === `${name}.service.consul`);
}

function endpointAddresses(source: ConsulSource, name: string): string[] {
  return (service(source, name)?.endpoints ?? []).map((endpoint) => `${endpoint.address}:${Object.values(endpoint.ports)[0]}`);
}

function captureLogs(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({ name: 'consul-source-test', level: 'debug', destination: { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>); } } });
  return { logger, lines };
}

/** web: two passing instances (v1, v2) on two nodes; db: one instance, protocol from a tag. */
function seed(sim: ConsulSimulator): void {
  sim.registerInstance({
    node: 'host-a', nodeAddress: '10.0.0.1', nodeMeta: { zone: 'zone-a' },
    id: 'web-1', name: 'web', port: 8080, tags: ['mesh', 'version=v1'], meta: { protocol: 'http' }, checks: [{ status: 'passing' }],
  });
  sim.registerInstance({
    node: 'host-b', nodeAddress: '10.0.0.2',
    id: 'web-2', name: 'web', port: 8080, address: '192.168.0.2', tags: ['mesh', 'version=v2'],
    meta: { protocol: 'http', zone: 'zone-b', subzone: 'rack-7', 'service-account': 'web-sa' },
    weights: { Passing: 5 }, checks: [{ status: 'passing' }],
  });
  sim.registerInstance({ node: 'host-b', id: 'db-1', name: 'db', port: 5432, tags: ['protocol=tcp'], checks: [{ status: 'passing' }] });
}

test('initial load maps every service but consul, and is ready only then', async (t) => {
  const sim = await startSimulator(t);
  seed(sim);
  const source = createSource(t, sim);
  let changes = 0;
  source.onChange(() => changes++);
  await source.start();
  const early = source.status();
  t.false(early.ready);
  t.is(early.detail, `consul ${sim.address}: waiting for the service list`);

  await until(() => source.status().ready, 'readiness');
  t.true(changes >= 1, 'readiness is announced through onChange');
  t.deepEqual(source.services().map((s) => s.hostname), ['db.service.consul', 'web.service.consul']);
  t.deepEqual(service(source, 'web'), {
    hostname: 'web.service.consul',
    namespace: 'default',
    aliases: ['web', 'web.service.dc1.consul'],
    addresses: [],
    ports: [{ name: 'http', number: 8080, protocol: 'HTTP' }],
    resolution: 'STATIC',
    location: 'MESH_INTERNAL',
    endpoints: [
      {
        address: '10.0.0.1', ports: { http: 8080 }, labels: { version: 'v1', protocol: 'http' }, node: 'host-a', healthy: true,
        locality: { region: 'dc1', zone: 'zone-a', subzone: '' }, weight: 1, serviceAccount: 'web',
      },
      {
        address: '192.168.0.2', ports: { http: 8080 },
        labels: { version: 'v2', protocol: 'http', zone: 'zone-b', subzone: 'rack-7', 'service-account': 'web-sa' },
        node: 'host-b', healthy: true, locality: { region: 'dc1', zone: 'zone-b', subzone: 'rack-7' }, weight: 5, serviceAccount: 'web-sa',
      },
    ],
    source: 'consul',
    exportTo: ['*'],
    subjectAltNames: [],
  });
  t.deepEqual(service(source, 'db')!.ports, [{ name: 'tcp', number: 5432, protocol: 'TCP' }]);
  const status = source.status();
  t.is(status.detail, undefined);
  t.like(status.stats, { watchedServices: 2, services: 2, errors: 0, lastIndex: sim.state.catalogIndex() });
  t.is(sim.requestCount('/v1/health/service/consul'), 0, 'consul itself is never watched');
});

test('500 services: any change reaches the view within a fraction of the wait over at most maxConnections connections', async (t) => {
  const sim = await startSimulator(t);
  const services = 500;
  for (let i = 0; i < services; i++) {
    sim.registerInstance({ node: `host-${i % 50}`, nodeAddress: `10.3.${Math.floor(i / 250)}.${i % 250}`, id: `svc-${i}-a`, name: `svc-${i}`, port: 8000, checks: [{ status: 'passing' }] });
    sim.registerInstance({ node: `host-${(i + 1) % 50}`, nodeAddress: `10.3.${Math.floor((i + 1) / 250)}.${(i + 1) % 250}`, id: `svc-${i}-b`, name: `svc-${i}`, port: 8000 });
  }
  const maxConnections = 8;
  // A 30 s wait: with one long poll per service, services beyond the connection limit would only
  // be asked again when a held poll times out, so only the table polls plus a sweep can be quick.
  const source = createSource(t, sim, { maxConnections, waitMs: 30_000, rateLimit: { burst: 2, intervalMs: 100 } });
  await source.start();
  await until(() => source.status().ready, 'readiness', 60_000);
  t.is(source.services().length, services);
  await until(() => sim.held().length === 3, 'the table polls to be held');

  const count = (name: string) => service(source, name)?.endpoints.length ?? -1;
  const hosts = (name: string) => (service(source, name)?.endpoints ?? []).map((endpoint) => endpoint.address).sort();
  const changes: Array<[string, () => void, () => boolean]> = [
    ['a deregistration (no checks)', () => sim.deregisterInstance('host-13', 'svc-412-b'), () => count('svc-412') === 1],
    ['a failing check', () => sim.setCheckStatus('service:svc-123-a', 'critical'), () => count('svc-123') === 1],
    ['a registration', () => sim.registerInstance({ node: 'host-7', id: 'svc-499-c', name: 'svc-499', port: 8000 }), () => count('svc-499') === 3],
    // Only the nodes table's index moves: the service list and the checks stay as they were.
    ['a node address change', () => sim.registerNode('host-0', '10.9.9.9'), () => hosts('svc-0').includes('10.9.9.9')],
  ];
  for (const [what, change, arrived] of changes) {
    const started = Date.now();
    change();
    await until(arrived, what, 20_000, 2);
    const elapsed = Date.now() - started;
    t.log(`${what}: ${elapsed} ms`);
    t.true(elapsed < 10_000, `${what} arrived after ${elapsed} ms, with a 30 s wait`);
  }
  t.true(sim.peakConnectionCount <= maxConnections, `${sim.peakConnectionCount} connections open at once, at most ${maxConnections} allowed`);
  const stats = source.status().stats!;
  t.true(Number(stats.probes) >= services, 'each change is found by probing every service');
  t.log(stats);
  t.is(source.status().detail, undefined);
});

test('a sweep probes the services that changed most recently first', async (t) => {
  const sim = await startSimulator(t);
  for (let i = 0; i < 40; i++) {
    for (const suffix of ['a', 'b']) sim.registerInstance({ node: `host-${suffix}`, nodeAddress: suffix === 'a' ? '10.4.0.1' : '10.4.0.2', id: `svc-${i}-${suffix}`, name: `svc-${i}`, port: 8000 + i });
  }
  // Four connections: three long polls and one query at a time, so the probes go out in sweep order.
  const source = createSource(t, sim, { maxConnections: 4 });
  await source.start();
  await until(() => source.status().ready, 'readiness');
  const count = (name: string) => service(source, name)?.endpoints.length ?? -1;
  const serviceQueries = () => sim.requests.filter((r) => r.path.startsWith('/v1/health/service/'));
  const probeOrder = () => serviceQueries().filter((r) => new URLSearchParams(r.query).has('filter')).map((r) => r.path.slice('/v1/health/service/'.length));
  const tableIndexes: Record<string, () => number> = { [CATALOG]: () => sim.state.catalogIndex(), [CHECKS]: () => sim.state.checksTableIndex(), [NODES]: () => sim.state.nodesTableIndex() };
  /** Every table poll waits on the latest index (no wake pending), no service is queued, every query is answered. */
  const swept = () => sim.held().length === 3 && sim.held().every((held) => held.minIndex === tableIndexes[held.path]!())
    && source.status().stats!.servicesQueued === 0 && serviceQueries().every((r) => r.status !== undefined);

  await until(swept, 'the initial load to settle');
  sim.deregisterInstance('host-b', 'svc-30-b');
  await until(() => count('svc-30') === 1, 'the first change');
  await until(swept, 'the first sweep to finish');
  sim.resetRequestStats();
  sim.deregisterInstance('host-b', 'svc-10-b');
  await until(() => count('svc-10') === 1, 'the second change');
  t.is(probeOrder()[0], 'svc-30', `the service changed last time is probed first: ${probeOrder().join()}`);

  await until(swept, 'the second sweep to finish');
  sim.resetRequestStats();
  sim.deregisterInstance('host-b', 'svc-20-b');
  await until(() => count('svc-20') === 1, 'the third change');
  t.deepEqual(probeOrder().slice(0, 2), ['svc-10', 'svc-30'], 'then by how recently each changed');
  t.true(sim.peakConnectionCount <= 4);
});

test('fewer than four connections is a configuration error naming the limit', (t) => {
  t.throws(() => new ConsulSource({ address: '127.0.0.1:8500', logger: silentLogger(), maxConnections: 3 }), {
    message: 'consul maxConnections 3: at least 4 are needed (3 held long polls and one query)',
  });
});

test('labels, ports and protocols: version=v2 tag label, Meta over tags, most common port, declared or unspecified protocol', async (t) => {
  const sim = await startSimulator(t);
  sim.registerInstance({ node: 'n1', nodeAddress: '10.1.0.1', id: 'r1', name: 'reviews', port: 9080, tags: ['version=v1', 'canary', 'team=a'], meta: { team: 'b' }, checks: [{ status: 'passing' }] });
  sim.registerInstance({ node: 'n2', nodeAddress: '10.1.0.2', id: 'r2', name: 'reviews', port: 9080, tags: ['version=v2', 'protocol=grpc'], checks: [{ status: 'passing' }] });
  sim.registerInstance({ node: 'n3', nodeAddress: '10.1.0.3', id: 'r3', name: 'reviews', port: 9443, tags: ['version=v2'], meta: { protocol: 'grpc' }, checks: [{ status: 'passing' }] });
  sim.registerInstance({ node: 'n1', id: 'p1', name: 'plain', port: 81 });
  sim.registerInstance({ node: 'n2', id: 'p2', name: 'plain', port: 80, meta: { protocol: 'carrier-pigeon' } });
  const source = createSource(t, sim, { passingOnly: false });
  await source.start();
  await until(() => source.status().ready, 'readiness');

  const reviews = service(source, 'reviews')!;
  t.deepEqual(reviews.ports, [{ name: 'grpc', number: 9080, protocol: 'GRPC' }]);
  const byAddress = new Map(reviews.endpoints.map((endpoint) => [endpoint.address, endpoint]));
  t.deepEqual(byAddress.get('10.1.0.1')!.labels, { version: 'v1', team: 'b' }, 'tags without = are not labels; Meta wins over a tag');
  t.deepEqual(byAddress.get('10.1.0.2')!.labels, { version: 'v2', protocol: 'grpc' });
  t.deepEqual(byAddress.get('10.1.0.3')!.ports, { grpc: 9443 }, 'each endpoint keeps its own port');
  t.deepEqual(reviews.endpoints.filter((endpoint) => endpoint.labels.version === 'v2').map((endpoint) => endpoint.address), ['10.1.0.2', '10.1.0.3']);

  // Ports 81 and 80 once each: the tie goes to the lower. An unknown protocol is left to sniffing.
  const plain = service(source, 'plain')!;
  t.deepEqual(plain.ports, [{ name: 'unspecified', number: 80, protocol: 'UNSPECIFIED' }]);
  t.deepEqual(plain.endpoints.map((endpoint) => endpoint.ports), [{ unspecified: 81 }, { unspecified: 80 }]);
});

test('register, health changes and deregister arrive through the long polls within a fraction of the wait', async (t) => {
  const sim = await startSimulator(t);
  seed(sim);
  const source = createSource(t, sim, { waitMs: 30_000 });
  await source.start();
  await until(() => source.status().ready, 'readiness');
  await until(() => sim.held().length === 3, 'the table long polls to be held');

  const measure = async (change: () => void, arrived: () => boolean, what: string): Promise<number> => {
    const webBefore = fetches(sim, WEB);
    const dbBefore = fetches(sim, DB);
    const started = Date.now();
    change();
    await until(arrived, what);
    const elapsed = Date.now() - started;
    // The write wakes the table polls; the sweep that follows fetches only the service that changed.
    t.is(fetches(sim, WEB) - webBefore, 1, `${what}: web fetched once`);
    t.is(fetches(sim, DB) - dbBefore, 0, `${what}: db, unchanged, only probed`);
    return elapsed;
  };

  const timings = [
    await measure(
      () => sim.registerInstance({ node: 'host-c', nodeAddress: '10.0.0.3', id: 'web-3', name: 'web', port: 8080, checks: [{ status: 'passing' }] }),
      () => endpointAddresses(source, 'web').includes('10.0.0.3:8080'), 'a new instance'),
    await measure(() => sim.setCheckStatus('service:web-1', 'critical'), () => !endpointAddresses(source, 'web').includes('10.0.0.1:8080'), 'a failing check'),
    await measure(() => sim.setCheckStatus('service:web-1', 'passing'), () => endpointAddresses(source, 'web').includes('10.0.0.1:8080'), 'a recovered check'),
    await measure(() => sim.setNodeHealth('host-c', 'critical'), () => !endpointAddresses(source, 'web').includes('10.0.0.3:8080'), 'a failed node'),
    await measure(() => sim.deregisterInstance('host-b', 'web-2'), () => !endpointAddresses(source, 'web').includes('192.168.0.2:8080'), 'a deregistration'),
  ];
  for (const elapsed of timings) t.true(elapsed < 2000, `arrived after ${elapsed} ms with a 30 s wait`);
  t.deepEqual(endpointAddresses(source, 'web'), ['10.0.0.1:8080']);

  const started = Date.now();
  sim.registerInstance({ node: 'host-c', id: 'cache-1', name: 'cache', port: 6379, checks: [{ status: 'passing' }] });
  await until(() => service(source, 'cache') !== undefined, 'a new service');
  t.true(Date.now() - started < 2000);
});

test('one long poll per table (service list, checks, nodes) and at most one query per service are open at any time', async (t) => {
  const sim = await startSimulator(t);
  seed(sim);
  const source = createSource(t, sim);
  await source.start();
  await until(() => source.status().ready, 'readiness');
  sim.resetRequestStats();

  for (let round = 0; round < 15; round++) {
    sim.setCheckStatus('service:web-1', round % 2 === 0 ? 'warning' : 'passing');
    sim.registerInstance({ node: 'host-b', id: 'db-1', name: 'db', port: 5432, tags: ['protocol=tcp', `round=${round}`], checks: [{ status: 'passing' }] });
    if (round === 5) sim.failNext(3, '500', WEB);
    if (round === 10) {
      // Reset while every watch is held, so that each sees the index drop in its answer.
      await until(() => sim.held().length === 3, 'held polls before the reset');
      sim.raftReset();
    }
    await sleep(1);
  }
  sim.registerInstance({ node: 'host-a', id: 'web-9', name: 'web', port: 8080, address: '10.0.0.9', checks: [{ status: 'passing' }] });
  // Round 14 left web-1 warning, so it is out; web-9 is in.
  await until(() => endpointAddresses(source, 'web').join() === '10.0.0.9:8080,192.168.0.2:8080'
    && service(source, 'db')?.endpoints[0]?.labels.round === '14', 'the final state');
  await until(() => sim.held().length === 3, 'the watches to settle on held polls');

  t.is(sim.maxInFlightCount(WEB), 1);
  t.is(sim.maxInFlightCount(DB), 1);
  for (const path of TABLE_POLLS) t.is(sim.maxInFlightCount(path), 1, path);
  t.deepEqual(sim.held().map((held) => held.path).sort(), TABLE_POLLS);
  t.is(sim.inFlightCount(WEB) + sim.inFlightCount(DB), 0, 'no service query is held');
});

test('a raft index reset restarts the watch from index 0 and later changes still arrive', async (t) => {
  const sim = await startSimulator(t);
  seed(sim);
  const source = createSource(t, sim);
  await source.start();
  await until(() => source.status().ready && sim.held().length === 3, 'readiness and held polls');
  const before = sim.state.serviceIndex('web');
  t.true(before > 2);

  sim.raftReset(2);
  await until(() => Number(source.status().stats!.indexResets) >= 1, 'the watches to notice the reset');
  // Writes after the restore carry indexes below the old one; a watch that kept it would miss them.
  sim.registerInstance({ node: 'host-c', nodeAddress: '10.0.0.3', id: 'web-3', name: 'web', port: 8080, checks: [{ status: 'passing' }] });
  t.true(sim.state.serviceIndex('web') < before);
  await until(() => endpointAddresses(source, 'web').includes('10.0.0.3:8080'), 'an instance registered after the reset');
  sim.registerInstance({ node: 'host-c', id: 'queue-1', name: 'queue', port: 5672, checks: [{ status: 'passing' }] });
  await until(() => service(source, 'queue') !== undefined, 'a service registered after the reset');

  t.deepEqual(endpointAddresses(source, 'web'), ['10.0.0.1:8080', '10.0.0.3:8080', '192.168.0.2:8080']);
  await until(() => sim.held().length === 3, 'the table polls to be held again');
  const current: Record<string, number> = { [CATALOG]: sim.state.catalogIndex(), [CHECKS]: sim.state.checksTableIndex(), [NODES]: sim.state.nodesTableIndex() };
  for (const held of sim.held()) t.true(held.minIndex <= current[held.path]!, `${held.path} blocks on the new, lower index`);
  t.is(source.status().detail, undefined);
});

test('a restore that lands between two polls is caught when the stale poll\'s wait expires', async (t) => {
  const sim = await startSimulator(t);
  seed(sim);
  const waitMs = 400;
  const source = createSource(t, sim, { waitMs });
  await source.start();
  await until(() => source.status().ready && sim.held().length === 3, 'readiness and held polls');
  const before = sim.state.serviceIndex('web');

  // The write answers every held poll; the restore follows before the next polls arrive, so they
  // come with indexes from before the restore and Consul holds them for the whole wait.
  sim.registerInstance({ node: 'host-a', id: 'web-1', name: 'web', port: 8080, tags: ['mesh', 'version=v1'], meta: { protocol: 'http' }, checks: [{ status: 'passing' }] });
  sim.registerInstance({ node: 'host-b', id: 'db-1', name: 'db', port: 5432, tags: ['protocol=tcp', 'touched'], checks: [{ status: 'passing' }] });
  sim.raftReset(2);
  sim.registerInstance({ node: 'host-c', nodeAddress: '10.0.0.3', id: 'web-3', name: 'web', port: 8080, checks: [{ status: 'passing' }] });
  t.true(sim.state.serviceIndex('web') < before);
  const started = Date.now();
  await until(() => endpointAddresses(source, 'web').includes('10.0.0.3:8080'), 'the instance registered after the restore');
  t.true(Date.now() - started < waitMs + waitMs / 16 + 1000);
  t.true(Number(source.status().stats!.indexResets) >= 1);
});

test('500s and cut-short JSON are logged, keep the last good view, and the source recovers', async (t) => {
  const sim = await startSimulator(t);
  seed(sim);
  const { logger, lines } = captureLogs();
  const source = createSource(t, sim, { logger });
  await source.start();
  await until(() => source.status().ready, 'readiness');
  const good = source.services();

  sim.failNext(Number.POSITIVE_INFINITY, '500', WEB);
  sim.registerInstance({ node: 'host-c', nodeAddress: '10.0.0.3', id: 'web-3', name: 'web', port: 8080, checks: [{ status: 'passing' }] });
  await until(() => Number(source.status().stats!.errors) >= 3, 'three failed queries');
  t.is(source.services(), good, 'the last good view is kept');
  const failing = source.status();
  t.true(failing.ready);
  t.is(failing.detail, `consul ${sim.address}: service web: HTTP 500 No cluster leader; serving the last good view`);
  t.true(lines.some((line) => line.level === 40 && line.error === 'HTTP 500 No cluster leader' && line.watch === 'web'));
  sim.clearFailures();
  await until(() => endpointAddresses(source, 'web').length === 3, 'recovery after the 500s');
  t.is(source.status().detail, undefined);

  const errorsBefore = Number(source.status().stats!.errors);
  sim.failNext(Number.POSITIVE_INFINITY, 'garbage', WEB);
  sim.deregisterInstance('host-c', 'web-3');
  await until(() => Number(source.status().stats!.errors) >= errorsBefore + 3, 'three garbage answers');
  t.is(endpointAddresses(source, 'web').length, 3, 'garbage does not replace the view');
  t.regex(source.status().detail ?? '', /service web: invalid JSON in the response: .*; serving the last good view$/);
  t.true(lines.some((line) => line.level === 40 && String(line.error).startsWith('invalid JSON')));
  sim.clearFailures();
  await until(() => endpointAddresses(source, 'web').length === 2, 'recovery after the garbage');

  sim.failNext(2, 'garbage', CATALOG);
  sim.registerInstance({ node: 'host-c', id: 'cache-1', name: 'cache', port: 6379, checks: [{ status: 'passing' }] });
  await until(() => service(source, 'cache') !== undefined, 'the catalog watch to recover');
  t.is(source.status().detail, undefined);
});

test('not ready until every watched service has had its first health answer, and the detail names it', async (t) => {
  const sim = await startSimulator(t);
  seed(sim);
  sim.failNext(Number.POSITIVE_INFINITY, '500', '/v1/health/service/db');
  const source = createSource(t, sim);
  await source.start();
  await until(() => service(source, 'web') !== undefined && Number(source.status().stats!.errors) >= 1, 'web loaded and db failing');
  const status = source.status();
  t.false(status.ready);
  t.is(status.detail, `consul ${sim.address}: service db: HTTP 500 No cluster leader`);
  sim.clearFailures();
  await until(() => source.status().ready, 'readiness');
  t.truthy(service(source, 'db'));
});

test('Consul down at start: start resolves, status says why, and the source loads once Consul is up', async (t) => {
  const sim = await startSimulator(t);
  seed(sim);
  await sim.stopListening();
  const source = createSource(t, sim);
  await source.start();
  await until(() => source.status().detail?.includes('ECONNREFUSED') ?? false, 'the connection error');
  const down = source.status();
  t.false(down.ready);
  t.is(down.detail, `consul ${sim.address}: service list: connect ECONNREFUSED`);
  t.deepEqual(source.services(), []);

  await sim.startListening();
  await until(() => source.status().ready, 'readiness once Consul is up');
  t.deepEqual(source.services().map((s) => s.hostname), ['db.service.consul', 'web.service.consul']);
  t.is(source.status().detail, undefined);
});

test('Consul going down after the first load keeps the last good view and catches up when it returns', async (t) => {
  const sim = await startSimulator(t);
  seed(sim);
  const source = createSource(t, sim);
  await source.start();
  await until(() => source.status().ready, 'readiness');
  const good = source.services();

  await sim.stopListening();
  await until(() => /ECONNREFUSED/.test(source.status().detail ?? ''), 'the outage to show');
  t.true(source.status().ready);
  t.is(source.services(), good);
  sim.deregisterInstance('host-a', 'web-1');
  await sim.startListening();
  await until(() => endpointAddresses(source, 'web').length === 1, 'the change made during the outage');
  await until(() => source.status().detail === undefined, 'every watch to reconnect');
  t.true(source.status().ready);
});

test('the ACL token is sent; an unknown token and a token-less request are reported clearly', async (t) => {
  const sim = await startSimulator(t, {
    acl: {
      defaultPolicy: 'deny',
      tokens: [{ secretId: 'mesh-reader', serviceRead: [''] }, { secretId: 'web-only', serviceRead: ['web'] }],
    },
  });
  seed(sim);

  const reader = createSource(t, sim, { token: 'mesh-reader' });
  await reader.start();
  await until(() => reader.status().ready, 'readiness with the right token');
  t.deepEqual(reader.services().map((s) => s.hostname), ['db.service.consul', 'web.service.consul']);
  t.is(reader.status().detail, undefined);

  const wrong = createSource(t, sim, { token: 'not-a-token' });
  await wrong.start();
  await until(() => wrong.status().detail?.includes('403') ?? false, 'the 403');
  t.false(wrong.status().ready);
  t.is(wrong.status().detail, `consul ${sim.address}: service list: HTTP 403 ACL not found (the ACL token is not known to Consul)`);

  const anonymous = createSource(t, sim);
  await anonymous.start();
  await until(() => anonymous.status().ready, 'readiness of the anonymous source');
  t.deepEqual(anonymous.services(), []);
  t.regex(anonymous.status().detail ?? '', /results filtered by ACLs/);

  const partial = createSource(t, sim, { token: 'web-only' });
  await partial.start();
  await until(() => partial.status().ready, 'readiness of the web-only source');
  t.deepEqual(partial.services().map((s) => s.hostname), ['web.service.consul']);
  t.regex(partial.status().detail ?? '', /results filtered by ACLs/);
});

test('a tag filter admits only tagged services and instances; a meta filter narrows instances', async (t) => {
  const sim = await startSimulator(t);
  seed(sim);
  sim.registerInstance({ node: 'host-c', nodeAddress: '10.0.0.3', id: 'web-legacy', name: 'web', port: 8080, checks: [{ status: 'passing' }] });
  sim.registerInstance({ node: 'host-c', id: 'api-1', name: 'api', port: 9000, tags: ['mesh'], meta: { mesh: 'true' }, checks: [{ status: 'passing' }] });
  sim.registerInstance({ node: 'host-a', id: 'api-2', name: 'api', port: 9000, tags: ['mesh'], checks: [{ status: 'passing' }] });

  const tagged = createSource(t, sim, { filter: { tag: 'mesh' } });
  await tagged.start();
  await until(() => tagged.status().ready, 'readiness');
  t.deepEqual(tagged.services().map((s) => s.hostname), ['api.service.consul', 'web.service.consul']);
  t.deepEqual(endpointAddresses(tagged, 'web'), ['10.0.0.1:8080', '192.168.0.2:8080'], 'the untagged web instance stays out');
  t.is(sim.requestCount('/v1/health/service/db'), 0, 'an untagged service is not even watched');
  t.is(tagged.status().stats!.watchedServices, 2);

  const meta = createSource(t, sim, { filter: { tag: 'mesh', meta: { mesh: 'true' } } });
  await meta.start();
  await until(() => meta.status().ready, 'readiness');
  t.deepEqual(meta.services().map((s) => s.hostname), ['api.service.consul']);
  t.deepEqual(endpointAddresses(meta, 'api'), ['10.0.0.3:9000']);

  // Tagging db brings it in through the catalog watch.
  sim.registerInstance({ node: 'host-b', id: 'db-1', name: 'db', port: 5432, tags: ['protocol=tcp', 'mesh'], checks: [{ status: 'passing' }] });
  await until(() => service(tagged, 'db') !== undefined, 'db to join once tagged');
});

test('passingOnly=false keeps warning and critical instances, critical ones unhealthy, warning ones with their warning weight', async (t) => {
  const sim = await startSimulator(t);
  sim.registerInstance({ node: 'n1', nodeAddress: '10.2.0.1', id: 'a', name: 'pay', port: 7000, weights: { Passing: 10, Warning: 2 }, checks: [{ status: 'passing' }] });
  sim.registerInstance({ node: 'n2', nodeAddress: '10.2.0.2', id: 'b', name: 'pay', port: 7000, weights: { Passing: 10, Warning: 2 }, checks: [{ status: 'warning' }] });
  sim.registerInstance({ node: 'n3', nodeAddress: '10.2.0.3', id: 'c', name: 'pay', port: 7000, checks: [{ status: 'passing' }, { status: 'critical' }] });

  const all = createSource(t, sim, { passingOnly: false });
  const passing = createSource(t, sim);
  await all.start();
  await passing.start();
  await until(() => all.status().ready && passing.status().ready, 'readiness');
  t.deepEqual(service(all, 'pay')!.endpoints.map((e) => [e.address, e.healthy, e.weight]), [
    ['10.2.0.1', true, 10], ['10.2.0.2', true, 2], ['10.2.0.3', false, 1],
  ]);
  t.deepEqual(service(passing, 'pay')!.endpoints.map((e) => e.address), ['10.2.0.1']);

  // With every instance failing the service stays known, with no endpoints, rather than vanishing.
  sim.setCheckStatus('service:a', 'critical');
  sim.setCheckStatus('service:b', 'critical');
  await until(() => service(passing, 'pay')?.endpoints.length === 0, 'no passing endpoint');
  t.deepEqual(service(passing, 'pay')!.ports, [{ name: 'unspecified', number: 7000, protocol: 'UNSPECIFIED' }]);
});

test('a service that leaves the catalog disappears and is no longer queried', async (t) => {
  const sim = await startSimulator(t);
  seed(sim);
  const source = createSource(t, sim);
  await source.start();
  await until(() => source.status().ready, 'readiness');
  let changes = 0;
  source.onChange(() => changes++);

  sim.deregisterInstance('host-b', 'db-1');
  await until(() => service(source, 'db') === undefined, 'db to disappear');
  t.true(changes >= 1);
  t.is(source.status().stats!.watchedServices, 1);
  t.deepEqual(source.services().map((s) => s.hostname), ['web.service.consul']);

  const dbRequests = sim.requestCount(DB);
  sim.setCheckStatus('service:web-1', 'critical');
  await until(() => endpointAddresses(source, 'web').join() === '192.168.0.2:8080', 'the next change to web');
  t.is(sim.requestCount(DB), dbRequests, 'the sweep after the next change leaves db out');
});

test('stop closes every long poll and no request follows', async (t) => {
  const sim = await startSimulator(t);
  seed(sim);
  const source = createSource(t, sim);
  await source.start();
  await until(() => source.status().ready && sim.held().length === 3, 'readiness and held polls');
  await source.stop();
  await until(() => sim.held().length === 0, 'the polls to close');
  const count = sim.requests.length;
  sim.registerInstance({ node: 'host-a', id: 'web-5', name: 'web', port: 8080 });
  await sleep(50);
  t.is(sim.requests.length, count);
});

test('a configured datacenter is queried explicitly and gives the NAME.service.DC.consul alias', async (t) => {
  const sim = await startSimulator(t, { datacenter: 'eu-west' });
  seed(sim);
  const source = createSource(t, sim, { datacenter: 'eu-west', namespace: 'shop' });
  await source.start();
  await until(() => source.status().ready, 'readiness');
  t.like(service(source, 'web'), { namespace: 'shop', aliases: ['web', 'web.service.eu-west.consul'] });
  t.true(sim.requests.filter((r) => r.path.startsWith('/v1/')).every((r) => new URLSearchParams(r.query).get('dc') === 'eu-west'));

  const elsewhere = createSource(t, sim, { datacenter: 'us-east' });
  await elsewhere.start();
  await until(() => elsewhere.status().detail !== undefined && !elsewhere.status().detail!.includes('waiting'), 'the error');
  t.is(elsewhere.status().detail, `consul ${sim.address}: service list: HTTP 500 No path to datacenter`);
});

function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI. */
function makeCertificates(dir: string): void {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
    '-subj', '/CN=test consul CA', '-days', '1', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
  for (const [name, extensions] of [
    ['server', 'subjectAltName=IP:127.0.0.1,DNS:server.dc1.consul\nextendedKeyUsage=serverAuth'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    writeFileSync(join(dir, `${name}.ext`), `${extensions}\n`);
    run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`);
  }
}

(haveOpenssl() ? test : test.skip)('HTTPS: the CA verifies Consul and the client certificate is presented', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'consul-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  makeCertificates(dir);
  const { readFileSync } = await import('node:fs');
  const sim = await startSimulator(t, {
    tls: { key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.pem')), ca: readFileSync(join(dir, 'ca.pem')), requestCert: true },
  });
  seed(sim);
  const source = createSource(t, sim, {
    address: `https://${sim.address}`,
    tls: { caFile: join(dir, 'ca.pem'), certFile: join(dir, 'client.pem'), keyFile: join(dir, 'client.key') },
  });
  await source.start();
  await until(() => source.status().ready, 'readiness over HTTPS');
  t.deepEqual(source.services().map((s) => s.hostname), ['db.service.consul', 'web.service.consul']);

  const untrusting = createSource(t, sim, { address: sim.address, scheme: 'https' });
  await untrusting.start();
  await until(() => untrusting.status().detail?.includes('service list:') ?? false, 'the TLS error');
  t.false(untrusting.status().ready);
  t.regex(untrusting.status().detail!, /certificate/i);
});
