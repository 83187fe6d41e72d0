// Unmodified TCP programs the e2e tests run inside host namespaces (`node -e SOURCE args`): an
// echo app that names itself, a one-shot client with half-close, and a paced prober for timing.
import type { MeshHosts } from './mesh-hosts';

/**
 * `node -e TCP_ECHO_APP PORT NAME`: echoes, and after the client's FIN still answers
 * `bye from NAME` before closing (proof that half-close travels the whole path, and of who
 * answered). Each accepted connection is reported as a JSON line; `listening` once bound.
 */
export const TCP_ECHO_APP = `
const net = require('node:net');
const name = process.argv[2];
const server = net.createServer({ allowHalfOpen: true }, (socket) => {
  console.log(JSON.stringify({ event: 'connection', remote: socket.remoteAddress.replace(/^::ffff:/, '') }));
  socket.on('error', () => {});
  socket.on('data', (chunk) => socket.write(chunk));
  socket.on('end', () => socket.end('bye from ' + name));
});
server.listen(Number(process.argv[1]), '0.0.0.0', () => console.log(JSON.stringify({ msg: 'listening' })));
`;

/** `node -e TCP_CLIENT HOST PORT`: writes "hello", half-closes, prints all it read once the server ends. */
export const TCP_CLIENT = `
const net = require('node:net');
const chunks = [];
const socket = net.connect({ host: process.argv[1], port: Number(process.argv[2]), allowHalfOpen: true }, () => socket.end('hello'));
socket.setTimeout(10000, () => { console.error('timeout'); process.exit(1); });
socket.on('data', (chunk) => chunks.push(chunk));
socket.on('end', () => { process.stdout.write(Buffer.concat(chunks)); process.exit(0); });
socket.on('error', (error) => { console.error(error.code || error.message); process.exit(1); });
`;

/**
 * `node -e TCP_PROBER HOST PORT PAUSE_MS MAX_ATTEMPTS MAX_MS`: the TCP_CLIENT exchange over and
 * over, one at a time, a JSON line per attempt with its wall-clock start and end and what came
 * back (or the error). Bounded in count and time; also stops when its stdin closes.
 */
export const TCP_PROBER = `
const net = require('node:net');
const [host, port, pauseMs, maxAttempts, maxMs] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const stopAt = Date.now() + maxMs;
let attempts = 0;
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
function attempt() {
  if (attempts++ >= maxAttempts || Date.now() > stopAt) process.exit(0);
  const start = Date.now();
  const chunks = [];
  let done = false;
  const report = (fields) => {
    if (done) return;
    done = true;
    console.log(JSON.stringify({ start, end: Date.now(), ...fields }));
    setTimeout(attempt, pauseMs);
  };
  const socket = net.connect({ host, port, allowHalfOpen: true }, () => socket.end('hello'));
  socket.setTimeout(5000, () => { socket.destroy(); report({ error: 'timeout' }); });
  socket.on('data', (chunk) => chunks.push(chunk));
  socket.on('end', () => report({ reply: Buffer.concat(chunks).toString() }));
  socket.on('error', (error) => report({ error: error.code || error.message }));
}
attempt();
`;

/** Runs TCP_CLIENT from `from` and returns what it read, or throws with its error output. */
export async function tcpExchange<H extends string>(mesh: MeshHosts<H>, from: H, address: string, port: number): Promise<string> {
  const { code, stdout, stderr } = await mesh.runNode(from, TCP_CLIENT, [address, String(port)]);
  if (code !== 0) throw new Error(`client on ${from} to ${address}:${port} failed (${String(code)}): ${stderr.trim()}`);
  return stdout;
}
