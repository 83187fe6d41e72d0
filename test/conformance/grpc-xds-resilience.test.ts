// Resilience fields as unmodified @grpc/grpc-js-xds clients honour them when mesh-server serves
// them from files: retries (gRFC A44), route timeouts (A31), fault delay and abort (A33),
// http2MaxRequests (A32) and consistent hashing on a header (A42). Outlier detection is left out:
// gRPC ejects only by success rate or failure percentage (A50), which Istio's consecutive-error
// fields do not express, so a proxyless client never ejects (see proxyless.test.ts).
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { startGreeter } from '../fixtures/greeter';
import { GreeterClientProcess, type CallCommand, type CallTally } from './greeter-client-process';
import { greeterRegistryFiles } from './greeter-registry';
import { startMeshFixture, type MeshFixture } from './mesh-fixture';

// Every behaviour under test has its own route, chosen by the `x-case` header, so the whole
// configuration is served once and no test waits for a push.
const ROUTING = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: greeter
spec:
  hosts: [greeter]
  http:
    - name: no-retries
      match: [{ headers: { x-case: { exact: no-retries } } }]
      retries: { attempts: 0 }
      route: [{ destination: { host: greeter } }]
    - name: retries-on-other-codes
      match: [{ headers: { x-case: { exact: retries-on-other-codes } } }]
      retries: { attempts: 3, retryOn: "internal,resource-exhausted" }
      route: [{ destination: { host: greeter } }]
    - name: retries
      match: [{ headers: { x-case: { exact: retries } } }]
      retries: { attempts: 3, retryOn: unavailable }
      route: [{ destination: { host: greeter } }]
    - name: timeout
      match: [{ headers: { x-case: { exact: timeout } } }]
      timeout: 300ms
      route: [{ destination: { host: greeter } }]
    - name: delay
      match: [{ headers: { x-case: { exact: delay } } }]
      fault: { delay: { fixedDelay: 300ms, percentage: { value: 50 } } }
      route: [{ destination: { host: greeter } }]
    - name: abort
      match: [{ headers: { x-case: { exact: abort } } }]
      fault: { abort: { grpcStatus: RESOURCE_EXHAUSTED, percentage: { value: 25 } } }
      route: [{ destination: { host: greeter } }]
    - name: abort-http-status
      match: [{ headers: { x-case: { exact: abort-http-status } } }]
      fault: { abort: { httpStatus: 503, percentage: { value: 100 } } }
      route: [{ destination: { host: greeter } }]
    - name: abort-without-percentage
      match: [{ headers: { x-case: { exact: abort-without-percentage } } }]
      fault: { abort: { grpcStatus: INTERNAL } }
      route: [{ destination: { host: greeter } }]
    - name: limited
      match: [{ headers: { x-case: { exact: limited } } }]
      route: [{ destination: { host: greeter, subset: limited } }]
    - name: hashed
      match: [{ headers: { x-case: { exact: hashed } } }]
      route: [{ destination: { host: greeter, subset: hashed } }]
    - name: default
      route: [{ destination: { host: greeter } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: greeter
spec:
  host: greeter
  subsets:
    - name: limited
      labels: { app: greeter }
      trafficPolicy:
        connectionPool:
          http: { http2MaxRequests: 3 }
    - name: hashed
      labels: { app: greeter }
      trafficPolicy:
        loadBalancer:
          consistentHash: { httpHeaderName: x-user }
`;

/**
 * The backends do what each call's metadata asks: `x-fail-share` fails that share of calls with
 * the status named by `x-fail-status` (UNAVAILABLE by default), `x-delay-ms` holds the call that
 * long. Counts are over both backends, because retries and limits apply to the cluster as a whole.
 */
class BackendLoad {
  attempts = 0;
  inFlight = 0;
  maxInFlight = 0;

  reset(): void {
    this.attempts = 0;
    this.maxInFlight = this.inFlight;
  }

  readonly behaviour = async (metadata: grpc.Metadata): Promise<void> => {
    this.attempts++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const delayMs = Number(metadata.get('x-delay-ms')[0] ?? 0);
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      const failShare = Number(metadata.get('x-fail-share')[0] ?? 0);
      const failStatus = String(metadata.get('x-fail-status')[0] ?? 'UNAVAILABLE') as keyof typeof grpc.status;
      if (Math.random() < failShare) throw { code: grpc.status[failStatus], details: 'failing on purpose' };
    } finally {
      this.inFlight--;
    }
  };
}

interface Rig {
  load: BackendLoad;
  client: GreeterClientProcess;
}

const TARGET = 'xds:///greeter';

let rig: Rig | undefined;
const cleanups: Array<() => Promise<void>> = [];

test.before(async () => {
  const load = new BackendLoad();
  const backends = [await startGreeter('v1', load.behaviour), await startGreeter('v2', load.behaviour)];
  for (const backend of backends) cleanups.push(() => backend.stop());
  const mesh: MeshFixture = await startMeshFixture({ files: { 'greeter.yaml': greeterRegistryFiles(backends), 'routing.yaml': ROUTING } });
  cleanups.push(() => mesh.close());
  await mesh.waitForModel((server) => (server.currentModel()?.resources.get('VirtualService')?.length ?? 0) > 0
    && [...(server.currentModel()?.services.values() ?? [])].some((s) => s.hostname === 'greeter'));
  const client = new GreeterClientProcess(mesh.xdsTarget, 'conformance-resilience');
  cleanups.push(() => client.stop());
  // A client that rejects what it is served fails every call only at its deadline: find out once.
  const first = await client.run({ target: TARGET, count: 1, deadlineMs: 10_000 });
  if (Object.keys(first.errors).length > 0) throw new Error(`the first call through ${TARGET} failed: ${JSON.stringify(first.errors)}`);
  rig = { load, client };
});

test.after.always(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function run(xCase: string, command: Omit<CallCommand, 'target' | 'metadata'>, metadata: Record<string, string> = {}): Promise<CallTally> {
  rig!.load.reset();
  return rig!.client.run({ target: TARGET, ...command, metadata: { 'x-case': xCase, ...metadata } });
}

const succeeded = (tally: CallTally): number => Object.values(tally.backends).reduce((a, b) => a + b, 0);
const percent = (part: number, whole: number): number => Math.round((1000 * part) / whole) / 10;
const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;

test.serial('retries raise the success rate against backends failing 30% of calls with a status retryOn names; attempts 0 and other statuses are not retried', async (t) => {
  const CALLS = 300;
  const runs = [
    { xCase: 'no-retries', failStatus: 'UNAVAILABLE', retried: false },
    { xCase: 'retries-on-other-codes', failStatus: 'UNAVAILABLE', retried: false },
    { xCase: 'retries-on-other-codes', failStatus: 'INTERNAL', retried: true },
    { xCase: 'retries', failStatus: 'UNAVAILABLE', retried: true },
  ];
  for (const { xCase, failStatus, retried } of runs) {
    const tally = await run(xCase, { count: CALLS, concurrency: 8 }, { 'x-fail-share': '0.3', 'x-fail-status': failStatus });
    const attempts = rig!.load.attempts;
    const success = percent(succeeded(tally), CALLS);
    // 3 retries predict 1 - 0.3^4 = 99.2% success, none 70% (binomial σ 2.6 points over 300 calls).
    t.log(`${xCase}, backends failing 30% with ${failStatus}: ${success}% of ${CALLS} calls succeeded (configured policy predicts ${retried ? 99.2 : 70}%), ${attempts} attempts at the backends, errors ${JSON.stringify(tally.errors)}`);
    if (retried) {
      t.true(success >= 95, `${xCase}/${failStatus}: only ${success}% succeeded`);
      t.true(attempts > CALLS * 1.2 && attempts <= CALLS * 4, `${xCase}/${failStatus}: ${attempts} attempts for ${CALLS} calls`);
    } else {
      t.true(Math.abs(success - 70) <= 12, `${xCase}/${failStatus}: ${success}% succeeded, expected 70 ±12`);
      t.is(attempts, CALLS, `${xCase}/${failStatus}: every call reached a backend exactly once`);
      t.deepEqual(Object.keys(tally.errors), [failStatus]);
    }
  }
});

test.serial('a 300 ms route timeout ends a slower call with DEADLINE_EXCEEDED after about 300 ms and lets a faster one finish', async (t) => {
  const slow = await run('timeout', { count: 8, concurrency: 8, latencies: true }, { 'x-delay-ms': '2000' });
  const timedOut = slow.latenciesMs?.DEADLINE_EXCEEDED ?? [];
  t.log(`2000 ms calls under a 300 ms timeout: ${JSON.stringify(slow.errors)}, ended after ${JSON.stringify(timedOut)} ms`);
  t.deepEqual(slow.errors, { DEADLINE_EXCEEDED: 8 });
  for (const ms of timedOut) t.true(ms >= 290 && ms < 1000, `a call ended after ${ms} ms, expected about 300`);

  const fast = await run('timeout', { count: 8, concurrency: 8 }, { 'x-delay-ms': '50' });
  t.deepEqual(fast.errors, {});
  t.is(succeeded(fast), 8);
});

test.serial('a 300 ms fixed delay for 50% of calls holds about half of them at least 300 ms', async (t) => {
  const CALLS = 200;
  const tally = await run('delay', { count: CALLS, concurrency: 10, latencies: true });
  t.deepEqual(tally.errors, {});
  const latencies = Object.values(tally.latenciesMs ?? {}).flat();
  // Node timers can fire up to 1 ms early; undelayed calls on loopback take a few ms.
  const delayed = latencies.filter((ms) => ms >= 299);
  const undelayed = latencies.filter((ms) => ms < 299);
  t.log(`delay 300 ms at 50%: ${percent(delayed.length, CALLS)}% of ${CALLS} calls took ≥ 300 ms (median ${median(delayed)} ms), the others median ${median(undelayed)} ms`);
  t.true(Math.abs(percent(delayed.length, CALLS) - 50) <= 12, `${percent(delayed.length, CALLS)}% delayed, expected 50 ±12`);
  t.true(median(delayed) < 1000, `delayed calls took a median ${median(delayed)} ms, expected about 300`);
});

test.serial('an abort with grpcStatus fails about the configured 25% with that status; httpStatus 503 fails as UNAVAILABLE; one without a percentage aborts nothing', async (t) => {
  const CALLS = 400;
  const tally = await run('abort', { count: CALLS, concurrency: 8 });
  const aborted = tally.errors.RESOURCE_EXHAUSTED ?? 0;
  t.log(`abort RESOURCE_EXHAUSTED at 25%: observed ${percent(aborted, CALLS)}% over ${CALLS} calls; errors ${JSON.stringify(tally.errors)}`);
  t.deepEqual(Object.keys(tally.errors), ['RESOURCE_EXHAUSTED']);
  // Binomial σ 2.2 points over 400 calls.
  t.true(Math.abs(percent(aborted, CALLS) - 25) <= 10, `${percent(aborted, CALLS)}% aborted, expected 25 ±10`);
  t.is(rig!.load.attempts, CALLS - aborted, 'aborted calls never reach a backend');

  // gRFC A33 maps an HTTP status to the gRPC status a proxy's reply would have produced.
  const http = await run('abort-http-status', { count: 20 });
  t.deepEqual(http.errors, { UNAVAILABLE: 20 });
  t.is(rig!.load.attempts, 0);

  const unset = await run('abort-without-percentage', { count: 100, concurrency: 8 });
  t.deepEqual(unset.errors, {});
  t.is(succeeded(unset), 100);
});

test.serial('http2MaxRequests 3 keeps at most 3 calls in flight to the subset and fails the calls above it at once with UNAVAILABLE', async (t) => {
  const holdMs = '300';
  const unlimited = await run('unlimited', { count: 24, concurrency: 12 }, { 'x-delay-ms': holdMs });
  const unlimitedPeak = rig!.load.maxInFlight;
  t.log(`no limit: ${succeeded(unlimited)}/24 succeeded, peak ${unlimitedPeak} calls in flight at the backends`);
  t.deepEqual(unlimited.errors, {});
  t.true(unlimitedPeak > 3, `without a limit only ${unlimitedPeak} calls were in flight at once`);

  // grpc-js counts a call against the limit only once it has started on a connection, a promise
  // turn after its pick: calls picked in the same event-loop turn all pass. Starting the callers
  // 2 ms apart measures the limit as callers that are not perfectly synchronised meet it.
  const limited = await run('limited', { count: 36, concurrency: 12, staggerMs: 2, latencies: true }, { 'x-delay-ms': holdMs });
  const peak = rig!.load.maxInFlight;
  const rejectedMs = limited.latenciesMs?.UNAVAILABLE ?? [];
  t.log(`http2MaxRequests 3: ${succeeded(limited)}/36 succeeded, ${rejectedMs.length} UNAVAILABLE (median ${median(rejectedMs)} ms, max ${Math.max(...rejectedMs)} ms), peak ${peak} in flight`);
  t.true(peak <= 3, `${peak} calls were in flight at once`);
  t.true(succeeded(limited) >= 3, 'calls within the limit succeed');
  t.deepEqual(Object.keys(limited.errors), ['UNAVAILABLE']);
  // A call that waited for a free slot would take at least the hold time.
  t.true(Math.max(...rejectedMs) < Number(holdMs), `calls over the limit took up to ${Math.max(...rejectedMs)} ms to fail`);
});

test.serial('consistentHash on httpHeaderName sends every call of one x-user to one backend, and different users to both', async (t) => {
  const USERS = 16;
  const users = Array.from({ length: USERS }, (_, user) => `user-${user}`);
  // grpc-js-xds 1.14.1 leaves a call queued until its deadline when its pick moves a ring endpoint
  // from IDLE to READY at once, as happens when another cluster already holds a connection to it
  // (grpc/grpc-node#2807): the first call to each backend goes first, with a short deadline.
  let stuck = 0;
  for (const user of users) stuck += (await run('hashed', { count: 1, deadlineMs: 1000 }, { 'x-user': user })).errors.DEADLINE_EXCEEDED ?? 0;
  t.log(`warm-up: ${stuck} of ${USERS} first calls stuck until their deadline (at most one per backend)`);
  t.true(stuck <= 2);

  const byUser: Record<string, Record<string, number>> = {};
  for (const user of users) {
    const tally = await run('hashed', { count: 10, concurrency: 2 }, { 'x-user': user });
    t.deepEqual(tally.errors, {});
    byUser[user] = tally.backends;
  }
  const pinned = Object.values(byUser).filter((backends) => Object.keys(backends).length === 1).length;
  const used = new Set(Object.values(byUser).flatMap((backends) => Object.keys(backends)));
  t.log(`ring hash on x-user: ${pinned}/${USERS} users pinned to one backend; backends used ${[...used].join(', ')}`);
  t.is(pinned, USERS, JSON.stringify(byUser));
  // All 16 users on one backend has a chance of 2^-15 with two backends on the ring.
  t.is(used.size, 2);
});
