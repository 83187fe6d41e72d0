// Whether the client agent relayed the benchmark's connections as TCP or handled them request by
// request (HTTP routing), read from its own counters (admin /stats) after the runs, not assumed.
import type { TestNetwork } from '../../test/netns/test-network';

export async function detectOutboundMode<H extends string>(network: TestNetwork<H>, host: H): Promise<string> {
  const result = await network.exec(host, ['curl', '-sS', '--max-time', '10', 'http://127.0.0.1:15000/stats'], { allowFailure: true });
  const counter = (name: string): number | undefined => {
    const match = new RegExp(`^agent\\.outbound\\.${name}: (\\d+)$`, 'm').exec(result.stdout);
    return match ? Number(match[1]) : undefined;
  };
  const accepted = counter('accepted');
  const http = counter('http');
  if (accepted === undefined) return `client agent's outbound: undetermined (/stats: ${result.stdout.slice(0, 200)} ${result.stderr.slice(0, 200)})`;
  if (http === undefined) return `client agent's outbound: TCP relay (no HTTP path in this agent; ${accepted} connections accepted)`;
  return `client agent's outbound: ${http > 0 ? 'per-request HTTP routing' : 'TCP relay'} (agent.outbound.http ${http} of ${accepted} connections accepted)`;
}
