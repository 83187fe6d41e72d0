// A Consul HTTP API simulator for tests: the catalog (services, nodes, service instances), health
// (per service, checks by state), agent-registration and status endpoints the mesh uses, with
// Consul's blocking-query, ACL and error behaviour, plus a test-control API.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import {
  CatalogState, SERF_HEALTH,
  type CheckRecord, type CheckSpec, type CheckStatus, type InstanceRecord, type InstanceSpec, type NodeRecord,
} from './catalog-state';
import { compileFilter, FilterSyntaxError } from './filter-expression';

export type { CheckStatus } from './catalog-state';

/** An ACL token: service rules are name prefixes ('' matches every service), as `service_prefix`. */
export interface SimulatorToken {
  secretId: string;
  accessorId?: string;
  /** A management token may do anything. */
  management?: boolean;
  serviceRead?: string[];
  /** Write implies read, as in Consul's policy language. */
  serviceWrite?: string[];
}

export interface SimulatorAcl {
  /** What the anonymous token (a request without a token) may do: everything, or nothing. */
  defaultPolicy: 'allow' | 'deny';
  tokens: SimulatorToken[];
}

export interface SimulatorOptions {
  datacenter?: string;
  /** The node of the agent answering HTTP: agent registrations land here. */
  nodeName?: string;
  nodeAddress?: string;
  acl?: SimulatorAcl;
  /** Serve HTTPS with these PEM materials; `ca` plus `requestCert` demands client certificates. */
  tls?: { key: string | Buffer; cert: string | Buffer; ca?: string | Buffer; requestCert?: boolean };
  /** Register the `consul` service on the server node, as every Consul server does. */
  registerConsulService?: boolean;
  /** Consul adds up to wait/16 of random extra wait; tests of exact timing may turn it off. */
  jitter?: boolean;
}

export interface InstanceRegistration extends InstanceSpec {
  node: string;
  /** Address of the node, needed when the node is new. */
  nodeAddress?: string;
  nodeDatacenter?: string;
  nodeMeta?: Record<string, string>;
  checks?: CheckSpec[];
}

export type FailureKind = '500' | 'garbage';

export interface HeldRequest {
  path: string;
  minIndex: number;
  /** When the query started to be held, in ms since the epoch. */
  heldSince: number;
  /** When the wait (capped at 10 minutes, plus jitter) elapses, in ms since the epoch. */
  deadline: number;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: string;
  status?: number;
}

/** Consul's limits on `wait`: at most 10 minutes, 5 minutes when not given. */
export const MAX_QUERY_TIME_MS = 10 * 60_000;
export const DEFAULT_QUERY_TIME_MS = 5 * 60_000;
const JITTER_FRACTION = 16;

interface Waiter {
  path: string;
  minIndex: number;
  heldSince: number;
  deadline: number;
  currentIndex: () => number;
  finish: () => void;
  cancel: () => void;
}

interface PendingFailure { kind: FailureKind; pathPrefix: string; remaining: number }

interface Reply { status: number; body: unknown; headers?: Record<string, string> }

type Principal = { kind: 'management' } | { kind: 'anonymous' } | { kind: 'token'; token: SimulatorToken };

class HttpError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

/** Go's time.ParseDuration for the units Consul clients send. */
function parseGoDuration(text: string): number | undefined {
  if (text === '0') return 0;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const pattern = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let total = 0;
  let position = 0;
  while (position < text.length) {
    pattern.lastIndex = position;
    const match = pattern.exec(text);
    if (!match) return undefined;
    total += Number(match[1]) * units[match[2]!]!;
    position = pattern.lastIndex;
  }
  return position > 0 ? total : undefined;
}

/** `?passing`, `?passing=true`, `?passing=1` are true; `?passing=false` is false, as Consul parses it. */
function flag(query: URLSearchParams, name: string): boolean {
  if (!query.has(name)) return false;
  const value = query.get(name)!.toLowerCase();
  if (value === '') return true;
  if (['1', 't', 'true'].includes(value)) return true;
  if (['0', 'f', 'false'].includes(value)) return false;
  throw new HttpError(400, `Invalid value for ${name}: ${value}`);
}

function lowerKeys(value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return {};
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.toLowerCase(), v]));
}

