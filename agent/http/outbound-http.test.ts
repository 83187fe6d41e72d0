// The outbound HTTP path end to end on loopback: real translator config, a real outbound listener,
// the HBONE tunnel to a local tunnel server, and real HTTP apps as v1 and v2 of a service.
import * as http from 'node:http';
import test from 'ava';
import { endpoint, port, resource, service } from '../../server/translate/testing';
import { eventually } from '../../test/support/eventually';
import { request, startHarness, startHttpApp, type HttpApp } from './testing';

const VIP = { address: '10.0.0.10', port: 8080 };

function web(v1: HttpApp, v2: HttpApp) {
  return service('web', {
    addresses: ['10.0.0.10'],
    ports: [port(8080, 'HTTP', 'http')],
    endpoints: [
      endpoint('127.0.0.1', { ports: { http: v1.port }, labels: { version: 'v1' }, node: 'b' }),
      endpoint('127.0.0.1', { ports: { http: v2.port }, labels: { version: 'v2' }, node: 'b' }),
    ],
  });
}

const subsets = resource('DestinationRule', 'web', {
  host: 'web',
  subsets: [
    { name: 'v1', labels: { version: 'v1' } },
    { name: 'v2', labels: { version: 'v2' } },
  ],
});

function appOf(reply: { body: string }): string {
  return (JSON.parse(reply.body) as { app: string }).app;
}

test('a 90/10 split sends 10% ±3 points to v2 over 1000 requests, on few reused upstream connections', async (t) => {
  t.timeout(120_000);
  const v1 = await startHttpApp(t, 'v1');
  const v2 = await startHttpApp(t, 'v2');
  const harness = await startHarness(t, { destination: VIP });
  const split = resource('VirtualService', 'web', {
    hosts: ['web'],
    http: [{ route: [{ destination: { host: 'web', subset: 'v1' }, weight: 90 }, { destination: { host: 'web', subset: 'v2' }, weight: 10 }] }],
  });
  harness.apply([web(v1, v2)], [subsets, split]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  t.teardown(() => agent.destroy());
  const counts = { v1: 0, v2: 0 } as Record<string, number>;
  const total = 1000;
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < total) {
        next++;
        const reply = await request(harness.port, { authority: 'web:8080', path: '/split', agent });
        t.is(reply.status, 200);
        counts[appOf(reply)]!++;
      }
    }),
  );
  t.is(counts.v1! + counts.v2!, total);
  const share = (counts.v2! / total) * 100;
  t.true(share >= 7 && share <= 13, `v2 got ${share}%`);
  // Keep-alive upstream: at most one connection per concurrent request and app, not one per request.
  t.true(v1.connections() + v2.connections() <= 16, `apps saw ${v1.connections() + v2.connections()} connections`);
  t.true(harness.tunnels.stats().streamsOpened <= 16, `tunnel opened ${harness.tunnels.stats().streamsOpened} streams`);
  t.is(harness.tunnels.stats().sessionsCreated, 1);
});

