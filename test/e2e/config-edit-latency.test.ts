// A config edit reaches traffic within 2 s: from the moment a VirtualService file is written to the
// first connection a paced client on another host sees answered by the newly chosen version.
import { requireNetns } from '../netns/guard';
import type { LogLine } from './log-tail';
import { LogTail } from './log-tail';
import { meshPerFile } from './mesh-hosts';
import { TCP_PROBER } from './tcp-apps';
import { ECHO_PORT, ROUTE_FILE, echoApps, echoRoute, echoService, echoVip } from './versioned-echo';

const netnsTest = requireNetns(['iptables', 'iptables-save', 'curl'], { serial: true });

type Host = 'cp' | 'a' | 'b' | 'c';

/** The bound; measured from the file write, so it includes the watcher, debounce, push and apply. */
const EDIT_TO_TRAFFIC_MS = 2_000;
const SWITCHES = 4;
/** Between the prober's connections; each exchange itself takes a few milliseconds. */
const PROBE_PAUSE_MS = 10;

const mesh = meshPerFile<Host>({
  hosts: ['cp', 'a', 'b', 'c'],
  server: 'cp',
  agents: ['a', 'b', 'c'],
  config: (hosts) => ({ 'echo.yaml': echoService(echoVip(hosts), hosts.b, hosts.c), [ROUTE_FILE]: echoRoute('v1') }),
  apps: () => echoApps<Host>('b', 'c'),
});

netnsTest('a VirtualService edit reaches a client on another host within 2 s, without failed connections', async (t) => {
  t.timeout(300_000);
  const m = await mesh();
  const vip = echoVip(m.hosts);
  const prober = new LogTail(m.spawn('a', [process.execPath, '-e', TCP_PROBER, vip, String(ECHO_PORT), String(PROBE_PAUSE_MS), '20000', '120000'], { stdio: ['pipe', 'pipe', 'pipe'] }));
  t.teardown(() => prober.child.stdin?.end());
  const answeredBy = (version: string) => (line: LogLine): boolean => line.reply === `hellobye from ${version}`;
  await prober.waitFor('the prober answered by v1', answeredBy('v1'), 30_000);

  const latencies: number[] = [];
  let current: 'v1' | 'v2' = 'v1';
  for (let i = 0; i < SWITCHES; i++) {
    const next: 'v1' | 'v2' = current === 'v1' ? 'v2' : 'v1';
    const mark = prober.mark();
    const written = Date.now();
    await m.writeConfig(ROUTE_FILE, echoRoute(next));
    const first = await prober.waitFor(`switch ${i + 1}: the first connection answered by ${next}`, answeredBy(next), 20_000, mark);
    const latency = Number(first.end) - written;
    latencies.push(latency);
    t.log(`switch ${i + 1} to ${next}: ${latency} ms`);
    t.true(latency <= EDIT_TO_TRAFFIC_MS, `switch ${i + 1} to ${next} took ${latency} ms, more than ${EDIT_TO_TRAFFIC_MS} ms`);
    // Make-before-break: while the route changed, every connection was answered by one version or the other.
    t.deepEqual(prober.matching((line) => line.error !== undefined, mark), []);
    current = next;
  }
  t.log(`edit to traffic (ms): ${latencies.join(', ')}; max ${Math.max(...latencies)}`);
});
