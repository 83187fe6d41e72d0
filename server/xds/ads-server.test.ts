// Behaviour of the SotW ADS server over real gRPC streams on 127.0.0.1: subscriptions, versions,
// ACK/NACK, stale nonces, debouncing, push order, bad requests, and AdsClient reconnection.
import * as crypto from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import { silentLogger } from '../../lib/log';
import { AdsClient, type AdsUpdate } from '../../lib/xds/ads-client';
import { adsService, packAny, TypeUrl, unpackAny, type ResourceTypeUrl } from '../../lib/xds/protos';
import type { MeshModel } from '../model/mesh-model';
import { AdsServer, type AdsServerOptions } from './ads-server';
import type { EncodedResource, ResourceGenerator, Subscription, XdsNode } from './generator';
import type { XdsObserver } from './observer';
import type { XdsShortType } from './sync-status';
import { eventually } from '../../test/support/eventually';

// ---------------------------------------------------------------------------------------------
// A fake translation: each model carries a small "world" the generator turns into real resources.

interface World {
  /** Listener ports per node id; `*` for every node not listed. */
  listeners: Record<string, number[]>;
  clusters: string[];
  /** Cluster name to endpoint addresses. */
  endpoints: Record<string, string[]>;
  /** Route configuration name to the cluster it routes to. */
  routes: Record<string, string>;
}

const worlds = new WeakMap<MeshModel, World>();
let modelVersion = 0;

function model(world: Partial<World>): MeshModel {
  const mesh: MeshModel = {
    version: ++modelVersion,
    resources: new Map(),
    services: new Map(),
    issues: [],
    rootNamespace: 'istio-system',
    trustDomain: 'cluster.local',
  };
  worlds.set(mesh, { listeners: {}, clusters: [], endpoints: {}, routes: {}, ...world });
  return mesh;
}

function encoded(typeUrl: ResourceTypeUrl, name: string, message: object): EncodedResource {
  const any = packAny(typeUrl, message);
  return { name, any, hash: crypto.createHash('sha256').update(any.value).digest('hex') };
}

class FakeGenerator implements ResourceGenerator {
  readonly nodes = new Map<string, XdsNode>();
  calls = 0;

  generate(mesh: MeshModel, node: XdsNode, typeUrl: ResourceTypeUrl, subscription: Subscription): Map<string, EncodedResource> {
    this.calls++;
    this.nodes.set(node.id, node);
    const world = worlds.get(mesh)!;
    const wants = (name: string) => subscription.wildcard || subscription.names.has(name);
    const out = new Map<string, EncodedResource>();
    const add = (resource: EncodedResource) => {
      if (wants(resource.name)) out.set(resource.name, resource);
    };
    switch (typeUrl) {
      case TypeUrl.Listener:
        for (const port of world.listeners[node.id] ?? world.listeners['*'] ?? []) {
          const name = `listener_${port}`;
          add(encoded(typeUrl, name, { name, address: { socket_address: { address: '0.0.0.0', port_value: port } } }));
        }
        break;
      case TypeUrl.Cluster:
        for (const name of world.clusters) {
          // 3 = Cluster.DiscoveryType.EDS, 2 = ApiVersion.V3 (packAny verifies enums as numbers).
          add(encoded(typeUrl, name, { name, type: 3, eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 2 } } }));
        }
        break;
      case TypeUrl.ClusterLoadAssignment:
        for (const [name, addresses] of Object.entries(world.endpoints)) {
          add(encoded(typeUrl, name, {
            cluster_name: name,
            endpoints: [{ lb_endpoints: addresses.map((address) => ({ endpoint: { address: { socket_address: { address, port_value: 8080 } } } })) }],
          }));
        }
        break;
      case TypeUrl.RouteConfiguration:
        for (const [name, cluster] of Object.entries(world.routes)) {
          add(encoded(typeUrl, name, { name, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster } }] }] }));
        }
        break;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------
// Observer that keeps every call, and polling with a deadline.

type ObservedEvent =
  | { kind: 'opened' | 'closed'; node: string }
  | { kind: 'pushed'; node: string; type: XdsShortType; resources: number; latency: number }
  | { kind: 'acked'; node: string; type: XdsShortType }
  | { kind: 'nacked'; node: string; type: XdsShortType; message: string }
  | { kind: 'rejected'; node: string; reason: string };

class RecordingObserver implements XdsObserver {
  readonly events: ObservedEvent[] = [];
  streamOpened(node: string) { this.events.push({ kind: 'opened', node }); }
  streamClosed(node: string) { this.events.push({ kind: 'closed', node }); }
  pushed(node: string, type: XdsShortType, resources: number, latency: number) { this.events.push({ kind: 'pushed', node, type, resources, latency }); }
  acked(node: string, type: XdsShortType) { this.events.push({ kind: 'acked', node, type }); }
  nacked(node: string, type: XdsShortType, message: string) { this.events.push({ kind: 'nacked', node, type, message }); }
  rejectedRequest(node: string, reason: string) { this.events.push({ kind: 'rejected', node, reason }); }
  of<K extends ObservedEvent['kind']>(kind: K): Extract<ObservedEvent, { kind: K }>[] {
    return this.events.filter((event): event is Extract<ObservedEvent, { kind: K }> => event.kind === kind);
  }
}


