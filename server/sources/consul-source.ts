// Services from the Consul catalog: one blocking watch on the service list and one long poll per
// watched service on /v1/health/service/:name, mapped to the mesh's Service model.
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import Consul from 'consul';
import { z } from 'zod';
import type { Logger } from '../../lib/log';
import type { Endpoint, PortProtocol, Service } from '../registry/service';
import type { RegistrySource, SourceStatus } from './source';

/** Which Consul services join the mesh. Both conditions must hold when both are given. */
export interface ConsulServiceFilter {
  /** Only instances carrying this tag (e.g. `mesh`); services with no such instance are not watched. */
  tag?: string;
  /** Only instances whose Service Meta has all these key=value pairs. */
  meta?: Record<string, string>;
}

export interface ConsulSourceOptions {
  /** `host:port` (default port 8500) or a URL (`https://consul.example:8501`). */
  address: string;
  /** Overrides the URL's scheme; `https` for a `host:port` address. */
  scheme?: 'http' | 'https';
  /** PEM files for HTTPS: the CA that signed Consul's certificate, and a client certificate when Consul verifies clients. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string; serverName?: string };
  /** ACL token, sent as X-Consul-Token; needs service:read (and node:read) on the watched services. */
  token?: string;
  datacenter?: string;
  /** Default: every service except `consul` (Consul's own servers). */
  filter?: ConsulServiceFilter;
  /** Only instances whose checks all pass become endpoints (default true); otherwise critical ones are marked unhealthy. */
  passingOnly?: boolean;
  /** Namespace the services are put in (default `default`). */
  namespace?: string;
  logger: Logger;
  /** Blocking-query wait sent to Consul (default 60 s). */
  waitMs?: number;
  /** Error backoff: exponential with full jitter, from baseMs up to maxMs (defaults 250 ms, 30 s). */
  backoff?: { baseMs?: number; maxMs?: number };
  /**
   * Per-watch token bucket, as Consul's blocking-query guidance asks: quick successive updates go
   * through, a churning service degrades to one query per intervalMs (defaults: burst 2, 1 s).
   */
  rateLimit?: { burst?: number; intervalMs?: number };
  /** Connections to Consul at most (default 150; Consul allows 200 per client IP by default). */
  maxConnections?: number;
}

const catalogSchema = z.record(z.string(), z.array(z.string()).nullable());

const stringMap = z.record(z.string(), z.string()).nullish();

const healthEntrySchema = z.object({
  Node: z.object({
    Node: z.string(),
    Address: z.string(),
    Datacenter: z.string().nullish(),
    Meta: stringMap,
  }),
  Service: z.object({
    ID: z.string(),
    Service: z.string(),
    Tags: z.array(z.string()).nullish(),
    Address: z.string().nullish(),
    Port: z.number().int().min(0).max(65535),
    Meta: stringMap,
    Weights: z.object({ Passing: z.number().optional(), Warning: z.number().optional() }).nullish(),
  }),
  Checks: z.array(z.object({ CheckID: z.string(), Status: z.string() })).nullish(),
});

const healthSchema = z.array(healthEntrySchema);

export type ConsulHealthEntry = z.infer<typeof healthEntrySchema>;

export interface ConsulMappingOptions {
  namespace: string;
  datacenter?: string;
  passingOnly: boolean;
  filter: ConsulServiceFilter;
}

/** Consul's `protocol` convention (service-defaults, Meta) to the mesh's port protocols. */
const PROTOCOLS: Record<string, PortProtocol> = {
  http: 'HTTP', http2: 'HTTP2', grpc: 'GRPC', tcp: 'TCP',
  https: 'HTTPS', tls: 'TLS', 'grpc-web': 'GRPC-WEB', mongo: 'MONGO', redis: 'REDIS', mysql: 'MYSQL', udp: 'UDP',
};

/** The service name Consul gives its own servers; never a mesh service. */
const CONSUL_SERVICE = 'consul';

function tagValues(tags: readonly string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const tag of tags) {
    const at = tag.indexOf('=');
    if (at > 0) values[tag.slice(0, at)] = tag.slice(at + 1);
  }
  return values;
}

/** The most frequent value; ties go to the one that sorts first. */
function mostCommon<T extends string | number>(values: readonly T[]): T | undefined {
  const counts = new Map<T, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  let best: T | undefined;
  let bestCount = 0;
  for (const [value, count] of counts) {
    if (count > bestCount || (count === bestCount && best !== undefined && value < best)) {
      best = value;
      bestCount = count;
    }
  }
  return best;
}

