// Unmodified HTTP, WebSocket and gRPC programs the e2e tests run inside host namespaces
// (`node -e SOURCE args`, cwd the repository so `require` finds @grpc/grpc-js): apps that sign
// their answers, and clients written only with node's own http or the stock gRPC library.
import * as path from 'node:path';

export const STREAMING_GREETER_PROTO = path.join(__dirname, 'streaming-greeter.proto');

/**
 * `node -e HTTP_APP PORT NAME`: answers every request with JSON naming itself and what it saw
 * (method, path, Host, end-user), and echoes WebSocket text frames as `NAME: TEXT` after the
 * RFC 6455 handshake (small unfragmented frames, which is all the tests send).
 */
export const HTTP_APP = `
const http = require('node:http');
const crypto = require('node:crypto');
const [port, name] = process.argv.slice(1);
const server = http.createServer((req, res) => {
  const body = JSON.stringify({ app: name, method: req.method, path: req.url, host: req.headers.host, endUser: req.headers['end-user'] || null });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: ' + accept + '\\r\\n\\r\\n');
  let buffered = head;
  const onData = (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 6) {
      const opcode = buffered[0] & 0x0f;
      const length = buffered[1] & 0x7f;
      if (buffered.length < 6 + length) return;
      const mask = buffered.subarray(2, 6);
      const payload = Buffer.from(buffered.subarray(6, 6 + length)).map((b, i) => b ^ mask[i % 4]);
      buffered = buffered.subarray(6 + length);
      if (opcode === 8) { socket.end(Buffer.from([0x88, 0])); return; }
      const reply = Buffer.from(name + ': ' + payload.toString());
      socket.write(Buffer.concat([Buffer.from([0x81, reply.length]), reply]));
    }
  };
  socket.on('data', onData);
  onData(Buffer.alloc(0));
});
server.listen(Number(port), '0.0.0.0', () => console.log(JSON.stringify({ msg: 'listening' })));
`;

/**
 * `node -e HTTP_SPLIT_CLIENT URL COUNT`: COUNT GETs over a keep-alive agent (8 connections),
 * printing how many each app answered and any failures.
 */
export const HTTP_SPLIT_CLIENT = `
const http = require('node:http');
const [url, count] = process.argv.slice(1);
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const byApp = {};
const failures = [];
let sent = 0;
let done = 0;
const deadline = setTimeout(() => { console.log(JSON.stringify({ byApp, failures, done, timedOut: true })); process.exit(1); }, 120000);
function next() {
  if (sent >= Number(count)) return;
  sent++;
  http.get(url, { agent }, (res) => {
    const chunks = [];
    res.on('data', (c) => chunks.push(c));
    res.on('end', () => {
      if (res.statusCode === 200) { const app = JSON.parse(Buffer.concat(chunks)).app; byApp[app] = (byApp[app] || 0) + 1; }
      else failures.push(res.statusCode);
      finish();
    });
  }).on('error', (e) => { failures.push(e.code || e.message); finish(); });
}
function finish() {
  done++;
  if (done === Number(count)) { clearTimeout(deadline); agent.destroy(); console.log(JSON.stringify({ byApp, failures, done })); process.exit(0); }
  next();
}
for (let i = 0; i < 8; i++) next();
`;

/**
 * `node -e WEBSOCKET_CLIENT HOST PORT PATH TEXT`: the RFC 6455 handshake with http.request and
 * Upgrade, one masked text frame, the reply frame, then a close handshake. Prints the result.
 */
