// The ADS server against an xDS client nobody here wrote: an unmodified @grpc/grpc-js-xds channel
// (its own process) resolves xds:///greeter and xds:///other through LDS, RDS, CDS and EDS, ACKs,
// and follows a push whose EDS response carries only the assignment that changed.
import * as crypto from 'node:crypto';
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { silentLogger } from '../../lib/log';
import { packAny, typed, TypeUrl, type ResourceTypeUrl } from '../../lib/xds/protos';
import { GreeterClientProcess } from '../../test/conformance/greeter-client-process';
import { startGreeter } from '../../test/fixtures/greeter';
import type { MeshModel } from '../model/mesh-model';
import { AdsServer } from './ads-server';
import type { EncodedResource, ResourceGenerator, Subscription, XdsNode } from './generator';
import type { XdsObserver } from './observer';
import type { XdsShortType } from './sync-status';

/** Backend ports per target (greeter, other) under each model. */
const backendPorts = new WeakMap<MeshModel, Record<string, number[]>>();
let modelVersion = 0;

function model(ports: Record<string, number[]>): MeshModel {
  const mesh: MeshModel = { version: ++modelVersion, resources: new Map(), services: new Map(), issues: [], rootNamespace: 'istio-system', trustDomain: 'cluster.local' };
  backendPorts.set(mesh, ports);
  return mesh;
}

function encoded(typeUrl: ResourceTypeUrl, name: string, message: object): EncodedResource {
  const any = packAny(typeUrl, message);
  return { name, any, hash: crypto.createHash('sha256').update(any.value).digest('hex') };
}

const ADS_SOURCE = { ads: {}, resource_api_version: 2 };

/** The four resources a proxyless gRPC client needs for `xds:///<target>`, per target, backends from the model. */
class GreeterGenerator implements ResourceGenerator {
  generate(mesh: MeshModel, _node: XdsNode, typeUrl: ResourceTypeUrl, subscription: Subscription): Map<string, EncodedResource> {
    const out = new Map<string, EncodedResource>();
    const add = (name: string, message: () => object) => {
      if (subscription.wildcard || subscription.names.has(name)) out.set(name, encoded(typeUrl, name, message()));
    };
    for (const [target, ports] of Object.entries(backendPorts.get(mesh)!)) {
      const cluster = `${target}-cluster`;
      switch (typeUrl) {
        case TypeUrl.Listener:
          add(target, () => ({
            name: target,
            api_listener: {
              api_listener: typed('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
                rds: { route_config_name: `${target}-route`, config_source: ADS_SOURCE },
                http_filters: [{ name: 'router', typed_config: typed('envoy.extensions.filters.http.router.v3.Router', {}) }],
              }),
            },
          }));
          break;
        case TypeUrl.RouteConfiguration:
          add(`${target}-route`, () => ({
            name: `${target}-route`,
            virtual_hosts: [{ name: target, domains: ['*'], routes: [{ match: { prefix: '' }, route: { cluster } }] }],
          }));
          break;
        case TypeUrl.Cluster:
          add(cluster, () => ({ name: cluster, type: 3, eds_cluster_config: { eds_config: ADS_SOURCE } }));
          break;
        case TypeUrl.ClusterLoadAssignment:
          add(cluster, () => ({
            cluster_name: cluster,
            endpoints: [{
              locality: { region: 'test' },
              load_balancing_weight: { value: 1 },
              lb_endpoints: ports.map((port) => ({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } })),
            }],
          }));
          break;
      }
    }
    return out;
  }
}

/** Counts the resources of every EDS response the server writes. */
class EdsResponses implements XdsObserver {
  readonly counts: number[] = [];
  streamOpened() {}
  streamClosed() {}
  pushed(_node: string, type: XdsShortType, resources: number) {
    if (type === 'EDS') this.counts.push(resources);
  }
  acked() {}
  nacked() {}
  rejectedRequest() {}
}

test('a grpc-js-xds client resolves through the ADS server, ACKs every type and follows a partial endpoint push', async (t) => {
  const v1 = await startGreeter('v1');
  const v2 = await startGreeter('v2');
  const observer = new EdsResponses();
  const ads = new AdsServer({ generator: new GreeterGenerator(), logger: silentLogger(), observer, debounceMs: 10 });
  const server = new grpc.Server();
  ads.bind(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  const client = new GreeterClientProcess(`127.0.0.1:${port}`, 'proxyless-1');
  t.teardown(async () => {
    await client.stop();
    ads.close();
    server.forceShutdown();
    await v1.stop();
    await v2.stop();
  });

  ads.setModel(model({ greeter: [v1.port], other: [v2.port] }));
  const first = await client.run({ target: 'xds:///greeter', count: 20, deadlineMs: 20_000 });
  t.deepEqual(first.backends, { v1: 20 });
  const other = await client.run({ target: 'xds:///other', count: 20, deadlineMs: 20_000 });
  t.deepEqual(other.backends, { v2: 20 });
  const deadline = Date.now() + 20_000;
  const synced = () => Object.values(ads.syncStatus()[0]!.types).every((type) => type.state === 'SYNCED');
  while (!synced() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  const [status] = ads.syncStatus();
  t.is(status!.node, 'proxyless-1');
  for (const type of ['LDS', 'RDS', 'CDS', 'EDS'] as const) t.is(status!.types[type]?.state, 'SYNCED', `${type} acknowledged`);
  t.is(status!.types.EDS!.resources, 2, 'both assignments are held');
  const edsResponsesBefore = observer.counts.length;

  // Only greeter's endpoints change: the EDS push carries greeter-cluster alone.
  ads.setModel(model({ greeter: [v1.port, v2.port], other: [v2.port] }));
  // The push reaches the client asynchronously; call until v2 answers, within a deadline.
  let seen: Record<string, number> = {};
  while (!seen.v2 && Date.now() < deadline) seen = (await client.run({ target: 'xds:///greeter', count: 10 })).backends;
  t.true((seen.v2 ?? 0) > 0, `v2 served calls after the push: ${JSON.stringify(seen)}`);
  t.deepEqual(observer.counts.slice(edsResponsesBefore), [1], 'one EDS response with one assignment');
  // The ACK of the push may still be on its way when the calls already use the new endpoints.
  const pushed = ads.syncStatus()[0]!.types.EDS!;
  t.not(pushed.sent, status!.types.EDS!.sent);
  while (ads.syncStatus()[0]!.types.EDS!.state !== 'SYNCED' && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
  t.is(ads.syncStatus()[0]!.types.EDS!.acked, pushed.sent);
  // The assignment left out of the push is still in force at the client.
  const after = await client.run({ target: 'xds:///other', count: 20, deadlineMs: 20_000 });
  t.deepEqual(after.backends, { v2: 20 });
  t.deepEqual(after.errors, {});
});
