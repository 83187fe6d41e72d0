// Services from the Consul catalog. Three long polls on table-wide indexes — the service list
// (/v1/catalog/services), every check (/v1/health/state/any) and every node (/v1/catalog/nodes) —
// together wake on any write that can change a service's health answer; each wake starts a sweep
// (consul-service-sweep.ts) that probes every watched service's own index and fetches
// /v1/health/service/:name only for those whose index moved. Connections stay bounded (three held
// polls plus the sweep's concurrency) whatever the number of services.
import type { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import Consul from 'consul';
import { z } from 'zod';
import type { Logger } from '../../lib/log';
import type { Service } from '../registry/service';
import { BlockingLoop, type LoopSettings } from './consul-blocking-loop';
import { consulGet, type ConsulEndpoint } from './consul-http-get';
import type { ConsulCallOptions } from './consul-query';
import { ServiceSweep } from './consul-service-sweep';
import { healthSchema, toMeshService, type ConsulHealthEntry, type ConsulMappingOptions, type ConsulServiceFilter } from './consul-service-mapping';
import type { RegistrySource, SourceStatus } from './source';

export { toMeshService, type ConsulHealthEntry, type ConsulMappingOptions, type ConsulServiceFilter } from './consul-service-mapping';
export { describeConsulError } from './consul-query';

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
   * Token bucket per watch (each long poll, and the sweeps as one), as Consul's blocking-query
   * guidance asks: quick successive updates go through, a churning catalog degrades to one query
   * (one sweep) per intervalMs (defaults: burst 2, 1 s).
   */
  rateLimit?: { burst?: number; intervalMs?: number };
  /**
   * Connections to Consul at most (default 150, at least 4; Consul allows 200 per client IP by
   * default): three held long polls, the rest for the sweeps' queries (at most 32 at once).
   */
  maxConnections?: number;
}

const catalogSchema = z.record(z.string(), z.array(z.string()).nullable());

/** The service name Consul gives its own servers; never a mesh service. */
const CONSUL_SERVICE = 'consul';

/** Long polls held at all times: the service list, the checks and the nodes. */
const TABLE_WATCHES = 3;
/** Enough in flight to hide a round trip to a remote Consul; more only adds load on it. */
const MAX_SWEEP_CONCURRENCY = 32;
/** A query that does not block answers at once; past this the connection is dead. */
const QUERY_TIMEOUT_MS = 15_000;

/*
 * Filters no entry can match. The table watches and the probes need only the X-Consul-Index, which
 * Consul computes before filtering (the filter runs on the server, on the query's result): with
 * these the answers carry an empty list instead of every check, node or instance.
 */
