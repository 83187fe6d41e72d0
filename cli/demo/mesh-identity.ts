// The demo's mesh identity: mesh-server's CA keeps its state in the demo's temp dir; each agent gets
// the root (to trust the server on first contact) and a join token for its node, as
// `meshctl bootstrap --node NAME` would print, so agents get certificates and talk mTLS.
import { chmodSync, copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { GENERATED_ROOT_CERT_FILE } from '../../server/ca/ca-keys';
import { JOIN_SECRET_FILE, JoinTokens } from '../../server/ca/join-token';

/** Long enough for agents that start slowly under load; each token is single use anyway. */
const JOIN_TOKEN_TTL_MS = 30 * 60_000;

export interface AgentTls {
  readonly caFile: string;
  readonly joinToken: string;
}

/** mesh-server's --ca-state-dir inside the demo's temp dir (root key and join secret, 0600 by the server). */
export function caStateDir(tempDir: string): string {
  const dir = path.join(tempDir, 'ca');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * Once mesh-server has written its CA state: a world-readable copy of the root for the agents (uid
 * 1337 cannot read the state dir) and a join token per node.
 */
export function agentTlsFor(tempDir: string, stateDir: string, nodes: readonly string[]): Map<string, AgentTls> {
  const caFile = path.join(tempDir, 'root.pem');
  copyFileSync(path.join(stateDir, GENERATED_ROOT_CERT_FILE), caFile);
  chmodSync(caFile, 0o644);
  const tokens = new JoinTokens(readFileSync(path.join(stateDir, JOIN_SECRET_FILE)));
  return new Map(nodes.map((node) => [node, { caFile, joinToken: tokens.issue(node, { ttlMs: JOIN_TOKEN_TTL_MS }) }]));
}
