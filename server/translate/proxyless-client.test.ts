// A real proxyless gRPC client (@grpc/grpc-js-xds) dialing xds:///greeter against the ADS server
// fed by the translator, over loopback: a 50/50 subset split and a per-route fault, end to end.
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { silentLogger } from '../../lib/log';
import { AdsServer } from '../xds/ads-server';
import { MeshTranslator } from './mesh-translator';
import { endpoint, model, port, resource, service } from './testing';

// Raw-bytes unary method: the test needs no protobuf for the application messages.
const identity = (b: Buffer): Buffer => b;
const greeterService: grpc.ServiceDefinition = {
  sayHello: { path: '/helloworld.Greeter/SayHello', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};

function listen(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
}

test('a grpc-js-xds client follows the VirtualService split and fault served for its target', async (t) => {
  const backends: grpc.Server[] = [];
  let backendPort = 0;
  for (const ip of ['127.0.0.1', '127.0.0.2']) {
    const backend = new grpc.Server();
    backend.addService(greeterService, { sayHello: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, Buffer.from(ip)) });
    backendPort = await listen(backend, `${ip}:${backendPort}`);
    backends.push(backend);
  }
  const greeter = service('greeter.default.svc', {
    aliases: ['greeter'],
    ports: [port(50051, 'GRPC', 'grpc', backendPort)],
    endpoints: [endpoint('127.0.0.1', { labels: { version: 'v1' } }), endpoint('127.0.0.2', { labels: { version: 'v2' } })],
  });
  const mesh = model([greeter], [
    resource('DestinationRule', 'greeter', { host: 'greeter', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }),
    resource('VirtualService', 'greeter', {
      hosts: ['greeter'],
      http: [
        { match: [{ headers: { 'x-fail': { exact: '1' } } }], fault: { abort: { grpcStatus: 'UNAVAILABLE', percentage: { value: 100 } } }, route: [{ destination: { host: 'greeter', subset: 'v1' } }] },
        { route: [{ destination: { host: 'greeter', subset: 'v1' }, weight: 50 }, { destination: { host: 'greeter', subset: 'v2' }, weight: 50 }] },
      ],
    }),
  ]);
  const xdsServer = new grpc.Server();
  const ads = new AdsServer({ generator: new MeshTranslator(), logger: silentLogger(), debounceMs: 1 });
  ads.bind(xdsServer);
  const xdsPort = await listen(xdsServer, '127.0.0.1:0');
  ads.setModel(mesh);
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
    xds_servers: [{ server_uri: `127.0.0.1:${xdsPort}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: 'grpc-client', metadata: { GENERATOR: 'grpc', NAMESPACE: 'default' }, locality: {} },
  });
  require('@grpc/grpc-js-xds').register();
  const Greeter = grpc.makeGenericClientConstructor(greeterService, 'Greeter');
  const client = new Greeter('xds:///greeter:50051', grpc.credentials.createInsecure());
  const call = (metadata = new grpc.Metadata()): Promise<Buffer> =>
    new Promise((resolve, reject) => (client as unknown as { sayHello: Function }).sayHello(Buffer.from('hi'), metadata, (e: Error | null, r: Buffer) => (e ? reject(e) : resolve(r))));
  t.teardown(() => {
    client.close();
    ads.close();
    xdsServer.forceShutdown();
    for (const b of backends) b.forceShutdown();
  });

  const counts: Record<string, number> = {};
  for (let i = 0; i < 400; i++) {
    const reply = (await call()).toString();
    counts[reply] = (counts[reply] ?? 0) + 1;
  }
  // 50% ±10% over 400 calls: far outside random error if the split were not applied.
  t.true(counts['127.0.0.1']! >= 160 && counts['127.0.0.1']! <= 240, JSON.stringify(counts));
  t.true(counts['127.0.0.2']! >= 160 && counts['127.0.0.2']! <= 240, JSON.stringify(counts));

  const failing = new grpc.Metadata();
  failing.set('x-fail', '1');
  const error = await t.throwsAsync(call(failing));
  t.is((error as grpc.ServiceError).code, grpc.status.UNAVAILABLE);
});
