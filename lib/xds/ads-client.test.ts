// AdsClient against a scripted ADS server on 127.0.0.1 that records every request and answers only
// when a test tells it to: ACK/NACK contents, keep-previous on NACK, merging, reconnect and backoff.
import test, { type ExecutionContext } from 'ava';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { AdsClient, type AdsClientOptions, type AdsNack, type AdsUpdate } from './ads-client';
import { adsService, packAny, TypeUrl, type PackedAny } from './protos';
import { eventually } from '../../test/support/eventually';

interface RequestMessage {
  version_info?: string;
  node?: { id?: string; cluster?: string; user_agent_name?: string; metadata?: { fields?: Record<string, unknown> }; locality?: { region?: string; zone?: string; sub_zone?: string } };
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string };
}


class ScriptedStream {
  readonly requests: RequestMessage[] = [];
  readonly openedAt = Date.now();
  cancelled = false;
  private nonce = 0;

  constructor(readonly call: grpc.ServerDuplexStream<RequestMessage, object>) {
    call.on('data', (request: RequestMessage) => this.requests.push(request));
    call.on('cancelled', () => { this.cancelled = true; });
    call.on('error', () => {});
  }

  /** Sends a response and returns its nonce. */
  respond(typeUrl: string, version: string, resources: PackedAny[]): string {
    const nonce = `n${++this.nonce}`;
    this.call.write({ version_info: version, type_url: typeUrl, nonce, resources });
    return nonce;
  }

  fail(code: grpc.status, details: string): void {
    this.call.emit('error', Object.assign(new Error(details), { code, details }));
  }

  async request(index: number): Promise<RequestMessage> {
    return eventually(`request #${index + 1}`, () => this.requests[index]);
  }
}

class ScriptedServer {
  readonly streams: ScriptedStream[] = [];
  /** When set, every new stream is ended at once with this status. */
  refuse?: grpc.status;

  private constructor(readonly server: grpc.Server, readonly port: number) {}

  static async start(t: ExecutionContext): Promise<ScriptedServer> {
    const server = new grpc.Server();
    let scripted: ScriptedServer | undefined;
    server.addService(adsService().service, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<RequestMessage, object>) => {
        const stream = new ScriptedStream(call);
        scripted!.streams.push(stream);
        if (scripted!.refuse !== undefined) stream.fail(scripted!.refuse, 'refused by the test');
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
    scripted = new ScriptedServer(server, port);
    t.teardown(() => server.forceShutdown());
    return scripted;
  }

  async stream(index: number): Promise<ScriptedStream> {
    return eventually(`stream #${index + 1}`, () => this.streams[index]);
  }
}

function newClient(t: ExecutionContext, server: ScriptedServer, options: Partial<AdsClientOptions> = {}): AdsClient {
  const client = new AdsClient({ target: `127.0.0.1:${server.port}`, node: { id: 'agent-1', cluster: 'web' }, backoff: { initialMs: 20, maxMs: 200 }, ...options });
  t.teardown(() => client.close());
  return client;
}

const listener = (name: string, port: number) => packAny(TypeUrl.Listener, { name, address: { socket_address: { address: '0.0.0.0', port_value: port } } });
const assignment = (name: string, address: string) => packAny(TypeUrl.ClusterLoadAssignment, {
  cluster_name: name,
  endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: 80 } } } }] }],
});

test('the first request carries the node; an accepted response is ACKed with its version and nonce', async (t) => {
  const server = await ScriptedServer.start(t);
  const client = newClient(t, server, { node: { id: 'agent-1', cluster: 'web', metadata: { zone: 'a' } }, userAgent: 'mesh-agent' });
  const updates: AdsUpdate[] = [];
  client.on('update', (update) => updates.push(update));
  client.subscribe(TypeUrl.Listener, '*');
  const stream = await server.stream(0);
  const first = await stream.request(0);
  t.is(first.node?.id, 'agent-1');
  t.is(first.node?.cluster, 'web');
  t.is(first.node?.user_agent_name, 'mesh-agent');
  t.truthy(first.node?.metadata?.fields?.zone);
  t.deepEqual(first.resource_names ?? [], [], 'legacy wildcard: no names');
  t.is(first.version_info ?? '', '');

  const nonce = stream.respond(TypeUrl.Listener, 'v1', [listener('l80', 80), listener('l443', 443)]);
  const ack = await stream.request(1);
  t.like(ack, { version_info: 'v1', response_nonce: nonce, type_url: TypeUrl.Listener });
  t.is(ack.error_detail, undefined);
  t.is(ack.node, undefined, 'later requests leave the node out');
  t.is(updates.length, 1);
  t.deepEqual([...updates[0]!.resources.keys()].sort(), ['l443', 'l80']);
  t.is((updates[0]!.resources.get('l80') as { address: { socket_address: { port_value: number } } }).address.socket_address.port_value, 80);
  t.is(client.version(TypeUrl.Listener), 'v1');
});