// ---------------------------------------------------------------------------------------------
// A raw ADS stream through the proto-loader client, to send exactly the requests a test needs.

interface ResponseMessage {
  version_info: string;
  resources?: { type_url: string; value: Buffer }[];
  type_url: string;
  nonce: string;
}

interface RequestFields {
  node?: { id: string; cluster?: string } | null;
  names?: string[];
  version?: string;
  nonce?: string;
  error?: string;
}

class RawStream {
  readonly responses: ResponseMessage[] = [];
  status?: grpc.StatusObject;
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<object, ResponseMessage>;
  private read = 0;

  constructor(port: number, readonly nodeId: string) {
    const Client = adsService();
    this.client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    this.call = (this.client as unknown as { StreamAggregatedResources(): grpc.ClientDuplexStream<object, ResponseMessage> }).StreamAggregatedResources();
    this.call.on('data', (response: ResponseMessage) => this.responses.push(response));
    this.call.on('status', (status: grpc.StatusObject) => { this.status = status; });
    this.call.on('error', () => {});
  }

  send(typeUrl: string, fields: RequestFields = {}): void {
    const node = fields.node === undefined ? { id: this.nodeId, cluster: 'test' } : fields.node;
    this.call.write({
      ...(node ? { node } : {}),
      type_url: typeUrl,
      resource_names: fields.names ?? [],
      version_info: fields.version ?? '',
      response_nonce: fields.nonce ?? '',
      ...(fields.error ? { error_detail: { code: 3, message: fields.error } } : {}),
    });
  }

  /** The next response not yet read, waiting for it up to a deadline. */
  async next(timeoutMs = 20_000): Promise<ResponseMessage> {
    const index = this.read;
    const response = await eventually(`response #${index + 1} on ${this.nodeId}`, () => this.responses[index] ?? (this.status ? false : undefined), timeoutMs);
    this.read++;
    return response;
  }

  async ended(timeoutMs = 20_000): Promise<grpc.StatusObject> {
    return eventually(`end of stream ${this.nodeId}`, () => this.status, timeoutMs);
  }

  ack(response: ResponseMessage, names: string[] = []): void {
    this.send(response.type_url, { node: null, names, version: response.version_info, nonce: response.nonce });
  }

  unread(): number {
    return this.responses.length - this.read;
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

function names(response: ResponseMessage): string[] {
  return (response.resources ?? []).map((any) => {
    const resource = unpackAny<{ name?: string; cluster_name?: string }>(any);
    return resource.name ?? resource.cluster_name ?? '';
  }).sort();
}

// ---------------------------------------------------------------------------------------------

interface Harness {
  ads: AdsServer;
  server: grpc.Server;
  port: number;
  generator: FakeGenerator;
  observer: RecordingObserver;
  raw(nodeId: string): RawStream;
  client(nodeId: string, extra?: { metadata?: Record<string, unknown> }): AdsClient;
}

function bind(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, port) => (error ? reject(error) : resolve(port))));
}

async function start(t: ExecutionContext, options: Partial<AdsServerOptions> = {}): Promise<Harness> {
  const generator = new FakeGenerator();
  const observer = new RecordingObserver();
  const ads = new AdsServer({ generator, observer, logger: silentLogger(), debounceMs: 10, maxDebounceMs: 100, ...options });
  const server = new grpc.Server();
  ads.bind(server);
  const port = await bind(server, '127.0.0.1:0');
  const streams: RawStream[] = [];
  const clients: AdsClient[] = [];
  t.teardown(() => {
    for (const stream of streams) stream.close();
    for (const client of clients) client.close();
    ads.close();
    server.forceShutdown();
  });
  return {
    ads, server, port, generator, observer,
    raw(nodeId) {
      const stream = new RawStream(port, nodeId);
      streams.push(stream);
      return stream;
    },
    client(nodeId, extra = {}) {
      const client = new AdsClient({ target: `127.0.0.1:${port}`, node: { id: nodeId, metadata: extra.metadata }, backoff: { initialMs: 20, maxMs: 200 } });
      clients.push(client);
      return client;
    },
  };
}

const basicWorld: Partial<World> = {
  listeners: { '*': [80, 443] },
  clusters: ['outbound|80||a', 'outbound|80||b'],
  endpoints: { 'outbound|80||a': ['10.0.0.1'], 'outbound|80||b': ['10.0.0.2', '10.0.0.3'], 'outbound|80||c': ['10.0.0.4'] },
  routes: { '80': 'outbound|80||a', '443': 'outbound|80||b' },
};

test('wildcard LDS and CDS requests get every listener and cluster of the node at once', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const stream = h.raw('node-1');
  stream.send(TypeUrl.Listener);
  const lds = await stream.next();
  stream.send(TypeUrl.Cluster, { node: null });
  const cds = await stream.next();
  t.is(lds.type_url, TypeUrl.Listener);
  t.deepEqual(names(lds), ['listener_443', 'listener_80']);
  t.is(cds.type_url, TypeUrl.Cluster);
  t.deepEqual(names(cds), ['outbound|80||a', 'outbound|80||b']);
  t.truthy(lds.version_info);
  t.not(lds.nonce, cds.nonce);
  t.is(h.ads.connectedClients(), 1);
  t.deepEqual(h.observer.of('opened'), [{ kind: 'opened', node: 'node-1' }]);
});

