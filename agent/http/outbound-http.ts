// The outbound HTTP request path: each request on a connection whose filter chain has an HTTP
// connection manager is routed on its own (route → cluster → endpoint → upstream attempt → response).
import type * as http from 'node:http';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../lib/log';
import type { PickContext } from '../balancing/load-balancer';
import type { OutboundTable, Target } from '../proxy/outbound-table';
import { relay } from '../proxy/relay';
import { pickWeightedCluster, type RequestView, type RouteDecision, type RouteTable, type WeightedCluster } from '../routing/route-table';
import { applyHeaderMutations, type HeaderBag } from './header-mutations';
import { HttpConnectionServer, type DownstreamRequest, type DownstreamResponse, type HttpConnectionOptions } from './http-connection';
import {
  CONNECT_FAILURE,
  CONNECTION_TERMINATION,
  NO_CLUSTER,
  NO_HEALTHY_UPSTREAM,
  NO_ROUTE,
  UPSTREAM_TIMEOUT,
  type LocalReply,
} from './local-reply';
import { attemptUpstream, endToEnd, type AttemptOutcome, type UpstreamRequest } from './upstream-attempt';
import type { UpstreamPool, UpstreamTarget } from './upstream-pool';

/** What every request on one downstream connection shares, fixed when the connection was decided. */
export interface OutboundHttpContext {
  readonly table: OutboundTable;
  readonly routeConfig: string;
  /** Compiled once per config; undefined when the server sent no usable route configuration of that name. */
  readonly routes: RouteTable | undefined;
  readonly destination: Target;
  readonly chain: string;
  readonly downstreamHttp2: boolean;
  readonly sourceIp: string | undefined;
}

export interface OutboundHttpStats {
  connections: number;
  requests: number;
  /** Responses the agent made itself (no route, no upstream, failures, direct responses, redirects). */
  localReplies: number;
  upgrades: number;
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
type Destination = { readonly target: UpstreamTarget; readonly cluster: string; readonly release?: () => void } | { readonly reply: LocalReply; readonly cluster: string };

export class OutboundHttp {
  private readonly inputs: OutboundHttpInputs;
  private readonly log: Logger;
  private readonly server: HttpConnectionServer<OutboundHttpContext>;
  /** Shared by all picks: a pick is synchronous, so it is never used by two requests at once. */
  private readonly pick: PickContext = { random: Math.random };
  private readonly counters: OutboundHttpStats = { connections: 0, requests: 0, localReplies: 0, upgrades: 0 };

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

  stats(): OutboundHttpStats {
    return { ...this.counters };
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
    const weighted = action.kind === 'weighted' ? pickWeightedCluster(decision, Math.random()) : undefined;
    const cluster = weighted ? weighted.name : action.kind === 'cluster' ? action.cluster : '';
    const destination = this.choose(cluster, decision, req, context, exchange);
    if ('reply' in destination) return this.localReply(res, exchange, destination.reply);
    const release = destination.release;
    if (release) res.once('close', release);
    const headers = endToEnd(req.headers);
    if (weighted) applyHeaderMutations(headers, weighted.requestHeaders);
    applyHeaderMutations(headers, decision.requestHeaders);
    const upstream: UpstreamRequest = {
      target: destination.target,
      http2: this.upstreamHttp2(context, cluster),
      method: exchange.method,
      path: decision.rewrite.path ?? path,
      authority: rewrittenAuthority(decision, weighted, authority),
      headers,
      body: req,
      timeoutMs: decision.timeoutMs,
    };
    const outcome = await attemptUpstream(this.inputs.pool, upstream);
    this.respond(outcome, res, exchange, decision, weighted);
  }