function instanceMatches(entry: ConsulHealthEntry, filter: ConsulServiceFilter): boolean {
  if (filter.tag !== undefined && !(entry.Service.Tags ?? []).includes(filter.tag)) return false;
  for (const [key, value] of Object.entries(filter.meta ?? {})) {
    if (entry.Service.Meta?.[key] !== value) return false;
  }
  return true;
}

/** Aggregate health as Consul computes it: critical wins over warning wins over passing. */
function aggregateStatus(entry: ConsulHealthEntry): 'passing' | 'warning' | 'critical' {
  const statuses = (entry.Checks ?? []).map((check) => check.Status);
  if (statuses.every((status) => status === 'passing')) return 'passing';
  if (statuses.every((status) => status === 'passing' || status === 'warning')) return 'warning';
  return 'critical';
}

/**
 * Maps one Consul service's health entries to a mesh Service, or undefined when no instance passes
 * the filter. The port and protocol come from every matching instance, healthy or not, so that an
 * outage does not change the service's shape; endpoints follow passingOnly.
 */
export function toMeshService(name: string, entries: readonly ConsulHealthEntry[], options: ConsulMappingOptions): Service | undefined {
  const matching = entries.filter((entry) => instanceMatches(entry, options.filter));
  if (matching.length === 0) return undefined;
  const declared = matching
    .map((entry) => (entry.Service.Meta?.protocol ?? tagValues(entry.Service.Tags ?? []).protocol)?.toLowerCase())
    .filter((value): value is string => value !== undefined && value !== '');
  const protocol = PROTOCOLS[mostCommon(declared) ?? ''] ?? 'UNSPECIFIED';
  const portName = protocol.toLowerCase();
  const portNumber = mostCommon(matching.map((entry) => entry.Service.Port))!;
  const datacenter = options.datacenter ?? matching.find((entry) => entry.Node.Datacenter)?.Node.Datacenter ?? undefined;

  const endpoints: Endpoint[] = [];
  for (const entry of matching) {
    const status = aggregateStatus(entry);
    if (options.passingOnly && status !== 'passing') continue;
    const meta = entry.Service.Meta ?? {};
    const nodeMeta = entry.Node.Meta ?? {};
    // Meta is the explicit channel; key=value tags are the older convention and yield to it.
    const labels = { ...tagValues(entry.Service.Tags ?? []), ...meta };
    const weights = entry.Service.Weights ?? {};
    const weight = status === 'warning' ? weights.Warning ?? 1 : weights.Passing ?? 1;
    endpoints.push({
      address: entry.Service.Address || entry.Node.Address,
      ports: { [portName]: entry.Service.Port },
      labels,
      node: entry.Node.Node,
      healthy: status !== 'critical',
      locality: {
        region: entry.Node.Datacenter ?? datacenter ?? '',
        zone: meta.zone ?? nodeMeta.zone ?? '',
        subzone: meta.subzone ?? nodeMeta.subzone ?? '',
      },
      weight: Math.max(1, Math.floor(weight)),
      serviceAccount: meta['service-account'] ?? name,
    });
  }
  endpoints.sort((a, b) => a.address.localeCompare(b.address) || (a.ports[portName]! - b.ports[portName]!) || (a.node ?? '').localeCompare(b.node ?? ''));

  return {
    hostname: `${name}.service.consul`,
    namespace: options.namespace,
    aliases: datacenter ? [name, `${name}.service.${datacenter}.consul`] : [name],
    addresses: [],
    ports: [{ name: portName, number: portNumber, protocol }],
    resolution: 'STATIC',
    location: 'MESH_INTERNAL',
    endpoints,
    source: 'consul',
    exportTo: ['*'],
    subjectAltNames: [],
  };
}

