// The outbound HTTP request path: each request on a connection whose filter chain has an HTTP
// connection manager is routed on its own (route → cluster → endpoint → upstream attempt → response).
import type * as http from 'node:http';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../lib/log';
import type { PickContext } from '../balancing/load-balancer';
import { PreviousPriorities } from '../balancing/previous-priorities';
import type { SourceWorkload } from '../identity/workload-resolver';
import type { OutboundTable, Target } from '../proxy/outbound-table';
import { relay } from '../proxy/relay';
import { pickWeightedCluster, type FaultDecision, type RequestView, type RouteDecision, type RouteTable, type WeightedCluster } from '../routing/route-table';
import { applyHeaderMutations, type HeaderBag } from './header-mutations';
import { HttpConnectionServer, type DownstreamRequest, type DownstreamResponse, type HttpConnectionOptions } from './http-connection';
import {
  CONNECT_FAILURE,
  CONNECTION_TERMINATION,
  NO_CLUSTER,
  NO_HEALTHY_UPSTREAM,
  NO_ROUTE,
  OVERFLOW,
  UPSTREAM_TIMEOUT,
  type LocalReply,
} from './local-reply';
import { forwardResponse } from './forward-response';
import { destroyResponse, rawHead, writeTextResponse } from './raw-response';
import { drawFault, FAULT_ABORT_BODY, grpcStatusForHttp, isGrpc } from './fault-injection';
import { DEFAULT_REPLAY_LIMIT_BYTES, ReplayBuffer } from './replay-buffer';
import { ClusterAdmission, type Admitted } from './request-admission';
import { sendShadow, shadowAuthority } from './request-mirror';
import { addFlag } from './response-flags';
import { backOffMs, isRetriable, PREVIOUS_HOSTS, retryOnBits, type RetryableOutcome } from './retry-policy';
import { attemptUpstream, endToEnd, type Closable, type SentOutcome } from './upstream-attempt';
import type { UpstreamPool, UpstreamSettings, UpstreamTarget } from './upstream-pool';
import type { CircuitBreaker } from '../resilience/circuit-breaker';
import { ENVOY_DEFAULT_HTTP_IDLE_TIMEOUT_MS, type ConnectionSettings } from '../resilience/connection-settings';
import type { OutlierDetector } from '../resilience/outlier-detector';

/**
 * What every request on one downstream connection shares. `table` and `routes` are read per
 * request and follow config updates (see live-http-context.ts); the rest was fixed when the
 * connection was decided.
 */
export interface OutboundHttpContext {
  readonly table: OutboundTable;
  readonly routeConfig: string;
  /** Compiled once per config; undefined when the server sent no usable route configuration of that name. */
  readonly routes: RouteTable | undefined;
  readonly destination: Target;
  readonly chain: string;
  readonly downstreamHttp2: boolean;
  readonly sourceIp: string | undefined;
  /** The local workload that opened the connection: its identity is the one upstream tunnel streams present. */
  readonly sourceWorkload?: SourceWorkload | undefined;
}

export interface OutboundHttpStats {
  connections: number;
  requests: number;
  /** Responses the agent made itself (no route, no upstream, failures, direct responses, redirects). */
  localReplies: number;
  upgrades: number;
  /** Attempts after the first (Envoy's upstream_rq_retry). */
  retries: number;
  /** Retriable failures not retried because the body outgrew the replay buffer. */
  retriesSkippedBodyTooLarge: number;
  faultDelays: number;
  faultAborts: number;
  /** Shadow requests sent, failed (no endpoint, error, 5xx) and skipped (body beyond the buffer). */
  mirrorRequests: number;
  mirrorFailures: number;
  mirrorSkipped: number;
}

export interface OutboundHttpInputs {
  pool: UpstreamPool;
  logger: Logger;
  connection?: HttpConnectionOptions;
}

/** Per-request facts for the access log line, in Istio's field names. */
interface Exchange {
  readonly start: number;
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  flags: string;
  cluster: string;
  host: string;
}

/** Where a routed request goes, once its cluster and endpoint are chosen. */
type Destination =
  | { readonly target: UpstreamTarget; readonly cluster: string; readonly key?: string; readonly priority?: number; readonly release?: () => void }
  | { readonly reply: LocalReply; readonly cluster: string };