test('a named EDS subscription gets only the assignments it names', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const stream = h.raw('node-1');
  stream.send(TypeUrl.ClusterLoadAssignment, { names: ['outbound|80||b', 'outbound|80||missing'] });
  const eds = await stream.next();
  t.deepEqual(names(eds), ['outbound|80||b']);
  const assignment = unpackAny<{ endpoints: { lb_endpoints: unknown[] }[] }>(eds.resources![0]!);
  t.is(assignment.endpoints[0]!.lb_endpoints.length, 2);
});

test('an ACK is recorded: syncStatus shows the acked version and SYNCED', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const stream = h.raw('node-1');
  stream.send(TypeUrl.Listener);
  const lds = await stream.next();
  const before = h.ads.syncStatus()[0]!.types.LDS!;
  t.is(before.state, 'STALE');
  t.is(before.sent, lds.version_info);
  t.is(before.nonce, lds.nonce);
  stream.ack(lds);
  await eventually('ACK', () => h.observer.of('acked').length === 1);
  const [status] = h.ads.syncStatus();
  t.is(status!.node, 'node-1');
  t.regex(status!.peer, /127\.0\.0\.1/);
  t.truthy(Date.parse(status!.connectedAt));
  t.like(status!.types.LDS, { sent: lds.version_info, acked: lds.version_info, resources: 2, state: 'SYNCED' });
  t.is(h.ads.stats().ackLatencyMs.count, 1);
});

test('a NACK is recorded with its message and the refused version is not sent again', async (t) => {
  const h = await start(t);
  h.ads.setModel(model({ listeners: { a: [80], b: [80] } }));
  const a = h.raw('a');
  const b = h.raw('b');
  a.send(TypeUrl.Listener);
  b.send(TypeUrl.Listener);
  const refused = await a.next();
  b.ack(await b.next());
  a.send(TypeUrl.Listener, { node: null, version: '', nonce: refused.nonce, error: 'listener_80: port already in use' });
  await eventually('NACK', () => h.observer.of('nacked').length === 1);
  const status = h.ads.syncStatus().find((s) => s.node === 'a')!.types.LDS!;
  t.is(status.state, 'NACKED');
  t.is(status.lastNack?.message, 'listener_80: port already in use');
  t.is(status.lastNack?.version, refused.version_info);
  t.deepEqual(h.observer.of('nacked')[0], { kind: 'nacked', node: 'a', type: 'LDS', message: 'listener_80: port already in use' });

  // A change for b only: b hears of it, a must not get its refused listeners again.
  h.ads.setModel(model({ listeners: { a: [80], b: [80, 81] } }));
  t.deepEqual(names(await b.next()), ['listener_80', 'listener_81']);
  // Responses on one stream arrive in order: the answer to a's first RDS request comes next only if
  // nothing was pushed to a in between.
  a.send(TypeUrl.RouteConfiguration, { node: null, names: ['80'] });
  t.is((await a.next()).type_url, TypeUrl.RouteConfiguration);
  t.is(h.ads.syncStatus().find((s) => s.node === 'a')!.types.LDS!.nonce, refused.nonce);

  // A real change for a produces a new version, which is sent.
  h.ads.setModel(model({ listeners: { a: [8080], b: [80, 81] } }));
  const fixed = await a.next();
  t.deepEqual(names(fixed), ['listener_8080']);
  t.not(fixed.version_info, refused.version_info);
});

test('a model change that leaves a client\'s resources alone sends that client nothing', async (t) => {
  const h = await start(t);
  h.ads.setModel(model({ listeners: { a: [80], b: [80] }, clusters: ['x'] }));
  const a = h.raw('a');
  const b = h.raw('b');
  for (const stream of [a, b]) {
    stream.send(TypeUrl.Listener);
    stream.ack(await stream.next());
  }
  const aBefore = h.ads.syncStatus().find((s) => s.node === 'a')!.types.LDS!;
  const generatedBefore = h.generator.calls;

  h.ads.setModel(model({ listeners: { a: [80], b: [80, 9090] }, clusters: ['x', 'y'] }));
  const pushed = await b.next();
  t.deepEqual(names(pushed), ['listener_80', 'listener_9090']);
  a.send(TypeUrl.RouteConfiguration, { node: null, names: ['80'] });
  t.is((await a.next()).type_url, TypeUrl.RouteConfiguration, 'nothing was pushed to a before the RDS answer');
  const aAfter = h.ads.syncStatus().find((s) => s.node === 'a')!.types.LDS!;
  t.is(aAfter.nonce, aBefore.nonce);
  t.is(aAfter.sent, aBefore.sent);
  t.true(h.generator.calls > generatedBefore, 'a\'s resources were recomputed and compared');
});