test('a node locality goes out as Node.locality, for the server to order failover priorities', async (t) => {
  const server = await ScriptedServer.start(t);
  const client = newClient(t, server, { node: { id: 'agent-1', locality: { region: 'eu', zone: 'eu-a', sub_zone: 'rack-1' } } });
  client.subscribe(TypeUrl.Listener, '*');
  const first = await (await server.stream(0)).request(0);
  t.deepEqual(first.node?.locality, { region: 'eu', zone: 'eu-a', sub_zone: 'rack-1' });
});

test('a response that validate refuses is NACKed with its message and the previous resources stay', async (t) => {
  const server = await ScriptedServer.start(t);
  const client = newClient(t, server, {
    validate: (_type, resources) => (resources.has('bad') ? 'listener bad: port 0 is not allowed' : undefined),
  });
  const nacks: AdsNack[] = [];
  client.on('nack', (nack) => nacks.push(nack));
  client.subscribe(TypeUrl.Listener, '*');
  const stream = await server.stream(0);
  await stream.request(0);
  stream.respond(TypeUrl.Listener, 'v1', [listener('good', 80)]);
  await stream.request(1);
  const held = client.resources(TypeUrl.Listener);

  const refusedNonce = stream.respond(TypeUrl.Listener, 'v2', [listener('good', 80), listener('bad', 1)]);
  const nack = await stream.request(2);
  t.is(nack.version_info, 'v1', 'version_info names the version still in force');
  t.is(nack.response_nonce, refusedNonce);
  t.is(nack.error_detail?.message, 'listener bad: port 0 is not allowed');
  t.is(nack.error_detail?.code, grpc.status.INVALID_ARGUMENT);
  t.is(client.version(TypeUrl.Listener), 'v1');
  t.is(client.resources(TypeUrl.Listener), held);
  t.deepEqual([...held.keys()], ['good']);
  t.deepEqual(nacks, [{ typeUrl: TypeUrl.Listener, version: 'v2', nonce: refusedNonce, message: 'listener bad: port 0 is not allowed' }]);

  // The next good version is accepted normally.
  stream.respond(TypeUrl.Listener, 'v3', [listener('good', 8080)]);
  const ack = await stream.request(3);
  t.like(ack, { version_info: 'v3' });
  t.is(ack.error_detail, undefined);
});

test('a response with the same resource name twice is NACKed', async (t) => {
  const server = await ScriptedServer.start(t);
  const client = newClient(t, server);
  client.subscribe(TypeUrl.Listener, '*');
  const stream = await server.stream(0);
  await stream.request(0);
  stream.respond(TypeUrl.Listener, 'v1', [listener('same', 80), listener('same', 81)]);
  const nack = await stream.request(1);
  t.regex(nack.error_detail?.message ?? '', /same appears twice/);
  t.is(client.version(TypeUrl.Listener), undefined);
});

test('EDS responses add to the subscribed assignments held; LDS responses replace the whole set', async (t) => {
  const server = await ScriptedServer.start(t);
  const client = newClient(t, server);
  client.subscribe(TypeUrl.ClusterLoadAssignment, ['a', 'b']);
  client.subscribe(TypeUrl.Listener, '*');
  const stream = await server.stream(0);
  await stream.request(1);
  stream.respond(TypeUrl.ClusterLoadAssignment, 'e1', [assignment('a', '10.0.0.1'), assignment('b', '10.0.0.2'), assignment('unasked', '10.0.0.3')]);
  await eventually('e1', () => client.version(TypeUrl.ClusterLoadAssignment) === 'e1');
  t.deepEqual([...client.resources(TypeUrl.ClusterLoadAssignment).keys()].sort(), ['a', 'b'], 'unrequested names are ignored');
  stream.respond(TypeUrl.ClusterLoadAssignment, 'e2', [assignment('b', '10.0.0.9')]);
  await eventually('e2', () => client.version(TypeUrl.ClusterLoadAssignment) === 'e2');
  t.deepEqual([...client.resources(TypeUrl.ClusterLoadAssignment).keys()].sort(), ['a', 'b']);
  t.regex(JSON.stringify(client.resources(TypeUrl.ClusterLoadAssignment).get('b')), /10\.0\.0\.9/);

  stream.respond(TypeUrl.Listener, 'l1', [listener('x', 1), listener('y', 2)]);
  await eventually('l1', () => client.version(TypeUrl.Listener) === 'l1');
  stream.respond(TypeUrl.Listener, 'l2', [listener('y', 2)]);
  await eventually('l2', () => client.version(TypeUrl.Listener) === 'l2');
  t.deepEqual([...client.resources(TypeUrl.Listener).keys()], ['y']);
});

