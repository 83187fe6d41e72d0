// The JSON log lines of a child process (mesh-server, mesh-agent, test apps), kept as they arrive,
// and bounded waits for the first line that matches: how e2e tests see what a program decided.
import type { ChildProcess } from 'node:child_process';
import * as readline from 'node:readline';

export type LogLine = Record<string, unknown>;

/** Keeps at most this much of stderr: enough to explain a crash, bounded under a chatty program. */
const STDERR_LIMIT = 64 * 1024;

export class LogTail {
  readonly lines: LogLine[] = [];
  private readonly waiters = new Set<() => void>();
  stderr = '';
  /** Set once the process has exited and its output is read to the end. */
  private closed = false;

  constructor(readonly child: ChildProcess) {
    child.once('close', () => {
      this.closed = true;
    });
    if (child.stdout) {
      readline.createInterface({ input: child.stdout }).on('line', (line) => {
        try {
          const parsed: unknown = JSON.parse(line);
          this.lines.push(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as LogLine) : { msg: line });
        } catch {
          this.lines.push({ msg: line });
        }
        for (const wake of this.waiters) wake();
      });
    }
    child.stderr?.on('data', (chunk: Buffer) => {
      if (this.stderr.length < STDERR_LIMIT) this.stderr += chunk.toString();
    });
  }

  /** Where the next line will land: pass it to `waitFor` to see only lines written from now on. */
  mark(): number {
    return this.lines.length;
  }

  /** The lines from `from` (a `mark()`) on that match. */
  matching(predicate: (line: LogLine) => boolean, from = 0): LogLine[] {
    return this.lines.slice(from).filter(predicate);
  }

  /**
   * The first line at or after `from` that matches; rejects when the process exits first or after
   * `timeoutMs`, with the last lines and stderr so a failing test says what the program did instead.
   */
  waitFor(what: string, predicate: (line: LogLine) => boolean, timeoutMs: number, from = 0): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      let scanned = from;
      const check = (): void => {
        for (; scanned < this.lines.length; scanned++) {
          const line = this.lines[scanned]!;
          if (predicate(line)) {
            finish(undefined, line);
            return;
          }
        }
      };
      // 'close', not 'exit': the last lines may still be in the pipe when the process exits.
      const onClose = (): void =>
        finish(new Error(`exited (${this.child.signalCode ?? String(this.child.exitCode)}) before ${what}; last lines: ${this.recent()}; stderr: ${this.stderr}`));
      const timer = setTimeout(() => finish(new Error(`${what}: not seen within ${timeoutMs} ms; last lines: ${this.recent()}; stderr: ${this.stderr}`)), timeoutMs);
      const finish = (error: Error | undefined, line?: LogLine): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        this.child.off('close', onClose);
        if (error) reject(error);
        else resolve(line!);
      };
      this.waiters.add(check);
      check();
      if (!this.waiters.has(check)) return;
      if (this.closed) onClose();
      else this.child.once('close', onClose);
    });
  }

  private recent(): string {
    return JSON.stringify(this.lines.slice(-6));
  }
}