/** What an error from the Consul client means, in words an operator can act on. */
export function describeConsulError(error: unknown): string {
  if (error instanceof z.ZodError) {
    const issue = error.issues[0];
    return `unexpected response body: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : error.message}`;
  }
  if (!(error instanceof Error)) return String(error);
  const detail = error as Error & {
    code?: string; syscall?: string; isResponse?: boolean; isCodec?: boolean; isTimeout?: boolean;
    response?: { statusCode?: number; body?: unknown };
  };
  // The client prefixes messages with `consul: <call>: `; the detail already says it is Consul.
  const message = error.message.replace(/^consul: [\w.]+: /, '');
  if (detail.isResponse && detail.response?.statusCode !== undefined) {
    const body = typeof detail.response.body === 'string' && detail.response.body.trim() !== '' ? detail.response.body.trim() : message;
    const status = detail.response.statusCode;
    let hint = '';
    if (status === 403 && body.includes('ACL not found')) hint = ' (the ACL token is not known to Consul)';
    else if (status === 403) hint = ' (the ACL token lacks a permission)';
    return `HTTP ${status} ${body}${hint}`;
  }
  if (detail.syscall && detail.code) return `${detail.syscall} ${detail.code}`;
  if (detail.isCodec) return `invalid JSON in the response: ${message.replace(/^decode \(application\/json\) failed: /, '')}`;
  if (detail.isTimeout) return `no response within the request timeout (${message})`;
  if (detail.code) return `${message} (${detail.code})`;
  return message;
}

/**
 * Options every call of the client takes (its README: index, wait, ctx, timeout) but its typings
 * leave out; passed as a typed variable rather than a literal so the declared options still apply.
 */
interface BlockingCallOptions {
  index: string;
  wait: string;
  /** Emitting `cancel` aborts the request; `includeResponse` makes the call resolve [response, body]. */
  ctx: EventEmitter;
  timeout: number;
}

interface QueryResult {
  body: unknown;
  /** X-Consul-Index, 0 when missing or unparsable. */
  index: bigint;
  filteredByAcls: boolean;
}

/** The client resolves `[response, body]` when its ctx has includeResponse set. */
function unpack(result: unknown): QueryResult {
  if (!Array.isArray(result) || !(result[0] instanceof http.IncomingMessage)) {
    throw new Error('the Consul client returned no HTTP response');
  }
  const response = result[0];
  const header = response.headers['x-consul-index'];
  return {
    body: result[1],
    index: typeof header === 'string' && /^\d+$/.test(header) ? BigInt(header) : 0n,
    filteredByAcls: response.headers['x-consul-results-filtered-by-acls'] === 'true',
  };
}

class TokenBucket {
  private tokens: number;
  private last = Date.now();
  constructor(private readonly burst: number, private readonly intervalMs: number) {
    this.tokens = burst;
  }

  /** Resolves when a token is taken; false when aborted first. */
  async take(signal: AbortSignal): Promise<boolean> {
    for (;;) {
      const now = Date.now();
      this.tokens = Math.min(this.burst, this.tokens + (now - this.last) / this.intervalMs);
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return true;
      }
      try {
        await sleep(Math.ceil((1 - this.tokens) * this.intervalMs), undefined, { signal });
      } catch {
        return false;
      }
    }
  }
}

interface LoopSettings {
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
class BlockingLoop {
  index = 0n;
  lastError?: string;
  succeeded = false;
  filteredByAcls = false;
  private readonly abort = new AbortController();
  private restartRequested = false;
  private ctx?: EventEmitter;
  private running?: Promise<void>;
  private readonly bucket: TokenBucket;

