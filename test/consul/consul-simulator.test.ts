// Self-test of the Consul API simulator: blocking-query semantics, response shapes, ACLs, failure
// injection and outages, so that tests built on it exercise Consul's behaviour and not an invention.
import http from 'node:http';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import Consul from 'consul';
import { ConsulSimulator, DEFAULT_QUERY_TIME_MS, MAX_QUERY_TIME_MS, type SimulatorOptions } from './consul-simulator';
import { until } from '../support/eventually';

async function simulator(t: ExecutionContext, options: SimulatorOptions = {}): Promise<ConsulSimulator> {
  const sim = await ConsulSimulator.start(options);
  t.teardown(() => sim.close());
  return sim;
}

interface Answer { status: number; index: number; body: unknown; headers: Headers }

async function get(sim: ConsulSimulator, pathAndQuery: string, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await fetch(`http://${sim.address}${pathAndQuery}`, { headers });
  const text = await response.text();
  const isJson = response.headers.get('content-type')?.startsWith('application/json') ?? false;
  return {
    status: response.status,
    index: Number(response.headers.get('x-consul-index') ?? NaN),
    body: isJson ? JSON.parse(text) as unknown : text,
    headers: response.headers,
  };
}


function seed(sim: ConsulSimulator): void {
  sim.registerInstance({ node: 'node-a', nodeAddress: '10.0.0.1', id: 'web-1', name: 'web', port: 8080, tags: ['v1', 'mesh'], checks: [{ status: 'passing' }] });
  sim.registerInstance({ node: 'node-b', nodeAddress: '10.0.0.2', id: 'web-2', name: 'web', port: 8080, tags: ['v2'], meta: { zone: 'b' }, checks: [{ status: 'warning' }] });
  sim.registerInstance({ node: 'node-b', id: 'db-1', name: 'db', port: 5432, checks: [{ status: 'passing' }] });
}

test('a query with an index is held until the service changes, then answers with a higher X-Consul-Index', async (t) => {
  const sim = await simulator(t);
  seed(sim);
  const first = await get(sim, '/v1/health/service/web');
  t.is(first.status, 200);
  t.true(first.index >= 1);
  const pending = get(sim, `/v1/health/service/web?index=${first.index}&wait=30s`);
  await until(() => sim.held('/v1/health/service/web').length === 1, 'the query to be held');
  sim.setCheckStatus('service:web-2', 'critical');
  const second = await pending;
  t.true(second.index > first.index);
  const entries = second.body as Array<{ Service: { ID: string }; Checks: Array<{ CheckID: string; Status: string }> }>;
  t.is(entries.find((entry) => entry.Service.ID === 'web-2')!.Checks.find((check) => check.CheckID === 'service:web-2')!.Status, 'critical');
  t.is(sim.held().length, 0);
});

test('a held query answers after wait (plus at most wait/16 of jitter) with the same index when nothing changed', async (t) => {
  const sim = await simulator(t);
  seed(sim);
  const { index } = await get(sim, '/v1/catalog/services');
  const started = Date.now();
  const pending = get(sim, `/v1/catalog/services?index=${index}&wait=400ms`);
  await until(() => sim.held().length === 1, 'the query to be held');
  const held = sim.held()[0]!;
  t.true(held.deadline - held.heldSince >= 400);
  t.true(held.deadline - held.heldSince <= 400 + 400 / 16);
  const answer = await pending;
  const elapsed = Date.now() - started;
  t.is(answer.status, 200);
  t.is(answer.index, index);
  t.true(elapsed >= 395, `answered after ${elapsed} ms`);
  t.true(elapsed < 5000, `answered after ${elapsed} ms, not after the 5 minute default`);
});