const NO_CHECK = 'CheckID == "" and CheckID != ""';
const NO_NODE = 'Node == "" and Node != ""';
const NO_INSTANCE = 'Service.ID == "" and Service.ID != ""';

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
  private readonly tableWatches: BlockingLoop[];
  private readonly sweep: ServiceSweep;
  private readonly view = new Map<string, { service: Service; json: string }>();
  private readonly listeners: Array<() => void> = [];
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
    if (!Number.isInteger(maxSockets) || maxSockets < TABLE_WATCHES + 1) {
      throw new Error(`consul maxConnections ${maxSockets}: at least ${TABLE_WATCHES + 1} are needed (${TABLE_WATCHES} held long polls and one query)`);
    }
    this.agent = secure ? new https.Agent({ keepAlive: true, maxSockets }) : new http.Agent({ keepAlive: true, maxSockets });
    // Read the TLS files now: a wrong path is a configuration error to report at startup, not an outage.
    const tls = options.tls ?? {};
    const tlsMaterial = {
      ca: tls.caFile ? readFileSync(tls.caFile) : undefined,
      cert: tls.certFile ? readFileSync(tls.certFile) : undefined,
      key: tls.keyFile ? readFileSync(tls.keyFile) : undefined,
      servername: tls.serverName,
    };
    // A variable, not a literal: the client takes baseUrl and agent, which its typings leave out.
    const clientOptions = { baseUrl, agent: this.agent, defaults: { token: options.token }, ...tlsMaterial };
    this.consul = new Consul(clientOptions);
    const endpoint: ConsulEndpoint = { baseUrl, agent: this.agent, token: options.token, tls: tlsMaterial };
    this.mapping = {
      namespace: options.namespace ?? 'default',
      datacenter: options.datacenter,
      passingOnly: options.passingOnly ?? true,
      filter: options.filter ?? {},
    };
    const waitMs = options.waitMs ?? 60_000;
    const backoffBaseMs = options.backoff?.baseMs ?? 250;
    const backoffMaxMs = options.backoff?.maxMs ?? 30_000;
    const burst = options.rateLimit?.burst ?? 2;
    const intervalMs = options.rateLimit?.intervalMs ?? 1000;
    this.settings = {
      logger: this.logger,
      waitMs,
      backoffBaseMs,
      backoffMaxMs,
      burst,
      intervalMs,
      onError: () => { this.errors++; },
      onReset: (loop, index) => this.onIndexReset(loop, index),
    };
    const dc = options.datacenter;
    const wait = `${waitMs}ms`;
    const blocking = (index: bigint, ctx: EventEmitter, timeout: number): ConsulCallOptions => ({ dc, index: index.toString(), wait, ctx, timeout });
    this.catalog = new BlockingLoop(
      'catalog',
      this.settings,
      (index, ctx, timeout) => this.consul.catalog.service.list(blocking(index, ctx, timeout)),
      (body, changed) => this.applyCatalog(catalogSchema.parse(body), changed),
      () => this.checkReady(),
    );
    // Index only: these wake on check and node writes, which the service list's index misses.
    const indexOnly = (changed: boolean) => { if (changed) this.sweep.requestFull(); };
    const checks = new BlockingLoop(
      'checks',
      this.settings,
      (index, ctx, timeout) => this.consul.health.state({ state: 'any', filter: NO_CHECK, ...blocking(index, ctx, timeout) }),
      (_body, changed) => indexOnly(changed),
      () => {},
    );
    const nodes = new BlockingLoop(
      'nodes',
      this.settings,
      (index, ctx, timeout) => this.consul.catalog.node.list({ filter: NO_NODE, ...blocking(index, ctx, timeout) }),
      (_body, changed) => indexOnly(changed),
      () => {},
    );
    this.tableWatches = [this.catalog, checks, nodes];
    this.sweep = new ServiceSweep({
      logger: this.logger,
      concurrency: Math.min(MAX_SWEEP_CONCURRENCY, maxSockets - TABLE_WATCHES),
      backoffBaseMs,
      backoffMaxMs,
      burst,
      intervalMs,
      // Each query asks for every instance: passingOnly is applied here, so that a service whose
      // instances all fail stays known (with no endpoints) instead of vanishing from the mesh.
      query: (name, probe, signal) => {
        const query = new URLSearchParams();
        if (dc) query.set('dc', dc);
        if (probe) query.set('filter', NO_INSTANCE);
        return consulGet(endpoint, `/health/service/${encodeURIComponent(name)}`, query, QUERY_TIMEOUT_MS, signal);
      },
      apply: (name, body) => this.applyHealth(name, healthSchema.parse(body)),
      onError: () => { this.errors++; },
      onSweep: () => this.checkReady(),
    });
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    for (const watch of this.tableWatches) watch.start();
  }

  async stop(): Promise<void> {
    await Promise.all([...this.tableWatches.map((watch) => watch.stop()), this.sweep.stop()]);
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
      watchedServices: this.sweep.services.size,
      services: this.view.size,
      errors: this.errors,
      lastIndex: Number(this.catalog.index),
      indexResets: this.resets + this.sweep.resets,
      sweeps: this.sweep.sweeps,
      probes: this.sweep.probes,
      fetches: this.sweep.fetches,
      servicesQueued: this.sweep.queued(),
    };
    const prefix = `consul ${this.display}`;
    const problem = this.firstProblem();
    if (!this.ready) {
      let detail: string;
      if (problem) detail = `${prefix}: ${problem}`;
      else if (!this.catalog.succeeded) detail = `${prefix}: waiting for the service list`;
      else {
        const pending = [...this.sweep.services.values()].filter((service) => !service.succeeded).map((service) => service.name);
        detail = `${prefix}: waiting for the first health query of ${pending.length} service(s): ${pending.slice(0, 5).join(', ')}${pending.length > 5 ? ', ...' : ''}`;
      }
      return { ready: false, detail, stats };
    }
    if (problem) return { ready: true, detail: `${prefix}: ${problem}; serving the last good view`, stats };
    // Only the service list and the health answers: the checks and nodes watches ask for no entries.
    const filtered = this.catalog.filteredByAcls || [...this.sweep.services.values()].some((service) => service.filteredByAcls);
    if (filtered) {
      return { ready: true, detail: `${prefix}: results filtered by ACLs: the token lacks service:read (or node:read) on some services`, stats };
    }
    return { ready: true, stats };
  }

  private firstProblem(): string | undefined {
    const what: Record<string, string> = { catalog: 'service list', checks: 'health checks', nodes: 'node list' };
    const table = this.tableWatches.find((watch) => watch.lastError !== undefined);
    if (table) return `${what[table.label]}: ${table.lastError}`;
    const failing = [...this.sweep.services.values()].filter((service) => service.lastError !== undefined).sort((a, b) => a.name.localeCompare(b.name));
    if (failing.length === 0) return undefined;
    const more = failing.length > 1 ? ` (and ${failing.length - 1} more service(s) failing)` : '';
    return `service ${failing[0]!.name}: ${failing[0]!.lastError}${more}`;
  }

  private applyCatalog(catalog: Record<string, string[] | null>, changed: boolean): void {
    const tag = this.mapping.filter.tag;
    const wanted = new Set(Object.entries(catalog)
      .filter(([name, tags]) => name !== CONSUL_SERVICE && (tag === undefined || (tags ?? []).includes(tag)))
      .map(([name]) => name));
    let removed = false;
    for (const name of this.sweep.services.keys()) {
      if (wanted.has(name)) continue;
      this.sweep.drop(name);
      if (this.view.delete(name)) removed = true;
      this.logger.info({ service: name }, 'service left the consul catalog (or the filter); watch dropped');
    }
    for (const name of wanted) this.sweep.watch(name);
    // The list's index moves on every instance written, also when the list itself stays the same.
    if (changed) this.sweep.requestFull();
    if (removed) this.rebuild();
  }

  private applyHealth(name: string, entries: ConsulHealthEntry[]): void {
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
   * A table's index going backwards means the servers' state was restored from a snapshot: the
   * other table watches may wait on indexes above the restored one and so sleep through the wait.
   * Restart those now; the sweep that follows finds each service whose own index went back.
   */
  private onIndexReset(loop: BlockingLoop, index: bigint): void {
    this.resets++;
    for (const watch of this.tableWatches) {
      if (watch !== loop && watch.index > index) watch.restart();
    }
    this.sweep.requestFull();
  }

  /** Ready once the service list and the first health query of every watched service have arrived. */
  private checkReady(): void {
    if (this.ready || !this.catalog.succeeded) return;
    for (const service of this.sweep.services.values()) if (!service.succeeded) return;
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