  constructor(
    readonly label: string,
    private readonly settings: LoopSettings,
    private readonly query: (index: bigint, ctx: EventEmitter, timeoutMs: number) => Promise<unknown>,
    private readonly apply: (body: unknown) => void,
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
        const result = unpack(await this.query(attempt > 0 ? 0n : this.index, ctx, timeoutMs));
        if (this.stopped) return;
        this.apply(result.body);
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
        const delayMs = Math.round(Math.random() * Math.min(this.settings.backoffMaxMs, this.settings.backoffBaseMs * 2 ** attempt));
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

function parseAddress(address: string, scheme: 'http' | 'https' | undefined): { baseUrl: string; display: string } {
  const url = new URL(address.includes('://') ? address : `${scheme ?? 'http'}://${address}`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`consul address ${address}: the scheme must be http or https`);
  const protocol = scheme ? `${scheme}:` : url.protocol;
  const port = url.port || (address.includes('://') ? (protocol === 'https:' ? '443' : '80') : '8500');
  const display = `${url.hostname.includes(':') && !url.hostname.startsWith('[') ? `[${url.hostname}]` : url.hostname}:${port}`;
  const path = url.pathname.replace(/\/+$/, '');
  return { baseUrl: `${protocol}//${display}${path}/v1`, display };
}

export class ConsulSource implements RegistrySource {
  readonly name = 'consul';
  private readonly consul: Consul;
  private readonly agent: http.Agent;
  private readonly display: string;
  private readonly logger: Logger;
  private readonly mapping: ConsulMappingOptions;
  private readonly settings: LoopSettings;
  private readonly catalog: BlockingLoop;
  private readonly watches = new Map<string, BlockingLoop>();
  private readonly stopping = new Set<Promise<void>>();
  private readonly view = new Map<string, { service: Service; json: string }>();
  private readonly listeners: Array<() => void> = [];
  private readonly healthQuery: (name: string, index: bigint, ctx: EventEmitter, timeoutMs: number) => Promise<unknown>;
  private snapshot: readonly Service[] = [];
  private ready = false;
  private started = false;
  private errors = 0;
  private resets = 0;

  constructor(options: ConsulSourceOptions) {
    const { baseUrl, display } = parseAddress(options.address, options.scheme);
    this.display = display;
    this.logger = options.logger.child({ source: 'consul', consul: display });
    const secure = baseUrl.startsWith('https:');
    const maxSockets = options.maxConnections ?? 150;
    this.agent = secure ? new https.Agent({ keepAlive: true, maxSockets }) : new http.Agent({ keepAlive: true, maxSockets });
    // Read the TLS files now: a wrong path is a configuration error to report at startup, not an outage.
    const tls = options.tls ?? {};
    const clientOptions = {
      baseUrl,
      agent: this.agent,
      defaults: { token: options.token },
      ca: tls.caFile ? readFileSync(tls.caFile) : undefined,
      cert: tls.certFile ? readFileSync(tls.certFile) : undefined,
      key: tls.keyFile ? readFileSync(tls.keyFile) : undefined,
      servername: tls.serverName,
    };
    this.consul = new Consul(clientOptions);
    this.mapping = {
      namespace: options.namespace ?? 'default',
      datacenter: options.datacenter,
      passingOnly: options.passingOnly ?? true,
      filter: options.filter ?? {},
    };
    const waitMs = options.waitMs ?? 60_000;
    this.settings = {
      logger: this.logger,
      waitMs,
      backoffBaseMs: options.backoff?.baseMs ?? 250,
      backoffMaxMs: options.backoff?.maxMs ?? 30_000,
      burst: options.rateLimit?.burst ?? 2,
      intervalMs: options.rateLimit?.intervalMs ?? 1000,
      onError: () => { this.errors++; },
      onReset: (loop, index) => this.onIndexReset(loop, index),
    };
    const wait = `${waitMs}ms`;
    this.catalog = new BlockingLoop(
      'catalog',
      this.settings,
      (index, ctx, timeout) => {
        const call: BlockingCallOptions & { dc?: string } = { dc: options.datacenter, index: index.toString(), wait, ctx, timeout };
        return this.consul.catalog.service.list(call);
      },
      (body) => this.applyCatalog(catalogSchema.parse(body)),
      () => this.checkReady(),
    );
    // Each query asks for every instance: passingOnly is applied here, so that a service whose
    // instances all fail stays known (with no endpoints) instead of vanishing from the mesh.
    this.healthQuery = (name, index, ctx, timeout) => {
      const call: BlockingCallOptions & { service: string; dc?: string } = { service: name, dc: options.datacenter, index: index.toString(), wait, ctx, timeout };
      return this.consul.health.service(call);
    };
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.catalog.start();
  }

  async stop(): Promise<void> {
    const loops = [this.catalog.stop(), ...[...this.watches.values()].map((watch) => watch.stop()), ...this.stopping];
    this.watches.clear();
    await Promise.all(loops);
    this.agent.destroy();
  }

  services(): readonly Service[] {
    return this.snapshot;
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  status(): SourceStatus {
    const stats: Record<string, number | string> = {
      watchedServices: this.watches.size,
      services: this.view.size,
      errors: this.errors,
      lastIndex: Number(this.catalog.index),
      indexResets: this.resets,
    };
    const prefix = `consul ${this.display}`;
    const problem = this.firstProblem();
    if (!this.ready) {
      let detail: string;
      if (problem) detail = `${prefix}: ${problem}`;
      else if (!this.catalog.succeeded) detail = `${prefix}: waiting for the service list`;
      else {
        const pending = [...this.watches.values()].filter((watch) => !watch.succeeded).map((watch) => watch.label);
        detail = `${prefix}: waiting for the first health query of ${pending.length} service(s): ${pending.slice(0, 5).join(', ')}${pending.length > 5 ? ', ...' : ''}`;
      }
      return { ready: false, detail, stats };
    }
    if (problem) return { ready: true, detail: `${prefix}: ${problem}; serving the last good view`, stats };
    const filtered = this.catalog.filteredByAcls || [...this.watches.values()].some((watch) => watch.filteredByAcls);
    if (filtered) {
      return { ready: true, detail: `${prefix}: results filtered by ACLs: the token lacks service:read (or node:read) on some services`, stats };
    }
    return { ready: true, stats };
  }

  private firstProblem(): string | undefined {
    if (this.catalog.lastError !== undefined) return `service list: ${this.catalog.lastError}`;
    const failing = [...this.watches.values()].filter((watch) => watch.lastError !== undefined).sort((a, b) => a.label.localeCompare(b.label));
    if (failing.length === 0) return undefined;
    const more = failing.length > 1 ? ` (and ${failing.length - 1} more service(s) failing)` : '';
    return `service ${failing[0]!.label}: ${failing[0]!.lastError}${more}`;
  }

  private applyCatalog(catalog: Record<string, string[] | null>): void {
    const tag = this.mapping.filter.tag;
    const wanted = new Set(Object.entries(catalog)
      .filter(([name, tags]) => name !== CONSUL_SERVICE && (tag === undefined || (tags ?? []).includes(tag)))
      .map(([name]) => name));
    let changed = false;
    for (const [name, watch] of this.watches) {
      if (wanted.has(name)) continue;
      this.watches.delete(name);
      const stopped = watch.stop();
      this.stopping.add(stopped);
      void stopped.finally(() => this.stopping.delete(stopped));
      if (this.view.delete(name)) changed = true;
      this.logger.info({ service: name }, 'service left the consul catalog (or the filter); watch dropped');
    }
    for (const name of wanted) {
      if (this.watches.has(name)) continue;
      const watch: BlockingLoop = new BlockingLoop(
        name,
        this.settings,
        (index, ctx, timeout) => this.healthQuery(name, index, ctx, timeout),
        (body) => this.applyHealth(name, watch, healthSchema.parse(body)),
        () => this.checkReady(),
      );
      this.watches.set(name, watch);
      watch.start();
    }
    if (changed) this.rebuild();
  }

  private applyHealth(name: string, watch: BlockingLoop, entries: ConsulHealthEntry[]): void {
    // A response that raced with the watch being dropped must not bring the service back.
    if (this.watches.get(name) !== watch) return;
    const service = toMeshService(name, entries, this.mapping);
    const previous = this.view.get(name);
    if (!service) {
      if (previous) {
        this.view.delete(name);
        this.rebuild();
      }
    } else {
      const json = JSON.stringify(service);
      if (previous?.json !== json) {
        this.view.set(name, { service, json });
        this.rebuild();
      }
    }
  }

  /**
   * The catalog's index is the `services` table's: it going backwards means the servers' state was
   * restored from a snapshot, so every service watch waiting on an index above the restored one
   * would sleep through the wait. Restart those now. A single service's index going backwards
   * resets only that watch, so one odd service does not send every watch back to Consul.
   */
  private onIndexReset(loop: BlockingLoop, index: bigint): void {
    this.resets++;
    if (loop !== this.catalog) return;
    for (const watch of this.watches.values()) {
      if (watch.index > index) watch.restart();
    }
  }

  /** Ready once the service list and the first health query of every watched service have arrived. */
  private checkReady(): void {
    if (this.ready || !this.catalog.succeeded) return;
    if ([...this.watches.values()].some((watch) => !watch.succeeded)) return;
    this.ready = true;
    this.logger.info({ services: this.view.size }, 'consul source ready');
    this.notify();
  }

  private rebuild(): void {
    this.snapshot = Object.freeze([...this.view.values()].map((entry) => entry.service).sort((a, b) => a.hostname.localeCompare(b.hostname)));
    if (this.ready) this.notify();
  }

  private notify(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (error) {
        this.logger.error({ error: error instanceof Error ? error.message : String(error) }, 'consul source change listener threw');
      }
    }
  }
}