test.serial('twenty model changes within 50 ms lead to one push carrying the last model', async (t) => {
  const h = await start(t, { debounceMs: 100, maxDebounceMs: 1000 });
  h.ads.setModel(model({ listeners: { '*': [1] } }));
  const stream = h.raw('node-1');
  stream.send(TypeUrl.Listener);
  stream.ack(await stream.next());
  const started = Date.now();
  // Each call in its own event-loop turn, as changes from sources arrive.
  for (let i = 2; i <= 21; i++) {
    h.ads.setModel(model({ listeners: { '*': [i] } }));
    await new Promise((resolve) => setImmediate(resolve));
  }
  const burstMs = Date.now() - started;
  const push = await stream.next();
  t.deepEqual(names(push), ['listener_21']);
  stream.ack(push);
  stream.send(TypeUrl.RouteConfiguration, { node: null });
  t.is((await stream.next()).type_url, TypeUrl.RouteConfiguration, 'no second LDS push');
  t.is(h.observer.of('pushed').filter((e) => e.type === 'LDS').length, 2, 'the first reply and one push');
  t.true(burstMs < 50, `the burst took ${burstMs} ms`);
});

test.serial('a constant stream of changes still pushes once maxDebounceMs has passed', async (t) => {
  const h = await start(t, { debounceMs: 100, maxDebounceMs: 200 });
  h.ads.setModel(model({ listeners: { '*': [1] } }));
  const stream = h.raw('node-1');
  stream.send(TypeUrl.Listener);
  stream.ack(await stream.next());
  // A change every 20 ms never leaves 100 ms of quiet; for 700 ms only the cap can release pushes.
  const until = Date.now() + 700;
  for (let port = 2; Date.now() < until; port++) {
    h.ads.setModel(model({ listeners: { '*': [port] } }));
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // Counted where they are sent (the first reply excluded), not where they arrive.
  const pushedDuringStream = h.ads.stats().pushes - 1;
  t.true(pushedDuringStream >= 2, `${pushedDuringStream} pushes while changes kept coming`);
});

test('a request with a stale nonce gets no response; its names take effect once the client catches up', async (t) => {
  const h = await start(t);
  h.ads.setModel(model({ endpoints: { a: ['10.0.0.1'], b: ['10.0.0.2'] } }));
  const stream = h.raw('node-1');
  stream.send(TypeUrl.ClusterLoadAssignment, { names: ['a'] });
  const first = await stream.next();
  stream.ack(first, ['a']);
  h.ads.setModel(model({ endpoints: { a: ['10.0.0.9'], b: ['10.0.0.2'] } }));
  const second = await stream.next();
  t.not(second.nonce, first.nonce);

  // Written as if the client had not seen `second` yet: answers `first`, and adds b.
  stream.send(TypeUrl.ClusterLoadAssignment, { node: null, names: ['a', 'b'], version: first.version_info, nonce: first.nonce });
  stream.send(TypeUrl.RouteConfiguration, { node: null });
  t.is((await stream.next()).type_url, TypeUrl.RouteConfiguration, 'the stale request got no EDS response');
  await eventually('stale nonce rejection', () => h.observer.of('rejected').some((e) => /stale nonce/.test(e.reason)));
  t.like(h.ads.syncStatus()[0]!.types.EDS, { sent: second.version_info, state: 'STALE' });

  // The current ACK carries the same names: the server now sends b, which the client lacks, under
  // the version of both.
  stream.ack(second, ['a', 'b']);
  const both = await stream.next();
  t.deepEqual(names(both), ['b']);
  t.like(h.ads.syncStatus()[0]!.types.EDS, { sent: both.version_info, resources: 2 });
});

test('an unknown type URL is rejected and the stream keeps working', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const stream = h.raw('node-1');
  stream.send('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret', { names: ['default'] });
  await eventually('rejection', () => h.observer.of('rejected').length === 1);
  t.regex(h.observer.of('rejected')[0]!.reason, /unknown type URL/);
  stream.send(TypeUrl.Listener, { node: null });
  const lds = await stream.next();
  t.is(lds.type_url, TypeUrl.Listener);
  t.is(stream.status, undefined);
});

test('a first request without node ends that stream with INVALID_ARGUMENT and others keep being served', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const good = h.raw('good');
  good.send(TypeUrl.Listener);
  good.ack(await good.next());
  const bad = h.raw('bad');
  bad.send(TypeUrl.Listener, { node: null });
  const status = await bad.ended();
  t.is(status.code, grpc.status.INVALID_ARGUMENT);
  t.regex(status.details, /node/);

  h.ads.setModel(model({ ...basicWorld, listeners: { '*': [80, 443, 8443] } }));
  t.deepEqual(names(await good.next()), ['listener_443', 'listener_80', 'listener_8443']);
  const later = h.raw('later');
  later.send(TypeUrl.Cluster);
  t.is((await later.next()).type_url, TypeUrl.Cluster);
});

test('a request that is not a DiscoveryRequest ends the stream with INVALID_ARGUMENT', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const client = new grpc.Client(`127.0.0.1:${h.port}`, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const path = adsService().service.StreamAggregatedResources!.path;
  const call = client.makeBidiStreamRequest<Buffer, Buffer>(path, (b) => b, (b) => b);
  let status: grpc.StatusObject | undefined;
  call.on('status', (s: grpc.StatusObject) => { status = s; });
  call.on('error', () => {});
  // Field 1 claims 65535 bytes that never come.
  call.write(Buffer.from([0x0a, 0xff, 0xff, 0x03]));
  const ended = await eventually('status', () => status);
  t.is(ended.code, grpc.status.INVALID_ARGUMENT);
  t.regex(ended.details, /malformed DiscoveryRequest/);
});