export class OutboundHttp {
  private readonly inputs: OutboundHttpInputs;
  private readonly log: Logger;
  private readonly server: HttpConnectionServer<OutboundHttpContext>;
  /** Shared by all picks: a pick is synchronous, so it is never used by two requests at once. */
  private readonly pick: PickContext = { random: Math.random };
  private readonly counters: OutboundHttpStats = {
    connections: 0,
    requests: 0,
    localReplies: 0,
    upgrades: 0,
    retries: 0,
    retriesSkippedBodyTooLarge: 0,
    faultDelays: 0,
    faultAborts: 0,
    mirrorRequests: 0,
    mirrorFailures: 0,
    mirrorSkipped: 0,
  };
  /** Requests by response flag, as `response_flags.<FLAG>` in the admin /stats. */
  private readonly flagCounts = new Map<string, number>();
  private readonly admission = new ClusterAdmission();

  constructor(inputs: OutboundHttpInputs) {
    this.inputs = inputs;
    this.log = inputs.logger.child({ component: 'outbound-http' });
    this.server = new HttpConnectionServer<OutboundHttpContext>(
      {
        request: (req, res, context) =>
          this.onRequest(req, res, context).catch((error: unknown) => {
            // A request the path cannot forward (say, a header HTTP/2 refuses) fails alone, never the agent.
            this.log.warn({ path: req.url, err: (error as Error).message }, 'HTTP request failed in the agent');
            if (!res.headersSent && !res.destroyed) {
              res.writeHead(502, { 'content-type': 'text/plain' });
              res.end('the agent could not forward this request');
            } else destroyResponse(res);
          }),
        upgrade: (req, socket, head, context) =>
          this.onUpgrade(req, socket, head, context).catch((error: unknown) => {
            this.log.warn({ path: req.url, err: (error as Error).message }, 'HTTP upgrade failed in the agent');
            socket.destroy();
          }),
      },
      inputs.connection,
    );
  }

  stats(): OutboundHttpStats & Record<string, number> {
    const out: OutboundHttpStats & Record<string, number> = { ...this.counters };
    for (const [flag, count] of this.flagCounts) out[`response_flags.${flag}`] = count;
    return out;
  }

  private countFlags(flags: string): void {
    if (flags === '') return;
    for (const flag of flags.split(',')) this.flagCounts.set(flag, (this.flagCounts.get(flag) ?? 0) + 1);
  }

  serve(socket: net.Socket, protocol: 'http1' | 'h2c', context: OutboundHttpContext): void {
    this.counters.connections++;
    this.server.serve(socket, protocol, context);
  }

  close(): void {
    this.server.close();
  }