test('header, exact, regex, query and prefix matches pick their routes; rewrite, redirect and direct response apply', async (t) => {
  const v1 = await startHttpApp(t, 'v1');
  const v2 = await startHttpApp(t, 'v2');
  const harness = await startHarness(t, { destination: VIP });
  const to = (subset: string) => [{ destination: { host: 'web', subset } }];
  const routes = resource('VirtualService', 'web', {
    hosts: ['web'],
    http: [
      { match: [{ headers: { 'x-user': { exact: 'jason' } } }], route: to('v2') },
      { match: [{ uri: { exact: '/exact' } }], route: to('v2') },
      { match: [{ uri: { regex: '/re/[0-9]+' } }], route: to('v2') },
      { match: [{ queryParams: { debug: { exact: '1' } } }], route: to('v2') },
      { match: [{ uri: { prefix: '/api/' } }], rewrite: { uri: '/v2/', authority: 'backend.internal' }, route: to('v1') },
      { match: [{ uri: { prefix: '/old' } }], redirect: { uri: '/new', redirectCode: 302 } },
      { match: [{ uri: { prefix: '/teapot' } }], directResponse: { status: 418, body: { string: 'short and stout' } } },
      {
        match: [{ uri: { prefix: '/headers' } }],
        headers: { request: { set: { 'x-set': 'yes' }, add: { 'x-added': 'a' }, remove: ['x-secret'] }, response: { set: { 'x-resp': 'r' }, remove: ['x-app'] } },
        route: to('v1'),
      },
      { route: to('v1') },
    ],
  });
  harness.apply([web(v1, v2)], [subsets, routes]);
  const get = (path: string, headers: http.OutgoingHttpHeaders = {}) => request(harness.port, { authority: 'web:8080', path, headers });

  t.is(appOf(await get('/anything', { 'x-user': 'jason' })), 'v2');
  t.is(appOf(await get('/anything', { 'x-user': 'other' })), 'v1');
  t.is(appOf(await get('/exact')), 'v2');
  t.is(appOf(await get('/exact/more')), 'v1');
  t.is(appOf(await get('/re/42')), 'v2');
  t.is(appOf(await get('/re/x')), 'v1');
  t.is(appOf(await get('/q?debug=1')), 'v2');
  t.is(appOf(await get('/q?debug=0')), 'v1');

  const rewritten = JSON.parse((await get('/api/items?x=1')).body) as { url: string; headers: Record<string, string> };
  t.is(rewritten.url, '/v2/items?x=1');
  t.is(rewritten.headers.host, 'backend.internal');

  const redirect = await get('/old/page');
  t.is(redirect.status, 302);
  t.is(redirect.headers.location, 'http://web:8080/new');

  const direct = await get('/teapot');
  t.is(direct.status, 418);
  t.is(direct.body, 'short and stout');

  const mutated = await get('/headers', { 'x-secret': 's', 'x-added': 'z' });
  const seen = JSON.parse(mutated.body) as { headers: Record<string, string> };
  t.is(seen.headers['x-set'], 'yes');
  t.is(seen.headers['x-added'], 'z, a');
  t.false('x-secret' in seen.headers);
  t.is(mutated.headers['x-resp'], 'r');
  t.is(mutated.headers['x-app'], undefined);
});

test('no matching route is a 404 with flag NR; a cluster without endpoints is a 503 "no healthy upstream" with UH; both are logged', async (t) => {
  const v1 = await startHttpApp(t, 'v1');
  const v2 = await startHttpApp(t, 'v2');
  const harness = await startHarness(t, { destination: VIP });
  const routes = resource('VirtualService', 'web', {
    hosts: ['web'],
    http: [
      { match: [{ uri: { prefix: '/gone' } }], route: [{ destination: { host: 'web', subset: 'v3' } }] },
      { match: [{ uri: { prefix: '/ok' } }], route: [{ destination: { host: 'web', subset: 'v1' } }] },
    ],
  });
  const withV3 = resource('DestinationRule', 'web', {
    host: 'web',
    subsets: [
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'v3', labels: { version: 'v3' } },
    ],
  });
  harness.apply([web(v1, v2)], [withV3, routes]);
  const none = await request(harness.port, { authority: 'web:8080', path: '/elsewhere' });
  t.is(none.status, 404);
  const gone = await request(harness.port, { authority: 'web:8080', path: '/gone' });
  t.is(gone.status, 503);
  t.is(gone.body, 'no healthy upstream');
  const ok = await request(harness.port, { authority: 'web:8080', path: '/ok' });
  t.is(ok.status, 200);
  const log = (path: string) => harness.lines.find((l) => l.msg === 'http request' && l.path === path);
  t.like(log('/elsewhere'), { method: 'GET', authority: 'web:8080', response_code: 404, response_flags: 'NR' });
  t.like(log('/gone'), { response_code: 503, response_flags: 'UH', upstream_cluster: 'outbound|8080|v3|web' });
  t.like(log('/ok'), { response_code: 200, response_flags: '-', upstream_cluster: 'outbound|8080|v1|web', upstream_host: `127.0.0.1:${v1.port}` });
  t.is(typeof log('/ok')?.duration, 'number');
});

