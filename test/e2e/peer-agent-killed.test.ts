// A peer agent that disappears mid-stream (SIGKILL): the client's connection is reset, the local
// agent logs it and keeps serving other traffic, and the route recovers once the peer restarts.
import { requireNetns } from '../netns/guard';
import { eventually } from '../support/eventually';
import { LogTail, type LogLine } from './log-tail';
import { meshPerFile } from './mesh-hosts';
import { TCP_ECHO_APP, tcpExchange } from './tcp-apps';
import { ECHO_PORT, ROUTE_FILE, echoApps, echoRoute, echoService, echoVip } from './versioned-echo';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'curl'], { serial: true });

type Host = 'cp' | 'a' | 'b' | 'c';

const OUTSIDE_PORT = 7100;

/** Opens a connection, sees its "ping" echoed, then holds it open and reports how it ends. */
const STREAM_HOLDER = `
const net = require('node:net');
const [host, port] = process.argv.slice(1);
let got = '';
const socket = net.connect({ host, port: Number(port), allowHalfOpen: true }, () => socket.write('ping'));
socket.on('data', (chunk) => {
  got += chunk;
  if (got === 'ping') console.log(JSON.stringify({ msg: 'streaming' }));
});
socket.on('end', () => console.log(JSON.stringify({ msg: 'ended', got })));
socket.on('error', (error) => console.log(JSON.stringify({ msg: 'error', code: error.code || error.message, got })));
socket.on('close', () => { console.log(JSON.stringify({ msg: 'closed', got })); process.exit(0); });
setTimeout(() => { console.log(JSON.stringify({ msg: 'still open', got })); process.exit(1); }, 60000);
`;

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b', 'c'],
  server: 'cp',
  agents: ['a', 'b', 'c'],
  config: (hosts) => ({ 'echo.yaml': echoService(echoVip(hosts), hosts.b, hosts.c), [ROUTE_FILE]: echoRoute('v1') }),
  apps: () => [...echoApps<Host>('b', 'c'), { host: 'cp', name: 'outside', source: TCP_ECHO_APP, args: [String(OUTSIDE_PORT), 'outside'] }],
  agentLogLevel: 'debug',
});

netnsTest('a peer agent killed mid-stream resets the client; the local agent logs it, serves on, and recovers with the peer', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const vip = echoVip(m.hosts);
  const agentA = m.agentLog('a');
  const holder = new LogTail(m.spawn('a', [process.execPath, '-e', STREAM_HOLDER, vip, String(ECHO_PORT)]));
  await holder.waitFor('the stream through b-agent is up', (line) => line.msg === 'streaming', 30_000);
  const mark = agentA.mark();

  t.is(await m.stopAgent('b', 'SIGKILL'), 'signal SIGKILL');
  const closed = await holder.waitFor('the held connection closing', (line) => line.msg === 'closed', 20_000);
  // A reset, not a clean end: the app behind b never said goodbye, so the client must not see a FIN.
  t.like(holder.matching((line) => line.msg === 'error')[0], { code: 'ECONNRESET' });
  t.deepEqual(holder.matching((line) => line.msg === 'ended'), []);
  t.is(closed.got, 'ping');
  const record = await agentA.waitFor('a-agent recording the reset', (line) => line.msg === 'outbound connection closed' && line.reset === true, 10_000, mark);
  t.like(record.decision, { action: 'tunnel', node: 'b', destination: `${vip}:${ECHO_PORT}` });

  // While b is gone: its route fails with a logged reason, everything else still works.
  const downAt = agentA.mark();
  await t.throwsAsync(tcpExchange(m, 'a', vip, ECHO_PORT), { message: /client on a .* failed/ });
  const failed = await agentA.waitFor('a-agent logging the failed tunnel', (line) => line.msg === 'outbound upstream failed; client closed', 10_000, downAt);
  t.like(failed.decision as LogLine, { node: 'b' });
  t.is(await tcpExchange(m, 'a', m.hosts.cp.ip, OUTSIDE_PORT), 'hellobye from outside');
  t.is(agentA.child.exitCode, null);

  // b-agent back (its rules were left in place by the kill; installing them again is idempotent).
  await m.startAgent('b');
  const recovered = await eventually('traffic through b-agent again', () => tcpExchange(m, 'a', vip, ECHO_PORT).catch(() => undefined), { timeoutMs: 60_000, intervalMs: 250 });
  t.is(recovered, 'hellobye from v1');
});