test('keepEncoded holds the accepted Any bytes as received, merged and dropped like the decoded resources', async (t) => {
  const server = await ScriptedServer.start(t);
  const client = newClient(t, server, { keepEncoded: true, validate: (_type, resources) => (resources.has('c') ? 'c refused' : undefined) });
  const updates: AdsUpdate[] = [];
  client.on('update', (update) => updates.push(update));
  client.subscribe(TypeUrl.ClusterLoadAssignment, ['a', 'b', 'c']);
  const stream = await server.stream(0);
  await stream.request(0);
  const a = assignment('a', '10.0.0.1');
  const b = assignment('b', '10.0.0.2');
  stream.respond(TypeUrl.ClusterLoadAssignment, 'e1', [a, b]);
  await eventually('e1', () => client.version(TypeUrl.ClusterLoadAssignment) === 'e1');
  const b2 = assignment('b', '10.0.0.9');
  stream.respond(TypeUrl.ClusterLoadAssignment, 'e2', [b2]);
  await eventually('e2', () => client.version(TypeUrl.ClusterLoadAssignment) === 'e2');
  const encoded = client.encodedResources(TypeUrl.ClusterLoadAssignment);
  t.deepEqual(encoded.get('a'), a, 'kept from e1');
  t.deepEqual(encoded.get('b'), b2, 'replaced by e2');
  t.is(updates.at(-1)?.encoded, encoded);

  // A refused response changes neither view; narrowing the subscription drops from both.
  stream.respond(TypeUrl.ClusterLoadAssignment, 'e3', [assignment('c', '10.0.0.3')]);
  await stream.request(3);
  t.deepEqual([...client.encodedResources(TypeUrl.ClusterLoadAssignment).keys()].sort(), ['a', 'b']);
  client.subscribe(TypeUrl.ClusterLoadAssignment, ['b']);
  t.deepEqual([...client.encodedResources(TypeUrl.ClusterLoadAssignment).keys()], ['b']);
  t.deepEqual([...client.resources(TypeUrl.ClusterLoadAssignment).keys()], ['b']);
});

test('retainDecoded false: listeners see decoded objects during the update, afterwards only the bytes are held', async (t) => {
  const server = await ScriptedServer.start(t);
  const validated: string[] = [];
  const client = newClient(t, server, {
    retainDecoded: false,
    validate: (_type, resources) => {
      // Kept resources are decoded for a validator that reads them.
      for (const [name, resource] of resources) validated.push(`${name}:${JSON.stringify(resource).includes('10.0.0.9') ? 'new' : 'old'}`);
      return undefined;
    },
  });
  const during: boolean[] = [];
  client.on('update', (update) => {
    // The update's objects and the client's are the same while listeners run: one decode serves both.
    during.push([...update.resources.keys()].every((name) => client.resources(update.typeUrl).get(name) === update.resources.get(name)));
  });
  client.subscribe(TypeUrl.ClusterLoadAssignment, ['a', 'b']);
  const stream = await server.stream(0);
  await stream.request(0);
  const a = assignment('a', '10.0.0.1');
  stream.respond(TypeUrl.ClusterLoadAssignment, 'e1', [a, assignment('b', '10.0.0.2')]);
  await eventually('e1', () => client.version(TypeUrl.ClusterLoadAssignment) === 'e1');
  stream.respond(TypeUrl.ClusterLoadAssignment, 'e2', [assignment('b', '10.0.0.9')]);
  await eventually('e2', () => client.version(TypeUrl.ClusterLoadAssignment) === 'e2');
  t.deepEqual(during, [true, true]);
  t.deepEqual(validated, ['a:old', 'b:old', 'a:old', 'b:new']);
  const held = client.resources(TypeUrl.ClusterLoadAssignment);
  t.deepEqual([...held.keys()].sort(), ['a', 'b']);
  t.not(held.get('a'), held.get('a'), 'nothing decoded stays alive: each read decodes the bytes');
  t.regex(JSON.stringify(held.get('b')), /10\.0\.0\.9/);
  t.deepEqual(client.encodedResources(TypeUrl.ClusterLoadAssignment).get('a'), a, 'retainDecoded false keeps the bytes');
  client.subscribe(TypeUrl.ClusterLoadAssignment, ['b']);
  t.deepEqual([...client.resources(TypeUrl.ClusterLoadAssignment).keys()], ['b']);
});