test('wait defaults to 5 minutes and is capped at 10 minutes, jitter included', async (t) => {
  const sim = await simulator(t, { jitter: false });
  seed(sim);
  const { index } = await get(sim, '/v1/catalog/services');
  const noWait = get(sim, `/v1/catalog/services?index=${index}`);
  const hourWait = get(sim, `/v1/health/service/web?index=${sim.state.serviceIndex('web')}&wait=1h`);
  await until(() => sim.held().length === 2, 'both queries to be held');
  const now = Date.now();
  const catalog = sim.held('/v1/catalog/services')[0]!;
  const health = sim.held('/v1/health/service/web')[0]!;
  t.true(Math.abs(catalog.deadline - now - DEFAULT_QUERY_TIME_MS) < 1000);
  t.true(Math.abs(health.deadline - now - MAX_QUERY_TIME_MS) < 1000);
  sim.registerInstance({ node: 'node-a', id: 'web-3', name: 'web', port: 8081 });
  const [a, b] = await Promise.all([noWait, hourWait]);
  t.true(a.index > index);
  t.true(b.index > index);
});

test('X-Consul-Index only moves forward, and a write to another service does not wake a health query', async (t) => {
  const sim = await simulator(t);
  seed(sim);
  const seen: number[] = [];
  for (let i = 0; i < 4; i++) {
    sim.registerInstance({ node: 'node-c', nodeAddress: '10.0.0.3', id: `api-${i}`, name: 'api', port: 9000 + i });
    seen.push((await get(sim, '/v1/catalog/services')).index);
  }
  t.deepEqual([...seen].sort((a, b) => a - b), seen);
  t.is(new Set(seen).size, seen.length);

  const web = await get(sim, '/v1/health/service/web');
  const pending = get(sim, `/v1/health/service/web?index=${web.index}&wait=30s`);
  await until(() => sim.held('/v1/health/service/web').length === 1, 'the query to be held');
  sim.registerInstance({ node: 'node-c', id: 'api-9', name: 'api', port: 9009 });
  sim.setCheckStatus('service:db-1', 'critical');
  t.is(sim.held('/v1/health/service/web').length, 1, 'writes to api and db leave the web query held');
  // node-b's serfHealth is a node-level check: it counts for web-2, so web's index moves.
  sim.setNodeHealth('node-b', 'critical');
  const answer = await pending;
  t.true(answer.index > web.index);
});

test('a raft reset wakes every held query at once and answers with a lower index; a stale index then blocks', async (t) => {
  const sim = await simulator(t);
  seed(sim);
  const catalog = await get(sim, '/v1/catalog/services');
  const health = await get(sim, '/v1/health/service/web');
  const heldCatalog = get(sim, `/v1/catalog/services?index=${catalog.index}&wait=30s`);
  const heldHealth = get(sim, `/v1/health/service/web?index=${health.index}&wait=30s`);
  await until(() => sim.held().length === 2, 'both queries to be held');
  const target = sim.raftReset(2);
  t.is(target, 2);
  const [c, h] = await Promise.all([heldCatalog, heldHealth]);
  t.true(c.index < catalog.index, `catalog index ${c.index} after reset, ${catalog.index} before`);
  t.true(h.index < health.index);
  t.deepEqual(Object.keys(c.body as object).sort(), ['consul', 'db', 'web']);

  // A client that keeps the old, higher index waits for an index it will not see soon.
  const stale = get(sim, `/v1/health/service/web?index=${health.index}&wait=30s`);
  await until(() => sim.held('/v1/health/service/web').length === 1, 'the stale query to be held');
  sim.registerInstance({ node: 'node-a', id: 'web-3', name: 'web', port: 8082 });
  t.true(sim.state.serviceIndex('web') <= health.index);
  t.is(sim.held('/v1/health/service/web').length, 1, 'the new index is still below the stale one');
  const fresh = await get(sim, `/v1/health/service/web?index=${h.index}&wait=30s`);
  t.is((fresh.body as unknown[]).length, 3);
  // Only once writes carry the index past the stale value does that client hear anything.
  for (let i = 0; sim.state.serviceIndex('web') <= health.index; i++) {
    sim.registerInstance({ node: 'node-a', id: 'web-4', name: 'web', port: 8083, tags: [`round-${i}`] });
  }
  t.true((await stale).index > health.index);
});