test('a consistent-hash DestinationRule keeps each x-user on one endpoint, per request on one connection', async (t) => {
  const v1 = await startHttpApp(t, 'v1');
  const v2 = await startHttpApp(t, 'v2');
  const harness = await startHarness(t, { destination: VIP });
  const sticky = resource('DestinationRule', 'web', { host: 'web', trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } });
  harness.apply([web(v1, v2)], [sticky]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const seen = new Map<string, Set<string>>();
  for (let i = 0; i < 60; i++) {
    const user = `user-${i % 12}`;
    const reply = await request(harness.port, { authority: 'web:8080', path: '/', headers: { 'x-user': user }, agent });
    const apps = seen.get(user) ?? new Set<string>();
    apps.add(appOf(reply));
    seen.set(user, apps);
  }
  // Same key, same endpoint; and the keys do not all land on one endpoint (requests are hashed one by one).
  for (const [user, apps] of seen) t.is(apps.size, 1, `${user} went to ${[...apps].join(', ')}`);
  t.is(new Set([...seen.values()].map((apps) => [...apps][0])).size, 2);
});

test('idle upstream connections are closed after the idle timeout', async (t) => {
  const v1 = await startHttpApp(t, 'v1');
  const v2 = await startHttpApp(t, 'v2');
  const harness = await startHarness(t, { destination: VIP, upstreamIdleTimeoutMs: 300 });
  const only = resource('VirtualService', 'web', { hosts: ['web'], http: [{ route: [{ destination: { host: 'web', subset: 'v1' } }] }] });
  harness.apply([web(v1, v2)], [subsets, only]);
  t.is((await request(harness.port, { authority: 'web:8080', path: '/a' })).status, 200);
  t.is((await request(harness.port, { authority: 'web:8080', path: '/b' })).status, 200);
  t.is(v1.connections(), 1);
  const closed = new Promise<void>((resolve) => v1.server.once('connection', () => resolve()));
  await eventually('the idle upstream tunnel stream to close', () => harness.tunnels.stats().streamsActive === 0, 10_000);
  t.is((await request(harness.port, { authority: 'web:8080', path: '/c' })).status, 200);
  await closed;
  t.is(v1.connections(), 2);
});

test('an HTTP request to a destination outside the registry passes through to it over plain TCP (allow_any)', async (t) => {
  const outside = await startHttpApp(t, 'outside');
  // A service on the same port number gives that port an HTTP listener; the destination itself is no service's.
  const harness = await startHarness(t, { destination: { address: '127.0.0.1', port: outside.port } });
  harness.apply([service('other', { addresses: ['10.0.0.99'], ports: [port(outside.port, 'HTTP', 'http')], endpoints: [endpoint('10.9.9.9', { ports: { http: 1 } })] })]);
  const reply = await request(harness.port, { authority: `127.0.0.1:${outside.port}`, path: '/out' });
  t.is(reply.status, 200);
  t.like(JSON.parse(reply.body), { app: 'outside', url: '/out' });
  t.like(await eventually('the access log line', () => harness.lines.find((l) => l.msg === 'http request' && l.path === '/out')), {
    upstream_cluster: 'PassthroughCluster',
    upstream_host: `127.0.0.1:${outside.port}`,
  });
  t.is(harness.tunnels.stats().streamsOpened, 0);
});

test('a route change applies to the next request on a connection that is already open, as Envoy applies RDS updates', async (t) => {
  const v1 = await startHttpApp(t, 'v1');
  const v2 = await startHttpApp(t, 'v2');
  const harness = await startHarness(t, { destination: VIP });
  const to = (subset: string) => resource('VirtualService', 'web', { hosts: ['web'], http: [{ route: [{ destination: { host: 'web', subset } }] }] });
  harness.apply([web(v1, v2)], [subsets, to('v1')]);
  // One socket for every request: the change must reach a connection opened before it.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const sockets = new Set<unknown>();
  agent.on('free', (socket) => sockets.add(socket));
  t.is(appOf(await request(harness.port, { authority: 'web:8080', path: '/', agent })), 'v1');
  harness.apply([web(v1, v2)], [subsets, to('v2')]);
  t.is(appOf(await request(harness.port, { authority: 'web:8080', path: '/', agent })), 'v2');
  t.is(sockets.size, 1, 'both requests travelled on one client connection');
});
