// mesh-server as a child process for benchmarks: started from dist/ when built (else from the
// TypeScript through tsx), ready once it logs "mesh-server serving", stopped by its own PID.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export interface MeshServerOptions {
  configDir: string;
  debounceMs: number;
  /** Default 127.0.0.1:0; a fixed port lets a restarted server be found by the same clients. */
  xdsAddress?: string;
  /** Further flags, e.g. the Consul address. */
  extraArgs?: readonly string[];
  /** Run with --cpu-prof, writing the profile here when it stops. */
  cpuProfDir?: string;
  /** Longest the start may take (tsx compiles on start; a loaded machine is slow). */
  startTimeoutMs?: number;
}

export interface MeshServerProcess {
  child: ChildProcess;
  pid: number;
  xds: string;
  admin: string;
  /** The TLS port (xDS and the CA), when the server was started with one. */
  secureXds?: string;
  /** The command line, relative to the repository, for the report. */
  how: string;
  /** `dist` (compiled JavaScript) or `tsx` (TypeScript compiled on load). */
  source: 'dist' | 'tsx';
}

/**
 * `node dist/<program>/main.js` when the build is newer than every source it comes from, else
 * `node --import tsx <program>/main.ts`: a stale build would measure code that no longer exists.
 */
export function programArgs(program: 'server' | 'agent'): { args: string[]; source: 'dist' | 'tsx' } {
  const dist = path.join(REPO_ROOT, 'dist', program, 'main.js');
  const built = fs.existsSync(dist) ? fs.statSync(dist).mtimeMs : -1;
  if (built > 0 && newestSourceMs([program, 'lib']) <= built) return { args: [dist], source: 'dist' };
  return { args: ['--import', 'tsx', path.join(REPO_ROOT, program, 'main.ts')], source: 'tsx' };
}

function newestSourceMs(dirs: readonly string[]): number {
  let newest = 0;
  const visit = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules' && entry.name !== 'build') visit(full);
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) newest = Math.max(newest, fs.statSync(full).mtimeMs);
    }
  };
  for (const dir of dirs) visit(path.join(REPO_ROOT, dir));
  return newest;
}

export async function startMeshServer(options: MeshServerOptions): Promise<MeshServerProcess> {
  const { args, source } = programArgs('server');
  const serverArgs = [
    '--config-dir', options.configDir, '--xds-address', options.xdsAddress ?? '127.0.0.1:0', '--admin-address', '127.0.0.1:0',
    '--debounce-ms', String(options.debounceMs), '--log-level', 'info', ...(options.extraArgs ?? []),
  ];
  const extra = options.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfDir] : [];
  const child = spawn(process.execPath, [...extra, ...args, ...serverArgs], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const how = `node ${[...extra, ...args.map((a) => path.relative(REPO_ROOT, a) || a)].join(' ')} ${serverArgs.join(' ')}`;
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  return new Promise<MeshServerProcess>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`mesh-server did not log "mesh-server serving" within ${startTimeoutMs} ms`)), startTimeoutMs);
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${error.message}\nserver stderr:\n${stderr}`));
    };
    child.once('exit', (code, signal) => fail(new Error(`mesh-server exited early (code ${code}, signal ${signal})`)));
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      let record: { msg?: string; xds?: string; secureXds?: string; admin?: string; level?: number };
      try {
        record = JSON.parse(line) as typeof record;
      } catch {
        return;
      }
      if (record.level !== undefined && record.level >= 50) process.stderr.write(`server: ${line}\n`);
      if (record.msg === 'mesh-server serving' && record.xds && record.admin) {
        clearTimeout(timer);
        child.removeAllListeners('exit');
        resolve({ child, pid: child.pid!, xds: record.xds, ...(record.secureXds ? { secureXds: record.secureXds } : {}), admin: record.admin.replace(/\/$/, ''), how, source });
      }
    });
  });
}

/** SIGTERM (the server drains), SIGKILL after 10 s; resolves once it has exited. */
export async function stopMeshServer(server: MeshServerProcess): Promise<void> {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => server.child.once('exit', () => resolve()));
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => server.child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}