function stringArray(value: unknown, field: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw new HttpError(400, `Request decode failed: ${field} must be a list of strings`);
  return value as string[];
}

function stringMap(value: unknown, field: string): Record<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value) || Object.values(value).some((v) => typeof v !== 'string')) {
    throw new HttpError(400, `Request decode failed: ${field} must be a map of strings`);
  }
  return value as Record<string, string>;
}

function checkStatus(value: unknown): CheckStatus | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (value === 'passing' || value === 'warning' || value === 'critical') return value;
  throw new HttpError(400, `Invalid check status: "${String(value)}"`);
}

export class ConsulSimulator {
  readonly state: CatalogState;
  readonly datacenter: string;
  readonly nodeName: string;
  readonly nodeAddress: string;
  /** Every request seen, in arrival order. */
  readonly requests: RequestRecord[] = [];

  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly waiters = new Set<Waiter>();
  private readonly inFlight = new Map<string, number>();
  private readonly maxInFlight = new Map<string, number>();
  private readonly failures: PendingFailure[] = [];
  private readonly acl?: SimulatorAcl;
  private readonly jitter: boolean;
  private boundPort = 0;
  private listening = false;
  private peakConnections = 0;

  private constructor(options: SimulatorOptions) {
    this.datacenter = options.datacenter ?? 'dc1';
    this.nodeName = options.nodeName ?? 'consul-server-1';
    this.nodeAddress = options.nodeAddress ?? '127.0.0.1';
    this.acl = options.acl;
    this.jitter = options.jitter ?? true;
    this.state = new CatalogState(this.datacenter);
    this.state.ensureNode({ name: this.nodeName, address: this.nodeAddress });
    if (options.registerConsulService ?? true) {
      this.state.registerInstance({ name: this.nodeName, address: this.nodeAddress }, { id: 'consul', name: 'consul', port: 8300 }, []);
    }
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => this.handle(req, res);
    this.server = options.tls
      ? https.createServer({ key: options.tls.key, cert: options.tls.cert, ca: options.tls.ca, requestCert: options.tls.requestCert ?? false, rejectUnauthorized: options.tls.requestCert ?? false }, handler)
      : http.createServer(handler);
    // Long polls outlive Node's default request timeouts; Consul holds them for up to 10 minutes.
    this.server.requestTimeout = 0;
    this.server.headersTimeout = 60_000;
    this.server.keepAliveTimeout = 30_000;
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      this.peakConnections = Math.max(this.peakConnections, this.sockets.size);
      socket.on('close', () => this.sockets.delete(socket));
    });
    this.state.onCommit((kind) => this.wake(kind));
  }

  /** Starts a simulator listening on 127.0.0.1 on an ephemeral port. */
  static async start(options: SimulatorOptions = {}): Promise<ConsulSimulator> {
    const simulator = new ConsulSimulator(options);
    await simulator.startListening();
    return simulator;
  }

  get port(): number { return this.boundPort; }
  /** `127.0.0.1:PORT`, the form Consul's CONSUL_HTTP_ADDR takes. */
  get address(): string { return `127.0.0.1:${this.boundPort}`; }
  get isListening(): boolean { return this.listening; }

  /** Listens again (on the same port once one was assigned): Consul coming back. */
  async startListening(): Promise<void> {
    if (this.listening) return;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.server.once('error', onError);
      this.server.listen(this.boundPort, '127.0.0.1', () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.boundPort = (this.server.address() as AddressInfo).port;
    this.listening = true;
  }

  /** Consul going down: stops accepting and drops every open connection, held long polls included. */
  async stopListening(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const waiter of [...this.waiters]) waiter.cancel();
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  /** Stops for good (same as stopListening; named for t.teardown). */
  async close(): Promise<void> {
    await this.stopListening();
  }

  // ---- test control ----------------------------------------------------------------------------

  /** Registers a node (an agent) with its address; a new node gets a passing serfHealth check. */
  registerNode(name: string, address: string, options: { datacenter?: string; meta?: Record<string, string> } = {}): NodeRecord {
    return this.state.ensureNode({ name, address, datacenter: options.datacenter, meta: options.meta });
  }

  /** Registers an instance on a named node (created when new); returns its service ID. */
  registerInstance(registration: InstanceRegistration): string {
    const existing = this.state.nodes.get(registration.node);
    const address = registration.nodeAddress ?? existing?.address;
    if (address === undefined) throw new Error(`node ${registration.node} is new: give its nodeAddress`);
    const instance = this.state.registerInstance(
      { name: registration.node, address, datacenter: registration.nodeDatacenter, meta: registration.nodeMeta },
      registration,
      registration.checks ?? [],
    );
    return instance.id;
  }

  deregisterInstance(node: string, serviceId: string): void {
    if (!this.state.deregisterInstance(node, serviceId)) throw new Error(`no instance ${serviceId} on node ${node}`);
  }

  /** Sets a check's status; `node` disambiguates check IDs used on several nodes. */
  setCheckStatus(checkId: string, status: CheckStatus, node?: string): void {
    const check = this.state.findCheck(checkId, node);
    if (!check) throw new Error(`no check ${checkId}${node ? ` on node ${node}` : ''}`);
    this.state.updateCheck(check, status);
  }

  /** Sets a node's serfHealth, which counts for every instance on that node. */
  setNodeHealth(node: string, status: CheckStatus): void {
    this.setCheckStatus(SERF_HEALTH, status, node);
  }

  /** Simulates a snapshot restore: the index goes backwards (default: to half of what it was). */
  raftReset(toIndex?: number): number {
    const target = toIndex ?? Math.max(1, Math.floor(this.state.raftIndex / 2));
    this.state.restore(target);
    return target;
  }

  get raftIndex(): number { return this.state.raftIndex; }

  /**
   * Makes the next `count` responses to paths starting with `pathPrefix` fail: a 500 as Consul sends
   * when it has no leader, or a 200 whose JSON body is cut short. Held long polls fail when they end.
   */
  failNext(count: number, kind: FailureKind, pathPrefix = '/v1/'): void {
    this.failures.push({ kind, pathPrefix, remaining: count });
  }

  clearFailures(): void {
    this.failures.length = 0;
  }

  /** Requests currently held by a blocking query, optionally only those for one path. */
  held(path?: string): HeldRequest[] {
    return [...this.waiters]
      .filter((waiter) => path === undefined || waiter.path === path)
      .map(({ path: p, minIndex, heldSince, deadline }) => ({ path: p, minIndex, heldSince, deadline }));
  }

  /** Requests for a path being served right now (held or not). */
  inFlightCount(path: string): number { return this.inFlight.get(path) ?? 0; }

  /** The most requests for a path that were ever served at the same time. */
  maxInFlightCount(path: string): number { return this.maxInFlight.get(path) ?? 0; }

  /** Client connections open now. */
  get connectionCount(): number { return this.sockets.size; }

  /** The most client connections that were open at the same time (Consul limits them per client IP). */
  get peakConnectionCount(): number { return this.peakConnections; }

  requestCount(path: string): number {
    return this.requests.filter((request) => request.path === path).length;
  }

  /** Forgets request history and concurrency peaks (not the requests and connections still open). */
  resetRequestStats(): void {
    this.requests.length = 0;
    this.peakConnections = this.sockets.size;
    this.maxInFlight.clear();
    for (const [path, count] of this.inFlight) if (count > 0) this.maxInFlight.set(path, count);
  }

  // ---- HTTP ------------------------------------------------------------------------------------

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://consul');
    const path = url.pathname;
    const record: RequestRecord = { method: req.method ?? 'GET', path, query: url.searchParams.toString() };
    this.requests.push(record);
    this.inFlight.set(path, (this.inFlight.get(path) ?? 0) + 1);
    this.maxInFlight.set(path, Math.max(this.maxInFlight.get(path) ?? 0, this.inFlight.get(path)!));
    let counted = true;
    const release = () => {
      if (!counted) return;
      counted = false;
      this.inFlight.set(path, this.inFlight.get(path)! - 1);
    };
    res.on('close', release);

    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      try {
        this.route(req.method ?? 'GET', path, url.searchParams, req, Buffer.concat(chunks), res, record);
      } catch (error) {
        const status = error instanceof HttpError ? error.status : 500;
        this.send(res, record, { status, body: error instanceof Error ? error.message : String(error) });
      }
    });
  }

  private route(method: string, path: string, query: URLSearchParams, req: http.IncomingMessage, body: Buffer, res: http.ServerResponse, record: RequestRecord): void {
    const read = (handler: () => void) => {
      if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `method ${method} not allowed`);
      handler();
    };
    const write = (handler: () => void) => {
      if (method !== 'PUT') throw new HttpError(405, `method ${method} not allowed`);
      handler();
    };
    let match: RegExpExecArray | null;
    if (path === '/v1/status/leader') {
      return read(() => this.send(res, record, { status: 200, body: `${this.nodeAddress}:8300` }));
    }
    if (path === '/v1/status/peers') {
      return read(() => this.send(res, record, { status: 200, body: [`${this.nodeAddress}:8300`] }));
    }
    const principal = this.authenticate(req, query);
    if (path === '/v1/catalog/services') {
      return read(() => this.blocking(res, record, query, () => this.state.catalogIndex(), () => this.catalogServices(principal, query)));
    }
    if (path === '/v1/catalog/nodes') {
      return read(() => this.blocking(res, record, query, () => this.state.nodesTableIndex(), () => this.catalogNodes(principal, query)));
    }
    if ((match = /^\/v1\/health\/state\/([^/]*)$/.exec(path))) {
      const state = decodeURIComponent(match[1]!);
      if (state === '') throw new HttpError(400, 'Missing check state');
      return read(() => this.blocking(res, record, query, () => this.state.checksTableIndex(), () => this.healthState(principal, state, query)));
    }
    if ((match = /^\/v1\/catalog\/service\/([^/]+)$/.exec(path))) {
      const name = decodeURIComponent(match[1]!);
      return read(() => this.blocking(res, record, query, () => this.state.serviceIndex(name), () => this.catalogService(principal, name, query)));
    }
    if ((match = /^\/v1\/health\/service\/([^/]+)$/.exec(path))) {
      const name = decodeURIComponent(match[1]!);
      return read(() => this.blocking(res, record, query, () => this.state.serviceIndex(name), () => this.healthService(principal, name, query)));
    }
    if (path === '/v1/agent/service/register') {
      return write(() => this.agentRegister(principal, body, query, res, record));
    }
    if ((match = /^\/v1\/agent\/service\/deregister\/([^/]+)$/.exec(path))) {
      const id = decodeURIComponent(match[1]!);
      return write(() => this.agentDeregister(principal, id, res, record));
    }
    if ((match = /^\/v1\/agent\/check\/(update|pass|warn|fail)\/([^/]+)$/.exec(path))) {
      const verb = match[1]!;
      const id = decodeURIComponent(match[2]!);
      return write(() => this.agentCheckUpdate(principal, verb, id, body, query, res, record));
    }
    // Go's http.ServeMux answer for a path nobody handles.
    this.send(res, record, { status: 404, body: '404 page not found\n' });
  }

  private send(res: http.ServerResponse, record: RequestRecord, reply: Reply): void {
    if (res.writableEnded || res.destroyed) return;
    const failure = this.failures.find((candidate) => candidate.remaining > 0 && record.path.startsWith(candidate.pathPrefix));
    if (failure) {
      failure.remaining--;
      if (failure.remaining === 0) this.failures.splice(this.failures.indexOf(failure), 1);
      if (failure.kind === 'garbage') {
        // A 200 with Consul's headers and a JSON body cut short, as a broken proxy might deliver.
        record.status = 200;
        res.writeHead(200, { ...this.withIndex({ status: 200, body: null }, this.state.raftIndex).headers, 'Content-Type': 'application/json' });
        res.end('{"web": ["v1", "v2"], "db": [tru');
        return;
      }
      reply = { status: 500, body: 'No cluster leader' };
    }
    record.status = reply.status;
    const isText = typeof reply.body === 'string' && reply.status !== 200;
    const payload = isText ? reply.body as string : JSON.stringify(reply.body ?? null);
    res.writeHead(reply.status, {
      ...reply.headers,
      'Content-Type': isText ? 'text/plain; charset=utf-8' : 'application/json',
      'Content-Length': Buffer.byteLength(payload),
    });
    res.end(payload);
  }

  // ---- blocking queries ------------------------------------------------------------------------

  /**
   * Consul's blocking query: without `index` (or index=0) answer now; otherwise hold the request until
   * the query's index exceeds `index`, the wait (default 5 min, at most 10 min, plus up to wait/16
   * of jitter) elapses, or a snapshot restore abandons the state store, which answers at once.
   */
  private blocking(res: http.ServerResponse, record: RequestRecord, query: URLSearchParams, currentIndex: () => number, compute: () => Reply): void {
    const indexText = query.get('index');
    let minIndex = 0;
    if (indexText !== null && indexText !== '') {
      if (!/^\d+$/.test(indexText)) throw new HttpError(400, 'Invalid index');
      minIndex = Number(indexText);
    }
    let waitMs = DEFAULT_QUERY_TIME_MS;
    const waitText = query.get('wait');
    if (waitText !== null && waitText !== '') {
      const parsed = parseGoDuration(waitText);
      if (parsed === undefined) throw new HttpError(400, 'Invalid wait time');
      waitMs = parsed;
    }
    this.checkDatacenter(query);
    // Validate the query (filter syntax, flags) before holding it, as Consul fails such requests at once.
    const first = compute();
    if (minIndex === 0 || currentIndex() > minIndex || first.status !== 200) {
      this.send(res, record, this.withIndex(first, currentIndex()));
      return;
    }
    if (waitMs <= 0 || waitMs > MAX_QUERY_TIME_MS) waitMs = waitMs <= 0 ? DEFAULT_QUERY_TIME_MS : MAX_QUERY_TIME_MS;
    const jitter = this.jitter ? Math.random() * (waitMs / JITTER_FRACTION) : 0;
    const heldSince = Date.now();
    const deadline = heldSince + waitMs + jitter;
    const waiter: Waiter = {
      path: record.path,
      minIndex,
      heldSince,
      deadline,
      currentIndex,
      finish: () => {
        waiter.cancel();
        this.send(res, record, this.withIndex(compute(), currentIndex()));
      },
      cancel: () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      },
    };
    const timer = setTimeout(() => waiter.finish(), deadline - Date.now());
    res.on('close', () => waiter.cancel());
    this.waiters.add(waiter);
  }

  private wake(kind: 'write' | 'restore'): void {
    for (const waiter of [...this.waiters]) {
      if (kind === 'restore' || waiter.currentIndex() > waiter.minIndex) waiter.finish();
    }
  }

  private withIndex(reply: Reply, index: number): Reply {
    if (reply.status !== 200) return reply;
    return {
      ...reply,
      headers: {
        ...reply.headers,
        'X-Consul-Index': String(index),
        'X-Consul-KnownLeader': 'true',
        'X-Consul-LastContact': '0',
        'X-Consul-Effective-Consistency': 'leader',
      },
    };
  }

  private checkDatacenter(query: URLSearchParams): void {
    const dc = query.get('dc');
    if (dc && dc !== this.datacenter) throw new HttpError(500, 'No path to datacenter');
  }

  // ---- ACLs ------------------------------------------------------------------------------------

  private authenticate(req: http.IncomingMessage, query: URLSearchParams): Principal {
    if (!this.acl) return { kind: 'management' };
    const header = req.headers['x-consul-token'];
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const secret = (typeof header === 'string' && header !== '' ? header : undefined) ?? (query.get('token') || undefined) ?? bearer;
    if (secret === undefined) return this.acl.defaultPolicy === 'allow' ? { kind: 'management' } : { kind: 'anonymous' };
    const token = this.acl.tokens.find((candidate) => candidate.secretId === secret);
    if (!token) throw new HttpError(403, 'ACL not found');
    return token.management ? { kind: 'management' } : { kind: 'token', token };
  }

  private may(principal: Principal, access: 'read' | 'write', service: string): boolean {
    if (principal.kind === 'management') return true;
    if (principal.kind === 'anonymous') return false;
    const prefixes = access === 'read'
      ? [...(principal.token.serviceRead ?? []), ...(principal.token.serviceWrite ?? [])]
      : principal.token.serviceWrite ?? [];
    return prefixes.some((prefix) => service.startsWith(prefix));
  }

  private denied(principal: Principal, access: 'read' | 'write', service: string): HttpError {
    const who = principal.kind === 'token'
      ? `token with AccessorID '${principal.token.accessorId ?? principal.token.secretId}'`
      : 'anonymous token';
    const suffix = principal.kind === 'anonymous' ? '. The anonymous token is used implicitly when a request does not specify a token.' : '';
    return new HttpError(403, `Permission denied: ${who} lacks permission 'service:${access}' on "${service}"${suffix}`);
  }

  /** List endpoints do not fail on ACLs: they drop what the token may not see and say so in a header. */
  private filteredHeader(filtered: boolean): Record<string, string> {
    return filtered ? { 'X-Consul-Results-Filtered-By-ACLs': 'true' } : {};
  }

  // ---- read endpoints --------------------------------------------------------------------------

  private catalogServices(principal: Principal, query: URLSearchParams): Reply {
    const filter = this.filter(query);
    const tags = new Map<string, Set<string>>();
    let filtered = false;
    for (const instance of this.state.instances.values()) {
      if (!this.may(principal, 'read', instance.name)) { filtered = true; continue; }
      if (filter && !filter(this.catalogEntry(instance))) continue;
      const set = tags.get(instance.name) ?? new Set<string>();
      instance.tags.forEach((tag) => set.add(tag));
      tags.set(instance.name, set);
    }
    const body = Object.fromEntries([...tags.keys()].sort().map((name) => [name, [...tags.get(name)!].sort()]));
    return { status: 200, body, headers: this.filteredHeader(filtered) };
  }

  /**
   * `/v1/catalog/nodes`: every node, sorted by name. Reading nodes takes node:read, which the
   * simulator's tokens (service rules only) never grant: only a management token sees them.
   */
  private catalogNodes(principal: Principal, query: URLSearchParams): Reply {
    const filter = this.filter(query);
    const nodes = [...this.state.nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
    const visible = principal.kind === 'management' ? nodes : [];
    const body = visible.map((node) => this.nodeJson(node)).filter((entry) => !filter || filter(entry));
    return { status: 200, body, headers: this.filteredHeader(visible.length < nodes.length) };
  }

  /**
   * `/v1/health/state/:state`: the checks in a state (`any` for all), sorted by node and check ID.
   * An unknown state matches no check, as in Consul, which only rejects a missing one. A service
   * check needs service:read; a node check needs node:read (management tokens only, here).
   */
  private healthState(principal: Principal, state: string, query: URLSearchParams): Reply {
    const filter = this.filter(query);
    let filtered = false;
    const checks: CheckRecord[] = [];
    for (const check of this.state.checks.values()) {
      if (state !== 'any' && check.status !== state) continue;
      const readable = check.serviceName === '' ? principal.kind === 'management' : this.may(principal, 'read', check.serviceName);
      if (!readable) { filtered = true; continue; }
      checks.push(check);
    }
    checks.sort((a, b) => a.node.localeCompare(b.node) || a.checkId.localeCompare(b.checkId));
    const body = checks
      .map((check) => this.checkJson(check, check.serviceId === '' ? [] : this.state.instance(check.node, check.serviceId)?.tags ?? []))
      .filter((entry) => !filter || filter(entry));
    return { status: 200, body, headers: this.filteredHeader(filtered) };
  }

  private catalogService(principal: Principal, name: string, query: URLSearchParams): Reply {
    const filter = this.filter(query);
    const tags = query.getAll('tag');
    if (!this.may(principal, 'read', name)) return { status: 200, body: [], headers: this.filteredHeader(this.state.instancesOf(name).length > 0) };
    const body = this.state.instancesOf(name)
      .filter((instance) => tags.every((tag) => instance.tags.includes(tag)))
      .map((instance) => this.catalogEntry(instance))
      .filter((entry) => !filter || filter(entry));
    return { status: 200, body };
  }

  private healthService(principal: Principal, name: string, query: URLSearchParams): Reply {
    const filter = this.filter(query);
    const passing = flag(query, 'passing');
    const tags = query.getAll('tag');
    if (!this.may(principal, 'read', name)) return { status: 200, body: [], headers: this.filteredHeader(this.state.instancesOf(name).length > 0) };
    const body = this.state.instancesOf(name)
      .filter((instance) => tags.every((tag) => instance.tags.includes(tag)))
      .map((instance) => ({ instance, checks: this.state.checksFor(instance) }))
      .filter(({ checks }) => !passing || checks.every((check) => check.status === 'passing'))
      .map(({ instance, checks }) => this.healthEntry(instance, checks))
      .filter((entry) => !filter || filter(entry));
    return { status: 200, body };
  }

  private filter(query: URLSearchParams): ((target: unknown) => boolean) | undefined {
    const expression = query.get('filter');
    if (!expression) return undefined;
    try {
      return compileFilter(expression);
    } catch (error) {
      if (error instanceof FilterSyntaxError) throw new HttpError(400, `Failed to create boolean expression evaluator: ${error.message}`);
      throw error;
    }
  }

  private nodeJson(node: NodeRecord) {
    return {
      ID: node.id,
      Node: node.name,
      Address: node.address,
      Datacenter: node.datacenter,
      TaggedAddresses: { lan: node.address, lan_ipv4: node.address, wan: node.address, wan_ipv4: node.address },
      Meta: { 'consul-network-segment': '', ...node.meta },
      CreateIndex: node.createIndex,
      ModifyIndex: node.modifyIndex,
    };
  }

  private checkJson(check: CheckRecord, tags: string[]) {
    return {
      Node: check.node,
      CheckID: check.checkId,
      Name: check.name,
      Status: check.status,
      Notes: check.notes,
      Output: check.output,
      ServiceID: check.serviceId,
      ServiceName: check.serviceName,
      ServiceTags: check.serviceId === '' ? [] : tags,
      Type: check.type,
      Interval: '',
      Timeout: '',
      ExposedPort: 0,
      Definition: {},
      CreateIndex: check.createIndex,
      ModifyIndex: check.modifyIndex,
    };
  }

  private taggedAddresses(instance: InstanceRecord, node: NodeRecord) {
    const address = instance.address || node.address;
    return { lan_ipv4: { Address: address, Port: instance.port }, wan_ipv4: { Address: address, Port: instance.port } };
  }

  private healthEntry(instance: InstanceRecord, checks: CheckRecord[]) {
    const node = this.state.nodes.get(instance.node)!;
    return {
      Node: this.nodeJson(node),
      Service: {
        ID: instance.id,
        Service: instance.name,
        Tags: instance.tags,
        Address: instance.address,
        TaggedAddresses: this.taggedAddresses(instance, node),
        Meta: instance.meta,
        Port: instance.port,
        Weights: instance.weights,
        EnableTagOverride: false,
        Proxy: { Mode: '', MeshGateway: {}, Expose: {} },
        Connect: {},
        PeerName: '',
        CreateIndex: instance.createIndex,
        ModifyIndex: instance.modifyIndex,
      },
      Checks: checks.map((check) => this.checkJson(check, instance.tags)),
    };
  }

  private catalogEntry(instance: InstanceRecord) {
    const node = this.state.nodes.get(instance.node)!;
    const nodeJson = this.nodeJson(node);
    return {
      ID: nodeJson.ID,
      Node: nodeJson.Node,
      Address: nodeJson.Address,
      Datacenter: nodeJson.Datacenter,
      TaggedAddresses: nodeJson.TaggedAddresses,
      NodeMeta: nodeJson.Meta,
      ServiceKind: '',
      ServiceID: instance.id,
      ServiceName: instance.name,
      ServiceTags: instance.tags,
      ServiceAddress: instance.address,
      ServiceTaggedAddresses: this.taggedAddresses(instance, node),
      ServiceWeights: instance.weights,
      ServiceMeta: instance.meta,
      ServicePort: instance.port,
      ServiceEnableTagOverride: false,
      ServiceProxy: { Mode: '', MeshGateway: {}, Expose: {} },
      ServiceConnect: {},
      CreateIndex: instance.createIndex,
      ModifyIndex: instance.modifyIndex,
    };
  }

  // ---- agent endpoints -------------------------------------------------------------------------

  private agentRegister(principal: Principal, raw: Buffer, query: URLSearchParams, res: http.ServerResponse, record: RequestRecord): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw.toString('utf8') || 'null');
    } catch (error) {
      throw new HttpError(400, `Request decode failed: ${(error as Error).message}`);
    }
    // Consul decodes registration bodies case-insensitively (it also takes snake_case keys).
    const body = lowerKeys(parsed);
    const name = body.name;
    if (typeof name !== 'string' || name === '') throw new HttpError(400, 'Invalid Service: Missing service name');
    if (!this.may(principal, 'write', name)) throw this.denied(principal, 'write', name);
    const port = body.port ?? 0;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) throw new HttpError(400, 'Request decode failed: Port must be an integer');
    const weights = lowerKeys(body.weights);
    const spec: InstanceSpec = {
      id: typeof body.id === 'string' && body.id !== '' ? body.id : name,
      name,
      tags: stringArray(body.tags, 'Tags'),
      address: typeof body.address === 'string' ? body.address : undefined,
      port,
      meta: stringMap(body.meta, 'Meta'),
      weights: body.weights === undefined ? undefined : {
        Passing: typeof weights.passing === 'number' ? weights.passing : undefined,
        Warning: typeof weights.warning === 'number' ? weights.warning : undefined,
      },
    };
    if (spec.weights?.Passing !== undefined && spec.weights.Passing < 1) throw new HttpError(400, 'Invalid Service: Passing weight must be greater than 0');
    const definitions = Array.isArray(body.checks) ? body.checks : body.check !== undefined && body.check !== null ? [body.check] : [];
    const checks: CheckSpec[] = definitions.map((definition: unknown) => {
      const check = lowerKeys(definition);
      const type = ['ttl', 'http', 'tcp', 'grpc', 'args', 'h2ping', 'udp', 'aliasservice', 'aliasnode'].find((key) => check[key] !== undefined) ?? 'ttl';
      return {
        checkId: typeof check.checkid === 'string' && check.checkid !== '' ? check.checkid : typeof check.id === 'string' && check.id !== '' ? check.id : undefined,
        name: typeof check.name === 'string' && check.name !== '' ? check.name : undefined,
        status: checkStatus(check.status),
        notes: typeof check.notes === 'string' ? check.notes : undefined,
        type: type === 'args' ? 'script' : type === 'aliasservice' || type === 'aliasnode' ? 'alias' : type,
      };
    });
    this.state.registerInstance({ name: this.nodeName, address: this.nodeAddress }, spec, checks, flag(query, 'replace-existing-checks'));
    this.send(res, record, { status: 200, body: null });
  }

  private agentDeregister(principal: Principal, id: string, res: http.ServerResponse, record: RequestRecord): void {
    const instance = this.state.instance(this.nodeName, id);
    if (!instance) throw new HttpError(404, `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`);
    if (!this.may(principal, 'write', instance.name)) throw this.denied(principal, 'write', instance.name);
    this.state.deregisterInstance(this.nodeName, id);
    this.send(res, record, { status: 200, body: null });
  }

  private agentCheckUpdate(principal: Principal, verb: string, id: string, raw: Buffer, query: URLSearchParams, res: http.ServerResponse, record: RequestRecord): void {
    const check = this.state.findCheck(id, this.nodeName);
    if (!check) throw new HttpError(404, `Unknown check ID "${id}". Ensure that the check ID is passed, not the check name.`);
    if (check.serviceName && !this.may(principal, 'write', check.serviceName)) throw this.denied(principal, 'write', check.serviceName);
    let status: CheckStatus;
    let output = query.get('note') ?? undefined;
    if (verb === 'update') {
      let body: Record<string, unknown>;
      try {
        body = lowerKeys(JSON.parse(raw.toString('utf8') || 'null'));
      } catch (error) {
        throw new HttpError(400, `Request decode failed: ${(error as Error).message}`);
      }
      const given = checkStatus(body.status);
      if (!given) throw new HttpError(400, 'Invalid check status: ""');
      status = given;
      if (typeof body.output === 'string') output = body.output;
    } else {
      status = verb === 'pass' ? 'passing' : verb === 'warn' ? 'warning' : 'critical';
    }
    this.state.updateCheck(check, status, output);
    this.send(res, record, { status: 200, body: null });
  }
}