test('health/service honours passing, tag, dc and filter; catalog endpoints have Consul\'s shapes', async (t) => {
  const sim = await simulator(t);
  seed(sim);
  const all = await get(sim, '/v1/health/service/web');
  const entries = all.body as Array<{ Node: Record<string, unknown>; Service: Record<string, unknown>; Checks: Array<Record<string, unknown>> }>;
  t.is(entries.length, 2);
  const web1 = entries.find((entry) => entry.Service.ID === 'web-1')!;
  t.like(web1.Node, { Node: 'node-a', Address: '10.0.0.1', Datacenter: 'dc1' });
  t.like(web1.Service, { Service: 'web', Port: 8080, Address: '', Tags: ['v1', 'mesh'], Weights: { Passing: 1, Warning: 1 } });
  t.deepEqual(web1.Checks.map((check) => check.CheckID), ['serfHealth', 'service:web-1']);
  t.like(web1.Checks[1]!, { Status: 'passing', ServiceID: 'web-1', ServiceName: 'web', Name: "Service 'web' check" });

  t.deepEqual(((await get(sim, '/v1/health/service/web?passing')).body as typeof entries).map((e) => e.Service.ID), ['web-1']);
  t.deepEqual(((await get(sim, '/v1/health/service/web?passing=false')).body as typeof entries).length, 2);
  t.deepEqual(((await get(sim, '/v1/health/service/web?tag=v2')).body as typeof entries).map((e) => e.Service.ID), ['web-2']);
  t.deepEqual(((await get(sim, '/v1/health/service/web?tag=v2&tag=mesh')).body as typeof entries), []);
  const filter = encodeURIComponent('Service.Meta.zone == "b" or "mesh" in Service.Tags');
  t.is(((await get(sim, `/v1/health/service/web?filter=${filter}`)).body as typeof entries).length, 2);
  const narrow = encodeURIComponent('not ("mesh" in Service.Tags) and Node.Node == "node-b"');
  t.deepEqual(((await get(sim, `/v1/health/service/web?filter=${narrow}`)).body as typeof entries).map((e) => e.Service.ID), ['web-2']);
  const bad = await get(sim, `/v1/health/service/web?filter=${encodeURIComponent('Service.Port ===')}`);
  t.is(bad.status, 400);
  t.regex(String(bad.body), /Failed to create boolean expression evaluator/);

  t.is((await get(sim, '/v1/health/service/web?dc=dc1')).status, 200);
  const otherDc = await get(sim, '/v1/health/service/web?dc=dc9');
  t.is(otherDc.status, 500);
  t.is(otherDc.body, 'No path to datacenter');

  const services = await get(sim, '/v1/catalog/services');
  t.deepEqual(services.body, { consul: [], db: [], web: ['mesh', 'v1', 'v2'] });
  const catalog = (await get(sim, '/v1/catalog/service/web')).body as Array<Record<string, unknown>>;
  t.like(catalog[0]!, { Node: 'node-a', Address: '10.0.0.1', Datacenter: 'dc1', ServiceID: 'web-1', ServiceName: 'web', ServicePort: 8080, ServiceAddress: '' });
  t.deepEqual((await get(sim, '/v1/health/service/nothing')).body, []);
  t.is((await get(sim, '/v1/status/leader')).body, '127.0.0.1:8300');
});

