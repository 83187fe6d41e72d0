// Destinations outside the registry follow the Sidecar's outboundTrafficPolicy: ALLOW_ANY (the
// default) passes them through, REGISTRY_ONLY refuses them; mesh services work under both.
import { requireNetns } from '../netns/guard';
import type { LogLine } from './log-tail';
import { meshPerFile } from './mesh-hosts';
import { TCP_ECHO_APP, tcpExchange } from './tcp-apps';
import { ECHO_PORT, echoApps, echoService, echoVip } from './versioned-echo';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'curl'], { serial: true });

type Host = 'cp' | 'a' | 'b' | 'c';

const OUTSIDE_PORT = 7100;
const SIDECAR_FILE = 'mesh-wide-sidecar.yaml';
/** A Sidecar in the root namespace without a selector applies to every workload and host. */
const REGISTRY_ONLY = `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
  namespace: istio-system
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
`;

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b', 'c'],
  server: 'cp',
  agents: ['a', 'b', 'c'],
  config: (hosts) => ({ 'echo.yaml': echoService(echoVip(hosts), hosts.b, hosts.c) }),
  apps: () => [...echoApps<Host>('b', 'c'), { host: 'cp', name: 'outside', source: TCP_ECHO_APP, args: [String(OUTSIDE_PORT), 'outside'] }],
});

const decision = (line: LogLine): LogLine => (line.decision ?? {}) as LogLine;

netnsTest('unknown destinations pass through under ALLOW_ANY and are refused under REGISTRY_ONLY', async (t) => {
  t.timeout(240_000);
  const m = await mesh();
  const { cp } = m.hosts;
  const vip = echoVip(m.hosts);
  const agentA = m.agentLog('a');
  const outside = `${cp.ip}:${OUTSIDE_PORT}`;

  let mark = agentA.mark();
  t.is(await tcpExchange(m, 'a', cp.ip, OUTSIDE_PORT), 'hellobye from outside');
  const passed = await agentA.waitFor('passthrough decision', (line) => line.msg === 'outbound connection' && decision(line).destination === outside, 5_000, mark);
  t.like(passed.decision, { action: 'passthrough', cluster: 'PassthroughCluster' });

  mark = agentA.mark();
  await m.writeConfig(SIDECAR_FILE, REGISTRY_ONLY);
  await agentA.waitFor('a-agent applying REGISTRY_ONLY', (line) => line.msg === 'config applied' && line.source === 'server', 20_000, mark);
  const refusedAt = agentA.mark();
  // Closed without an answer: a reset or a bare FIN, depending on whether "hello" had arrived when the agent closed.
  const answer = await tcpExchange(m, 'a', cp.ip, OUTSIDE_PORT).catch((error: Error) => error.message);
  t.regex(answer, /^$|client on a .* failed/);
  const refused = await agentA.waitFor('blackhole decision', (line) => line.msg === 'outbound connection blackholed' && decision(line).destination === outside, 5_000, refusedAt);
  t.like(refused.decision, { action: 'blackhole', cluster: 'BlackHoleCluster' });
  t.is(m.app('outside').matching((line) => line.event === 'connection').length, 1, 'the refused connection never reached the outside app');
  // Registered services are unaffected by the policy.
  t.regex(await tcpExchange(m, 'a', vip, ECHO_PORT), /^hellobye from v[12]$/);

  mark = agentA.mark();
  await m.removeConfig(SIDECAR_FILE);
  await agentA.waitFor('a-agent back on ALLOW_ANY', (line) => line.msg === 'config applied' && line.source === 'server', 20_000, mark);
  t.is(await tcpExchange(m, 'a', cp.ip, OUTSIDE_PORT), 'hellobye from outside');
});