  /** The cluster's endpoint for this request (with the route's hash policy), or the local reply that stands for none. */
  private choose(cluster: string, decision: RouteDecision, req: DownstreamRequest, context: OutboundHttpContext, exchange: Exchange): Destination {
    exchange.cluster = cluster;
    const hasher = context.table.httpRoutes.hasher(decision.hashPolicy);
    this.pick.hash = hasher?.hash(hashView(req, context.sourceIp));
    const picked = context.table.pickEndpoint(cluster, context.destination, context.chain, this.pick);
    this.pick.hash = undefined;
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
          picked.action === 'tunnel' ? { kind: 'tunnel', peer: picked.peer, address: endpoint.address, port: endpoint.port } : { kind: 'tcp', address: endpoint.address, port: endpoint.port };
        return release ? { cluster, target, release } : { cluster, target };
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

  private respond(outcome: AttemptOutcome, res: DownstreamResponse, exchange: Exchange, decision: RouteDecision, weighted: WeightedCluster | undefined): void {
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
    if (res.destroyed || res.writableEnded) {
      response.abort();
      return;
    }
    const headers = response.headers;
    if (weighted) applyHeaderMutations(headers, weighted.responseHeaders);
    applyHeaderMutations(headers, decision.responseHeaders);
    if (response.endedWithHeaders && 'stream' in res) {
      // Kept as one HEADERS frame with END_STREAM: gRPC clients read a trailers-only status only in that shape.
      res.statusCode = response.status;
      res.stream.respond({ ...(headers as http.OutgoingHttpHeaders), ':status': response.status }, { endStream: true });
      return;
    }
    res.writeHead(response.status, headers as http.OutgoingHttpHeaders);
    const body = response.body;
    res.once('close', () => {
      // The client left before the whole response: stop reading it from upstream.
      if (!body.readableEnded) {
        exchange.flags ||= 'DC';
        response.abort();
      }
    });
    body.on('error', () => {
      exchange.flags ||= response.timedOut() ? UPSTREAM_TIMEOUT.flag : 'UC';
      destroyResponse(res);
    });
    const finish = (): void => {
      const trailers = response.trailers();
      if (trailers) res.addTrailers(trailers as http.OutgoingHttpHeaders);
      res.end();
    };
    // An HTTP/2 response that ended with its headers (gRPC's trailers-only errors) may have
    // emitted 'end' before this code ran.
    if (body.readableEnded) return finish();
    body.once('end', finish);
    // An upstream that closes without finishing its response must not look finished downstream.
    body.once('close', () => {
      if (!body.readableEnded && !res.writableEnded) {
        exchange.flags ||= response.timedOut() ? UPSTREAM_TIMEOUT.flag : 'UC';
        destroyResponse(res);
      }
    });
    body.pipe(res as NodeJS.WritableStream, { end: false });
  }

  private async onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, context: OutboundHttpContext): Promise<void> {
    this.counters.requests++;
    socket.on('error', () => undefined);
    const authority = authorityOf(req);
    const path = req.url ?? '/';
    const exchange: Exchange = { start: performance.now(), method: req.method ?? 'GET', path, authority, flags: '', cluster: '', host: '' };
    let status = 0;
    socket.once('close', () => this.logLine(exchange, status));
    const decision = context.routes?.match(requestView(req, exchange));
    const action = decision?.action;
    if (!decision || !action) {
      status = NO_ROUTE.status;
      exchange.flags = NO_ROUTE.flag;
      return writeRawResponse(socket, NO_ROUTE.status, {}, NO_ROUTE.body);
    }
    // Redirects and direct responses to an Upgrade end the exchange like any other response.
    if (action.kind === 'redirect') {
      status = action.status;
      return writeRawResponse(socket, action.status, { location: action.location }, '');
    }
    if (action.kind === 'direct') {
      status = action.status;
      return writeRawResponse(socket, action.status, {}, action.body?.toString() ?? '');
    }
    const weighted = action.kind === 'weighted' ? pickWeightedCluster(decision, Math.random()) : undefined;
    const cluster = weighted ? weighted.name : action.kind === 'cluster' ? action.cluster : '';
    const destination = this.choose(cluster, decision, req, context, exchange);
    if ('reply' in destination) {
      status = destination.reply.status;
      exchange.flags = destination.reply.flag;
      return writeRawResponse(socket, status, {}, destination.reply.body);
    }
    socket.once('close', () => destination.release?.());
    const headers = endToEnd(req.headers);
    if (weighted) applyHeaderMutations(headers, weighted.requestHeaders);
    applyHeaderMutations(headers, decision.requestHeaders);
    const outcome = await attemptUpstream(this.inputs.pool, {
      target: destination.target,
      http2: false,
      method: exchange.method,
      path: decision.rewrite.path ?? path,
      authority: rewrittenAuthority(decision, weighted, authority),
      headers,
      body: req,
      timeoutMs: decision.timeoutMs,
      upgrade: String(req.headers.upgrade ?? ''),
    });
    if (outcome.kind !== 'response') {
      const reply = outcome.kind === 'connect-failure' ? CONNECT_FAILURE : outcome.kind === 'timeout' ? UPSTREAM_TIMEOUT : CONNECTION_TERMINATION;
      status = reply.status;
      exchange.flags = reply.flag;
      return writeRawResponse(socket, reply.status, {}, reply.body);
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

  private localReply(res: DownstreamResponse, exchange: Exchange, reply: LocalReply, detail?: string): void {
    this.counters.localReplies++;
    exchange.flags = reply.flag;
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
    if (!res.writableFinished && exchange.flags === '') exchange.flags = 'DC';
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

/** Ends an exchange whose headers already went out: HTTP/1 closes the connection, HTTP/2 resets the stream. */
function destroyResponse(res: DownstreamResponse): void {
  if ('stream' in res) res.stream.close(2);
  else res.destroy();
}

const STATUS_TEXT: Readonly<Record<number, string>> = { 101: 'Switching Protocols', 301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 307: 'Temporary Redirect', 308: 'Permanent Redirect', 404: 'Not Found', 503: 'Service Unavailable', 504: 'Gateway Timeout' };

function rawHead(status: number, headers: HeaderBag, close: boolean): string {
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Status'}\r\n`;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) head += `${name}: ${v}\r\n`;
    else head += `${name}: ${value}\r\n`;
  }
  if (close) head += 'connection: close\r\n';
  return head + '\r\n';
}

function writeRawResponse(socket: Duplex, status: number, headers: HeaderBag, body: string): void {
  if (socket.destroyed) return;
  socket.end(rawHead(status, { ...headers, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) }, true) + body);
}
