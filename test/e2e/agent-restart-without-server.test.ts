// Static stability (DESIGN.md decision 7) across real hosts: an agent restarted while mesh-server is
// down serves its persisted snapshot, and catches up with a change made meanwhile once it returns.
import { stat } from 'node:fs/promises';
import * as path from 'node:path';
import { requireNetns } from '../netns/guard';
import { eventually } from '../support/eventually';
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

netnsTest('an agent restarted while mesh-server is down serves its snapshot, and catches up when the server returns', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const vip = echoVip(m.hosts);
  t.is(await tcpExchange(m, 'a', vip, ECHO_PORT), 'hellobye from v1');
  const snapshot = path.join(m.agentStateDir('a'), 'xds', 'snapshot.json');
  await eventually('a-agent persisted its config', () => stat(snapshot).then(() => true, () => false));

  t.is(await m.stopServer(), 'exit 0');
  const restarted = await m.restartAgent('a');
  await restarted.waitFor('a-agent serving its snapshot', (line) => line.msg === 'serving the persisted xDS snapshot until the server answers', 5_000);
  const ready = await m.readiness('a');
  t.is(ready.status, 200);
  t.like(ready.body, { ready: true, source: 'snapshot', redirect: 'verified' });
  // The restarted agent installed its redirection again and routes from the snapshot alone.
  t.is(await tcpExchange(m, 'a', vip, ECHO_PORT), 'hellobye from v1');

  // Changed while no server runs: nothing can carry it yet, the snapshot's route stays in force.
  await m.writeConfig(ROUTE_FILE, echoRoute('v2'));
  t.is(await tcpExchange(m, 'a', vip, ECHO_PORT), 'hellobye from v1');

  const mark = restarted.mark();
  await m.startServer();
  // The agent retries with backoff (up to 30 s apart), so the wait is generous.
  await restarted.waitFor('a-agent applying the server config', (line) => line.msg === 'config applied' && line.source === 'server', 90_000, mark);
  t.is(await tcpExchange(m, 'a', vip, ECHO_PORT), 'hellobye from v2');
  t.like((await m.readiness('a')).body, { ready: true, source: 'server' });
});
