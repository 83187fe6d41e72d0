// Whether this machine can run simulated hosts: Linux, root, a working `ip netns` and the tools
// the caller needs. Tests skip themselves with the reason; meshctl demo refuses to start with it.
import { spawnSync } from 'node:child_process';
import { systemToolPath } from '../../agent/redirect/command-runner';

/**
 * Why network namespaces cannot be used here, or undefined when they can: they need Linux, root, a
 * working `ip netns`, and the listed tools (setpriv always; e.g. nft, iptables-legacy).
 */
export function netnsUnavailableReason(tools: readonly string[] = []): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  const uid = process.getuid?.();
  if (uid !== 0) return `network namespaces need root (running as uid ${String(uid)})`;
  const env = { ...process.env, PATH: systemToolPath() };
  const ip = spawnSync('ip', ['netns', 'list'], { env, encoding: 'utf8', timeout: 5_000 });
  if (ip.error || ip.status !== 0) return `\`ip netns\` is unavailable (${ip.error?.message ?? ip.stderr.trim()})`;
  for (const tool of ['setpriv', ...tools]) {
    const found = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool], { env, timeout: 5_000 });
    if (found.status !== 0) return `${tool} is not installed (packaging/setup-dev.sh installs it)`;
  }
  return undefined;
}
