// One program the demo started: its output goes to log files in the demo's temp dir (so it never
// blocks on a pipe and outlives nothing), and its last stderr lines explain a crash.
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

export interface ProcessLogs {
  readonly stdout: string;
  readonly stderr: string;
}

export class SupervisedProcess {
  /** Set once stopping it was asked for: its exit is then expected, not a crash. */
  stopping = false;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logs: ProcessLogs,
  ) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
      else child.once('exit', (code, signal) => resolve({ code, signal }));
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last `count` non-empty lines of its stderr, or of its stdout when stderr is empty (pino logs there). */
  lastLines(count = 15): string[] {
    for (const file of [this.logs.stderr, this.logs.stdout]) {
      let text = '';
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        continue;
      }
      const lines = text.split('\n').filter((line) => line.trim() !== '');
      if (lines.length > 0) return lines.slice(-count);
    }
    return [];
  }
}

/**
 * Opens `<logDir>/<name>.log` and `.err` for a child's stdout and stderr; `start` receives the
 * descriptors and spawns. The parent's copies are closed once the child has them.
 */
export function startWithLogs(logDir: string, name: string, start: (stdout: number, stderr: number) => ChildProcess): SupervisedProcess {
  const logs = { stdout: path.join(logDir, `${name}.log`), stderr: path.join(logDir, `${name}.err`) };
  const out = openSync(logs.stdout, 'a', 0o644);
  const err = openSync(logs.stderr, 'a', 0o644);
  try {
    return new SupervisedProcess(name, start(out, err), logs);
  } finally {
    closeSync(out);
    closeSync(err);
  }
}