  private async onRequest(req: DownstreamRequest, res: DownstreamResponse, context: OutboundHttpContext): Promise<void> {
    this.counters.requests++;
    const authority = authorityOf(req);
    const path = req.url ?? '/';
    const exchange: Exchange = { start: performance.now(), method: req.method ?? 'GET', path, authority, flags: '', cluster: '', host: '' };
    res.once('close', () => this.logExchange(exchange, res));
    const decision = context.routes?.match(requestView(req, exchange));
    if (!decision) {
      if (!context.routes) this.log.debug({ routeConfig: context.routeConfig, reason: context.table.httpRoutes.problem(context.routeConfig) }, 'no route configuration');
      return this.localReply(res, exchange, NO_ROUTE);
    }
    const action = decision.action;
    if (action.kind === 'redirect') {
      this.counters.localReplies++;
      const headers: HeaderBag = { location: action.location };
      applyHeaderMutations(headers, decision.responseHeaders);
      res.writeHead(action.status, headers as http.OutgoingHttpHeaders);
      res.end();
      return;
    }
    if (action.kind === 'direct') {
      this.counters.localReplies++;
      const headers: HeaderBag = action.body ? { 'content-type': 'text/plain', 'content-length': action.body.length } : { 'content-length': 0 };
      applyHeaderMutations(headers, decision.responseHeaders);
      res.writeHead(action.status, headers as http.OutgoingHttpHeaders);
      if (action.body) res.end(action.body);
      else res.end();
      return;
    }
    const fault = drawFault(decision.fault, Math.random);
    if (fault.delayMs > 0) {
      exchange.flags = addFlag(exchange.flags, 'DI');
      this.counters.faultDelays++;
      // The route's timers start after the delay: Envoy's fault filter runs before its router.
      if (!(await delayUnlessClosed(fault.delayMs, res))) return;
    }
    if (fault.abort) return this.faultAbort(req, res, exchange, fault.abort);
    const weighted = action.kind === 'weighted' ? pickWeightedCluster(decision, Math.random()) : undefined;
    const cluster = weighted ? weighted.name : action.kind === 'cluster' ? action.cluster : '';
    const headers = endToEnd(req.headers);
    if (weighted) applyHeaderMutations(headers, weighted.requestHeaders);
    applyHeaderMutations(headers, decision.requestHeaders);
    const retry = decision.retry !== undefined && decision.retry.numRetries > 0 ? decision.retry : undefined;
    const replay = retry || decision.mirrors.length > 0 ? new ReplayBuffer(req, DEFAULT_REPLAY_LIMIT_BYTES, hasNoBody(req)) : undefined;
    const upstreamAuthority = rewrittenAuthority(decision, weighted, authority);
    const upstreamPath = decision.rewrite.path ?? path;
    if (replay) for (const mirror of decision.mirrors) if (Math.random() * 100 < mirror.percent) this.mirror(mirror.cluster, context, exchange, headers, upstreamPath, upstreamAuthority, replay, decision.timeoutMs);
    const deadline = decision.timeoutMs === undefined ? Infinity : performance.now() + decision.timeoutMs;
    const retryOn = retry ? retryOnBits(retry.retryOn) : 0;
    const avoidPrevious = retry !== undefined && retry.retryHostPredicates.includes(PREVIOUS_HOSTS);
    // Made on the first retry: most requests never need them.
    let tried: Set<string> | undefined;
    let previousPriorities: PreviousPriorities | undefined;
    const guard = context.table.guard(cluster);
    const http2 = this.upstreamHttp2(context, cluster);
    const settings = guard ? upstreamSettings(guard.connection, guard.breaker) : undefined;
    let retries = 0;
    let holdingRetry = false;
    const releaseRetry = (): void => {
      if (holdingRetry) guard?.breaker.releaseRetry();
      holdingRetry = false;
    };
    for (;;) {
      const destination = this.choose(cluster, decision, req, context, exchange, tried, retry?.hostSelectionRetryMaxAttempts ?? 1, previousPriorities);
      if ('reply' in destination) {
        releaseRetry();
        return this.localReply(res, exchange, destination.reply);
      }
      const admission = guard ? this.admit(guard.breaker, !http2, res) : noop;
      // Awaited only when the request has to wait: an await of a plain value still costs a turn of the microtask queue.
      const admitted = admission instanceof Promise ? await admission : admission;
      if (!admitted) {
        destination.release?.();
        releaseRetry();
        return this.localReply(res, exchange, OVERFLOW);
      }
      const done = (): void => {
        admitted();
        destination.release?.();
      };
      if (res.destroyed) {
        releaseRetry();
        return done();
      }
      const remaining = deadline === Infinity ? Infinity : deadline - performance.now();
      const perTry = retry?.perTryTimeoutMs;
      const overallGoverns = perTry === undefined || remaining <= perTry;
      const outcome = await attemptUpstream(this.inputs.pool, {
        target: destination.target,
        http2,
        method: exchange.method,
        path: upstreamPath,
        authority: upstreamAuthority,
        headers,
        body: replay ? (retries === 0 ? replay.first : replay.replay()) : req,
        timeoutMs: overallGoverns ? (remaining === Infinity ? undefined : Math.max(1, Math.round(remaining))) : perTry,
        downstream: res,
        ...(settings ? { settings } : {}),
      });
      releaseRetry();
      if (outcome.kind === 'overflow' || outcome.kind === 'abandoned') {
        // Never sent: nothing for outlier detection, and no retry.
        done();
        return outcome.kind === 'overflow' ? this.localReply(res, exchange, OVERFLOW, outcome.message) : undefined;
      }
      if (destination.key !== undefined) recordOutcome(guard?.detector, destination.key, outcome);
      if (outcome.kind === 'timeout' && overallGoverns) {
        done();
        return this.localReply(res, exchange, UPSTREAM_TIMEOUT, outcome.message);
      }
      const retriable = retry !== undefined && isRetriable(retryOn, retry.retriableStatusCodes, retryView(outcome));
      if (retriable && retries < retry.numRetries && !res.destroyed && (await this.mayRetry(replay!, guard?.breaker))) {
        holdingRetry = guard !== undefined;
        if (outcome.kind === 'response') outcome.response.abort();
        done();
        if (avoidPrevious && destination.key !== undefined) (tried ??= new Set()).add(destination.key);
        if (retry.previousPriorities && destination.priority !== undefined) (previousPriorities ??= new PreviousPriorities(retry.previousPriorities.updateFrequency)).hostAttempted(destination.priority);
        retries++;
        this.counters.retries++;
        const wait = backOffMs(retry.backOff, retries, Math.random);
        if (performance.now() + wait >= deadline) {
          releaseRetry();
          return this.localReply(res, exchange, UPSTREAM_TIMEOUT, `route timeout reached while backing off before retry ${retries}`);
        }
        if (!(await delayUnlessClosed(wait, res))) return releaseRetry();
        continue;
      }
      // Envoy's URX marks a retriable outcome left standing because num_retries ran out; a body too big
      // to replay or a spent retry budget (upstream_rq_retry_overflow) end retrying without it.
      if (retriable && retries >= retry.numRetries) exchange.flags = addFlag(exchange.flags, 'URX');
      if (outcome.kind !== 'response' || res.destroyed) done();
      else res.once('close', done);
      return this.respond(outcome, res, exchange, decision, weighted);
    }
  }

