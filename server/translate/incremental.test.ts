// Translation across model versions: the model is rebuilt from scratch on every change (new
// Service objects, unchanged config resources kept), and only what a change reaches is re-encoded.
import test from 'ava';
import { MeshTranslator } from './mesh-translator';
import { TypeUrl, endpoint, model, named, node, port, resource, service, WILDCARD } from './testing';
import type { ConfigResource } from '../config/resource';
import type { Service } from '../registry/service';
import type { EncodedResource } from '../xds/generator';

const NODES = 4;
const SERVICES = 6;

/** Fresh Service objects every call, as servicesFromConfig returns them; `moved` changes one address. */
function services(moved?: { service: number; address: string }): Service[] {
  const out: Service[] = [];
  for (let i = 0; i < SERVICES; i++) {
    out.push(service(`svc-${i}`, {
      ports: [port(8080, 'HTTP', 'http')],
      endpoints: [
        endpoint(moved?.service === i ? moved.address : `10.0.${i}.1`, { node: `node-${i % NODES}`, labels: { version: 'v1' } }),
        endpoint(`10.0.${i}.2`, { node: `node-${(i + 1) % NODES}`, labels: { version: 'v2' } }),
      ],
    }));
  }
  return out;
}

function split(host: string, v1: number): ConfigResource {
  return resource('VirtualService', host, {
    hosts: [host],
    http: [{ route: [{ destination: { host, subset: 'v1' }, weight: v1 }, { destination: { host, subset: 'v2' }, weight: 100 - v1 }] }],
  });
}

function rule(host: string): ConfigResource {
  return resource('DestinationRule', host, { host, subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] });
}

type Snapshot = Map<string, Map<string, Map<string, EncodedResource>>>;

/** Everything an agent on each node would be served: LDS/CDS wildcard, RDS `8080`, every EDS name. */
function serveAll(translator: MeshTranslator, m: ReturnType<typeof model>): Snapshot {
  const out: Snapshot = new Map();
  for (let i = 0; i < NODES; i++) {
    const n = node(`node-${i}`);
    const clusters = translator.generate(m, n, TypeUrl.Cluster, WILDCARD);
    out.set(n.id, new Map([
      [TypeUrl.Listener, translator.generate(m, n, TypeUrl.Listener, WILDCARD)],
      [TypeUrl.Cluster, clusters],
      [TypeUrl.RouteConfiguration, translator.generate(m, n, TypeUrl.RouteConfiguration, named('8080'))],
      [TypeUrl.ClusterLoadAssignment, translator.generate(m, n, TypeUrl.ClusterLoadAssignment, named(...clusters.keys()))],
    ]));
  }
  return out;
}

/** `type/node/name` of every resource served in `after` that is not the very object served in `before`. */
function rebuilt(before: Snapshot, after: Snapshot): string[] {
  const out: string[] = [];
  for (const [nodeId, types] of after) {
    for (const [typeUrl, resources] of types) {
      for (const [name, r] of resources) {
        if (before.get(nodeId)?.get(typeUrl)?.get(name) !== r) out.push(`${typeUrl.split('.').pop()}/${nodeId}/${name}`);
      }
    }
  }
  return out.sort();
}

const rules = Array.from({ length: SERVICES }, (_, i) => rule(`svc-${i}`));
const splits = Array.from({ length: SERVICES }, (_, i) => split(`svc-${i}`, 90));

test('a second model that edits one VirtualService re-encodes only the route configuration it reaches', (t) => {
  const translator = new MeshTranslator();
  const first = serveAll(translator, model(services(), [...rules, ...splits]));
  const edited = [...splits];
  edited[2] = split('svc-2', 10);
  const second = serveAll(translator, model(services(), [...rules, ...edited]));
  // Every node sees every service, so each node's `8080` is the one route configuration rebuilt:
  // one new object, shared by all nodes; clusters, CLAs and listeners are the same objects.
  const changed = rebuilt(first, second);
  t.deepEqual(changed, Array.from({ length: NODES }, (_, i) => `RouteConfiguration/node-${i}/8080`));
  const routes = new Set([...second.values()].map((types) => types.get(TypeUrl.RouteConfiguration)!.get('8080')));
  t.is(routes.size, 1);
  t.not([...routes][0]!.hash, first.get('node-0')!.get(TypeUrl.RouteConfiguration)!.get('8080')!.hash);
});

test('a changed endpoint address changes exactly that load assignment, and the inbound side of its node', (t) => {
  const translator = new MeshTranslator();
  const first = serveAll(translator, model(services(), [...rules, ...splits]));
  const second = serveAll(translator, model(services({ service: 3, address: '10.9.9.9' }), [...rules, ...splits]));
  const changed = rebuilt(first, second);
  // svc-3's v1 endpoint runs on node-3: its inbound listener names the workload's address.
  const clas = Array.from({ length: NODES }, (_, i) => [`ClusterLoadAssignment/node-${i}/outbound|8080|v1|svc-3`, `ClusterLoadAssignment/node-${i}/outbound|8080||svc-3`]).flat();
  t.deepEqual(changed, [...clas, 'Listener/node-3/virtualInbound'].sort());
});

test('a node keeps its encoded inbound listener when its workloads did not change, whatever else did', (t) => {
  const translator = new MeshTranslator();
  const n = node('node-1');
  const before = translator.generate(model(services(), [...rules, ...splits]), n, TypeUrl.Listener, WILDCARD);
  const after = translator.generate(model(services({ service: 0, address: '10.9.9.9' }), [...rules, split('svc-5', 0)]), n, TypeUrl.Listener, WILDCARD);
  t.truthy(before.get('virtualInbound'));
  t.is(after.get('virtualInbound'), before.get('virtualInbound'));
});

test('what a model no longer uses is dropped after one more model, and rebuilt equal when it returns', (t) => {
  const translator = new MeshTranslator();
  const n = node('node-0');
  const subscription = named('8080');
  const original = translator.generate(model(services(), [...rules, ...splits]), n, TypeUrl.RouteConfiguration, subscription).get('8080')!;
  const edited = [...splits];
  edited[0] = split('svc-0', 50);
  translator.generate(model(services(), [...rules, ...edited]), n, TypeUrl.RouteConfiguration, subscription);
  translator.generate(model(services(), [...rules, ...edited]), n, TypeUrl.RouteConfiguration, subscription);
  const back = translator.generate(model(services(), [...rules, ...splits]), n, TypeUrl.RouteConfiguration, subscription).get('8080')!;
  t.not(back, original);
  t.is(back.hash, original.hash);
});
