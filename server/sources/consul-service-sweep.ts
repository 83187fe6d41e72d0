// Brings the view of every watched Consul service up to date after something in the catalog
// changed, with a bounded number of requests in flight: a cheap probe of each service's own
// X-Consul-Index, then a full health query only for the services whose index moved.
//
// Why not one long poll per service: each holds a connection for its whole wait, and Consul allows
// 200 connections per client IP (http_max_conns_per_client), so a catalog of 1000 services left
// most of them queued behind held polls for minutes. Instead a few long polls on table-wide indexes
// (ConsulSource) say *that* something changed, and this sweep finds *what*: the per-service index
// (Consul's `service.<name>` index entry, the X-Consul-Index of /v1/health/service/:name) moves on
// every write that changes that service's answer — its instances, their checks, their nodes.
import { setMaxListeners } from 'node:events';
import type { Logger } from '../../lib/log';
import { TokenBucket } from './consul-blocking-loop';
import { backoffDelayMs, describeConsulError, type QueryResult } from './consul-query';

export interface SweepSettings {
  logger: Logger;
  /** Requests of a sweep in flight at once. */
  concurrency: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Sweeps are rate-limited as one watch: burst, then one full sweep's worth per intervalMs. */
  burst: number;
  intervalMs: number;
  /**
   * A query of one service's health that answers at once: the entries, or with `probe` only the
   * X-Consul-Index (the body is left empty by a filter no entry matches).
   */
  query: (name: string, probe: boolean, signal: AbortSignal) => Promise<QueryResult>;
  /** Takes a service's new entries (throws when the body is not what Consul sends). */
  apply: (name: string, body: unknown) => void;
  onError: () => void;
  /** A sweep (or the part of one that was due) finished. */
  onSweep: () => void;
}

export interface WatchedService {
  readonly name: string;
  /** X-Consul-Index of the last full answer applied; 0 before the first. */
  index: bigint;
  succeeded: boolean;
  lastError?: string;
  filteredByAcls: boolean;
  /** Fetch the entries without probing first: new, or its last query failed. */
  needsFetch: boolean;
  /** Something changed since this service was last probed: probe it (again). */
  dirty: boolean;
  /** When its index last moved (ms since the epoch); 0 if never since the first fetch. */
  changedAt: number;
  /** Consecutive failures, and when a failed service is retried. */
  attempt: number;
  retryAt: number;
}

export class ServiceSweep {
  readonly services = new Map<string, WatchedService>();
  sweeps = 0;
  probes = 0;
  fetches = 0;
  /** Services whose index went backwards (a snapshot restore). */
  resets = 0;
  private scheduled = false;
  /** Services whose probe or fetch is under way. */
  private active = 0;
  private running?: Promise<void>;
  private retryTimer?: NodeJS.Timeout;
  private readonly abort = new AbortController();
  private readonly bucket: TokenBucket;

  constructor(private readonly settings: SweepSettings) {
    this.bucket = new TokenBucket(settings.burst, settings.intervalMs);
    // Every request in flight listens on the one signal that stop() aborts.
    setMaxListeners(0, this.abort.signal);
  }

  private get stopped(): boolean { return this.abort.signal.aborted; }

  /** Starts watching a service: its entries are fetched by the next sweep. */
  watch(name: string): void {
    if (this.services.has(name)) return;
    this.services.set(name, { name, index: 0n, succeeded: false, filteredByAcls: false, needsFetch: true, dirty: false, changedAt: 0, attempt: 0, retryAt: 0 });
    this.schedule();
  }

  /** Stops watching; an answer still in flight for it is dropped. */
  drop(name: string): void {
    this.services.delete(name);
  }

  /**
   * Something in the catalog changed: probe every service. During a sweep this marks again only
   * what that sweep already probed; the rest it still reaches, after this change, anyway.
   */
  requestFull(): void {
    for (const service of this.services.values()) service.dirty = true;
    this.schedule();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    clearTimeout(this.retryTimer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped || this.scheduled || this.running) return;
    this.scheduled = true;
    // One write wakes several table watches at once; their answers arrive in the same turn of the
    // event loop, and running on the next one lets one sweep serve them all.
    setImmediate(() => {
      this.scheduled = false;
      if (this.stopped || this.running) return;
      this.running = this.run().finally(() => {
        this.running = undefined;
        if (this.hasDueWork()) this.schedule();
        else this.armRetry();
      });
    });
  }

