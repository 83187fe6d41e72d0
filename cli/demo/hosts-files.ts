// Name resolution inside the simulated hosts: `ip netns exec NS` mounts /etc/netns/NS/hosts over
// /etc/hosts, so apps call `reviews:9080` by name, as they would with a DNS server, unchanged.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

const NETNS_ETC = '/etc/netns';

export function hostsFileText(names: Readonly<Record<string, string>>, ownName: string | undefined, ownAddress: string): string {
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
  if (ownName !== undefined) lines.push(`${ownAddress}\t${ownName}`);
  for (const [name, address] of Object.entries(names)) lines.push(`${address}\t${name}`);
  return lines.join('\n') + '\n';
}

export function writeHostsFile(namespace: string, text: string): void {
  const dir = path.join(NETNS_ETC, namespace);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  writeFileSync(path.join(dir, 'hosts'), text, { mode: 0o644 });
}

/** `ip netns delete` leaves /etc/netns/NS behind; this removes it. */
export function removeNetnsEtc(namespace: string): void {
  rmSync(path.join(NETNS_ETC, namespace), { recursive: true, force: true });
}
