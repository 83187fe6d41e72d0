// Tests of the @mesh/original-dst addon that need no namespace: argument checks, errno-named
// errors, and the build hint when the binary is missing. Redirected sockets are covered by the
// end-to-end tests in agent/redirect/ (the report server calls the addon on every connection).
import test from 'ava';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { originalDestination } from '@mesh/original-dst';

test('a non-integer or negative fd is a TypeError', (t) => {
  for (const bad of [-1, 1.5, Number.NaN, '3', undefined] as unknown[]) {
    t.throws(() => originalDestination(bad as number), { instanceOf: TypeError, code: 'ERR_INVALID_ARG_TYPE' });
  }
});

test('a file descriptor that is not a socket fails with ENOTSOCK, errno and syscall set', (t) => {
  const fd = fs.openSync(__filename, 'r');
  t.teardown(() => fs.closeSync(fd));
  const error = t.throws(() => originalDestination(fd)) as NodeJS.ErrnoException;
  t.is(error.code, 'ENOTSOCK');
  t.is(error.errno, -88);
  t.is(error.syscall, 'getsockname');
  t.regex(error.message, new RegExp(`^originalDestination\\(fd ${fd}\\): getsockname failed: ENOTSOCK \\(`));
});

test('a closed descriptor fails with EBADF', (t) => {
  const fd = fs.openSync(__filename, 'r');
  fs.closeSync(fd);
  t.throws(() => originalDestination(fd), { code: 'EBADF' });
});

test('a listening TCP socket has no NATed connection to report', async (t) => {
  const server = net.createServer();
  t.teardown(() => server.close());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  // Without a conntrack entry the kernel answers ENOENT; when no conntrack module is loaded at all
  // the option is unknown (ENOPROTOOPT). Either way: an error naming getsockopt, not an address.
  const error = t.throws(() => originalDestination(fd)) as NodeJS.ErrnoException;
  t.is(error.syscall, 'getsockopt');
  t.true(['ENOENT', 'ENOPROTOOPT', 'ENOTCONN'].includes(error.code ?? ''), error.message);
});

test('without a built binary, loading explains how to build it', (t) => {
  const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-original-dst-'));
  t.teardown(() => fs.rmSync(copy, { recursive: true, force: true }));
  fs.copyFileSync(path.join(__dirname, 'index.js'), path.join(copy, 'index.js'));
  const error = t.throws(() => require(path.join(copy, 'index.js'))) as NodeJS.ErrnoException;
  t.is(error.code, 'MESH_ORIGINAL_DST_NOT_BUILT');
  t.regex(error.message, /npm rebuild @mesh\/original-dst/);
  t.regex(error.message, /make and g\+\+/);
});