  /** Admission to the cluster's circuit breaker; undefined on overflow. A pending request that the client abandons is dropped. */
  private admit(breaker: CircuitBreaker, http1: boolean, res: Closable): Admitted | undefined | Promise<Admitted | undefined> {
    return this.admission.of(breaker).admit(http1, { onCancel: (listener) => res.once('close', listener) });
  }

  /** Whether the request can be sent again: its body replayable in full, and room in the cluster's retry budget (max_retries). */
  private async mayRetry(replay: ReplayBuffer, breaker: CircuitBreaker | undefined): Promise<boolean> {
    if (!(await replay.complete(true))) {
      this.counters.retriesSkippedBodyTooLarge++;
      return false;
    }
    return breaker ? breaker.tryAcquireRetry() : true;
  }

  /** One shadow request to `cluster`, sent once the body is complete; never touches the caller's exchange. */
  private mirror(cluster: string, context: OutboundHttpContext, exchange: Exchange, headers: HeaderBag, path: string, authority: string, replay: ReplayBuffer, timeoutMs: number | undefined): void {
    void replay.complete().then((complete) => {
      if (!complete) {
        this.counters.mirrorSkipped++;
        this.log.debug({ cluster, path }, 'request not mirrored: its body was not received in full within the buffer limit');
        return;
      }
      const picked = context.table.pickEndpoint(cluster, context.destination, context.chain, this.pick);
      if (picked.action !== 'direct' && picked.action !== 'tunnel') {
        this.counters.mirrorFailures++;
        this.log.debug({ cluster, path, decision: picked.action }, 'shadow request has no endpoint');
        return;
      }
      const endpoint = picked.endpoint;
      const target: UpstreamTarget = picked.action === 'tunnel' ? { kind: 'tunnel', peer: picked.peer, address: endpoint.address, port: endpoint.port, source: context.sourceWorkload?.identity } : { kind: 'tcp', address: endpoint.address, port: endpoint.port };
      this.counters.mirrorRequests++;
      sendShadow(
        this.inputs.pool,
        { target, http2: this.upstreamHttp2(context, cluster), method: exchange.method, path, authority: shadowAuthority(authority), headers, body: replay.replay(), timeoutMs },
        (result) => {
          if (result.ok) return;
          this.counters.mirrorFailures++;
          this.log.debug({ cluster, path, host: endpoint.key, err: result.detail }, 'shadow request failed');
        },
      );
    });
  }