export const WEBSOCKET_CLIENT = `
const http = require('node:http');
const crypto = require('node:crypto');
const [host, port, path, text] = process.argv.slice(1);
const key = crypto.randomBytes(16).toString('base64');
const expected = crypto.createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
setTimeout(() => { console.error('timeout'); process.exit(1); }, 20000);
const req = http.request({ host, port: Number(port), path, headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Key': key, 'Sec-WebSocket-Version': '13' } });
req.on('response', (res) => { console.error('no upgrade: HTTP ' + res.statusCode); process.exit(1); });
req.on('error', (e) => { console.error(e.code || e.message); process.exit(1); });
req.on('upgrade', (res, socket, head) => {
  const frame = (opcode, payload) => {
    const mask = crypto.randomBytes(4);
    return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]))]);
  };
  let buffered = head;
  const result = { status: res.statusCode, acceptOk: res.headers['sec-websocket-accept'] === expected, messages: [] };
  socket.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2 && buffered.length >= 2 + (buffered[1] & 0x7f)) {
      const opcode = buffered[0] & 0x0f;
      const length = buffered[1] & 0x7f;
      const payload = buffered.subarray(2, 2 + length).toString();
      buffered = buffered.subarray(2 + length);
      if (opcode === 1) { result.messages.push(payload); socket.write(frame(8, Buffer.alloc(0))); }
      if (opcode === 8) result.closed = true;
    }
  });
  socket.on('end', () => { console.log(JSON.stringify(result)); process.exit(0); });
  socket.on('error', (e) => { console.error(e.code || e.message); process.exit(1); });
  socket.write(frame(1, Buffer.from(text)));
});
req.end();
`;

/** `node -e GRPC_GREETER_APP PROTO PORT NAME`: the streaming greeter; trailers carry `x-backend: NAME`. */
export const GRPC_GREETER_APP = `
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const [proto, port, name] = process.argv.slice(1);
const Greeter = grpc.loadPackageDefinition(loader.loadSync(proto, { keepCase: true })).mesh.e2e.StreamingGreeter;
const trailers = () => { const m = new grpc.Metadata(); m.set('x-backend', name); return m; };
const server = new grpc.Server();
server.addService(Greeter.service, {
  SayHello: (call, callback) => callback(null, { message: 'hello ' + call.request.name, backend: name }, trailers()),
  SayHellos: (call) => {
    for (let i = 0; i < call.request.count; i++) call.write({ message: 'hello ' + call.request.name + ' #' + i, backend: name });
    call.end(trailers());
  },
  Chat: (call) => {
    call.on('data', (req) => call.write({ message: 'hi ' + req.name, backend: name }));
    call.on('end', () => call.end(trailers()));
  },
});
server.bindAsync('0.0.0.0:' + port, grpc.ServerCredentials.createInsecure(), (error) => {
  if (error) { console.error(error.message); process.exit(1); }
  console.log(JSON.stringify({ msg: 'listening' }));
});
`;

/**
 * `node -e GRPC_GREETER_CLIENT PROTO TARGET`: a unary call, a server stream of 5 and a bidi
 * stream of 3, each with its status and trailers, printed as JSON.
 */
export const GRPC_GREETER_CLIENT = `
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const [proto, target] = process.argv.slice(1);
const Greeter = grpc.loadPackageDefinition(loader.loadSync(proto, { keepCase: true })).mesh.e2e.StreamingGreeter;
const client = new Greeter(target, grpc.credentials.createInsecure());
const deadline = () => new Date(Date.now() + 20000);
const out = {};
const trailerOf = (status) => ({ code: status.code, details: status.details, backend: status.metadata.get('x-backend')[0] || null });
const unary = new Promise((resolve) => {
  const call = client.SayHello({ name: 'unary' }, { deadline: deadline() }, (error, reply) => { out.unary = { error: error && error.message, reply }; });
  call.on('status', (status) => { out.unaryStatus = trailerOf(status); resolve(); });
});
const serverStream = new Promise((resolve) => {
  const replies = [];
  const call = client.SayHellos({ name: 'stream', count: 5 }, { deadline: deadline() });
  call.on('data', (reply) => replies.push(reply));
  call.on('error', () => {});
  call.on('status', (status) => { out.serverStream = { replies, status: trailerOf(status) }; resolve(); });
});
const bidi = new Promise((resolve) => {
  const replies = [];
  const call = client.Chat({ deadline: deadline() });
  call.on('data', (reply) => replies.push(reply));
  call.on('error', () => {});
  call.on('status', (status) => { out.bidi = { replies, status: trailerOf(status) }; resolve(); });
  for (const name of ['ann', 'bob', 'cy']) call.write({ name });
  call.end();
});
Promise.all([unary, serverStream, bidi]).then(() => { console.log(JSON.stringify(out)); process.exit(0); });
`;
