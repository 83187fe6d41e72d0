// `meshctl redirect verify`, run inside a host next to a running agent: it agrees with the rules
// the agent installed, and after someone deletes one rule it fails and names the missing rule.
import * as path from 'node:path';
import { requireNetns } from '../netns/guard';
import { AGENT_UID, NODE_TS, REPO_ROOT, meshPerFile } from './mesh-hosts';
import { tcpExchange } from './tcp-apps';
import { ECHO_PORT, echoApps, echoService, echoVip } from './versioned-echo';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'curl'], { serial: true });

type Host = 'cp' | 'a' | 'b' | 'c';

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b', 'c'],
  server: 'cp',
  agents: ['a', 'b', 'c'],
  config: (hosts) => ({ 'echo.yaml': echoService(echoVip(hosts), hosts.b, hosts.c) }),
  apps: () => echoApps<Host>('b', 'c'),
});

/** The agent's plan as flags: its uid, the iptables backend it was given, IPv4 only (agent.yaml's default). */
const MESHCTL_VERIFY = [...NODE_TS, path.join(REPO_ROOT, 'cli', 'main.ts'), 'redirect', 'verify', '--backend', 'iptables', '--agent-uid', String(AGENT_UID), '--no-ipv6'];
/** A rule nobody's traffic depends on here (nothing serves :15020), so deleting it breaks no other check. */
const VICTIM_RULE = ['MESH_PREROUTING', '-p', 'tcp', '-m', 'tcp', '--dport', '15020', '-j', 'RETURN'];

netnsTest('meshctl redirect verify matches a running agent, and names the rule someone deleted', async (t) => {
  t.timeout(240_000);
  const m = await mesh();
  const verify = () => m.exec('a', MESHCTL_VERIFY, { allowFailure: true, timeoutMs: 60_000 });

  const matching = await verify();
  t.is(matching.exitCode, 0, matching.stdout + matching.stderr);
  t.regex(matching.stdout, /the redirection rules in force match the plan/);

  await m.exec('a', ['iptables', '-t', 'nat', '-D', ...VICTIM_RULE]);
  const broken = await verify();
  t.is(broken.exitCode, 1, broken.stdout + broken.stderr);
  t.regex(broken.stdout, /do NOT match the plan .*: 1 missing, 0 unexpected/);
  t.regex(broken.stdout, /missing \(planned, not in force\):\n {2}- iptables\S* -t nat -A MESH_PREROUTING -p tcp -m tcp --dport 15020 -j RETURN\n/);
  // The rest of the redirection still works: the agent keeps routing the host's traffic.
  t.regex(await tcpExchange(m, 'a', echoVip(m.hosts), ECHO_PORT), /^hellobye from v[12]$/);
});