test('a node id that is empty or has spaces ends the stream with INVALID_ARGUMENT', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  for (const id of ['', 'has space']) {
    const stream = h.raw(id);
    stream.send(TypeUrl.Listener, { node: { id } });
    const status = await stream.ended();
    t.is(status.code, grpc.status.INVALID_ARGUMENT, `node id ${JSON.stringify(id)}`);
    t.regex(status.details, /node\.id/);
  }
  t.is(h.ads.connectedClients(), 0);
});

test('a model change is pushed in make-before-break order: CDS, EDS, LDS, RDS', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const stream = h.raw('node-1');
  // Subscribed in the opposite order on purpose.
  const subscriptions: [string, string[]][] = [
    [TypeUrl.RouteConfiguration, ['80']],
    [TypeUrl.Listener, []],
    [TypeUrl.ClusterLoadAssignment, ['outbound|80||a']],
    [TypeUrl.Cluster, []],
  ];
  for (const [index, [typeUrl, subscribed]] of subscriptions.entries()) {
    stream.send(typeUrl, { node: index === 0 ? undefined : null, names: subscribed });
    stream.ack(await stream.next(), subscribed);
  }
  h.ads.setModel(model({
    listeners: { '*': [80, 8080] },
    clusters: ['outbound|80||a', 'outbound|80||new'],
    endpoints: { 'outbound|80||a': ['10.1.1.1'] },
    routes: { '80': 'outbound|80||new' },
  }));
  const order = [];
  for (let i = 0; i < 4; i++) order.push((await stream.next()).type_url);
  t.deepEqual(order, [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration]);
});

test('an added EDS name is sent although nothing changed, and a name that appears later is pushed when it exists', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const stream = h.raw('node-1');
  stream.send(TypeUrl.ClusterLoadAssignment, { names: ['outbound|80||a'] });
  const first = await stream.next();
  stream.ack(first, ['outbound|80||a', 'outbound|80||c', 'outbound|80||later']);
  const grown = await stream.next();
  t.deepEqual(names(grown), ['outbound|80||c'], 'only the name the client lacks');
  t.not(grown.version_info, first.version_info);
  stream.ack(grown, ['outbound|80||a', 'outbound|80||c', 'outbound|80||later']);
  h.ads.setModel(model({ ...basicWorld, endpoints: { ...basicWorld.endpoints, 'outbound|80||later': ['10.9.9.9'] } }));
  t.deepEqual(names(await stream.next()), ['outbound|80||later']);
  t.like(h.ads.syncStatus()[0]!.types.EDS, { resources: 3 });
});

test('after an endpoint change a client subscribed to 100 EDS names gets only the changed assignment, under a new version', async (t) => {
  const h = await start(t);
  const endpoints = (changed: string): Record<string, string[]> =>
    Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`svc-${i}`, [i === 42 ? changed : `10.0.0.${i}`]]));
  h.ads.setModel(model({ endpoints: endpoints('10.0.0.42') }));
  const subscribed = Array.from({ length: 100 }, (_, i) => `svc-${i}`);
  const stream = h.raw('node-1');
  stream.send(TypeUrl.ClusterLoadAssignment, { names: subscribed });
  const first = await stream.next();
  t.is(first.resources?.length, 100, 'the first response carries everything');
  stream.ack(first, subscribed);

  h.ads.setModel(model({ endpoints: endpoints('10.9.9.9') }));
  const push = await stream.next();
  t.deepEqual(names(push), ['svc-42']);
  t.regex(JSON.stringify(unpackAny(push.resources![0]!)), /10\.9\.9\.9/);
  t.not(push.version_info, first.version_info);
  stream.ack(push, subscribed);
  await eventually('ACK of the push', () => h.ads.syncStatus()[0]!.types.EDS!.state === 'SYNCED');
  t.like(h.ads.syncStatus()[0]!.types.EDS, { sent: push.version_info, acked: push.version_info, resources: 100 });
  t.is(h.observer.of('pushed').at(-1)?.resources, 1);

  // The version names the full set: a new stream that gets all 100 at once gets the same version.
  const fresh = h.raw('node-2');
  fresh.send(TypeUrl.ClusterLoadAssignment, { names: subscribed });
  const full = await fresh.next();
  t.is(full.resources?.length, 100);
  t.is(full.version_info, push.version_info);
});

test('a changed RouteConfiguration is sent alone; LDS and CDS still carry every resource', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const stream = h.raw('node-1');
  stream.send(TypeUrl.Listener);
  stream.ack(await stream.next());
  stream.send(TypeUrl.RouteConfiguration, { node: null, names: ['80', '443'] });
  const rds = await stream.next();
  t.deepEqual(names(rds), ['443', '80']);
  stream.ack(rds, ['80', '443']);

  h.ads.setModel(model({ ...basicWorld, listeners: { '*': [80, 443, 8080] }, routes: { '80': 'outbound|80||b', '443': 'outbound|80||b' } }));
  const lds = await stream.next();
  t.deepEqual(names(lds), ['listener_443', 'listener_80', 'listener_8080']);
  const route = await stream.next();
  t.is(route.type_url, TypeUrl.RouteConfiguration);
  t.deepEqual(names(route), ['80']);
  t.not(route.version_info, rds.version_info);
});

