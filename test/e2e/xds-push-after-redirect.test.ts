// A known agent bug, kept visible: mesh-agent opens its xDS connection before it installs its
// redirection, and the first push after that never arrives (see the comment on the test).
import test from 'ava';
import { netnsUnavailableReason } from '../netns/test-network';
import { meshPerFile } from './mesh-hosts';
import { tcpExchange } from './tcp-apps';
import { ECHO_PORT, ROUTE_FILE, echoApps, echoRoute, echoService, echoVip } from './versioned-echo';

type Host = 'cp' | 'a' | 'b' | 'c';

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b', 'c'],
  server: 'cp',
  agents: ['a', 'b', 'c'],
  config: (hosts) => ({ 'echo.yaml': echoService(echoVip(hosts), hosts.b, hosts.c), [ROUTE_FILE]: echoRoute('v1') }),
  apps: () => echoApps<Host>('b', 'c'),
});

const title = 'a config pushed after the agent installed its redirection reaches the agent whose xDS stream predates it';
/**
 * Fails today, hence `failing` (ava reports it when it starts passing: then drop `.failing` and
 * the fixture's `noMidStreamPickup`). The agent connects to mesh-server, then installs its
 * iptables rules, which is the moment its namespace starts tracking connections. The xDS
 * connection has no conntrack entry; the next segment the server pushes is picked up mid-stream
 * as a NEW flow towards a local port, matches MESH_PREROUTING, is REDIRECTed to :15006 and the
 * kernel answers with RST. The server's stream dies ("xDS stream closed", ECONNRESET); the agent's
 * socket never sees the reset and stays ESTABLISHED without keepalive, so the agent waits forever
 * on its old config. Any connection open before the rules were installed suffers the same
 * (a host's outbound sessions get reset on their next inbound segment). Fixes: only capture
 * connection openers inbound (`-p tcp --syn` on the PREROUTING jump, `tcp flags & (syn|ack) == syn`
 * in nftables), and gRPC keepalive on the agent's xDS channel so a dead stream is noticed.
 */
const reason = netnsUnavailableReason(['iptables', 'iptables-save', 'curl']);
const register = reason === undefined ? test.serial.failing : test.skip;
register(reason === undefined ? title : `${title} (skipped: ${reason})`, async (t) => {
  t.timeout(240_000);
  const m = await mesh();
  const vip = echoVip(m.hosts);
  t.is(await tcpExchange(m, 'a', vip, ECHO_PORT), 'hellobye from v1');
  const mark = m.agentLog('a').mark();
  await m.writeConfig(ROUTE_FILE, echoRoute('v2'));
  // Far longer than the 2 s a change needs (config-edit-latency.test.ts): only the bug explains missing it.
  await m.agentLog('a').waitFor('a-agent applying the pushed config', (line) => line.msg === 'config applied' && line.source === 'server', 15_000, mark);
  t.is(await tcpExchange(m, 'a', vip, ECHO_PORT), 'hellobye from v2');
});