  /** Envoy's fault abort: the configured HTTP status, or to a gRPC client a trailers-only gRPC status. */
  private faultAbort(req: DownstreamRequest, res: DownstreamResponse, exchange: Exchange, abort: NonNullable<FaultDecision['abort']>): void {
    this.counters.faultAborts++;
    this.counters.localReplies++;
    exchange.flags = addFlag(exchange.flags, 'FI');
    req.resume();
    if (res.destroyed) return;
    if (abort.grpcStatus !== undefined || isGrpc(req.headers['content-type'])) {
      const grpcStatus = abort.grpcStatus ?? grpcStatusForHttp(abort.httpStatus ?? 503);
      const headers = { 'content-type': 'application/grpc', 'grpc-status': String(grpcStatus), 'grpc-message': FAULT_ABORT_BODY };
      res.statusCode = 200;
      if ('stream' in res) res.stream.respond({ ...headers, ':status': 200 }, { endStream: true });
      else {
        res.writeHead(200, { ...headers, 'content-length': 0 });
        res.end();
      }
      return;
    }
    const status = abort.httpStatus ?? 503;
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(FAULT_ABORT_BODY) });
    res.end(FAULT_ABORT_BODY);
  }

  /** The cluster's endpoint for this request (with the route's hash policy), or the local reply that stands for none. */
  /**
   * `avoid` holds the hosts earlier attempts used (Envoy's previous_hosts predicate): a pick that
   * lands on one is redone, up to `selections` picks in all, after which the last pick stands.
   * `priorities` (previous_priorities) adjusts the priority loads by the priorities already tried.
   */
  private choose(cluster: string, decision: RouteDecision, req: DownstreamRequest, context: OutboundHttpContext, exchange: Exchange, avoid?: ReadonlySet<string>, selections = 1, priorities?: PreviousPriorities): Destination {
    exchange.cluster = cluster;
    const hasher = context.table.httpRoutes.hasher(decision.hashPolicy);
    this.pick.hash = hasher?.hash(hashView(req, context.sourceIp));
    this.pick.priorityLoad = priorities;
    let picked = context.table.pickEndpoint(cluster, context.destination, context.chain, this.pick);
    if (avoid && avoid.size > 0) {
      for (let i = 1; i < selections && 'endpoint' in picked && avoid.has(picked.endpoint.key); i++) {
        picked = context.table.pickEndpoint(cluster, context.destination, context.chain, this.pick);
      }
    }
    this.pick.hash = undefined;
    this.pick.priorityLoad = undefined;
    switch (picked.action) {
      case 'passthrough':
        exchange.host = `${context.destination.address}:${context.destination.port}`;
        return { cluster, target: { kind: 'tcp', address: context.destination.address, port: context.destination.port } };
      case 'direct':
      case 'tunnel': {
        const endpoint = picked.endpoint;
        exchange.host = endpoint.key;
        const balancer = context.table.balancer(cluster);
        balancer?.started(endpoint);
        const release = balancer ? () => balancer.finished(endpoint) : undefined;
        const target: UpstreamTarget =
          picked.action === 'tunnel' ? { kind: 'tunnel', peer: picked.peer, address: endpoint.address, port: endpoint.port, source: context.sourceWorkload?.identity } : { kind: 'tcp', address: endpoint.address, port: endpoint.port };
        return release ? { cluster, target, key: endpoint.key, priority: endpoint.priority, release } : { cluster, target, key: endpoint.key, priority: endpoint.priority };
      }
      case 'blackhole':
        return { cluster, reply: NO_HEALTHY_UPSTREAM };
      case 'fail':
        return { cluster, reply: picked.reason.startsWith('unknown cluster') ? NO_CLUSTER : NO_HEALTHY_UPSTREAM };
      case 'http':
        return { cluster, reply: NO_CLUSTER };
    }
  }

  /**
   * Envoy's choice: HTTP/2 when the cluster asks for it (Istio's http2/grpc ports), the client's own
   * version when the cluster follows the downstream (sniffed ports, passthrough), else HTTP/1.1.
   */
  private upstreamHttp2(context: OutboundHttpContext, cluster: string): boolean {
    const wanted = context.table.upstreamHttp(cluster);
    return wanted === 'http2' || (wanted === 'downstream' && context.downstreamHttp2);
  }

  private respond(outcome: SentOutcome, res: DownstreamResponse, exchange: Exchange, decision: RouteDecision, weighted: WeightedCluster | undefined): void {
    switch (outcome.kind) {
      case 'connect-failure':
        return this.localReply(res, exchange, CONNECT_FAILURE, outcome.message);
      case 'reset':
        return this.localReply(res, exchange, CONNECTION_TERMINATION, outcome.message);
      case 'timeout':
        return this.localReply(res, exchange, UPSTREAM_TIMEOUT, outcome.message);
      case 'response':
        break;
    }
    const response = outcome.response;
    const headers = response.headers;
    if (weighted) applyHeaderMutations(headers, weighted.responseHeaders);
    applyHeaderMutations(headers, decision.responseHeaders);
    forwardResponse(res, response, headers, {
      clientGone: () => (exchange.flags = terminated(exchange.flags, 'DC')),
      upstreamBroken: () => (exchange.flags = terminated(exchange.flags, response.timedOut() ? UPSTREAM_TIMEOUT.flag : 'UC')),
    });
  }

  private async onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, context: OutboundHttpContext): Promise<void> {
    this.counters.requests++;
    socket.on('error', () => undefined);
    const authority = authorityOf(req);
    const path = req.url ?? '/';
    const exchange: Exchange = { start: performance.now(), method: req.method ?? 'GET', path, authority, flags: '', cluster: '', host: '' };
    let status = 0;
    socket.once('close', () => {
      this.countFlags(exchange.flags);
      this.logLine(exchange, status);
    });
    const decision = context.routes?.match(requestView(req, exchange));
    const action = decision?.action;
    if (!decision || !action) {
      status = NO_ROUTE.status;
      exchange.flags = NO_ROUTE.flag;
      return writeTextResponse(socket, NO_ROUTE.status, {}, NO_ROUTE.body);
    }
    // Redirects and direct responses to an Upgrade end the exchange like any other response.
    if (action.kind === 'redirect') {
      status = action.status;
      return writeTextResponse(socket, action.status, { location: action.location }, '');
    }
    if (action.kind === 'direct') {
      status = action.status;
      return writeTextResponse(socket, action.status, {}, action.body?.toString() ?? '');
    }
    const weighted = action.kind === 'weighted' ? pickWeightedCluster(decision, Math.random()) : undefined;
    const cluster = weighted ? weighted.name : action.kind === 'cluster' ? action.cluster : '';
    const headers = endToEnd(req.headers);
    if (weighted) applyHeaderMutations(headers, weighted.requestHeaders);
    applyHeaderMutations(headers, decision.requestHeaders);
    const outcome = await this.sendUpgrade(req, socket, context, decision, cluster, headers, weighted, exchange);
    if (outcome === undefined) return;
    if ('reply' in outcome) {
      status = outcome.reply.status;
      exchange.flags = addFlag(exchange.flags, outcome.reply.flag);
      return writeTextResponse(socket, status, {}, outcome.reply.body);
    }
    if (outcome.kind !== 'response') {
      const reply = outcome.kind === 'connect-failure' ? CONNECT_FAILURE : outcome.kind === 'timeout' ? UPSTREAM_TIMEOUT : CONNECTION_TERMINATION;
      status = reply.status;
      exchange.flags = addFlag(exchange.flags, reply.flag);
      return writeTextResponse(socket, reply.status, {}, reply.body);
    }
    const response = outcome.response;
    status = response.status;
    const responseHeaders = response.headers;
    if (weighted) applyHeaderMutations(responseHeaders, weighted.responseHeaders);
    applyHeaderMutations(responseHeaders, decision.responseHeaders);
    if (!response.upgraded) {
      // Refused upgrade: the upstream's answer goes back as is, then the connection closes.
      socket.write(rawHead(response.status, responseHeaders, true));
      response.body.pipe(socket);
      return;
    }
    this.counters.upgrades++;
    const upstreamSocket = response.upgraded.socket;
    if (socket.destroyed) {
      upstreamSocket.destroy();
      return;
    }
    responseHeaders.connection = 'Upgrade';
    socket.write(rawHead(response.status, responseHeaders, false));
    if (response.upgraded.head.length > 0) socket.write(response.upgraded.head);
    if (head.length > 0) upstreamSocket.write(head);
    void relay(socket as net.Socket, upstreamSocket);
  }

  /**
   * Sends an Upgrade request as Envoy does: an upgraded stream is a request and an HTTP/1.1
   * connection of its cluster, so it is admitted by the circuit breaker (503 UO on overflow, before
   * the upgrade), held until the downstream connection closes, and its outcome counts for outlier
   * detection. A failed or refused upgrade is retried under the route's policy: nothing was sent
   * upstream but the request head (no bytes flow before a 101), so it can go again as is; an upgrade
   * that succeeded is never retried. Undefined: the client left first.
   */
  private async sendUpgrade(
    req: http.IncomingMessage,
    socket: Duplex,
    context: OutboundHttpContext,
    decision: RouteDecision,
    cluster: string,
    headers: HeaderBag,
    weighted: WeightedCluster | undefined,
    exchange: Exchange,
  ): Promise<SentOutcome | { reply: LocalReply } | undefined> {
    const guard = context.table.guard(cluster);
    const settings = guard ? upstreamSettings(guard.connection, guard.breaker) : undefined;
    const retry = decision.retry !== undefined && decision.retry.numRetries > 0 ? decision.retry : undefined;
    const retryOn = retry ? retryOnBits(retry.retryOn) : 0;
    const avoidPrevious = retry !== undefined && retry.retryHostPredicates.includes(PREVIOUS_HOSTS);
    const deadline = decision.timeoutMs === undefined ? Infinity : performance.now() + decision.timeoutMs;
    let tried: Set<string> | undefined;
    let retries = 0;
    let holdingRetry = false;
    const releaseRetry = (): void => {
      if (holdingRetry) guard?.breaker.releaseRetry();
      holdingRetry = false;
    };
    for (;;) {
      const destination = this.choose(cluster, decision, req, context, exchange, tried, retry?.hostSelectionRetryMaxAttempts ?? 1);
      if ('reply' in destination) {
        releaseRetry();
        return destination;
      }
      const admitted = guard ? await this.admit(guard.breaker, true, socket) : noop;
      if (!admitted) {
        destination.release?.();
        releaseRetry();
        return { reply: OVERFLOW };
      }
      const done = (): void => {
        admitted();
        destination.release?.();
      };
      if (socket.destroyed) {
        releaseRetry();
        done();
        return undefined;
      }
      const remaining = deadline - performance.now();
      const perTry = retry?.perTryTimeoutMs;
      const timeoutMs = perTry !== undefined && perTry < remaining ? perTry : remaining === Infinity ? undefined : Math.max(1, Math.round(remaining));
      const outcome = await attemptUpstream(this.inputs.pool, {
        target: destination.target,
        http2: false,
        method: exchange.method,
        path: decision.rewrite.path ?? exchange.path,
        authority: rewrittenAuthority(decision, weighted, exchange.authority),
        headers,
        body: req,
        timeoutMs,
        upgrade: String(req.headers.upgrade ?? ''),
        ...(settings ? { settings } : {}),
      });
      releaseRetry();
      if (outcome.kind === 'overflow' || outcome.kind === 'abandoned') {
        done();
        return outcome.kind === 'overflow' ? { reply: OVERFLOW } : undefined;
      }
      if (destination.key !== undefined) recordOutcome(guard?.detector, destination.key, outcome);
      const upgraded = outcome.kind === 'response' && outcome.response.upgraded !== undefined;
      const retriable = retry !== undefined && !upgraded && isRetriable(retryOn, retry.retriableStatusCodes, retryView(outcome));
      if (retriable && retries < retry.numRetries && !socket.destroyed && (guard ? guard.breaker.tryAcquireRetry() : true)) {
        holdingRetry = guard !== undefined;
        if (outcome.kind === 'response') outcome.response.abort();
        done();
        if (avoidPrevious && destination.key !== undefined) (tried ??= new Set()).add(destination.key);
        retries++;
        this.counters.retries++;
        const wait = backOffMs(retry.backOff, retries, Math.random);
        if (performance.now() + wait >= deadline) {
          releaseRetry();
          return { reply: UPSTREAM_TIMEOUT };
        }
        if (!(await delayUnlessClosed(wait, socket))) {
          releaseRetry();
          return undefined;
        }
        continue;
      }
      if (retriable && retries >= retry.numRetries) exchange.flags = addFlag(exchange.flags, 'URX');
      // The request and its connection stay held for as long as the downstream connection lives.
      if (socket.destroyed) done();
      else socket.once('close', done);
      return outcome;
    }
  }

  private localReply(res: DownstreamResponse, exchange: Exchange, reply: LocalReply, detail?: string): void {
    this.counters.localReplies++;
    exchange.flags = addFlag(exchange.flags, reply.flag);
    if (detail !== undefined) this.log.debug({ authority: exchange.authority, path: exchange.path, cluster: exchange.cluster, host: exchange.host, flags: reply.flag, err: detail }, 'upstream attempt failed');
    if (res.headersSent) {
      destroyResponse(res);
      return;
    }
    if (res.destroyed) return;
    res.writeHead(reply.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(reply.body) });
    res.end(reply.body);
  }

  private logExchange(exchange: Exchange, res: DownstreamResponse): void {
    if (!res.writableFinished) exchange.flags = terminated(exchange.flags, 'DC');
    this.countFlags(exchange.flags);
    this.logLine(exchange, res.headersSent ? res.statusCode : 0);
  }

  private logLine(exchange: Exchange, status: number): void {
    if (!this.log.isLevelEnabled('debug')) return;
    this.log.debug(
      {
        method: exchange.method,
        path: exchange.path,
        authority: exchange.authority,
        response_code: status,
        response_flags: exchange.flags === '' ? '-' : exchange.flags,
        upstream_cluster: exchange.cluster,
        upstream_host: exchange.host,
        duration: Math.round(performance.now() - exchange.start),
      },
      'http request',
    );
  }
}