test('after a NACK the next RDS/EDS response carries the full set again', async (t) => {
  const h = await start(t);
  h.ads.setModel(model({ endpoints: { a: ['10.0.0.1'], b: ['10.0.0.2'] } }));
  const stream = h.raw('node-1');
  stream.send(TypeUrl.ClusterLoadAssignment, { names: ['a', 'b'] });
  const first = await stream.next();
  stream.ack(first, ['a', 'b']);
  h.ads.setModel(model({ endpoints: { a: ['10.0.0.9'], b: ['10.0.0.2'] } }));
  const refused = await stream.next();
  t.deepEqual(names(refused), ['a']);
  stream.send(TypeUrl.ClusterLoadAssignment, { node: null, names: ['a', 'b'], version: first.version_info, nonce: refused.nonce, error: 'a: bad address' });
  await eventually('NACK', () => h.observer.of('nacked').length === 1);

  h.ads.setModel(model({ endpoints: { a: ['10.0.0.8'], b: ['10.0.0.2'] } }));
  t.deepEqual(names(await stream.next()), ['a', 'b'], 'the client may hold anything after refusing');
});

test('AdsClient merges partial RDS and EDS responses from the server into the full set', async (t) => {
  const h = await start(t);
  const world = (address: string, cluster: string): Partial<World> => ({
    endpoints: { a: [address], b: ['10.0.0.2'], c: ['10.0.0.3'] },
    routes: { '80': cluster, '443': 'outbound|80||b' },
  });
  h.ads.setModel(model(world('10.0.0.1', 'outbound|80||a')));
  const client = h.client('agent-1');
  client.subscribe(TypeUrl.ClusterLoadAssignment, ['a', 'b', 'c']);
  client.subscribe(TypeUrl.RouteConfiguration, ['80', '443']);
  await eventually('initial data', () => client.resources(TypeUrl.ClusterLoadAssignment).size === 3 && client.resources(TypeUrl.RouteConfiguration).size === 2);
  const updates: AdsUpdate[] = [];
  client.on('update', (update) => updates.push(update));

  h.ads.setModel(model(world('10.9.9.9', 'outbound|80||c')));
  await eventually('both pushes', () => updates.length === 2);
  t.deepEqual(updates.map((u) => [u.typeUrl, u.count]), [[TypeUrl.ClusterLoadAssignment, 1], [TypeUrl.RouteConfiguration, 1]]);
  const eds = client.resources(TypeUrl.ClusterLoadAssignment);
  t.deepEqual([...eds.keys()].sort(), ['a', 'b', 'c']);
  t.regex(JSON.stringify(eds.get('a')), /10\.9\.9\.9/);
  t.regex(JSON.stringify(eds.get('c')), /10\.0\.0\.3/);
  const rds = client.resources(TypeUrl.RouteConfiguration);
  t.deepEqual([...rds.keys()].sort(), ['443', '80']);
  t.regex(JSON.stringify(rds.get('80')), /outbound\|80\|\|c/);
  await eventually('ACKs', () => h.ads.syncStatus()[0]!.types.EDS!.state === 'SYNCED' && h.ads.syncStatus()[0]!.types.RDS!.state === 'SYNCED');
  t.is(h.ads.syncStatus()[0]!.types.EDS!.acked, client.version(TypeUrl.ClusterLoadAssignment));
});

test('requests that arrive before the first model are answered when it is set', async (t) => {
  const h = await start(t);
  const stream = h.raw('early');
  stream.send(TypeUrl.Cluster);
  await eventually('the stream to be known', () => h.ads.connectedClients() === 1);
  t.is(h.ads.syncStatus()[0]!.types.CDS!.state, 'NOT SENT');
  h.ads.setModel(model(basicWorld));
  t.deepEqual(names(await stream.next()), ['outbound|80||a', 'outbound|80||b']);
});

test('pushes caused by a model change report their latency; first replies report 0', async (t) => {
  const h = await start(t, { debounceMs: 30 });
  h.ads.setModel(model({ listeners: { '*': [80] } }));
  const stream = h.raw('node-1');
  stream.send(TypeUrl.Listener);
  stream.ack(await stream.next());
  h.ads.setModel(model({ listeners: { '*': [81] } }));
  await stream.next();
  const pushes = await eventually('two pushed events', () => {
    const events = h.observer.of('pushed');
    return events.length === 2 ? events : undefined;
  });
  t.is(pushes[0]!.latency, 0);
  t.true(pushes[1]!.latency >= 0.03, `latency ${pushes[1]!.latency} s includes the 30 ms debounce`);
  t.true(pushes[1]!.latency < 5);
  t.is(h.ads.stats().pushLatencyMs.count, 1);
});

test('node metadata from AdsClient reaches the generator as plain JSON', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const client = h.client('agent-1', { metadata: { ISTIO_VERSION: '1.22', labels: { app: 'reviews' }, ports: [9080, 9443], mesh: true, none: null } });
  client.subscribe(TypeUrl.Listener, '*');
  await eventually('node seen', () => h.generator.nodes.get('agent-1'));
  t.deepEqual(h.generator.nodes.get('agent-1')!.metadata, { ISTIO_VERSION: '1.22', labels: { app: 'reviews' }, ports: [9080, 9443], mesh: true, none: null });
});

