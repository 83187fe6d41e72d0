// Helpers for the resilience tests: a clock that moves only when the test says so, and clusters
// as the translator serves them.
import { translated } from '../balancing/testing';
import type { Clock, RepeatingTimer } from './clock';
import type { DecodedGuardedCluster } from './cluster-guard';

/** A clock that moves only when told: `advance` runs due ticks in time order. */
export class ManualClock implements Clock {
  private time = 0;
  private readonly timers = new Set<{ periodMs: number; next: number; tick: () => void }>();

  now(): number {
    return this.time;
  }

  every(periodMs: number, tick: () => void): RepeatingTimer {
    const timer = { periodMs, next: this.time + periodMs, tick };
    this.timers.add(timer);
    return { cancel: () => this.timers.delete(timer) };
  }

  /** How many timers are running (tests check that replaced configs stop theirs). */
  get activeTimers(): number {
    return this.timers.size;
  }

  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      let due: { periodMs: number; next: number; tick: () => void } | undefined;
      for (const timer of this.timers) if (timer.next <= until && (!due || timer.next < due.next)) due = timer;
      if (!due) break;
      this.time = due.next;
      due.next += due.periodMs;
      due.tick();
    }
    this.time = until;
  }
}

/** The translator's cluster for `clusterName` as node `nodeId` receives it, typed with every field the guards read. */
export function translatedCluster(...args: Parameters<typeof translated>): DecodedGuardedCluster {
  return translated(...args).cluster as DecodedGuardedCluster;
}