test('without keepEncoded no Any bytes are held', async (t) => {
  const server = await ScriptedServer.start(t);
  const client = newClient(t, server);
  const updates: AdsUpdate[] = [];
  client.on('update', (update) => updates.push(update));
  client.subscribe(TypeUrl.Listener, '*');
  const stream = await server.stream(0);
  await stream.request(0);
  stream.respond(TypeUrl.Listener, 'v1', [listener('l', 80)]);
  await eventually('v1', () => client.version(TypeUrl.Listener) === 'v1');
  t.is(client.encodedResources(TypeUrl.Listener).size, 0);
  t.is(updates[0]?.encoded, undefined);
  t.is(client.resources(TypeUrl.Listener).size, 1);
});

test('changing a subscription sends the new names with the current version and nonce', async (t) => {
  const server = await ScriptedServer.start(t);
  const client = newClient(t, server);
  client.subscribe(TypeUrl.ClusterLoadAssignment, ['a']);
  const stream = await server.stream(0);
  await stream.request(0);
  const nonce = stream.respond(TypeUrl.ClusterLoadAssignment, 'e1', [assignment('a', '10.0.0.1')]);
  await stream.request(1);
  client.subscribe(TypeUrl.ClusterLoadAssignment, ['a', 'b']);
  const update = await stream.request(2);
  t.like(update, { version_info: 'e1', response_nonce: nonce, resource_names: ['a', 'b'] });
  client.subscribe(TypeUrl.ClusterLoadAssignment, ['b', 'a']);
  client.subscribe(TypeUrl.ClusterLoadAssignment, ['b']);
  const narrowed = await stream.request(3);
  t.deepEqual(narrowed.resource_names, ['b'], 'the same set in another order sent nothing');
  t.deepEqual([...client.resources(TypeUrl.ClusterLoadAssignment).keys()], []);
});

test('after the stream fails the client reconnects and resubscribes with its last accepted versions', async (t) => {
  const server = await ScriptedServer.start(t);
  const client = newClient(t, server);
  const disconnects: grpc.StatusObject[] = [];
  client.on('disconnected', (status) => disconnects.push(status));
  client.subscribe(TypeUrl.Listener, '*');
  client.subscribe(TypeUrl.ClusterLoadAssignment, ['a', 'b']);
  const first = await server.stream(0);
  await first.request(1);
  first.respond(TypeUrl.Listener, 'l1', [listener('x', 1)]);
  first.respond(TypeUrl.ClusterLoadAssignment, 'e1', [assignment('a', '10.0.0.1')]);
  await first.request(3);
  first.fail(grpc.status.UNAVAILABLE, 'server going away');

  const second = await server.stream(1);
  const requests = [await second.request(0), await second.request(1)];
  t.is(requests[0]!.node?.id, 'agent-1', 'the new stream starts with the node');
  const byType = new Map(requests.map((r) => [r.type_url, r]));
  // proto3 leaves empty strings off the wire, so an empty nonce decodes as absent.
  t.like(byType.get(TypeUrl.Listener), { version_info: 'l1', response_nonce: undefined });
  t.deepEqual(byType.get(TypeUrl.Listener)!.resource_names ?? [], []);
  t.like(byType.get(TypeUrl.ClusterLoadAssignment), { version_info: 'e1', response_nonce: undefined, resource_names: ['a', 'b'] });
  t.is(disconnects[0]?.code, grpc.status.UNAVAILABLE);
  t.is(client.stats().reconnects, 1);

  // Data on the new stream is applied as usual.
  second.respond(TypeUrl.Listener, 'l2', [listener('z', 2)]);
  await eventually('l2', () => client.version(TypeUrl.Listener) === 'l2');
  t.deepEqual([...client.resources(TypeUrl.Listener).keys()], ['z']);
});