test('node locality from AdsClient reaches the generator; a node without one has none', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const located = new AdsClient({ target: `127.0.0.1:${h.port}`, node: { id: 'agent-eu', locality: { region: 'eu', zone: 'eu-a' } }, backoff: { initialMs: 20, maxMs: 200 } });
  t.teardown(() => located.close());
  located.subscribe(TypeUrl.Listener, '*');
  h.client('agent-nowhere').subscribe(TypeUrl.Listener, '*');
  await eventually('nodes seen', () => h.generator.nodes.get('agent-eu') && h.generator.nodes.get('agent-nowhere'));
  t.deepEqual(h.generator.nodes.get('agent-eu')!.locality, { region: 'eu', zone: 'eu-a', subzone: '' });
  t.is(h.generator.nodes.get('agent-nowhere')!.locality, undefined);
});

test('a client that goes away is forgotten by connectedClients, syncStatus and the observer', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const stay = h.raw('stay');
  const leave = h.raw('leave');
  for (const stream of [stay, leave]) {
    stream.send(TypeUrl.Listener);
    await stream.next();
  }
  t.is(h.ads.connectedClients(), 2);
  leave.close();
  await eventually('cleanup', () => h.ads.connectedClients() === 1);
  t.deepEqual(h.ads.syncStatus().map((s) => s.node), ['stay']);
  t.deepEqual(h.observer.of('closed'), [{ kind: 'closed', node: 'leave' }]);
});

test('close() ends open streams with status OK', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const stream = h.raw('node-1');
  stream.send(TypeUrl.Listener);
  await stream.next();
  h.ads.close();
  const status = await stream.ended();
  t.is(status.code, grpc.status.OK);
  t.is(h.ads.connectedClients(), 0);
});

test('a first request stating the current version gets no response and counts as in sync; an outdated one gets the set', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const first = h.raw('a');
  first.send(TypeUrl.Listener);
  const lds = await first.next();
  first.send(TypeUrl.ClusterLoadAssignment, { node: null, names: ['outbound|80||a'] });
  const eds = await first.next();
  first.close();

  // As after a server restart: the client's first requests carry what it accepted before.
  const resumed = h.raw('a');
  resumed.send(TypeUrl.Listener, { version: lds.version_info });
  resumed.send(TypeUrl.ClusterLoadAssignment, { node: null, names: ['outbound|80||a'], version: eds.version_info });
  // Responses on a stream keep their order: had LDS or EDS been answered, that would come first.
  resumed.send(TypeUrl.Cluster, { node: null });
  const cds = await resumed.next();
  t.is(cds.type_url, TypeUrl.Cluster);
  const status = h.ads.syncStatus().find((s) => s.stream !== undefined && s.types.CDS !== undefined)!;
  t.is(status.types.LDS!.state, 'SYNCED');
  t.is(status.types.LDS!.sent, lds.version_info);
  t.is(status.types.EDS!.state, 'SYNCED');
  t.is(status.types.EDS!.resources, 1);
  t.is(h.ads.stats().resumed, 2);

  // The resumed stream still gets changes, EDS as a partial response against what it holds.
  h.ads.setModel(model({ ...basicWorld, listeners: { '*': [80] }, endpoints: { ...basicWorld.endpoints, 'outbound|80||a': ['10.9.9.9'] } }));
  const pushed = [await resumed.next(), await resumed.next()];
  t.deepEqual(pushed.map((r) => r.type_url).sort(), [TypeUrl.ClusterLoadAssignment, TypeUrl.Listener].sort());
  t.deepEqual(names(pushed.find((r) => r.type_url === TypeUrl.Listener)!), ['listener_80']);

  const outdated = h.raw('b');
  outdated.send(TypeUrl.Listener, { version: lds.version_info });
  const fresh = await outdated.next();
  t.not(fresh.version_info, lds.version_info);
  t.deepEqual(names(fresh), ['listener_80']);
});

test('streams that get the same set share one encoded response, full and partial', async (t) => {
  const h = await start(t);
  h.ads.setModel(model(basicWorld));
  const streams = [h.raw('a'), h.raw('b'), h.raw('c')];
  const wanted = ['outbound|80||a', 'outbound|80||b'];
  for (const stream of streams) stream.send(TypeUrl.ClusterLoadAssignment, { names: wanted });
  const firsts = await Promise.all(streams.map((s) => s.next()));
  // The generator built a separate Map per stream; equal content still means one response.
  t.is(new Set(firsts.map((r) => r.nonce)).size, 1);
  t.is(new Set(firsts.map((r) => r.version_info)).size, 1);
  firsts.forEach((response, i) => streams[i]!.ack(response, wanted));
  await eventually('every ACK', () => h.ads.syncStatus().every((s) => s.types.EDS?.state === 'SYNCED'));

  h.ads.setModel(model({ ...basicWorld, endpoints: { ...basicWorld.endpoints, 'outbound|80||b': ['10.0.0.2'] } }));
  const pushes = await Promise.all(streams.map((s) => s.next()));
  t.is(new Set(pushes.map((r) => r.nonce)).size, 1);
  t.not(pushes[0]!.nonce, firsts[0]!.nonce);
  for (const push of pushes) t.deepEqual(names(push), ['outbound|80||b']);
});

