// Time as the resilience code sees it: a millisecond clock and one repeating timer, injected so
// that tests drive ejection intervals by hand instead of sleeping.

/** A repeating timer's handle; `cancel` is idempotent. */
export interface RepeatingTimer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds on a monotonic scale (only differences matter). */
  now(): number;
  /** Calls `tick` every `periodMs` until cancelled; never keeps the process alive by itself. */
  every(periodMs: number, tick: () => void): RepeatingTimer;
}

/** The process's own clock: performance.now() and unref'd intervals. */
export const systemClock: Clock = {
  now: () => performance.now(),
  every(periodMs, tick) {
    const handle = setInterval(tick, periodMs);
    handle.unref();
    return { cancel: () => clearInterval(handle) };
  },
};
