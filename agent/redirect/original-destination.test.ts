// Tests of the net.Socket wrapper around the addon that need no namespace: a socket without a
// descriptor, and an addon error passed through with its code. Redirected connections (IPv4,
// IPv4-mapped, IPv6) are asserted end to end by the redirect-*.test.ts scenarios.
import test from 'ava';
import net from 'node:net';
import { originalDestination } from './original-destination';

test('a socket without a file descriptor is refused with ERR_SOCKET_NO_FD', (t) => {
  const socket = new net.Socket();
  t.throws(() => originalDestination(socket), { code: 'ERR_SOCKET_NO_FD' });
});

test('an accepted connection that was not redirected fails with the addon errno code', async (t) => {
  const server = net.createServer();
  t.teardown(() => server.close());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect(address.port, '127.0.0.1');
  t.teardown(() => client.destroy());
  const socket = await accepted;
  t.teardown(() => socket.destroy());
  const error = t.throws(() => originalDestination(socket)) as NodeJS.ErrnoException;
  // ENOENT when conntrack runs in this namespace without NAT for the connection, ENOPROTOOPT when
  // conntrack is not loaded at all: never an invented address.
  t.true(['ENOENT', 'ENOPROTOOPT'].includes(error.code ?? ''), error.message);
  t.is(error.syscall, 'getsockopt');
});
