// Shows that mTLS slots into the tunnel by options alone: a secure HTTP/2 server factory on the
// TunnelServer and `tls` options on the TunnelPool, with the relay and pooling unchanged.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { TunnelError, TunnelPool } from './tunnel-pool';
import { TunnelServer } from './tunnel-server';
import { exchange, startEcho } from './tunnel-test-support';

function opensslAvailable(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A throwaway self-signed certificate that is its own CA, valid for 127.0.0.1. */
function selfSigned(): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'tunnel-tls-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1',
      '-subj', '/CN=tunnel-test', '-addext', 'subjectAltName=IP:127.0.0.1,URI:spiffe://mesh.local/ns/default/sa/agent',
    ], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const tlsTest = opensslAvailable() ? test : test.skip;

tlsTest('with TLS options on both ends streams echo over mTLS and a client without a certificate is refused', async (t) => {
  const { key, cert } = selfSigned();
  const echo = await startEcho(t);
  const server = new TunnelServer({
    resolveInbound: () => ({ host: '127.0.0.1', port: echo.port }),
    createServer: (options) =>
      http2.createSecureServer({ ...options, key, cert, ca: cert, requestCert: true, rejectUnauthorized: true }),
  });
  t.teardown(() => server.close(100));
  const { port } = await server.listen(0, '127.0.0.1');
  const peer = { host: '127.0.0.1', port };

  const pool = new TunnelPool({ tls: { key, cert, ca: cert }, connectTimeoutMs: 5000 });
  t.teardown(() => pool.close());
  const replies = await Promise.all(
    [1, 2, 3].map(async (i) => (await exchange(await pool.open(peer, { address: '10.0.0.7', port: 8080 }), `tls ${i}`)).toString()),
  );
  t.deepEqual(replies, ['tls 1', 'tls 2', 'tls 3']);
  t.is(pool.stats().sessionsCreated, 1);

  // No client certificate: TLS 1.3 reports the refusal after the handshake, as a socket alert.
  const anonymous = new TunnelPool({ tls: { ca: cert }, connectTimeoutMs: 5000 });
  t.teardown(() => anonymous.close());
  const err = await t.throwsAsync(anonymous.open(peer, { address: '10.0.0.7', port: 8080 }), { instanceOf: TunnelError });
  t.regex(err?.message ?? '', /certificate required/);
});
