// Which process runs the demo and where its files are, kept in /run while it runs: the next start
// tells a running demo (refuse) from a killed one's leftovers (clean up).
import { readFileSync, rmSync, writeFileSync } from 'node:fs';

export const RUN_RECORD_PATH = '/run/mesh-demo.json';

export interface RunRecord {
  readonly pid: number;
  readonly tempDir: string;
}

export function readRunRecord(file: string = RUN_RECORD_PATH): RunRecord | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(text) as Partial<RunRecord>;
    if (typeof value.pid === 'number' && typeof value.tempDir === 'string') return { pid: value.pid, tempDir: value.tempDir };
  } catch {
    // A record cut short by a crash says nothing reliable; the namespaces are still found by prefix.
  }
  return undefined;
}

export function writeRunRecord(record: RunRecord, file: string = RUN_RECORD_PATH): void {
  writeFileSync(file, JSON.stringify(record) + '\n', { mode: 0o644 });
}

export function removeRunRecord(file: string = RUN_RECORD_PATH): void {
  rmSync(file, { force: true });
}

/** Whether `pid` is a live meshctl demo (not a recycled pid now used by something else). */
export function isRunningDemo(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('demo') && argv.some((arg) => /cli[/\\]main\.[jt]s$/.test(arg) || arg.endsWith('meshctl'));
  } catch {
    return false;
  }
}
