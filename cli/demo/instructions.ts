// What the demo prints once everything answers: where things run and the exact commands to try.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { CLIENT_HOST, CONTROL_PLANE, MESH_HOSTS, SECURE_XDS_PORT, SERVER_ADMIN_PORT, SERVICE_PORT } from './topology';

export interface InstructionInputs {
  readonly configDir: string;
  readonly logDir: string;
  readonly meshctl: string;
}

/** `file:line` of each `weight:` in the reviews VirtualService's canary, so the user knows what to edit. */
export function canaryWeightLines(trafficFile: string): string[] {
  let text: string;
  try {
    text = readFileSync(trafficFile, 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  text.split('\n').forEach((line, i) => {
    const match = /^\s*weight:\s*(\d+)/.exec(line);
    if (match) out.push(`line ${i + 1} (weight: ${match[1]})`);
  });
  return out;
}

function shown(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative !== '' && !relative.startsWith('..') ? relative : file;
}

export function instructions(inputs: InstructionInputs): string {
  const client = `ip netns exec ${CLIENT_HOST.namespace}`;
  const page = `http://productpage:${SERVICE_PORT}/`;
  const trafficFile = path.join(inputs.configDir, 'bookinfo', 'traffic.yaml');
  const weights = canaryWeightLines(trafficFile);
  const hosts = MESH_HOSTS.map((host) => `  ${host.name.padEnd(7)} ${host.ip.padEnd(11)} ${host.namespace.padEnd(16)} agent + ${host.apps.map((app) => app.workload).join(', ')}`);
  return [
    '',
    'The mesh is up. Hosts (network namespaces on a bridge of their own, 10.77.0.0/24):',
    `  ${CONTROL_PLANE.name.padEnd(7)} ${CONTROL_PLANE.ip.padEnd(11)} ${CONTROL_PLANE.namespace.padEnd(16)} mesh-server --config-dir ${shown(inputs.configDir)}, xDS and CA over TLS on :${SECURE_XDS_PORT}`,
    ...hosts,
    '',
    'Try it, as root, in another shell (from the checkout, for the node commands):',
    `  # the product page, through ${CLIENT_HOST.name}'s agent: which reviews version answered, and its ratings`,
    `  ${client} curl -s ${page}`,
    '  # the same as user jason, whom the reviews VirtualService always sends to v3',
    `  ${client} curl -s -H 'end-user: jason' ${page}`,
    '  # the canary split over 40 requests',
    `  for i in $(seq 40); do ${client} curl -s ${page} | grep -o 'reviews: v[0-9]'; done | sort | uniq -c`,
    `  # shift the weights: edit ${shown(trafficFile)}${weights.length > 0 ? `, ${weights.join(' and ')}` : ''} (say 50 and 50);`,
    '  # mesh-server re-reads it within a second and pushes the new routes; watch it happen:',
    `  tail -f ${path.join(inputs.logDir, 'mesh-server.log')}`,
    '  # agents talk mTLS with SPIFFE identities: each stream into host-b names the calling workload',
    `  grep -o '"principal":"[^"]*","destination":"[^"]*"' ${path.join(inputs.logDir, 'mesh-agent-host-b.log')} | tail -3`,
    '  # xDS sync state of every agent, and what one agent runs',
    `  ip netns exec ${CONTROL_PLANE.namespace} ${inputs.meshctl} proxy-status`,
    `  ${client} ${inputs.meshctl} proxy-config routes`,
    `  ${client} ${inputs.meshctl} proxy-config endpoints`,
    '  # the server\'s view: config issues, the model',
    `  ip netns exec ${CONTROL_PLANE.namespace} curl -s localhost:${SERVER_ADMIN_PORT}/debug/issues?format=text`,
    '',
    `Logs of every program: ${inputs.logDir}/`,
    'Ctrl-C stops the agents (they remove their rules), the apps and mesh-server, and deletes the namespaces.',
  ].join('\n');
}
