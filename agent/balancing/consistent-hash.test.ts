// Ring hash and maglev over the translator's load assignments: stable key → endpoint mapping,
// minimal remapping when an endpoint leaves, weights, ring sizing and priorities chosen by hash.
import test from 'ava';
import { endpoint, port, service } from '../../server/translate/testing';
import { EndpointSet } from './endpoint-set';
import { hashPosition } from './hash64';
import type { LoadBalancer } from './load-balancer';
import { MaglevLoadBalancer } from './maglev';
import { RingHashLoadBalancer } from './ring-hash';
import { seededRandom, translated } from './testing';

const HOST = 'reviews.default.svc.cluster.local';
const CLUSTER = `outbound|9080||${HOST}`;
const RING = { host: HOST, trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } };

function setOf(endpoints: ReturnType<typeof endpoint>[]): EndpointSet {
  const { cla } = translated([service(HOST, { ports: [port(9080, 'HTTP', 'http')], endpoints })], RING, CLUSTER, 'host-x');
  return EndpointSet.fromLoadAssignment(cla);
}

const ten = Array.from({ length: 10 }, (_, i) => endpoint(`10.0.0.${i + 1}`));
const KEYS = Array.from({ length: 10_000 }, (_, i) => hashPosition(`user-${i}`));
const noRandom = () => {
  throw new Error('a hash pick must not draw random numbers');
};

function mapping(lb: LoadBalancer): string[] {
  return KEYS.map((hash) => lb.pick({ hash, random: noRandom })!.address);
}

for (const [name, make] of [
  ['ring hash', (set: EndpointSet) => new RingHashLoadBalancer(set)],
  ['maglev', (set: EndpointSet) => new MaglevLoadBalancer(set)],
] as const) {
  test(`${name}: the same key maps to the same endpoint, across picks and across rebuilds`, (t) => {
    const first = mapping(make(setOf(ten)));
    t.deepEqual(mapping(make(setOf(ten))), first);
    const lb = make(setOf(ten));
    t.deepEqual(mapping(lb), mapping(lb));
    // Keys spread over every endpoint, each near its tenth.
    for (const e of ten) {
      const n = first.filter((a) => a === e.address).length;
      t.true(n > 600 && n < 1400, `${e.address}: ${n}`);
    }
  });

  test(`${name}: removing one endpoint moves its own keys and at most as many again`, (t) => {
    const before = mapping(make(setOf(ten)));
    const after = mapping(make(setOf(ten.filter((e) => e.address !== '10.0.0.4'))));
    let moved = 0;
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] === '10.0.0.4') t.not(after[i], '10.0.0.4');
      else if (before[i] !== after[i]) moved++;
    }
    // As in Envoy, the survivors gain entries when the ring (or table) is re-divided among fewer
    // endpoints, so some of their keys move too, but no more than the removed endpoint's share;
    // a modulo mapping would move about 90% of them.
    t.true(moved <= 0.1 * KEYS.length, `${moved} keys of other endpoints moved`);
  });

  test(`${name}: weights 1:3 give about a quarter and three quarters of the keys`, (t) => {
    const lb = make(setOf([endpoint('10.0.0.1', { weight: 1 }), endpoint('10.0.0.2', { weight: 3 })]));
    const light = mapping(lb).filter((a) => a === '10.0.0.1').length / KEYS.length;
    t.true(Math.abs(light - 0.25) <= 0.03, `${light}`);
  });

  test(`${name}: unhealthy endpoints own no keys, and without a hash the pick is random`, (t) => {
    const lb = make(setOf([endpoint('10.0.0.1'), endpoint('10.0.0.2', { healthy: false }), endpoint('10.0.0.3')]));
    t.false(mapping(lb).includes('10.0.0.2'));
    const ctx = { random: seededRandom(5) };
    const seen = new Set(Array.from({ length: 200 }, () => lb.pick(ctx)!.address));
    t.deepEqual([...seen].sort(), ['10.0.0.1', '10.0.0.3']);
  });
}

test('ring size follows minimum_ring_size, scaled so the lightest endpoint gets its share, capped by the maximum', (t) => {
  const set = setOf([endpoint('10.0.0.1', { weight: 1 }), endpoint('10.0.0.2', { weight: 3 })]);
  t.is(new RingHashLoadBalancer(set).ringSize(), 1024);
  t.is(new RingHashLoadBalancer(set, { minimumRingSize: 10 }).ringSize(), 12);
  t.is(new RingHashLoadBalancer(set, { minimumRingSize: 100, maximumRingSize: 100 }).ringSize(), 100);
  t.throws(() => new RingHashLoadBalancer(set, { minimumRingSize: 0 }), { message: /minimum_ring_size/ });
});

test('a 64-bit bigint hash and its 53-bit position pick the same endpoint', (t) => {
  const lb = new RingHashLoadBalancer(setOf(ten));
  for (const position of KEYS.slice(0, 200)) {
    const full = (BigInt(position) << 11n) | 0x7ffn;
    t.is(lb.pick({ hash: full, random: noRandom }), lb.pick({ hash: position, random: noRandom }));
  }
});

test('priorities are chosen by hash % 100: with priority 0 half healthy, 70% of keys stay there', (t) => {
  const loc = (zone: string) => ({ region: 'eu', zone, subzone: '' });
  const client = service('client.default.svc.cluster.local', { ports: [port(8000)], endpoints: [endpoint('10.9.0.1', { node: 'client', locality: loc('a') })] });
  const svc = service(HOST, { ports: [port(9080, 'HTTP', 'http')], endpoints: [
    endpoint('10.0.0.1', { locality: loc('a') }), endpoint('10.0.0.2', { locality: loc('a'), healthy: false }), endpoint('10.0.1.1', { locality: loc('b') }),
  ] });
  const rule = { ...RING, trafficPolicy: { ...RING.trafficPolicy, outlierDetection: { consecutive5xxErrors: 5 } } };
  const { cla } = translated([client, svc], rule, CLUSTER, 'client');
  const picked = mapping(new RingHashLoadBalancer(EndpointSet.fromLoadAssignment(cla)));
  const local = picked.filter((a) => a === '10.0.0.1').length / KEYS.length;
  t.true(Math.abs(local - 0.7) <= 0.03, `${local}`);
});

test('maglev refuses a table size that is not prime', (t) => {
  t.throws(() => new MaglevLoadBalancer(setOf(ten), 65536), { message: /table_size must be a prime/ });
});
