// Several workloads on one host, told apart by the uid their processes run as: each one's outbound
// connections cross the mTLS tunnel with its own SPIFFE ID (the receiving agent logs it as the
// stream's principal), are logged and counted under its name, and a process of no workload's uid
// presents the node's identity, never a workload's.
import test from 'ava';
import { requireNetns } from '../netns/guard';
import { eventually } from '../support/eventually';
import { meshCa } from './mesh-ca';
import { meshPerFile, type MeshHosts } from './mesh-hosts';
import { TCP_CLIENT, TCP_ECHO_APP } from './tcp-apps';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'setpriv', 'curl'], { serial: true });

const ECHO_PORT = 7000;
/** The two workloads' uids on host a, and a uid that belongs to no workload. */
const ALPHA_UID = 2001;
const BETA_UID = 2002;
const STRANGER_UID = 2999;
const ALPHA_ID = 'spiffe://cluster.local/ns/default/sa/alpha';
const BETA_ID = 'spiffe://cluster.local/ns/default/sa/beta';
const NODE_A_ID = 'spiffe://cluster.local/node/a';
type Host = 'cp' | 'a' | 'b';

const ca = meshCa();

/** echo on b; alpha and beta placed on a, so the CA signs their identities for a's agent. */
function meshConfig(aIp: string, bIp: string): string {
  const workloadEntry = (name: string, ip: string, node: string, port: string) => `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ${name}-${node}, annotations: { mesh.io/node: ${node} } }
spec: { address: ${ip}, labels: { app: ${name} }, serviceAccount: ${name}, ports: { ${port} } }
`;
  const service = (name: string, port: number) => `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name} }
spec:
  hosts: [${name}.mesh]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: ${port}, name: tcp-${name}, protocol: TCP }]
  workloadSelector: { labels: { app: ${name} } }
`;
  return [
    service('echo', ECHO_PORT), workloadEntry('echo', bIp, 'b', `tcp-echo: ${ECHO_PORT}`),
    service('alpha', 7101), workloadEntry('alpha', aIp, 'a', 'tcp-alpha: 7101'),
    service('beta', 7102), workloadEntry('beta', aIp, 'a', 'tcp-beta: 7102'),
  ].join('');
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
      workloads: host === 'b'
        ? [{ name: 'echo', serviceAccount: 'echo', ports: { 'tcp-echo': ECHO_PORT } }]
        : [{ name: 'alpha', serviceAccount: 'alpha', uid: ALPHA_UID }, { name: 'beta', serviceAccount: 'beta', uid: BETA_UID }],
    };
  },
});

/** One TCP exchange from a process of `uid` on a to echo on b; what echo answered. */
async function exchangeAs(m: MeshHosts<Host>, uid: number): Promise<string> {
  const { code, stdout, stderr } = await m.runNode('a', TCP_CLIENT, [m.hosts.b.ip, String(ECHO_PORT)], { uid });
  if (code !== 0) throw new Error(`client as uid ${uid} failed (${String(code)}): ${stderr.trim()}`);
  return stdout;
}

/** The principal b's agent recorded for the next tunnel stream to echo from `mark` on. */
async function principalOfNextStream(m: MeshHosts<Host>, mark: number): Promise<unknown> {
  const line = await m.agentLog('b').waitFor('inbound tunnel stream on b', (l) => l.msg === 'inbound tunnel stream' && l.destination === `${m.hosts.b.ip}:${ECHO_PORT}`, 20_000, mark);
  return line.principal;
}

netnsTest('each workload on a host crosses the mTLS tunnel as itself, chosen by the uid of the sending process; a stranger uid is the node', async (t) => {
  t.timeout(300_000);
  const m = await mesh();

  // a's agent asks for alpha's and beta's certificates once it holds its node certificate.
  await eventually('alpha and beta certificates held by a', () => {
    const held = new Set(m.agentLog('a').matching((line) => line.msg === 'certificate issued').map((line) => line.identity));
    return held.has(ALPHA_ID) && held.has(BETA_ID);
  }, { timeoutMs: 60_000, intervalMs: 100 });

  // Interleaved, so pooled sessions of one workload cannot serve the other's connections.
  const expectations: Array<[number, string, string]> = [
    [ALPHA_UID, 'alpha', ALPHA_ID],
    [BETA_UID, 'beta', BETA_ID],
    [ALPHA_UID, 'alpha', ALPHA_ID],
    [STRANGER_UID, 'unknown', NODE_A_ID],
    [BETA_UID, 'beta', BETA_ID],
  ];
  for (const [uid, workload, principal] of expectations) {
    const bMark = m.agentLog('b').mark();
    const aMark = m.agentLog('a').mark();
    t.is(await exchangeAs(m, uid), 'hellobye from echo-b', `uid ${uid}`);
    t.is(await principalOfNextStream(m, bMark), principal, `principal b saw for uid ${uid}`);
    const outbound = await m.agentLog('a').waitFor('outbound connection on a', (l) => l.msg === 'outbound connection', 20_000, aMark);
    t.is(outbound.source_workload, workload, `source_workload a logged for uid ${uid}`);
  }

  // The agent's /stats counts connections per source workload.
  const stats = await m.exec('a', ['curl', '-s', '-m', '5', 'http://127.0.0.1:15000/stats']);
  t.regex(stats.stdout, /^agent\.outboundBySourceWorkload\.alpha: 2$/m);
  t.regex(stats.stdout, /^agent\.outboundBySourceWorkload\.beta: 2$/m);
  t.regex(stats.stdout, /^agent\.outboundBySourceWorkload\.unknown: 1$/m);
  t.regex(stats.stdout, /^agent\.outboundBySourceWorkload\.lookupFailures: 0$/m);
});
