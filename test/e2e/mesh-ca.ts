// Agents that join mesh-server's CA, for end-to-end files: the server's CA state in a temp dir,
// a world-readable copy of its root for agents running as uid 1337, and a join token per host.
// Created at file load and removed after the file's tests (ava's test.after.always).
import test from 'ava';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { GENERATED_ROOT_CERT_FILE } from '../../server/ca/ca-keys';
import { JoinTokens, JOIN_SECRET_FILE } from '../../server/ca/join-token';

/** mesh-server's xDS + CA port over TLS. */
export const SECURE_PORT = 15012;

export interface MeshCa {
  /** mesh-server flags: the TLS port and where the CA keeps its state. */
  readonly serverArgs: readonly string[];
  /**
   * The agent.yaml fields that make `host` join over mTLS. Call it once mesh-server runs (the
   * fixture's agentConfig hook): its CA has written the root and the join secret by then.
   */
  join(host: string, serverIp: string): { server: string; tls: { caFile: string; joinToken: string } };
}

export function meshCa(): MeshCa {
  const caStateDir = mkdtempSync(path.join(tmpdir(), 'mesh-e2e-ca-'));
  const publicDir = mkdtempSync(path.join(tmpdir(), 'mesh-e2e-ca-public-'));
  chmodSync(publicDir, 0o755);
  test.after.always('remove the CA directories', () => {
    rmSync(caStateDir, { recursive: true, force: true });
    rmSync(publicDir, { recursive: true, force: true });
  });
  return {
    serverArgs: ['--secure-xds-address', `0.0.0.0:${SECURE_PORT}`, '--ca-state-dir', caStateDir],
    join(host, serverIp) {
      const caFile = path.join(publicDir, 'root.pem');
      copyFileSync(path.join(caStateDir, GENERATED_ROOT_CERT_FILE), caFile);
      chmodSync(caFile, 0o644);
      const joinToken = new JoinTokens(readFileSync(path.join(caStateDir, JOIN_SECRET_FILE))).issue(host, { ttlMs: 10 * 60_000 });
      return { server: `${serverIp}:${SECURE_PORT}`, tls: { caFile, joinToken } };
    },
  };
}
