// Attribution of outbound connections to this host's workloads: by uid (one or several per
// workload), the only workload of a host without uids, the node for anything else (never another
// workload), failed lookups, per-workload counts, agent.yaml checks, and the real lookup on loopback.
import test from 'ava';
import net from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { parseAgentConfig } from '../config/agent-config';
import { silentLogger } from '../../lib/log';
import { connectionUid } from './connection-uid';
import { WorkloadResolver, type WorkloadResolverOptions } from './workload-resolver';

const ALPHA = 'spiffe://cluster.local/ns/shop/sa/alpha';
const BETA = 'spiffe://cluster.local/ns/shop/sa/beta';
const NODE = 'spiffe://cluster.local/node/host-a';
const DESTINATION = { address: '10.0.0.9', port: 7000 };

function capturingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

function config(workloads: unknown[]): WorkloadResolverOptions['config'] {
  return parseAgentConfig({ server: 'cp:15012', node: 'host-a', namespace: 'shop', workloads }, 'agent.yaml');
}

/** A socket whose sender is `uid`: the resolver only hands it to the lookup. */
function from(uid: number | undefined): net.Socket {
  return { uid } as unknown as net.Socket;
}
const byFakeUid = (socket: net.Socket): number | undefined => (socket as unknown as { uid: number | undefined }).uid;

const twoWorkloads = config([
  { name: 'alpha', serviceAccount: 'alpha', uid: 2001 },
  { name: 'beta', serviceAccount: 'beta', uid: [2002, 2003] },
]);

test('each uid is its own workload, with that workload identity; several uids may be one workload', (t) => {
  const resolver = new WorkloadResolver({ config: twoWorkloads, logger: silentLogger(), uidOf: byFakeUid });
  t.like(resolver.resolve(from(2001), DESTINATION), { name: 'alpha', identity: ALPHA, attribution: 'uid' });
  t.like(resolver.resolve(from(2002), DESTINATION), { name: 'beta', identity: BETA, attribution: 'uid' });
  t.like(resolver.resolve(from(2003), DESTINATION), { name: 'beta', identity: BETA, attribution: 'uid' });
});

test('a uid of no workload, or a socket already gone, presents the node identity and is labelled unknown', (t) => {
  const resolver = new WorkloadResolver({ config: twoWorkloads, logger: silentLogger(), uidOf: byFakeUid });
  t.like(resolver.resolve(from(0), DESTINATION), { name: 'unknown', identity: NODE, attribution: 'unattributed' });
  t.like(resolver.resolve(from(undefined), DESTINATION), { name: 'unknown', identity: NODE, attribution: 'unattributed' });
});

test('a host whose only workload has no uid sends everything as that workload, without looking uids up', (t) => {
  let lookups = 0;
  const resolver = new WorkloadResolver({
    config: config([{ name: 'alpha', serviceAccount: 'alpha' }]),
    logger: silentLogger(),
    uidOf: () => {
      lookups++;
      return 0;
    },
  });
  t.like(resolver.resolve(from(0), DESTINATION), { name: 'alpha', identity: ALPHA, attribution: 'only-workload' });
  t.is(lookups, 0);
});

test('a single workload with a uid does not lend its identity to other uids', (t) => {
  const resolver = new WorkloadResolver({ config: config([{ name: 'alpha', serviceAccount: 'alpha', uid: 2001 }]), logger: silentLogger(), uidOf: byFakeUid });
  t.like(resolver.resolve(from(2001), DESTINATION), { name: 'alpha', identity: ALPHA });
  t.like(resolver.resolve(from(0), DESTINATION), { name: 'unknown', identity: NODE });
});

test('several workloads without uids: every connection is the node, none is guessed', (t) => {
  const resolver = new WorkloadResolver({
    config: config([{ name: 'alpha', serviceAccount: 'alpha' }, { name: 'beta', serviceAccount: 'beta' }]),
    logger: silentLogger(),
    uidOf: () => 0,
  });
  t.like(resolver.resolve(from(0), DESTINATION), { name: 'unknown', identity: NODE });
});

test('a failing lookup attributes to no workload, warns once and is counted', (t) => {
  const { logger, lines } = capturingLogger();
  const resolver = new WorkloadResolver({
    config: twoWorkloads,
    logger,
    uidOf: () => {
      throw Object.assign(new Error('socketUid: inet_diag sendto failed: EPERM'), { code: 'EPERM' });
    },
  });
  for (let i = 0; i < 3; i++) t.like(resolver.resolve(from(2001), DESTINATION), { name: 'unknown', identity: NODE });
  t.is(lines.filter((line) => line.level === 40).length, 1);
  t.regex(String(lines[0]?.err), /EPERM/);
  t.like(resolver.stats(), { lookupFailures: 3, unknown: 3, alpha: 0 });
});

test('connections are counted per source workload', (t) => {
  const resolver = new WorkloadResolver({ config: twoWorkloads, logger: silentLogger(), uidOf: byFakeUid });
  for (const uid of [2001, 2001, 2002, 2003, 9]) resolver.resolve(from(uid), DESTINATION);
  t.deepEqual(resolver.stats(), { lookupFailures: 0, unknown: 1, alpha: 2, beta: 2 });
});

test('agent.yaml: a uid claimed by two workloads is an error naming both', (t) => {
  const error = t.throws(() => config([
    { name: 'alpha', uid: 2001 },
    { name: 'beta', uid: [2002, 2001] },
  ]));
  t.regex(error.message, /agent\.yaml.*workloads\[1\]\.uid.*uid 2001 is already workload "alpha"'s/s);
  t.throws(() => config([{ name: 'alpha', uid: [] }]), { message: /workloads\[0\]\.uid/ });
  t.throws(() => config([{ name: 'alpha', uid: -1 }]), { message: /workloads\[0\]\.uid/ });
});

test('the real lookup finds the uid of the process that opened an accepted connection', async (t) => {
  const server = net.createServer();
  t.teardown(() => server.close());
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect(port, '127.0.0.1');
  t.teardown(() => client.destroy());
  const socket = await accepted;
  t.teardown(() => socket.destroy());
  // Without redirection the client's destination is the listener itself.
  t.is(connectionUid(socket, { address: '127.0.0.1', port }), process.getuid!());
  t.is(connectionUid(socket, { address: '127.0.0.1', port: port === 1 ? 2 : 1 }), undefined);
});
