// Drives the report server and the TCP client inside test namespaces: start a listener and wait
// until it accepts, connect from a host (optionally as another uid), and read back who answered.
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { LISTENING_MARKER, type ConnectionReport } from './original-destination-server';
import type { TestHost, TestNetwork } from './test-network';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
/** Node runs the TypeScript helpers through tsx, resolved from the repository root (cwd). */
const NODE_TS = [process.execPath, '--import', 'tsx'];
const STARTUP_DEADLINE_MS = 20_000;

export interface ReportServerOptions {
  readonly port: number;
  /** Listen address; `::` (dual-stack, the default) or `0.0.0.0` or `127.0.0.1`. */
  readonly listen?: string;
  /** Shown in every report as `server`. */
  readonly name: string;
}

/** Starts original-destination-server on `host` and resolves once it is listening. */
export async function startReportServer<H extends string>(
  network: TestNetwork<H>,
  host: TestHost | H,
  options: ReportServerOptions,
): Promise<ChildProcess> {
  const script = path.join(REPO_ROOT, 'test', 'netns', 'original-destination-server.ts');
  const child = network.spawn(
    host,
    [...NODE_TS, script, '--name', options.name, '--host', options.listen ?? '::', '--port', String(options.port)],
    { cwd: REPO_ROOT },
  );
  await waitForOutput(child, LISTENING_MARKER, STARTUP_DEADLINE_MS);
  return child;
}

export type ProbeResult =
  | { readonly connected: true; readonly report: ConnectionReport }
  | { readonly connected: false; readonly error: string };

/** Connects from `from` to address:port with the TCP client and returns what answered. */
export async function probe<H extends string>(
  network: TestNetwork<H>,
  from: TestHost | H,
  address: string,
  port: number,
  options: { readonly uid?: number } = {},
): Promise<ProbeResult> {
  const script = path.join(REPO_ROOT, 'test', 'netns', 'tcp-client.ts');
  const child = network.spawn(from, [...NODE_TS, script, address, String(port), '5000'], {
    cwd: REPO_ROOT,
    uid: options.uid,
  });
  const { code, stdout, stderr } = await waitForExit(child, STARTUP_DEADLINE_MS);
  if (code !== 0) return { connected: false, error: stderr.trim() || `exit code ${String(code)}` };
  return { connected: true, report: JSON.parse(stdout) as ConnectionReport };
}

/** Resolves when `marker` appears on the child's stdout; rejects on exit or after `timeoutMs`. */
export function waitForOutput(child: ChildProcess, marker: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => finish(new Error(`no "${marker}" within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    const onStdout = (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      if (stdout.includes(marker)) finish();
    };
    const onStderr = (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    };
    const onExit = (code: number | null) => finish(new Error(`exited (${String(code)}) before "${marker}"; stderr: ${stderr}`));
    function finish(error?: Error) {
      clearTimeout(timer);
      child.stdout?.off('data', onStdout);
      child.stderr?.off('data', onStderr);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve();
    }
    child.stdout?.on('data', onStdout);
    child.stderr?.on('data', onStderr);
    child.once('exit', onExit);
  });
}

/** Collects the child's output until it exits; kills it and rejects after `timeoutMs`. */
export function waitForExit(
  child: ChildProcess,
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`process ${String(child.pid)} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') });
    });
  });
}
