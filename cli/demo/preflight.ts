// Before the demo touches anything: it needs root and working network namespaces, and the tools
// it runs (setpriv, curl, iptables); otherwise one sentence says why and what to do.
import { netnsUnavailableReason } from '../../lib/netns/netns-support';

const TOOLS = ['curl', 'iptables'];

/** Why the demo cannot run here, as a message for the user, or undefined when it can. */
export function demoUnavailableMessage(check: (tools: readonly string[]) => string | undefined = netnsUnavailableReason): string | undefined {
  const reason = check(TOOLS);
  if (reason === undefined) return undefined;
  return (
    `meshctl demo cannot run: ${reason}. It simulates hosts with network namespaces and installs ` +
    'iptables rules inside them, which needs root and the tools packaging/setup-dev.sh installs: ' +
    'run `sudo bash packaging/setup-dev.sh && sudo npm start` (nothing was changed on this machine).'
  );
}
