// Waiting in tests without sleeps standing in for synchronisation: poll a probe until it yields a
// value, and fail with what was awaited when the deadline passes.

export interface PollOptions {
  /** Default 20 s: generous, since it only matters when a test is failing anyway. */
  timeoutMs?: number;
  /** Pause between probes; 0 yields to the event loop only. Default 10 ms. */
  intervalMs?: number;
}

function pause(intervalMs: number): Promise<void> {
  return new Promise((resolve) => (intervalMs > 0 ? setTimeout(resolve, intervalMs) : setImmediate(resolve)));
}

/** Resolves with the first value `probe` returns other than `undefined` or `false`; a number is the timeout. */
export async function eventually<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, options: PollOptions | number = {}): Promise<T> {
  if (typeof options === 'number') options = { timeoutMs: options };
  const timeoutMs = options.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await pause(options.intervalMs ?? 10);
  }
}

/** The same wait for a plain condition, condition first. */
export async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs?: number, intervalMs?: number): Promise<void> {
  await eventually(what, condition, { timeoutMs, intervalMs });
}
