// A resource the agent cannot use (NACK) leaves the previous config serving, is reported to the
// server with its reason, and the next good config applies. The bad resource comes honestly from
// the config files: Istio accepts any Maglev table size, Envoy (and mesh-agent) only a prime.
import { requireNetns } from '../netns/guard';
import { meshPerFile } from './mesh-hosts';
import { tcpExchange } from './tcp-apps';
import { ECHO_PORT, ROUTE_FILE, echoApps, echoRoute, echoService, echoVip } from './versioned-echo';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'curl'], { serial: true });

type Host = 'cp' | 'a' | 'b' | 'c';

const NOT_PRIME_MAGLEV = '    loadBalancer:\n      consistentHash:\n        maglev: { tableSize: 1000 }';
const PRIME_MAGLEV = '    loadBalancer:\n      consistentHash:\n        maglev: { tableSize: 65537 }';

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b', 'c'],
  server: 'cp',
  agents: ['a', 'b', 'c'],
  config: (hosts) => ({ 'echo.yaml': echoService(echoVip(hosts), hosts.b, hosts.c), [ROUTE_FILE]: echoRoute('v1') }),
  apps: () => echoApps<Host>('b', 'c'),
});

netnsTest('a cluster the agent rejects (NACK) leaves the previous config serving; the next good one applies', async (t) => {
  t.timeout(240_000);
  const m = await mesh();
  const vip = echoVip(m.hosts);
  const agentA = m.agentLog('a');
  t.is(await tcpExchange(m, 'a', vip, ECHO_PORT), 'hellobye from v1');

  let mark = agentA.mark();
  await m.writeConfig('echo.yaml', echoService(vip, m.hosts.b, m.hosts.c, NOT_PRIME_MAGLEV));
  const rejected = await agentA.waitFor('a-agent rejecting the clusters', (line) => line.msg === 'xDS update rejected', 20_000, mark);
  t.like(rejected, { type: 'type.googleapis.com/envoy.config.cluster.v3.Cluster' });
  t.regex(String(rejected.message), /cluster outbound\|7000\|\S*\|echo\.mesh: maglev_lb_config\.table_size must be a prime up to 5000011, got 1000/);
  t.deepEqual(agentA.matching((line) => line.msg === 'config applied', mark), [], 'nothing of the rejected version applies');

  // The server knows: its sync status carries the NACK and its message for this node.
  const syncz = await m.exec('cp', ['curl', '-s', '-m', '5', 'http://127.0.0.1:15014/debug/syncz']);
  t.regex(syncz.stdout, /"a"[\s\S]*table_size must be a prime/);

  // The previous config keeps serving, and the agent stays ready.
  t.is(await tcpExchange(m, 'a', vip, ECHO_PORT), 'hellobye from v1');
  t.is((await m.readiness('a')).status, 200);
  t.is(m.agentLog('a').child.exitCode, null);

  // A good table size applies, and the updates after it too.
  mark = agentA.mark();
  await m.writeConfig('echo.yaml', echoService(vip, m.hosts.b, m.hosts.c, PRIME_MAGLEV));
  await agentA.waitFor('a-agent applying the fixed clusters', (line) => line.msg === 'config applied' && line.source === 'server', 20_000, mark);
  mark = agentA.mark();
  await m.writeConfig(ROUTE_FILE, echoRoute('v2'));
  await agentA.waitFor('a-agent applying the new route', (line) => line.msg === 'config applied' && line.source === 'server', 20_000, mark);
  t.is(await tcpExchange(m, 'a', vip, ECHO_PORT), 'hellobye from v2');
});