test('failed streams are retried with exponentially growing delays, with and without jitter', async (t) => {
  const server = await ScriptedServer.start(t);
  server.refuse = grpc.status.UNAVAILABLE;
  const exact = newClient(t, server, { backoff: { initialMs: 20, multiplier: 2, maxMs: 100, jitter: 0 } });
  const delays: number[] = [];
  exact.on('disconnected', (_status, retryMs) => delays.push(retryMs));
  exact.subscribe(TypeUrl.Listener, '*');
  await server.stream(5);
  t.deepEqual(delays.slice(0, 5), [20, 40, 80, 100, 100], 'doubling up to the cap');
  // The delays are really waited (timers never fire early by more than rounding).
  const gaps = server.streams.slice(1, 5).map((stream, i) => stream.openedAt - server.streams[i]!.openedAt);
  for (const [i, expected] of [20, 40, 80, 100].entries()) t.true(gaps[i]! >= expected - 2, `gap ${i}: ${gaps[i]} ms, expected at least ${expected}`);
  exact.close();

  const jittered = newClient(t, server, { backoff: { initialMs: 1000, multiplier: 2, maxMs: 1000, jitter: 0.5 } });
  const first = await new Promise<number>((resolve) => {
    jittered.on('disconnected', (_status, retryMs) => resolve(retryMs));
    jittered.subscribe(TypeUrl.Listener, '*');
  });
  t.true(first >= 500 && first <= 1500, `jittered delay ${first}`);
});

test('decode: false ACKs every response and reports only the count', async (t) => {
  const server = await ScriptedServer.start(t);
  const validated: string[] = [];
  const client = newClient(t, server, { decode: false, validate: (type) => { validated.push(type); return 'never asked'; } });
  const updates: AdsUpdate[] = [];
  client.on('update', (update) => updates.push(update));
  client.subscribe(TypeUrl.Cluster, '*');
  const stream = await server.stream(0);
  await stream.request(0);
  // Not even a valid Cluster: with decoding off the bytes are never looked at.
  const nonce = stream.respond(TypeUrl.Cluster, 'c1', [{ type_url: TypeUrl.Cluster, value: Buffer.from([0xff, 0xff]) }, { type_url: TypeUrl.Cluster, value: Buffer.alloc(0) }]);
  const ack = await stream.request(1);
  t.like(ack, { version_info: 'c1', response_nonce: nonce });
  t.is(ack.error_detail, undefined);
  t.is(updates[0]!.count, 2);
  t.is(updates[0]!.resources.size, 0);
  t.deepEqual(validated, []);
});

test('close() cancels the stream and the client stays closed', async (t) => {
  const server = await ScriptedServer.start(t);
  const client = newClient(t, server);
  client.subscribe(TypeUrl.Listener, '*');
  const stream = await server.stream(0);
  stream.respond(TypeUrl.Listener, 'v1', []);
  await eventually('connected', () => client.isConnected());
  client.close();
  await eventually('cancellation seen by the server', () => stream.cancelled);
  t.false(client.isConnected());
  t.throws(() => client.subscribe(TypeUrl.Cluster, '*'), { message: /closed/ });
  t.is(server.streams.length, 1);
});

test('a server that goes silent without closing the connection is noticed by keepalive pings, and the client reconnects', async (t) => {
  const server = await ScriptedServer.start(t);
  // A relay that can freeze: it stops moving bytes both ways without sending FIN or RST, like a
  // host that vanished or a NAT that dropped the flow. New connections through it work again.
  const relay = net.createServer((downstream) => {
    const upstream = net.connect(server.port, '127.0.0.1');
    downstream.on('error', () => undefined);
    upstream.on('error', () => undefined);
    downstream.pipe(upstream).pipe(downstream);
    downstream.once('close', () => upstream.destroy());
    upstream.once('close', () => downstream.destroy());
    relayed.push({ downstream, upstream });
  });
  const relayed: { downstream: net.Socket; upstream: net.Socket }[] = [];
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const { downstream, upstream } of relayed) {
      downstream.destroy();
      upstream.destroy();
    }
    relay.close();
  });
  const client = new AdsClient({
    target: `127.0.0.1:${(relay.address() as net.AddressInfo).port}`,
    node: { id: 'agent-1', cluster: 'web' },
    backoff: { initialMs: 20, maxMs: 200 },
    channelOptions: { 'grpc.keepalive_time_ms': 300, 'grpc.keepalive_timeout_ms': 300 },
  });
  t.teardown(() => client.close());
  client.subscribe(TypeUrl.Listener, '*');
  const first = await server.stream(0);
  await first.request(0);
  const { downstream, upstream } = relayed[0]!;
  downstream.unpipe(upstream);
  upstream.unpipe(downstream);
  downstream.pause();
  upstream.pause();

  const second = await server.stream(1);
  t.is((await second.request(0)).node?.id, 'agent-1', 'the client opened a new stream on a new connection');
  t.is(client.stats().reconnects, 1);
});