function authorityOf(req: DownstreamRequest): string {
  const headers = req.headers as Record<string, string | string[] | undefined>;
  const value = headers[':authority'] ?? headers.host;
  return typeof value === 'string' ? value : '';
}

function rewrittenAuthority(decision: RouteDecision, weighted: WeightedCluster | undefined, authority: string): string {
  return decision.rewrite.authority ?? weighted?.authority ?? authority;
}

/** What routing reads: Envoy's pseudo-headers answer from the request line, the rest from the headers. */
function requestView(req: DownstreamRequest, exchange: Exchange): RequestView {
  const headers = req.headers as Record<string, string | string[] | undefined>;
  return {
    authority: exchange.authority,
    method: exchange.method,
    path: exchange.path,
    scheme: 'http',
    headers: (name: string) => {
      if (name === ':authority' || name === 'host') return exchange.authority;
      if (name === ':method') return exchange.method;
      if (name === ':path') return exchange.path;
      if (name === ':scheme') return 'http';
      return headers[name];
    },
  };
}

function hashView(req: DownstreamRequest, sourceIp: string | undefined): { header(name: string): string | undefined; query(name: string): string | undefined; readonly sourceIp: string | undefined } {
  const headers = req.headers as Record<string, string | string[] | undefined>;
  return {
    header: (name) => {
      const value = headers[name];
      return Array.isArray(value) ? value.join(',') : value;
    },
    query: (name) => {
      const url = req.url ?? '';
      const q = url.indexOf('?');
      return q < 0 ? undefined : (new URLSearchParams(url.slice(q + 1)).get(name) ?? undefined);
    },
    sourceIp,
  };
}