  /** Services waiting for a probe or a fetch (those in backoff included) or being queried now. */
  queued(): number {
    let count = this.active;
    for (const service of this.services.values()) if (service.dirty || service.needsFetch) count++;
    return count;
  }

  private isDue(service: WatchedService, now: number): boolean {
    return (service.dirty || service.needsFetch) && service.retryAt <= now;
  }

  private hasDueWork(): boolean {
    const now = Date.now();
    for (const service of this.services.values()) if (this.isDue(service, now)) return true;
    return false;
  }

  /** Failed services are retried on their own backoff, not on the next catalog change. */
  private armRetry(): void {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    let earliest = Infinity;
    for (const service of this.services.values()) if (service.needsFetch) earliest = Math.min(earliest, service.retryAt);
    if (earliest === Infinity) return;
    this.retryTimer = setTimeout(() => this.schedule(), Math.max(0, earliest - Date.now()));
  }

  private async run(): Promise<void> {
    while (!this.stopped && this.hasDueWork()) {
      let now = Date.now();
      // A service in backoff waits for its retry even when the catalog changes, so one failing
      // service is not asked at the pace of the whole catalog's changes.
      let targets = [...this.services.values()].filter((service) => this.isDue(service, now));
      // A pass costs its share of a full sweep: one that re-probes the few services a second
      // wake caught mid-sweep, or retries one failed service, does not hold up the next change.
      if (!(await this.bucket.take(this.abort.signal, targets.length / this.services.size))) return;
      if (Date.now() !== now) {
        now = Date.now();
        targets = [...this.services.values()].filter((service) => this.isDue(service, now));
      }
      // Most recently changed first: a rolling deploy changes one service again and again, and
      // its next change is then found at the start of the sweep instead of anywhere in it.
      targets.sort((a, b) => b.changedAt - a.changedAt);
      this.sweeps++;
      let next = 0;
      const worker = async (): Promise<void> => {
        while (!this.stopped && next < targets.length) {
          const service = targets[next++]!;
          // Cleared before asking: a change noticed while the probe is out marks it again.
          service.dirty = false;
          this.active++;
          try {
            await this.refresh(service);
          } finally {
            this.active--;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.settings.concurrency, targets.length) }, worker));
      if (this.stopped) return;
      this.settings.onSweep();
    }
  }

  private request(service: WatchedService, probe: boolean): Promise<QueryResult> {
    if (probe) this.probes++;
    else this.fetches++;
    // Aborting on stop cancels every request in flight.
    return this.settings.query(service.name, probe, this.abort.signal);
  }

  private async refresh(service: WatchedService): Promise<void> {
    const { logger } = this.settings;
    const current = () => !this.stopped && this.services.get(service.name) === service;
    try {
      if (!service.needsFetch) {
        const probe = await this.request(service, true);
        if (!current() || probe.index === service.index) return;
      }
      const result = await this.request(service, false);
      if (!current()) return;
      this.settings.apply(service.name, result.body);
      if (result.index < service.index) {
        this.resets++;
        // After a snapshot restore every service goes back; the table watch already said so at info.
        logger.debug({ watch: service.name, previous: service.index.toString(), index: result.index.toString() }, 'consul index went backwards');
      }
      if (service.succeeded) service.changedAt = Date.now();
      service.index = result.index > 0n ? result.index : 1n;
      service.filteredByAcls = result.filteredByAcls;
      service.needsFetch = false;
      service.succeeded = true;
      service.attempt = 0;
      service.retryAt = 0;
      if (service.lastError !== undefined) logger.info({ watch: service.name }, 'consul query recovered');
      service.lastError = undefined;
    } catch (error) {
      if (!current()) return;
      service.attempt++;
      service.needsFetch = true;
      const description = describeConsulError(error);
      const delayMs = backoffDelayMs(service.attempt, this.settings.backoffBaseMs, this.settings.backoffMaxMs);
      service.retryAt = Date.now() + delayMs;
      // An outage repeats the same error every retry; say it once at warn, then at debug.
      const level = description === service.lastError ? 'debug' : 'warn';
      logger[level]({ watch: service.name, error: description, attempt: service.attempt, retryInMs: delayMs }, 'consul query failed; keeping the last good view');
      service.lastError = description;
      this.settings.onError();
    }
  }
}
