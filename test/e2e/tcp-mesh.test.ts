// The first real data path end to end: mesh-server on host cp, mesh-agents on hosts a and b as
// uid 1337 with iptables redirection in their namespaces, unmodified TCP clients and an echo app.
import { requireNetns } from '../netns/guard';
import type { LogLine } from './log-tail';
import { meshPerFile } from './mesh-hosts';
import { TCP_ECHO_APP, tcpExchange } from './tcp-apps';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'curl'], { serial: true });

const ECHO_PORT = 7000;
const OUTSIDE_PORT = 7100;
const STRAY_PORT = 7200;

type Host = 'cp' | 'a' | 'b';

function meshConfig(bIp: string): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: echo
spec:
  hosts: [echo.mesh]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: ${ECHO_PORT}, name: tcp-echo, protocol: TCP }
  workloadSelector:
    labels: { app: echo }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: echo-b
  annotations: { mesh.io/node: b }
spec:
  address: ${bIp}
  labels: { app: echo }
  ports: { tcp-echo: ${ECHO_PORT} }
---
# Claims to run on node "c" at b's address: b's agent does not serve it, so its tunnel refuses it.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: stray
spec:
  hosts: [stray.mesh]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: ${STRAY_PORT}, name: tcp-stray, protocol: TCP }
  workloadSelector:
    labels: { app: stray }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: stray-c
  annotations: { mesh.io/node: c }
spec:
  address: ${bIp}
  labels: { app: stray }
  ports: { tcp-stray: ${STRAY_PORT} }
`;
}

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b'],
  server: 'cp',
  agents: ['a', 'b'],
  config: (hosts) => ({ 'echo.yaml': meshConfig(hosts.b.ip) }),
  apps: () => [
    { host: 'b', name: 'echo', source: TCP_ECHO_APP, args: [String(ECHO_PORT), 'echo-b'] },
    { host: 'cp', name: 'outside', source: TCP_ECHO_APP, args: [String(OUTSIDE_PORT), 'outside'] },
  ],
});

netnsTest('TCP through the mesh: a-agent tunnels to b-agent, half-close holds, outside destinations pass through', async (t) => {
  t.timeout(240_000);
  const m = await mesh();
  const { cp, a, b } = m.hosts;
  const agentA = m.agentLog('a');
  const agentB = m.agentLog('b');
  const echo = m.app('echo');

  // Mesh destination: echo's reply to "hello", then the goodbye sent after the client's FIN.
  t.is(await tcpExchange(m, 'a', b.ip, ECHO_PORT), 'hellobye from echo-b');
  const decision = await agentA.waitFor('tunnel decision on a', (line) => line.msg === 'outbound connection', 5_000);
  t.like(decision.decision, { action: 'tunnel', destination: `${b.ip}:${ECHO_PORT}`, cluster: `outbound|${ECHO_PORT}||echo.mesh`, peer: `${b.ip}:15008`, node: 'b' });
  const stream = await agentB.waitFor('tunnel stream on b', (line) => line.msg === 'inbound tunnel stream', 5_000);
  t.like(stream, { peer: a.ip, destination: `${b.ip}:${ECHO_PORT}` });
  // The app saw b-agent (its own host address over loopback), not a's address: the tunnel carried it.
  const seen = await echo.waitFor('echo connection', (line) => line.event === 'connection', 5_000);
  t.is(seen.remote, b.ip);

  // Not in the registry, ALLOW_ANY (no Sidecar says otherwise): a-agent connects to it directly.
  t.is(await tcpExchange(m, 'a', cp.ip, OUTSIDE_PORT), 'hellobye from outside');
  const passthrough = await agentA.waitFor('passthrough decision on a', (line) => line.msg === 'outbound connection' && (line.decision as LogLine).action === 'passthrough', 5_000);
  t.like(passthrough.decision, { destination: `${cp.ip}:${OUTSIDE_PORT}`, cluster: 'PassthroughCluster' });
  t.is((await m.app('outside').waitFor('outside connection', (line) => line.event === 'connection', 5_000)).remote, a.ip);

  // A client without an agent (cp) reaches b's workload through b's plain inbound listener (PERMISSIVE).
  t.is(await tcpExchange(m, 'cp', b.ip, ECHO_PORT), 'hellobye from echo-b');
  const plain = await agentB.waitFor('plain inbound on b', (line) => line.msg === 'plain inbound connection', 5_000);
  t.like(plain, { client: cp.ip, destination: `${b.ip}:${ECHO_PORT}` });
  t.is(echo.matching((line) => line.event === 'connection').length, 2);
  t.true(echo.matching((line) => line.event === 'connection').every((line) => line.remote === b.ip));

  // The tunnel's refusal closes the client's connection, and a-agent logs it with its decision.
  await t.throwsAsync(tcpExchange(m, 'a', b.ip, STRAY_PORT), { message: /client on a .* failed/ });
  const refused = await agentA.waitFor('refused tunnel on a', (line) => line.msg === 'outbound upstream failed; client closed', 5_000);
  t.like(refused.decision, { action: 'tunnel', destination: `${b.ip}:${STRAY_PORT}`, node: 'c' });
  t.regex(String(refused.err), /403: no local workload serves/);

  // A clean stop removes the redirection it installed and exits 0.
  const before = await m.exec('b', ['iptables-save', '-t', 'nat']);
  t.regex(before.stdout, /MESH_OUTPUT/);
  t.is(await m.stopAgent('b'), 'exit 0');
  const after = await m.exec('b', ['iptables-save', '-t', 'nat']);
  t.notRegex(after.stdout, /MESH_/);
});
