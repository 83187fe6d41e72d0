// Per-host files of a demo agent: its agent.yaml (the same file an operator writes to
// /etc/mesh/agent.yaml) and a state dir the agent's uid owns.
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { stringify } from 'yaml';
import type { AgentConfigFile } from '../../agent/config/agent-config';
import type { AgentTls } from './mesh-identity';
import { AGENT_ADMIN_PORT, AGENT_READINESS_PORT, AGENT_UID, type DemoHost } from './topology';

export function agentConfigFor(host: DemoHost, server: string, stateDir: string, tls: AgentTls): AgentConfigFile {
  if (host.node === undefined) throw new Error(`host ${host.name} runs no agent`);
  return {
    server,
    node: host.node,
    stateDir,
    ...(host.locality ? { locality: host.locality } : {}),
    workloads: host.apps.map((app) => ({ name: app.workload, serviceAccount: app.serviceAccount, ports: { [app.portName]: app.port } })),
    redirect: { enabled: true, backend: 'auto' },
    admin: `127.0.0.1:${AGENT_ADMIN_PORT}`,
    readiness: `:${AGENT_READINESS_PORT}`,
    tls: { caFile: tls.caFile, joinToken: tls.joinToken },
  };
}

/** Writes `<dir>/<host>/agent.yaml` and `<dir>/<host>/state` (owned by the agent uid); returns the yaml's path. */
export function writeAgentFiles(dir: string, host: DemoHost, server: string, tls: AgentTls): string {
  const hostDir = path.join(dir, host.name);
  const stateDir = path.join(hostDir, 'state');
  mkdirSync(stateDir, { recursive: true, mode: 0o755 });
  chownSync(stateDir, AGENT_UID, AGENT_UID);
  const file = path.join(hostDir, 'agent.yaml');
  const header = `# mesh-agent on ${host.name}, written by meshctl demo\n`;
  // 0600 and the agent's: it holds a join token.
  writeFileSync(file, header + stringify(agentConfigFor(host, server, stateDir, tls)), { mode: 0o600 });
  chownSync(file, AGENT_UID, AGENT_UID);
  return file;
}