/** Adds the flag saying how an exchange was cut short, unless one already says it. */
function terminated(flags: string, flag: string): string {
  return TERMINATION.test(flags) ? flags : addFlag(flags, flag);
}

const TERMINATION = /\b(DC|UC|UT)\b/;

/** Envoy's outlier detection input for one attempt: its status, or the local-origin failure. */
function recordOutcome(detector: OutlierDetector | undefined, key: string, outcome: SentOutcome): void {
  if (!detector) return;
  if (outcome.kind === 'response') detector.recordResponse(key, outcome.response.status);
  else detector.recordFailure(key, outcome.kind);
}

/** What retry_on reads of an attempt's outcome; a response's grpc-status shows only in trailers-only answers. */
function retryView(outcome: SentOutcome): RetryableOutcome {
  switch (outcome.kind) {
    case 'response': {
      const grpc = outcome.response.headers['grpc-status'];
      return { kind: 'response', status: outcome.response.status, grpcStatus: typeof grpc === 'string' ? Number(grpc) : undefined };
    }
    case 'reset':
      return { kind: 'reset', refusedStream: outcome.refusedStream === true };
    case 'connect-failure':
      return CONNECT_FAILURE_VIEW;
    case 'timeout':
      return TIMEOUT_VIEW;
  }
}

