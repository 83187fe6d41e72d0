// Asking HTTP endpoints inside a simulated host from the demo (which runs in the root namespace):
// curl through `ip netns exec`, with a poll-with-deadline that gives up early when the demo stops.
import { createCommandRunner } from '../../agent/redirect/command-runner';

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

/** One GET from inside `namespace`; status 0 when nothing answered. */
export async function httpGetInNamespace(namespace: string, url: string, headers: readonly string[] = [], timeoutMs = 5_000): Promise<HttpAnswer> {
  const runner = createCommandRunner({ netns: namespace, timeoutMs: timeoutMs + 5_000 });
  const headerArgs = headers.flatMap((header) => ['-H', header]);
  const marker = '\n--mesh-demo-status:';
  const result = await runner.run(['curl', '-sS', '--max-time', String(timeoutMs / 1000), ...headerArgs, '-w', `${marker}%{http_code}`, url], { allowFailure: true });
  const at = result.stdout.lastIndexOf(marker);
  const status = at < 0 ? 0 : Number(result.stdout.slice(at + marker.length)) || 0;
  // Nothing answered: curl's own message (refused, timed out) is what there is to show.
  if (status === 0) return { status, body: result.stderr.trim() || `curl exited with code ${result.exitCode}` };
  return { status, body: result.stdout.slice(0, at) };
}

export class Interrupted extends Error {
  override readonly name = 'Interrupted';
}

/**
 * Polls `probe` until it returns a value (not undefined), at most until `deadlineMs` from now;
 * `lastProblem` says what the last attempt saw, for the timeout message. Stops when `stopped()`.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  options: { deadlineMs: number; intervalMs?: number; stopped: () => boolean; lastProblem?: () => string },
): Promise<T> {
  const deadline = Date.now() + options.deadlineMs;
  for (;;) {
    if (options.stopped()) throw new Interrupted(`stopped while waiting for ${what}`);
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      const problem = options.lastProblem?.();
      throw new Error(`${what}: not within ${Math.round(options.deadlineMs / 1000)} s${problem ? ` (last answer: ${problem})` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 250));
  }
}
