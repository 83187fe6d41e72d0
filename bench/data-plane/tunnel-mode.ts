// Which agent-to-agent tunnel the benchmark measured, found out on the wire rather than assumed:
// a TLS ClientHello to the peer agent's :15008 is either answered by TLS (mTLS tunnel) or by a
// peer speaking plaintext HTTP/2 (h2c), whose reply is not a TLS record.
import type { TestNetwork } from '../../test/netns/test-network';

/** Runs inside the client host's namespace; prints `tls <protocol> <alpn>` or `plain <error code>`. */
const PROBE = `
const tls = require('node:tls');
const socket = tls.connect({ host: process.argv[1], port: 15008, rejectUnauthorized: false, ALPNProtocols: ['h2'], servername: undefined });
const done = (line) => { process.stdout.write(line + '\\n'); socket.destroy(); process.exit(0); };
socket.setTimeout(5000, () => done('unknown timeout'));
socket.on('secureConnect', () => done('tls ' + socket.getProtocol() + ' ' + (socket.alpnProtocol || 'none')));
socket.on('error', (error) => {
  const code = String(error.code || error.message);
  // An alert from the server (e.g. it wants a client certificate) is still a TLS server.
  if (/ALERT|HANDSHAKE_FAILURE|CERTIFICATE/i.test(code)) done('tls alert ' + code);
  else done('plain ' + code);
});
`;

export async function detectTunnelMode<H extends string>(network: TestNetwork<H>, from: H, peerIp: string, peerName: string): Promise<string> {
  const result = await network.exec(from, [process.execPath, '-e', PROBE, peerIp], { allowFailure: true, timeoutMs: 20_000 });
  const answer = result.stdout.trim() || `unknown ${result.stderr.trim()}`;
  if (answer.startsWith('tls')) return `tunnel: mTLS (TLS ClientHello to ${peerName}:15008 answered by TLS: ${answer.slice(4)})`;
  if (answer.startsWith('plain')) return `tunnel: h2c plaintext (TLS ClientHello to ${peerName}:15008 not answered by TLS: ${answer.slice(6)})`;
  return `tunnel: undetermined (${answer})`;
}
