// Identity and mTLS end to end: mesh-server with its CA on :15012, agents on namespaced hosts that
// bootstrap with join tokens from meshctl's code path, TCP through the mTLS tunnel, a tunnel port that
// refuses anyone without a mesh certificate, and an agent restarted while the server is down.
import test from 'ava';
import { stat, readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { requireNetns } from '../netns/guard';
import { meshCa } from './mesh-ca';
import { meshPerFile } from './mesh-hosts';
import { TCP_ECHO_APP, tcpExchange } from './tcp-apps';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'curl'], { serial: true });

const ECHO_PORT = 7000;
type Host = 'cp' | 'a' | 'b';

const ca = meshCa();

function meshConfig(aIp: string, bIp: string): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo }
spec:
  hosts: [echo.mesh]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: ${ECHO_PORT}, name: tcp-echo, protocol: TCP }]
  workloadSelector: { labels: { app: echo } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: echo-b, annotations: { mesh.io/node: b } }
spec: { address: ${bIp}, labels: { app: echo }, serviceAccount: echo, ports: { tcp-echo: ${ECHO_PORT} } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: client }
spec:
  hosts: [client.mesh]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 7001, name: tcp-client, protocol: TCP }]
  workloadSelector: { labels: { app: client } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client-a, annotations: { mesh.io/node: a } }
spec: { address: ${aIp}, labels: { app: client }, serviceAccount: client, ports: { tcp-client: 7001 } }
`;
}

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b'],
  server: 'cp',
  agents: ['a', 'b'],
  serverArgs: [...ca.serverArgs],
  config: (hosts) => ({ 'mesh.yaml': meshConfig(hosts.a.ip, hosts.b.ip) }),
  apps: () => [{ host: 'b', name: 'echo', source: TCP_ECHO_APP, args: [String(ECHO_PORT), 'echo-b'] }],
  // Called once mesh-server runs: its CA has written the root and the join secret by then.
  agentConfig: (host, hosts) => {
    return {
      ...ca.join(host, hosts.cp.ip),
      workloads: host === 'b' ? [{ name: 'echo', serviceAccount: 'echo', ports: { 'tcp-echo': ECHO_PORT } }] : [{ name: 'client', serviceAccount: 'client' }],
    };
  },
});

netnsTest('agents bootstrap with join tokens, TCP crosses the mTLS tunnel, the tunnel refuses strangers, a restart without the server keeps serving', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const { b } = m.hosts;

  t.is(await tcpExchange(m, 'a', b.ip, ECHO_PORT), 'hellobye from echo-b');
  const stream = await m.agentLog('b').waitFor('tunnel stream on b', (line) => line.msg === 'inbound tunnel stream', 10_000);
  t.like(stream, { peer: m.hosts.a.ip, destination: `${b.ip}:${ECHO_PORT}` });

  // What the CA issued, and how each caller authenticated.
  const issued = m.serverLog().matching((line) => line.msg === 'certificate issued');
  const byIdentity = new Map(issued.map((line) => [String(line.identity), String(line.via)]));
  t.is(byIdentity.get('spiffe://cluster.local/node/a'), 'join-token');
  t.is(byIdentity.get('spiffe://cluster.local/node/b'), 'join-token');
  t.is(byIdentity.get('spiffe://cluster.local/ns/default/sa/echo'), 'certificate');
  t.is(byIdentity.get('spiffe://cluster.local/ns/default/sa/client'), 'certificate');

  // Keys and certificates on disk are the agent's alone.
  const identityDir = path.join(m.agentStateDir('b'), 'identity');
  const files = await readdir(identityDir);
  t.true(files.some((f) => f.endsWith('.key.pem')));
  for (const file of files) t.is((await stat(path.join(identityDir, file))).mode & 0o777, 0o600, file);

  // Neither h2c nor TLS without a mesh client certificate gets through b's tunnel port.
  const plain = await m.exec('cp', ['curl', '-s', '-m', '5', '--http2-prior-knowledge', `http://${b.ip}:15008/`], { allowFailure: true });
  t.not(plain.exitCode, 0, 'h2c to the mTLS tunnel port must fail');
  const anonymous = await m.runNode('cp', `
    const tls = require('node:tls');
    const s = tls.connect({ host: process.argv[1], port: 15008, ALPNProtocols: ['h2'], rejectUnauthorized: false, servername: 'x.id.mesh' }, () => {
      s.write('PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n');
    });
    s.on('data', () => { console.log('served'); process.exit(0); });
    s.on('error', (e) => { console.log('refused: ' + e.message); process.exit(0); });
    s.on('close', () => { console.log('refused: closed'); process.exit(0); });
  `, [b.ip]);
  t.regex(anonymous.stdout, /^refused/);

  // Static stability: with mesh-server down, b restarts from its stored certificates and snapshot.
  await m.stopServer();
  await m.restartAgent('b');
  t.truthy(m.agentLog('b').matching((line) => line.msg === 'config applied').length);
  t.is(await tcpExchange(m, 'a', b.ip, ECHO_PORT), 'hellobye from echo-b');
});
