// One Consul blocking query kept running (long poll after long poll) on one endpoint, with the
// index handling, rate limit and error backoff Consul's blocking-query guidance asks for.
import type { Logger } from '../../lib/log';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelayMs, describeConsulError, unpack, type QueryResult } from './consul-query';

/** A token bucket: quick successive updates go through, a churning source degrades to one per interval. */
export class TokenBucket {
  private tokens: number;
  private last = Date.now();
  constructor(private readonly burst: number, private readonly intervalMs: number) {
    this.tokens = burst;
  }

  /** Resolves when `cost` tokens (at most the burst) are taken; false when aborted first. */
  async take(signal: AbortSignal, cost = 1): Promise<boolean> {
    for (;;) {
      const now = Date.now();
      this.tokens = Math.min(this.burst, this.tokens + (now - this.last) / this.intervalMs);
      this.last = now;
      if (this.tokens >= cost) {
        this.tokens -= cost;
        return true;
      }
      try {
        await sleep(Math.ceil((cost - this.tokens) * this.intervalMs), undefined, { signal });
      } catch {
        return false;
      }
    }
  }
}

export interface LoopSettings {
  logger: Logger;
  waitMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  burst: number;
  intervalMs: number;
  onError: () => void;
  /** The loop saw its index go backwards to `index`. */
  onReset: (loop: BlockingLoop, index: bigint) => void;
}

/**
 * One blocking-query loop, following Consul's guidance: pass the last X-Consul-Index, reset to 0
 * when it goes backwards, never block on index 0 twice (use at least 1), rate-limit, and back off
 * with full jitter on errors. Exactly one request of a loop is in flight at any time.
 */
export class BlockingLoop {
  index = 0n;
  lastError?: string;
  succeeded = false;
  filteredByAcls = false;
  private readonly abort = new AbortController();
  private restartRequested = false;
  private ctx?: EventEmitter;
  private running?: Promise<void>;
  private readonly bucket: TokenBucket;

  /**
   * `apply` gets each answer's body and whether its index differs from the one the query waited
   * on (a long poll that merely timed out answers with the same index).
   */
  constructor(
    readonly label: string,
    private readonly settings: LoopSettings,
    private readonly query: (index: bigint, ctx: EventEmitter, timeoutMs: number) => Promise<unknown>,
    private readonly apply: (body: unknown, changed: boolean) => void,
    private readonly onSuccess: () => void,
  ) {
    this.bucket = new TokenBucket(settings.burst, settings.intervalMs);
  }

  get stopped(): boolean { return this.abort.signal.aborted; }

  start(): void {
    this.running ??= this.run();
  }

  /**
   * Drops the index and re-queries now: the request in flight, which may wait on an index from
   * before a snapshot restore and so not return for the whole wait, is cancelled.
   */
  restart(): void {
    this.index = 0n;
    if (!this.ctx) return;
    this.restartRequested = true;
    this.ctx.emit('cancel');
  }

  /** Cancels the request in flight at once; resolves when the loop has exited. */
  stop(): Promise<void> {
    this.abort.abort();
    this.ctx?.emit('cancel');
    return this.running ?? Promise.resolve();
  }

  private async run(): Promise<void> {
    const { logger } = this.settings;
    // Consul holds a query up to wait + wait/16; past that (plus slack) the connection is dead.
    const timeoutMs = this.settings.waitMs + Math.ceil(this.settings.waitMs / 16) + 5000;
    let attempt = 0;
    while (!this.stopped) {
      if (!(await this.bucket.take(this.abort.signal))) return;
      const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
      this.ctx = ctx;
      try {
        // After a failure, ask without blocking: the answer confirms the recovery at once (instead
        // of the old error showing until the data next changes) and brings the view up to date.
        const asked = attempt > 0 ? 0n : this.index;
        const result: QueryResult = unpack(await this.query(asked, ctx, timeoutMs));
        if (this.stopped) return;
        this.apply(result.body, result.index !== asked);
        this.filteredByAcls = result.filteredByAcls;
        if (this.restartRequested) {
          this.restartRequested = false;
          this.index = 0n;
        } else if (result.index < this.index) {
          logger.info({ watch: this.label, previous: this.index.toString(), index: result.index.toString() }, 'consul index went backwards; restarting the watch');
          this.index = 0n;
          this.settings.onReset(this, result.index);
        } else {
          this.index = result.index > 0n ? result.index : 1n;
        }
        if (this.lastError !== undefined) logger.info({ watch: this.label }, 'consul query recovered');
        this.lastError = undefined;
        this.succeeded = true;
        attempt = 0;
        this.onSuccess();
      } catch (error) {
        if (this.stopped) return;
        if (this.restartRequested) {
          this.restartRequested = false;
          continue;
        }
        attempt++;
        const description = describeConsulError(error);
        const delayMs = backoffDelayMs(attempt, this.settings.backoffBaseMs, this.settings.backoffMaxMs);
        // An outage repeats the same error every retry; say it once at warn, then at debug.
        const level = description === this.lastError ? 'debug' : 'warn';
        logger[level]({ watch: this.label, error: description, attempt, retryInMs: delayMs }, 'consul query failed; keeping the last good view');
        this.lastError = description;
        this.settings.onError();
        try {
          await sleep(delayMs, undefined, { signal: this.abort.signal });
        } catch {
          return;
        }
      } finally {
        this.ctx = undefined;
      }
    }
  }
}
