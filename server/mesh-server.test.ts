// MeshServer as a whole: what it serves over xDS while its sources are still starting.
import test from 'ava';
import { AdsClient, type AdsUpdate } from '../lib/xds/ads-client';
import { TypeUrl } from '../lib/xds/protos';
import { ConsulSimulator } from '../test/consul/consul-simulator';
import { startMeshFixture } from '../test/conformance/mesh-fixture';
import { eventually } from '../test/support/eventually';

test('xDS waits for Consul\'s first full view: a client connected before gets the Consul services in its first response, never an empty mesh', async (t) => {
  const consul = await ConsulSimulator.start();
  t.teardown(() => consul.close());
  consul.registerInstance({ node: 'host-1', nodeAddress: '10.0.0.1', id: 'web-1', name: 'web', address: '10.0.0.1', port: 8080 });
  // Consul down while the server starts, as after a restart of both.
  await consul.stopListening();
  const mesh = await startMeshFixture({ consul: { address: consul.address, backoff: { baseMs: 20, maxMs: 100 } } });
  t.teardown(() => mesh.close());

  const client = new AdsClient({ target: mesh.xdsTarget, node: { id: 'host-1' }, decode: true });
  t.teardown(() => client.close());
  const clusterUpdates: AdsUpdate[] = [];
  client.on('update', (update: AdsUpdate) => {
    if (update.typeUrl === TypeUrl.Cluster) clusterUpdates.push(update);
  });
  client.subscribe(TypeUrl.Cluster, '*');
  const syncz = async () => (await (await fetch(`${mesh.addresses.admin.url.replace(/\/$/, '')}/debug/syncz`)).json()) as Array<{ node: string; types: Record<string, { state: string }> }>;
  // The server has the client's request and holds it: nothing sent while Consul is not in.
  const waiting = await eventually('the request held by the server', async () => (await syncz()).find((s) => s.node === 'host-1')?.types.CDS?.state);
  t.is(waiting, 'NOT SENT');
  const ready = await fetch(`${mesh.addresses.admin.url.replace(/\/$/, '')}/ready`);
  t.is(ready.status, 503);
  t.is(clusterUpdates.length, 0);

  await consul.startListening();
  const first = await eventually('the first CDS response', () => clusterUpdates[0]);
  t.true([...first.resources.keys()].some((name) => name.includes('web.service.consul')), `first CDS: ${[...first.resources.keys()].join(', ')}`);
});
