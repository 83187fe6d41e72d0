// An in-process mesh-server on loopback with a temporary config directory, for end-to-end tests:
// write YAML files, wait for the change to be served, read the admin API.
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { silentLogger, type Logger } from '../../lib/log';
import { MeshServer, type MeshServerAddresses, type MeshServerOptions } from '../../server/mesh-server';

export interface MeshFixture {
  server: MeshServer;
  addresses: MeshServerAddresses;
  configDir: string;
  /** host:port of the plaintext xDS port. */
  xdsTarget: string;
  /** Writes a config file atomically (as editors do: temp file, then rename). */
  writeConfig(name: string, yaml: string): Promise<void>;
  /** Resolves once the model holds a resource whose spec satisfies `predicate`, or rejects at the deadline. */
  waitForModel(predicate: (server: MeshServer) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export async function startMeshFixture(options: { consul?: MeshServerOptions['consul']; logger?: Logger; files?: Record<string, string> } = {}): Promise<MeshFixture> {
  const configDir = await mkdtemp(path.join(os.tmpdir(), 'mesh-conformance-'));
  const writeConfig = async (name: string, yaml: string) => {
    const target = path.join(configDir, name);
    const temporary = path.join(configDir, `.${name}.tmp`);
    await writeFile(temporary, yaml);
    await rename(temporary, target);
  };
  for (const [name, yaml] of Object.entries(options.files ?? {})) await writeConfig(name, yaml);
  const server = new MeshServer({
    logger: options.logger ?? silentLogger(),
    configDir,
    consul: options.consul,
    xdsAddress: '127.0.0.1:0',
    adminAddress: '127.0.0.1:0',
  });
  let addresses: MeshServerAddresses;
  try {
    addresses = await server.start();
  } catch (error) {
    await rm(configDir, { recursive: true, force: true });
    throw error;
  }
  return {
    server,
    addresses,
    configDir,
    xdsTarget: `127.0.0.1:${addresses.xds.port}`,
    writeConfig,
    async waitForModel(predicate, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(server)) {
        if (Date.now() > deadline) throw new Error(`mesh model did not reach the expected state within ${timeoutMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async close() {
      await server.stop();
      await rm(configDir, { recursive: true, force: true });
    },
  };
}
