// Conformance against code nobody here wrote: unmodified @grpc/grpc-js-xds clients resolve
// xds:///greeter through mesh-server, once with the service from files, once from Consul.
import test, { type ExecutionContext } from 'ava';
import { ConsulSimulator } from '../consul/consul-simulator';
import { startGreeter } from '../fixtures/greeter';
import { GreeterClientProcess, type CallTally } from './greeter-client-process';
import { greeterRegistryFiles } from './greeter-registry';
import { startMeshFixture, type MeshFixture } from './mesh-fixture';

const CALLS = 1000;
const TOLERANCE_POINTS = 5;

function routing(weights: { v1: number; v2: number }, extra = ''): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: greeter
spec:
  hosts: [greeter]
  http:
    - name: canary-header
      match:
        - headers:
            x-canary: { exact: "yes" }
      route:
        - destination: { host: greeter, subset: v2 }
    - name: split
${extra}      route:
        - destination: { host: greeter, subset: v1 }
          weight: ${weights.v1}
        - destination: { host: greeter, subset: v2 }
          weight: ${weights.v2}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: greeter
spec:
  host: greeter
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
`;
}

const FAULT_50 = `      fault:
        abort:
          grpcStatus: UNAVAILABLE
          percentage: { value: 50 }
`;

function share(tally: CallTally, backend: string): number {
  return (100 * (tally.backends[backend] ?? 0)) / CALLS;
}

async function conformance(t: ExecutionContext, registry: 'files' | 'consul'): Promise<void> {
  const v1 = await startGreeter('v1');
  t.teardown(() => v1.stop());
  const v2 = await startGreeter('v2');
  t.teardown(() => v2.stop());

  let consul: ConsulSimulator | undefined;
  const files: Record<string, string> = { 'routing.yaml': routing({ v1: 80, v2: 20 }) };
  if (registry === 'consul') {
    consul = await ConsulSimulator.start();
    t.teardown(() => consul!.close());
    for (const backend of [v1, v2]) {
      consul.registerInstance({
        node: `node-${backend.name}`, nodeAddress: '127.0.0.1', id: `greeter-${backend.name}`, name: 'greeter',
        address: '127.0.0.1', port: backend.port, tags: [`version=${backend.name}`], meta: { protocol: 'grpc' },
      });
    }
  } else {
    files['greeter.yaml'] = greeterRegistryFiles([v1, v2]);
  }

  const mesh: MeshFixture = await startMeshFixture({ files, consul: consul ? { address: consul.address } : undefined });
  t.teardown(() => mesh.close());
  await mesh.waitForModel((server) => [...(server.currentModel()?.services.values() ?? [])].some((s) => s.aliases.includes('greeter') || s.hostname === 'greeter'));

  const client = new GreeterClientProcess(mesh.xdsTarget, `conformance-${registry}`);
  t.teardown(() => client.stop());
  const target = 'xds:///greeter';

  const split = await client.run({ target, count: CALLS, concurrency: 8 });
  t.log(`${registry}: 80/20 split observed ${share(split, 'v1')}% / ${share(split, 'v2')}% over ${CALLS} calls, errors ${JSON.stringify(split.errors)}`);
  t.deepEqual(split.errors, {});
  t.true(Math.abs(share(split, 'v2') - 20) <= TOLERANCE_POINTS, `v2 got ${share(split, 'v2')}%, expected 20 ±${TOLERANCE_POINTS}`);

  const canary = await client.run({ target, count: 100, metadata: { 'x-canary': 'yes' } });
  t.log(`${registry}: header x-canary: yes → ${JSON.stringify(canary.backends)}`);
  t.deepEqual(canary.backends, { v2: 100 });

  // Edit the file to 0/100 and measure until calls stop reaching v1.
  const edited = Date.now();
  await mesh.writeConfig('routing.yaml', routing({ v1: 0, v2: 100 }));
  let tookMs = -1;
  while (Date.now() - edited < 2000) {
    const probe = await client.run({ target, count: 20, concurrency: 4 });
    if (!probe.backends.v1 && probe.backends.v2 === 20) {
      tookMs = Date.now() - edited;
      break;
    }
  }
  t.log(`${registry}: 0/100 edit took effect after ${tookMs} ms`);
  t.true(tookMs >= 0, 'the 0/100 edit did not take effect within 2 s');
  const after = await client.run({ target, count: 200 });
  t.deepEqual(after.backends, { v2: 200 });

  await mesh.writeConfig('routing.yaml', routing({ v1: 100, v2: 0 }, FAULT_50));
  await mesh.waitForModel((server) => JSON.stringify(server.currentModel()?.resources.get('VirtualService')?.[0]?.spec ?? {}).includes('abort'));
  // The push reaches the client asynchronously: wait until aborts appear, then measure afresh.
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline && !(await client.run({ target, count: 20 })).errors.UNAVAILABLE);
  const faulted = await client.run({ target, count: CALLS, concurrency: 8 });
  const aborted = (100 * (faulted.errors.UNAVAILABLE ?? 0)) / CALLS;
  t.log(`${registry}: 50% abort observed ${aborted}% UNAVAILABLE over ${CALLS} calls; served ${JSON.stringify(faulted.backends)}`);
  t.true(Math.abs(aborted - 50) <= TOLERANCE_POINTS, `aborted ${aborted}%, expected 50 ±${TOLERANCE_POINTS}`);
  t.is((faulted.backends.v1 ?? 0) + (faulted.errors.UNAVAILABLE ?? 0), CALLS);
}

test.serial('grpc-js-xds clients follow splits, header matches, edits and faults for a service registered by files', (t) => conformance(t, 'files'));
test.serial('grpc-js-xds clients follow splits, header matches, edits and faults for a service registered in Consul', (t) => conformance(t, 'consul'));
