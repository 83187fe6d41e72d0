// Cleaning up what a demo run left behind when it was killed before it could (SIGKILL, a crash):
// processes inside its namespaces, the namespaces (found by their fixed prefix), their /etc/netns
// folders, its temp dir. A demo that is still running is left alone: starting twice is an error.
import { rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createCommandRunner } from '../../agent/redirect/command-runner';
import { removeNetnsEtc } from './hosts-files';
import { isRunningDemo, readRunRecord, removeRunRecord } from './run-record';
import { NAMESPACE_PREFIX, TEMP_DIR_PREFIX } from './topology';

const STOP_GRACE_MS = 3_000;

export interface LeftoverReport {
  readonly namespaces: readonly string[];
  readonly processes: number;
  readonly tempDir: string | undefined;
}

export async function demoNamespaces(): Promise<string[]> {
  const listed = await createCommandRunner({ timeoutMs: 10_000 }).run(['ip', 'netns', 'list']);
  return listed.stdout.split('\n').map((line) => line.split(' ')[0] ?? '').filter((name) => name.startsWith(NAMESPACE_PREFIX));
}

/** Pids of every process inside `namespace`. */
export async function namespacePids(namespace: string): Promise<number[]> {
  const listed = await createCommandRunner({ timeoutMs: 10_000 }).run(['ip', 'netns', 'pids', namespace], { allowFailure: true });
  return listed.stdout.split('\n').map((line) => Number(line.trim())).filter((pid) => Number.isInteger(pid) && pid > 0);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone already.
  }
}

/** SIGTERM (agents then remove their rules), SIGKILL whatever is left after the grace period. */
export async function stopPids(pids: readonly number[], graceMs: number = STOP_GRACE_MS): Promise<void> {
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
  for (const pid of pids) if (alive(pid)) signal(pid, 'SIGKILL');
}

/** Deletes namespaces and their /etc/netns folders after stopping every process inside them. */
export async function removeNamespaces(namespaces: readonly string[]): Promise<number> {
  const pids = (await Promise.all(namespaces.map(namespacePids))).flat();
  await stopPids(pids);
  const root = createCommandRunner({ timeoutMs: 20_000 });
  for (const namespace of namespaces) {
    await root.run(['ip', 'netns', 'delete', namespace], { allowFailure: true });
    removeNetnsEtc(namespace);
  }
  return pids.length;
}

/**
 * Removes a killed run's leftovers and says what they were, or undefined when there were none.
 * Throws when another demo is running: its namespaces are in use.
 */
export async function removeLeftovers(): Promise<LeftoverReport | undefined> {
  const record = readRunRecord();
  if (record && isRunningDemo(record.pid)) {
    throw new Error(`another meshctl demo is running (pid ${record.pid}); stop it with Ctrl-C or \`kill ${record.pid}\` first`);
  }
  const namespaces = await demoNamespaces();
  const processes = namespaces.length > 0 ? await removeNamespaces(namespaces) : 0;
  const tempDir = record?.tempDir;
  // Only a folder the demo itself would have made: the record is a file anyone root could edit.
  if (tempDir && path.dirname(tempDir) === os.tmpdir() && path.basename(tempDir).startsWith(TEMP_DIR_PREFIX)) rmSync(tempDir, { recursive: true, force: true });
  if (record) removeRunRecord();
  if (namespaces.length === 0 && !record) return undefined;
  return { namespaces, processes, tempDir };
}