test('agent register, check update and deregister work through the consul npm client', async (t) => {
  const sim = await simulator(t);
  const consul = new Consul({ host: '127.0.0.1', port: sim.port });
  await consul.agent.service.register({
    name: 'billing', id: 'billing-1', port: 7000, address: '10.1.0.9', tags: ['mesh', 'version=v3'], meta: { protocol: 'grpc' },
    check: { name: 'billing ttl', ttl: '30s', status: 'passing', timeout: '1s' },
  });
  await consul.agent.service.register({
    name: 'billing', id: 'billing-2', port: 7001,
    checks: [{ name: 'a', ttl: '30s', status: 'passing', timeout: '1s' }, { name: 'b', ttl: '30s', timeout: '1s' }],
  });
  const entries = await consul.health.service({ service: 'billing' }) as Array<{ Node: { Node: string }; Service: { ID: string; Address: string; Meta: Record<string, string> }; Checks: Array<{ CheckID: string; Status: string }> }>;
  t.deepEqual(entries.map((entry) => entry.Service.ID), ['billing-1', 'billing-2']);
  t.is(entries[0]!.Node.Node, sim.nodeName);
  t.is(entries[0]!.Service.Address, '10.1.0.9');
  t.deepEqual(entries[0]!.Service.Meta, { protocol: 'grpc' });
  t.deepEqual(entries[1]!.Checks.map((check) => [check.CheckID, check.Status]), [
    ['serfHealth', 'passing'], ['service:billing-2:1', 'passing'], ['service:billing-2:2', 'critical'],
  ]);
  t.deepEqual(await consul.health.service({ service: 'billing', passing: true }).then((list) => list.length), 1);

  await consul.agent.check.pass({ id: 'service:billing-2:2' });
  t.is((await consul.health.service({ service: 'billing', passing: true })).length, 2);
  await consul.agent.service.deregister('billing-1');
  t.deepEqual((await consul.health.service('billing') as Array<{ Service: { ID: string } }>).map((e) => e.Service.ID), ['billing-2']);
  const unknown = await t.throwsAsync(consul.agent.service.deregister('billing-1')) as Error & { response?: { statusCode: number; body: unknown } };
  t.is(unknown.response?.statusCode, 404);
  t.regex(String(unknown.response?.body), /^Unknown service ID "billing-1"/);
  const noName = await fetch(`http://${sim.address}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ Port: 1 }) });
  t.is(noName.status, 400);
  const wrongMethod = await fetch(`http://${sim.address}/v1/agent/service/register`);
  t.is(wrongMethod.status, 405);
  consul.destroy();
});

test('ACLs: an unknown token gets 403 ACL not found, the anonymous token sees filtered lists, prefixes limit reads and writes', async (t) => {
  const sim = await simulator(t, {
    acl: {
      defaultPolicy: 'deny',
      tokens: [
        { secretId: 'reader', accessorId: 'acc-reader', serviceRead: ['we'] },
        { secretId: 'root', management: true },
      ],
    },
  });
  seed(sim);
  const unknown = await get(sim, '/v1/catalog/services', { 'X-Consul-Token': 'nope' });
  t.is(unknown.status, 403);
  t.is(unknown.body, 'ACL not found');
  t.is((await get(sim, '/v1/health/service/web?token=nope')).status, 403);

  const anonymous = await get(sim, '/v1/catalog/services');
  t.is(anonymous.status, 200);
  t.deepEqual(anonymous.body, {});
  t.is(anonymous.headers.get('x-consul-results-filtered-by-acls'), 'true');
  t.deepEqual((await get(sim, '/v1/health/service/web')).body, []);

  const reader = await get(sim, '/v1/catalog/services', { 'X-Consul-Token': 'reader' });
  t.deepEqual(Object.keys(reader.body as object), ['web']);
  t.is(((await get(sim, '/v1/health/service/web', { Authorization: 'Bearer reader' })).body as unknown[]).length, 2);
  t.deepEqual(Object.keys((await get(sim, '/v1/catalog/services?token=root')).body as object), ['consul', 'db', 'web']);

  const denied = await fetch(`http://${sim.address}/v1/agent/service/register`, {
    method: 'PUT', headers: { 'X-Consul-Token': 'reader' }, body: JSON.stringify({ Name: 'web', Port: 1 }),
  });
  t.is(denied.status, 403);
  t.is(await denied.text(), 'Permission denied: token with AccessorID \'acc-reader\' lacks permission \'service:write\' on "web"');
});

test('failNext returns 500s or cut-short JSON for matching paths, then normal answers again', async (t) => {
  const sim = await simulator(t);
  seed(sim);
  sim.failNext(2, '500', '/v1/health/service/web');
  sim.failNext(1, 'garbage', '/v1/catalog/');
  t.is((await get(sim, '/v1/health/service/db')).status, 200);
  const failed = await get(sim, '/v1/health/service/web');
  t.is(failed.status, 500);
  t.is(failed.body, 'No cluster leader');
  t.is((await get(sim, '/v1/health/service/web')).status, 500);
  t.is((await get(sim, '/v1/health/service/web')).status, 200);
  const garbage = await fetch(`http://${sim.address}/v1/catalog/services`);
  t.is(garbage.status, 200);
  const text = await garbage.text();
  t.throws(() => JSON.parse(text));
  t.is((await get(sim, '/v1/catalog/services')).status, 200);

  // A held query that fails when it ends: the failure applies to the answer, not the arrival.
  const { index } = await get(sim, '/v1/health/service/web');
  const pending = get(sim, `/v1/health/service/web?index=${index}&wait=30s`);
  await until(() => sim.held('/v1/health/service/web').length === 1, 'the query to be held');
  sim.failNext(1, '500', '/v1/health/service/web');
  sim.setCheckStatus('service:web-1', 'critical');
  t.is((await pending).status, 500);
});

test('stopListening refuses connections and drops held queries; startListening serves again on the same port', async (t) => {
  const sim = await simulator(t);
  seed(sim);
  const port = sim.port;
  const { index } = await get(sim, '/v1/catalog/services');
  const pending = get(sim, `/v1/catalog/services?index=${index}&wait=30s`);
  await until(() => sim.held().length === 1, 'the query to be held');
  await sim.stopListening();
  await t.throwsAsync(pending);
  t.is(sim.held().length, 0);
  const refused = await t.throwsAsync(fetch(`http://${sim.address}/v1/status/leader`));
  t.regex(String((refused.cause as Error | undefined)?.message ?? refused.message), /ECONNREFUSED/);
  await sim.startListening();
  t.is(sim.port, port);
  t.is((await get(sim, '/v1/catalog/services')).index, index);
});

test('malformed index or wait is a 400, as in Consul', async (t) => {
  const sim = await simulator(t);
  const badIndex = await get(sim, '/v1/catalog/services?index=abc');
  t.is(badIndex.status, 400);
  t.is(badIndex.body, 'Invalid index');
  const badWait = await get(sim, '/v1/catalog/services?index=1&wait=10');
  t.is(badWait.status, 400);
  t.is(badWait.body, 'Invalid wait time');
});

test('health/state/:state lists checks and blocks on the checks table: check writes wake it, a check-less registration does not', async (t) => {
  const sim = await simulator(t);
  seed(sim);
  const any = await get(sim, '/v1/health/state/any');
  t.is(any.status, 200);
  const checks = any.body as Array<{ Node: string; CheckID: string; Status: string; ServiceName: string; ServiceTags: string[] }>;
  t.deepEqual(checks.map((check) => `${check.Node}/${check.CheckID}`), [
    'consul-server-1/serfHealth', 'node-a/serfHealth', 'node-a/service:web-1', 'node-b/serfHealth', 'node-b/service:db-1', 'node-b/service:web-2',
  ]);
  t.like(checks.find((check) => check.CheckID === 'service:web-1')!, { Status: 'passing', ServiceName: 'web', ServiceTags: ['v1', 'mesh'] });
  t.deepEqual(((await get(sim, '/v1/health/state/warning')).body as typeof checks).map((check) => check.CheckID), ['service:web-2']);
  t.deepEqual((await get(sim, '/v1/health/state/sleepy')).body, [], 'an unknown state matches no check, as in Consul');
  const missing = await get(sim, '/v1/health/state/');
  t.is(missing.status, 400);
  t.is(missing.body, 'Missing check state');
  const none = await get(sim, `/v1/health/state/any?filter=${encodeURIComponent('CheckID == "" and CheckID != ""')}`);
  t.deepEqual(none.body, [], 'a filter empties the list');
  t.is(none.index, any.index, 'and leaves the index alone');

  const pending = get(sim, `/v1/health/state/any?index=${any.index}&wait=30s`);
  await until(() => sim.held('/v1/health/state/any').length === 1, 'the query to be held');
  sim.registerInstance({ node: 'node-a', id: 'api-1', name: 'api', port: 9000 });
  t.is(sim.held('/v1/health/state/any').length, 1, 'an instance without checks leaves the checks table alone');
  sim.setCheckStatus('service:db-1', 'critical');
  const woken = await pending;
  t.true(woken.index > any.index);
  t.is((woken.body as typeof checks).find((check) => check.CheckID === 'service:db-1')!.Status, 'critical');

  // Deregistering an instance deletes its checks: the checks table moves too.
  const before = sim.state.checksTableIndex();
  sim.deregisterInstance('node-b', 'web-2');
  t.true(sim.state.checksTableIndex() > before);
});

test('catalog/nodes lists nodes and blocks on the nodes table: node changes and instance writes wake it, check writes do not', async (t) => {
  const sim = await simulator(t);
  seed(sim);
  const first = await get(sim, '/v1/catalog/nodes');
  const nodes = first.body as Array<{ Node: string; Address: string; Datacenter: string; Meta: Record<string, string>; ModifyIndex: number }>;
  t.deepEqual(nodes.map((node) => [node.Node, node.Address]), [['consul-server-1', '127.0.0.1'], ['node-a', '10.0.0.1'], ['node-b', '10.0.0.2']]);
  t.like(nodes[1]!, { Datacenter: 'dc1', Meta: { 'consul-network-segment': '' } });
  t.deepEqual(((await get(sim, `/v1/catalog/nodes?filter=${encodeURIComponent('Address == "10.0.0.2"')}`)).body as typeof nodes).map((node) => node.Node), ['node-b']);

  const pending = get(sim, `/v1/catalog/nodes?index=${first.index}&wait=30s`);
  await until(() => sim.held('/v1/catalog/nodes').length === 1, 'the query to be held');
  sim.setCheckStatus('service:web-1', 'critical');
  t.is(sim.held('/v1/catalog/nodes').length, 1, 'a check write leaves the nodes table alone');
  const webIndex = sim.state.serviceIndex('web');
  const catalogIndex = sim.state.catalogIndex();
  sim.registerNode('node-b', '10.0.0.22');
  const woken = await pending;
  t.true(woken.index > first.index);
  t.is((woken.body as typeof nodes).find((node) => node.Node === 'node-b')!.Address, '10.0.0.22');
  t.true(sim.state.serviceIndex('web') > webIndex, 'a node change moves the index of the services on it');
  t.is(sim.state.catalogIndex(), catalogIndex, 'but not the service list\'s');

  const nodesIndex = sim.state.nodesTableIndex();
  sim.registerInstance({ node: 'node-a', id: 'api-1', name: 'api', port: 9000 });
  t.true(sim.state.nodesTableIndex() > nodesIndex, 'instance writes move the nodes table, as node queries include services');
});

test('catalog/nodes and node checks need node:read: tokens with service rules only see them filtered', async (t) => {
  const sim = await simulator(t, { acl: { defaultPolicy: 'deny', tokens: [{ secretId: 'reader', serviceRead: [''] }, { secretId: 'root', management: true }] } });
  seed(sim);
  const filtered = await get(sim, '/v1/catalog/nodes', { 'X-Consul-Token': 'reader' });
  t.deepEqual(filtered.body, []);
  t.is(filtered.headers.get('x-consul-results-filtered-by-acls'), 'true');
  t.true(filtered.index >= 1);
  const checks = (await get(sim, '/v1/health/state/any', { 'X-Consul-Token': 'reader' })).body as Array<{ CheckID: string }>;
  t.deepEqual(checks.map((check) => check.CheckID), ['service:web-1', 'service:db-1', 'service:web-2'], 'only service checks: serfHealth is a node check');
  t.is(((await get(sim, '/v1/catalog/nodes', { 'X-Consul-Token': 'root' })).body as unknown[]).length, 3);
});

test('the connection count and its peak follow the clients\' sockets', async (t) => {
  const sim = await simulator(t);
  seed(sim);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  t.teardown(() => agent.destroy());
  const { index } = await get(sim, '/v1/catalog/services');
  // fetch keeps its own connection open: count from there.
  const baseline = sim.connectionCount;
  const held = Array.from({ length: 4 }, () => new Promise<void>((resolve, reject) => {
    http.get({ agent, host: '127.0.0.1', port: sim.port, path: `/v1/catalog/services?index=${index}&wait=30s` }, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject);
  }));
  await until(() => sim.held('/v1/catalog/services').length === 4, 'four held queries');
  t.is(sim.connectionCount, baseline + 4);
  t.is(sim.peakConnectionCount, baseline + 4);
  sim.registerInstance({ node: 'node-a', id: 'api-1', name: 'api', port: 9000 });
  await Promise.all(held);
  agent.destroy();
  await until(() => sim.connectionCount === baseline, 'the sockets to close');
  t.is(sim.peakConnectionCount, baseline + 4, 'the peak stays');
  sim.resetRequestStats();
  t.is(sim.peakConnectionCount, baseline, 'until the stats are reset');
});
