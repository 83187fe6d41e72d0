// Regression test: the agent opens its xDS connection before it installs its redirection, and
// pushes made after that must still reach it.
import { requireNetns } from '../netns/guard';
import { meshPerFile } from './mesh-hosts';
import { tcpExchange } from './tcp-apps';
import { ECHO_PORT, ROUTE_FILE, echoApps, echoRoute, echoService, echoVip } from './versioned-echo';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'curl'], { serial: true });

type Host = 'cp' | 'a' | 'b' | 'c';

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b', 'c'],
  server: 'cp',
  agents: ['a', 'b', 'c'],
  config: (hosts) => ({ 'echo.yaml': echoService(echoVip(hosts), hosts.b, hosts.c), [ROUTE_FILE]: echoRoute('v1') }),
  apps: () => echoApps<Host>('b', 'c'),
});

/**
 * Installing the rules is the moment the namespace starts tracking connections, so the xDS
 * connection opened before has no conntrack entry. When the rules captured any TCP segment, the
 * server's next push was picked up mid-stream as a new inbound flow, REDIRECTed to :15006 and
 * answered with a reset: the server dropped the stream, while the agent's socket, which never saw
 * the reset, waited on its old config for ever. Only connection openers (SYN) are captured now.
 */
netnsTest('a config pushed after the agent installed its redirection reaches the agent whose xDS stream predates it', async (t) => {
  t.timeout(240_000);
  const m = await mesh();
  const vip = echoVip(m.hosts);
  t.is(await tcpExchange(m, 'a', vip, ECHO_PORT), 'hellobye from v1');
  const agentA = m.agentLog('a');
  // The stream in use is the one opened before the rules: the agent has not reconnected since.
  t.deepEqual(agentA.matching((line) => line.msg === 'ADS stream ended; reconnecting'), []);
  const mark = agentA.mark();
  await m.writeConfig(ROUTE_FILE, echoRoute('v2'));
  await agentA.waitFor('a-agent applying the pushed config', (line) => line.msg === 'config applied' && line.source === 'server', 20_000, mark);
  t.is(await tcpExchange(m, 'a', vip, ECHO_PORT), 'hellobye from v2');
  t.deepEqual(m.serverLog().matching((line) => line.msg === 'xDS stream closed'), [], 'no agent lost its xDS stream');
});
