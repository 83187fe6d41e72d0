// Envoy's previous_priorities retry priority (what Istio's retryRemoteLocalities configures), for
// one request: every `updateFrequency` attempts, the priorities tried so far lose their load, so
// retries spill to the next locality priority even while the tried one is healthy.
import { cumulative, type EndpointSet, type PriorityLoadOverride } from './endpoint-set';

/** The retry priority Istio configures for retryRemoteLocalities (update_frequency 2). */
export const PREVIOUS_PRIORITIES = 'envoy.retry_priorities.previous_priorities';

export class PreviousPriorities implements PriorityLoadOverride {
  /** Priorities of the attempts made so far, in order (Envoy's attempted hosts). */
  private readonly attempted: number[] = [];
  private readonly excluded = new Set<number>();
  /** The attempt count at which `excluded` was last widened, so that re-picks do not widen it again. */
  private excludedAt = 0;
  /** Loads computed for `cachedFor` with the current exclusions: re-picks of one retry reuse them. */
  private cachedFor: EndpointSet | undefined;
  private cached: Float64Array | undefined;

  constructor(private readonly updateFrequency: number) {
    if (!Number.isInteger(updateFrequency) || updateFrequency < 1) throw new Error(`previous_priorities update_frequency must be an integer greater than 0, got ${updateFrequency}`);
  }

  /** An attempt went to an endpoint of `priority` (Envoy's onHostAttempted). */
  hostAttempted(priority: number): void {
    this.attempted.push(priority);
  }

  /** Priorities that get no load on the next pick, for logs and tests. */
  excludedPriorities(): readonly number[] {
    return [...this.excluded].sort((a, b) => a - b);
  }

  /**
   * The loads for the next attempt. The first `updateFrequency` attempts use the set's own; each
   * time the attempt count reaches a multiple of it, the priorities attempted so far are excluded
   * from then on. When no priority with healthy endpoints is left, exclusions and attempts are
   * forgotten and the original loads apply again, as Envoy's documentation describes.
   */
  thresholdsFor(set: EndpointSet): Float64Array | undefined {
    const attempts = this.attempted.length;
    if (attempts < this.updateFrequency) return undefined;
    if (attempts % this.updateFrequency === 0 && this.excludedAt !== attempts) {
      for (const priority of this.attempted) this.excluded.add(priority);
      this.excludedAt = attempts;
      this.cachedFor = undefined;
    }
    // A new set (EDS update, ejection) changes the health scores the loads come from.
    if (this.cachedFor === set) return this.cached;
    const loads = set.priorityLoadsExcluding(this.excluded);
    if (loads === undefined) {
      this.excluded.clear();
      this.attempted.length = 0;
      this.excludedAt = 0;
      this.cachedFor = undefined;
      return undefined;
    }
    this.cachedFor = set;
    this.cached = cumulative(loads);
    return this.cached;
  }
}
