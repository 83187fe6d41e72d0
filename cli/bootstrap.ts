// meshctl bootstrap: issues a join token for one node, signed with the join-token secret that
// mesh-server keeps in its CA state dir. Run it on the server's host (it needs to read that 0600 file).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { DEFAULT_JOIN_TOKEN_TTL_MS, JOIN_SECRET_FILE, JoinTokens, validNodeName } from '../server/ca/join-token';

export interface BootstrapOptions {
  node: string;
  /** Token lifetime in minutes; default 60. */
  ttlMinutes?: number;
  /** mesh-server's --ca-state-dir. */
  caStateDir: string;
}

export interface BootstrapIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

export const DEFAULT_CA_STATE_DIR = '/var/lib/mesh-server';

export async function bootstrapCommand(options: BootstrapOptions, io: BootstrapIo): Promise<number> {
  if (!validNodeName(options.node)) {
    io.stderr(`meshctl bootstrap: --node "${options.node}" is not a valid node name (letters, digits, '.', '-', '_', at most 253)`);
    return 2;
  }
  const file = path.join(options.caStateDir, JOIN_SECRET_FILE);
  let secret: Buffer;
  try {
    secret = await fs.readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    io.stderr(code === 'ENOENT'
      ? `meshctl bootstrap: ${file} does not exist; start mesh-server with its TLS port (it creates the secret) or pass its --ca-state-dir`
      : `meshctl bootstrap: cannot read ${file}: ${(error as Error).message}`);
    return 1;
  }
  let tokens: JoinTokens;
  try {
    tokens = new JoinTokens(secret);
  } catch (error) {
    io.stderr(`meshctl bootstrap: ${file}: ${(error as Error).message}`);
    return 1;
  }
  const ttlMs = options.ttlMinutes !== undefined ? options.ttlMinutes * 60_000 : DEFAULT_JOIN_TOKEN_TTL_MS;
  io.stdout(tokens.issue(options.node, { ttlMs }));
  return 0;
}
