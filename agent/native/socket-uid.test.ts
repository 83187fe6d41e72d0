// Tests of socketUid (inet_diag exact lookup) on loopback: the owner of this process's sockets and
// of a socket opened by a process of another uid, not-found as undefined, both families, bad input.
import test from 'ava';
import { spawn } from 'node:child_process';
import net from 'node:net';
import * as os from 'node:os';
import { socketUid } from '@mesh/original-dst';

async function listen(t: { teardown(fn: () => void): void }, host: string): Promise<net.Server> {
  const server = net.createServer((socket) => socket.on('error', () => undefined));
  t.teardown(() => server.close());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  return server;
}

async function connect(t: { teardown(fn: () => void): void }, host: string, port: number): Promise<net.Socket> {
  const socket = net.connect({ host, port });
  t.teardown(() => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

const hasIpv6Loopback = Object.values(os.networkInterfaces()).some((addresses) => addresses?.some((a) => a.address === '::1'));

test('a socket of this process is owned by this process uid, looked up from its own view', async (t) => {
  const server = await listen(t, '127.0.0.1');
  const client = await connect(t, '127.0.0.1', (server.address() as net.AddressInfo).port);
  t.is(socketUid(4, client.localAddress!, client.localPort!, client.remoteAddress!, client.remotePort!), process.getuid!());
});

(hasIpv6Loopback ? test : test.skip)('IPv6 sockets are found in the IPv6 table', async (t) => {
  const server = await listen(t, '::1');
  const client = await connect(t, '::1', (server.address() as net.AddressInfo).port);
  t.is(socketUid(6, client.localAddress!, client.localPort!, client.remoteAddress!, client.remotePort!), process.getuid!());
});

test('a 4-tuple no socket has is undefined, not an error', async (t) => {
  const server = await listen(t, '127.0.0.1');
  const client = await connect(t, '127.0.0.1', (server.address() as net.AddressInfo).port);
  // The same socket seen with a wrong remote port, and an address pair nobody uses.
  t.is(socketUid(4, client.localAddress!, client.localPort!, client.remoteAddress!, client.remotePort! === 1 ? 2 : 1), undefined);
  t.is(socketUid(4, '127.0.0.9', 9, '127.0.0.10', 10), undefined);
});

test('a closed connection is no longer found (the lookup is of live sockets, not a cache)', async (t) => {
  const server = await listen(t, '127.0.0.1');
  const client = await connect(t, '127.0.0.1', (server.address() as net.AddressInfo).port);
  const tuple = [client.localAddress!, client.localPort!, client.remoteAddress!, client.remotePort!] as const;
  // RST instead of FIN: the socket leaves at once rather than lingering in TIME_WAIT (uid 0 there).
  await new Promise<void>((resolve) => {
    client.once('close', () => resolve());
    client.resetAndDestroy();
  });
  t.is(socketUid(4, ...tuple), undefined);
});

(process.getuid?.() === 0 ? test : test.skip)('a socket opened by a process of another uid reports that uid', async (t) => {
  const server = await listen(t, '127.0.0.1');
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const otherUid = 65534;
  // The child connects, then waits for its stdin to close, so the socket is alive while we look.
  const child = spawn('setpriv', [`--reuid=${otherUid}`, `--regid=${otherUid}`, '--clear-groups', process.execPath, '-e', `
    require('node:net').connect(Number(process.argv[1]), '127.0.0.1');
    process.stdin.on('end', () => process.exit(0)); process.stdin.resume();
  `, String((server.address() as net.AddressInfo).port)], { stdio: ['pipe', 'ignore', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const socket = await accepted;
  // Seen from the agent's side, as the outbound listener does: its peer is the client's local end.
  t.is(socketUid(4, socket.remoteAddress!, socket.remotePort!, socket.localAddress!, socket.localPort!), otherUid);
  t.not(otherUid, process.getuid!());
  child.stdin!.end();
});

test('bad arguments are TypeErrors naming the argument', (t) => {
  t.throws(() => socketUid(5 as 4, '127.0.0.1', 1, '127.0.0.1', 2), { instanceOf: TypeError, message: /family must be 4 or 6/ });
  t.throws(() => socketUid(4, '::1', 1, '127.0.0.1', 2), { instanceOf: TypeError, message: /localAddress must be an IPv4 address/ });
  t.throws(() => socketUid(6, '::1', 1, '10.0.0.1', 2), { instanceOf: TypeError, message: /remoteAddress must be an IPv6 address/ });
  t.throws(() => socketUid(4, '127.0.0.1', 70000, '127.0.0.1', 2), { instanceOf: TypeError, message: /localPort must be an integer from 0 to 65535/ });
  t.throws(() => socketUid(4, '127.0.0.1', 1, '127.0.0.1', 1.5), { instanceOf: TypeError, message: /remotePort/ });
  t.throws(() => (socketUid as unknown as (...args: unknown[]) => unknown)(4, '127.0.0.1'), { instanceOf: TypeError, message: /5 arguments expected/ });
});