test('with more than maxBufferedBytes written and not yet drained, further responses wait, then all arrive', async (t) => {
  // Every response is over the limit: each waits for the one before it to drain.
  const h = await start(t, { maxBufferedBytes: 1 });
  h.ads.setModel(model({ listeners: { '*': [80] }, clusters: Array.from({ length: 200 }, (_, i) => `svc-${i}`) }));
  const clients = Array.from({ length: 20 }, (_, i) => {
    const client = h.client(`node-${i}`);
    client.subscribe(TypeUrl.Cluster, '*');
    client.subscribe(TypeUrl.Listener, '*');
    return client;
  });
  await eventually('every client holds CDS and LDS', () => clients.every((c) => c.resources(TypeUrl.Cluster).size === 200 && c.resources(TypeUrl.Listener).size === 1));
  await eventually('every ACK', () => h.ads.syncStatus().length === 20 && h.ads.syncStatus().every((s) => s.types.CDS?.state === 'SYNCED' && s.types.LDS?.state === 'SYNCED'));
  // A change still reaches everyone through the same queue.
  h.ads.setModel(model({ listeners: { '*': [80] }, clusters: Array.from({ length: 201 }, (_, i) => `svc-${i}`) }));
  await eventually('the push everywhere', () => clients.every((c) => c.resources(TypeUrl.Cluster).size === 201));
  t.pass();
});

test('AdsClient reconnects after a server restart, resubscribes and gets the new server\'s data', async (t) => {
  const first = await start(t);
  first.ads.setModel(model(basicWorld));
  const client = new AdsClient({ target: `127.0.0.1:${first.port}`, node: { id: 'agent-1' }, backoff: { initialMs: 20, maxMs: 100 } });
  t.teardown(() => client.close());
  const updates: AdsUpdate[] = [];
  client.on('update', (update) => updates.push(update));
  client.subscribe(TypeUrl.Listener, '*');
  client.subscribe(TypeUrl.ClusterLoadAssignment, ['outbound|80||a']);
  await eventually('initial data', () => client.version(TypeUrl.Listener) && client.version(TypeUrl.ClusterLoadAssignment));
  const firstListenerVersion = client.version(TypeUrl.Listener);

  first.ads.close();
  first.server.forceShutdown();
  const disconnected = await eventually('disconnect', () => !client.isConnected());
  t.true(disconnected);

  // Same port, new process state: a different model.
  const generator = new FakeGenerator();
  const ads = new AdsServer({ generator, logger: silentLogger(), debounceMs: 10 });
  const server = new grpc.Server();
  ads.bind(server);
  t.teardown(() => {
    ads.close();
    server.forceShutdown();
  });
  ads.setModel(model({ ...basicWorld, listeners: { '*': [15001] }, endpoints: { 'outbound|80||a': ['10.7.7.7'] } }));
  await bind(server, `127.0.0.1:${first.port}`);

  await eventually('data from the new server', () => client.resources(TypeUrl.Listener).has('listener_15001'), 10_000);
  await eventually('EDS from the new server', () => updates.some((u) => u.typeUrl === TypeUrl.ClusterLoadAssignment && JSON.stringify([...u.resources.values()]).includes('10.7.7.7')), 10_000);
  t.not(client.version(TypeUrl.Listener), firstListenerVersion);
  t.deepEqual([...client.resources(TypeUrl.Listener).keys()], ['listener_15001']);
  t.true(client.stats().reconnects >= 1);
  t.is(ads.connectedClients(), 1);
  await eventually('ACKs on the new server', () => ads.syncStatus()[0]?.types.LDS?.state === 'SYNCED' && ads.syncStatus()[0]?.types.EDS?.state === 'SYNCED');
  t.pass();
});

test('one model change reaches 200 clients with a single response each', async (t) => {
  const h = await start(t, { pushBatchSize: 16 });
  h.ads.setModel(model({ listeners: { '*': [80] }, clusters: Array.from({ length: 50 }, (_, i) => `svc-${i}`) }));
  const clients: AdsClient[] = [];
  for (let i = 0; i < 200; i++) {
    const client = new AdsClient({ target: `127.0.0.1:${h.port}`, node: { id: `node-${i}` }, decode: false });
    t.teardown(() => client.close());
    client.subscribe(TypeUrl.Cluster, '*');
    clients.push(client);
  }
  await eventually('all first replies', () => clients.every((c) => c.version(TypeUrl.Cluster) !== undefined), 20_000);
  const before = clients.map((c) => c.stats().responses);
  h.ads.setModel(model({ listeners: { '*': [80] }, clusters: Array.from({ length: 51 }, (_, i) => `svc-${i}`) }));
  const target = clients[0]!.version(TypeUrl.Cluster);
  await eventually('the push everywhere', () => clients.every((c) => c.version(TypeUrl.Cluster) !== target), 20_000);
  t.true(clients.every((c, i) => c.stats().responses === before[i]! + 1));
  t.is(new Set(clients.map((c) => c.version(TypeUrl.Cluster))).size, 1, 'identical content, identical version');
  await eventually('every ACK', () => h.ads.syncStatus().every((s) => s.types.CDS?.state === 'SYNCED'), 20_000);
  t.is(h.ads.stats().pushLatencyMs.count, 200);
});