const CONNECT_FAILURE_VIEW: RetryableOutcome = { kind: 'connect-failure' };
const TIMEOUT_VIEW: RetryableOutcome = { kind: 'timeout' };

/** The cluster's connection settings and breaker as the upstream pool takes them; Envoy's default idle timeout leaves the agent's own. */
function upstreamSettings(connection: ConnectionSettings, breaker: CircuitBreaker): UpstreamSettings {
  return {
    breaker,
    connectTimeoutMs: connection.connectTimeoutMs,
    maxRequestsPerConnection: connection.maxRequestsPerConnection,
    ...(connection.idleTimeoutMs !== ENVOY_DEFAULT_HTTP_IDLE_TIMEOUT_MS ? { idleTimeoutMs: connection.idleTimeoutMs } : {}),
  };
}

/** Waits `ms` unless the client leaves first; true when the wait ran out with the client still there. */
function delayUnlessClosed(ms: number, res: Closable): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onClose = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      res.off('close', onClose);
      resolve(!res.destroyed);
    }, ms);
    res.once('close', onClose);
  });
}

function noop(): void {}

/** A request whose headers say it has no body: nothing to buffer for a replay. */
function hasNoBody(req: DownstreamRequest): boolean {
  if ('stream' in req) return req.stream.endAfterHeaders;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0');
}
