// The inbound HTTP request path: each request for a local workload's HTTP port (through the tunnel
// or plain on :15006) is authenticated (jwt_authn) and authorized (RBAC) on its own, as Envoy's
// inbound HTTP filters do, then forwarded to the workload over kept-alive connections.
import type * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex, Writable } from 'node:stream';
import type { Logger } from '../../lib/log';
import type { InboundPolicy, PortDecisions } from '../policy/inbound-policy';
import { RBAC_DENIED_BODY, RBAC_DENIED_STATUS, type RequestView } from '../policy/rbac';
import type { AuthenticationResult } from '../policy/request-authentication';
import { relay } from '../proxy/relay';
import type { HeaderValue } from '../routing/request-matchers';
import type { HeaderBag } from './header-mutations';
import { HttpConnectionServer, type DownstreamRequest, type DownstreamResponse, type HttpConnectionOptions, type HttpExchangeHandler } from './http-connection';
import { CONNECT_FAILURE, CONNECTION_TERMINATION, UPSTREAM_TIMEOUT, type LocalReply } from './local-reply';
import { forwardResponse } from './forward-response';
import { destroyResponse, rawHead, writeRawResponse, writeTextResponse } from './raw-response';
import { attemptUpstream, endToEnd, type AttemptOutcome } from './upstream-attempt';
import type { UpstreamPool, UpstreamTarget } from './upstream-pool';

/** What every request on one inbound connection shares, fixed when the connection was accepted. */
export interface InboundHttpContext {
  /** The workload address and port the connection is for (the policy's key, RBAC's destination). */
  readonly address: string;
  readonly port: number;
  /** The peer's SPIFFE ID (tunnel); undefined for plaintext. */
  readonly sourcePrincipal: string | undefined;
  readonly sourceIp: string;
  /** The local workload; requests go there over pooled connections. */
  readonly target: UpstreamTarget;
  /** The workload speaks HTTP/2 (the port's inbound cluster), whichever version the client used. */
  readonly upstreamHttp2: boolean;
  /** The port's decisions under `policy`, looked up again only when a new config is in force. */
  policy?: InboundPolicy;
  decisions?: PortDecisions;
}

/** Counters of the inbound decision points, named after Envoy's rbac and jwt_authn stats. */
export interface InboundSecurityCounters {
  http_connections: number;
  http_requests: number;
  rbac_allowed: number;
  rbac_denied: number;
  /** Denials shadow (dry-run) rules would have made; never enforced. */
  rbac_shadow_denied: number;
  jwt_rejected: number;
}

export function inboundSecurityCounters(): InboundSecurityCounters {
  return { http_connections: 0, http_requests: 0, rbac_allowed: 0, rbac_denied: 0, rbac_shadow_denied: 0, jwt_rejected: 0 };
}

export interface InboundHttpInputs {
  /** The policy in force; read per request, so a new config applies to kept-alive connections at once. */
  policy(): InboundPolicy;
  pool: UpstreamPool;
  logger: Logger;
  counters: InboundSecurityCounters;
  connection?: HttpConnectionOptions;
}

/** A request the agent answers itself: 401 from jwt_authn or 403 from RBAC. */
class Refusal {
  constructor(
    readonly status: number,
    readonly body: string,
    readonly headers: Readonly<HeaderBag>,
  ) {}
}

const AGENT_FAILURE_BODY = 'the agent could not forward this request';

const RBAC_REFUSAL = new Refusal(RBAC_DENIED_STATUS, RBAC_DENIED_BODY, Object.freeze({ 'content-type': 'text/plain', 'content-length': Buffer.byteLength(RBAC_DENIED_BODY) }));

/**
 * Envoy's jwt_authn answer: the failure's message as the body and a `www-authenticate` challenge
 * naming the request's URL, with `error="invalid_token"` unless the token was simply missing.
 */
function jwtRefusal(reason: string, authority: string, url: string): Refusal {
  const q = url.indexOf('?');
  const realm = `http://${authority}${q < 0 ? url : url.slice(0, q)}`;
  const challenge = reason === 'Jwt is missing' ? `Bearer realm="${realm}"` : `Bearer realm="${realm}", error="invalid_token"`;
  return new Refusal(401, reason, { 'www-authenticate': challenge, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(reason) });
}

/**
 * A tunnel stream is not a socket: node's HTTP server must not use Http2Stream's writev (it mangles
 * a string head next to a body buffer, the same fault upstream-pool works around). Writing chunk by
 * chunk instead sent a response's head and body as separate DATA frames, the second only after the
 * first was flushed; joining them into one buffer sends one frame.
 */
const TUNNEL_STREAM_FIXES = { _writev: joinedWritev };

interface PendingChunk {
  readonly chunk: Buffer | string;
  readonly encoding: BufferEncoding;
}

function joinedWritev(this: Writable, chunks: readonly PendingChunk[], callback: (error?: Error | null) => void): void {
  const buffers = new Array<Buffer>(chunks.length);
  for (let i = 0; i < chunks.length; i++) {
    const { chunk, encoding } = chunks[i]!;
    buffers[i] = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
  }
  // 'buffer' is what Writable itself passes with a Buffer; the stream's write picks its byte path by it.
  this._write(Buffer.concat(buffers), 'buffer' as BufferEncoding, callback);
}

export class InboundHttp {
  private readonly inputs: InboundHttpInputs;
  private readonly log: Logger;
  private readonly counters: InboundSecurityCounters;
  private readonly server: HttpConnectionServer<InboundHttpContext>;

  constructor(inputs: InboundHttpInputs) {
    this.inputs = inputs;
    this.counters = inputs.counters;
    this.log = inputs.logger.child({ component: 'inbound-http' });
    this.server = new HttpConnectionServer<InboundHttpContext>(this.handler((context) => context), inputs.connection);
  }

  /** Serves one accepted connection or tunnel stream (its first bytes still unread) as HTTP. */
  serve(socket: Duplex, protocol: 'http1' | 'h2c', context: InboundHttpContext): void {
    this.counters.http_connections++;
    if (socket instanceof net.Socket) {
      this.server.serve(socket, protocol, context);
      return;
    }
    Object.assign(socket, TUNNEL_STREAM_FIXES);
    if (protocol === 'http1') {
      this.server.serve(socket as net.Socket, protocol, context);
      return;
    }
    // Node's HTTP/2 server wraps a stream that is not a socket in a socket of its own, which the
    // connection's context does not reach; a server per such connection carries it in its handler.
    // These are long-lived multiplexed connections (one per peer agent), so the cost is per peer.
    const own = new HttpConnectionServer<InboundHttpContext>(this.handler(() => context), this.inputs.connection);
    socket.once('close', () => own.close());
    own.serve(socket as net.Socket, protocol, context);
  }

  close(): void {
    this.server.close();
  }

  private handler(contextOf: (given: InboundHttpContext) => InboundHttpContext): HttpExchangeHandler<InboundHttpContext> {
    return {
      request: (req, res, context) => this.onRequest(req, res, contextOf(context)),
      upgrade: (req, socket, head, context) => this.onUpgrade(req, socket, head, contextOf(context)),
    };
  }

  /**
   * jwt_authn then RBAC over one request: the end-to-end headers to forward (with the provider's
   * changes applied), or the refusal to answer with. Synchronous unless a key set must be fetched.
   */
  private decide(req: DownstreamRequest, context: InboundHttpContext, authority: string, url: string): HeaderBag | Refusal | Promise<HeaderBag | Refusal> {
    this.counters.http_requests++;
    const policy = this.inputs.policy();
    if (context.policy !== policy) {
      context.policy = policy;
      context.decisions = policy.at(context.address, context.port);
    }
    const decisions = context.decisions!;
    const headers = endToEnd(req.headers);
    const lookup = (name: string): HeaderValue => headers[name] as HeaderValue;
    const authenticated = decisions.authenticateRequest(lookup, url);
    if (authenticated instanceof Promise) {
      return authenticated.then(
        (result) => this.authorize(decisions, req, context, authority, url, headers, lookup, result),
        (error: unknown) => this.authorize(decisions, req, context, authority, url, headers, lookup, { status: 401, reason: `Jwt verification fails: ${String(error)}` }),
      );
    }
    return this.authorize(decisions, req, context, authority, url, headers, lookup, authenticated);
  }

  private authorize(
    decisions: PortDecisions,
    req: DownstreamRequest,
    context: InboundHttpContext,
    authority: string,
    url: string,
    headers: HeaderBag,
    lookup: (name: string) => HeaderValue,
    result: AuthenticationResult,
  ): HeaderBag | Refusal {
    if ('status' in result) {
      this.counters.jwt_rejected++;
      this.log.debug({ source: context.sourcePrincipal ?? context.sourceIp, destination: `${context.address}:${context.port}`, path: url, reason: result.reason }, 'request authentication failed');
      return jwtRefusal(result.reason, authority, url);
    }
    // Envoy's jwt_authn rewrites the request before RBAC sees it (token removed, payload added).
    for (const name of result.headers.remove) delete headers[name];
    for (const [name, value] of result.headers.set) headers[name] = value;
    if (!decisions.port.rbac) return headers;
    const view: RequestView = {
      sourcePrincipal: context.sourcePrincipal,
      sourceIp: context.sourceIp,
      destinationIp: context.address,
      destinationPort: context.port,
      authority,
      method: req.method ?? 'GET',
      path: url,
      scheme: 'http',
      headers: lookup,
      metadata: result.metadata,
    };
    const decision = decisions.authorizeRequest(view);
    if (decision.audit !== undefined) {
      this.log.info({ source: context.sourcePrincipal ?? context.sourceIp, destination: `${context.address}:${context.port}`, method: view.method, path: url, policy: decision.audit, allowed: decision.allowed }, 'request audited');
    }
    if (decision.shadow && !decision.shadow.allowed) {
      this.counters.rbac_shadow_denied++;
      this.log.info({ source: context.sourcePrincipal ?? context.sourceIp, destination: `${context.address}:${context.port}`, method: view.method, path: url, policy: decision.shadow.policy }, 'request would be denied by a dry-run policy');
    }
    if (!decision.allowed) {
      this.counters.rbac_denied++;
      this.log.debug({ source: context.sourcePrincipal ?? context.sourceIp, destination: `${context.address}:${context.port}`, method: view.method, path: url, policy: decision.policy }, 'request denied by RBAC');
      return RBAC_REFUSAL;
    }
    this.counters.rbac_allowed++;
    return headers;
  }

  private onRequest(req: DownstreamRequest, res: DownstreamResponse, context: InboundHttpContext): void {
    const authority = authorityOf(req);
    const url = req.url ?? '/';
    let decided: ReturnType<InboundHttp['decide']>;
    try {
      decided = this.decide(req, context, authority, url);
      if (!(decided instanceof Promise)) return this.forward(req, res, context, authority, url, decided);
    } catch (error) {
      return this.failed(req, res, error);
    }
    decided.then((d) => this.forward(req, res, context, authority, url, d)).catch((error: unknown) => this.failed(req, res, error));
  }

  /** A request the path cannot handle (say, a header the workload's protocol refuses) fails alone, never the agent. */
  private failed(req: DownstreamRequest, res: DownstreamResponse, error: unknown): void {
    this.log.warn({ path: req.url, err: (error as Error).message }, 'inbound HTTP request failed in the agent');
    if (res.headersSent || res.destroyed) {
      if (!res.destroyed) destroyResponse(res);
      return;
    }
    res.writeHead(502, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(AGENT_FAILURE_BODY) });
    res.end(AGENT_FAILURE_BODY);
  }

  /**
   * Sends an allowed request to the workload, or answers a refusal. Synchronous up to the attempt,
   * whose one promise carries the rest: no async function and catch chain per request.
   */
  private forward(req: DownstreamRequest, res: DownstreamResponse, context: InboundHttpContext, authority: string, url: string, decided: HeaderBag | Refusal): void {
    if (decided instanceof Refusal) {
      // The body of a refused request is not read; a kept-alive HTTP/1 connection drains it.
      if (!res.destroyed) {
        res.writeHead(decided.status, decided.headers as http.OutgoingHttpHeaders);
        res.end(decided.body);
      }
      return;
    }
    attemptUpstream(this.inputs.pool, {
      target: context.target,
      http2: context.upstreamHttp2,
      method: req.method ?? 'GET',
      path: url,
      authority,
      headers: decided,
      body: req,
      // Inbound requests are bounded by the caller's timeout (Istio sets none on inbound routes).
      timeoutMs: undefined,
    }).then(
      (outcome) => {
        try {
          respond(outcome, res, this.log);
        } catch (error) {
          this.failed(req, res, error);
        }
      },
      (error: unknown) => this.failed(req, res, error),
    );
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, context: InboundHttpContext): void {
    socket.on('error', () => undefined);
    const authority = authorityOf(req);
    const url = req.url ?? '/';
    const failed = (error: unknown): void => {
      this.log.warn({ path: url, err: (error as Error).message }, 'inbound HTTP upgrade failed in the agent');
      socket.destroy();
    };
    let decided: ReturnType<InboundHttp['decide']>;
    try {
      decided = this.decide(req, context, authority, url);
    } catch (error) {
      return failed(error);
    }
    if (decided instanceof Promise) void decided.then((d) => this.forwardUpgrade(req, socket, head, context, authority, url, d)).catch(failed);
    else this.forwardUpgrade(req, socket, head, context, authority, url, decided).catch(failed);
  }

  private async forwardUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, context: InboundHttpContext, authority: string, url: string, decided: HeaderBag | Refusal): Promise<void> {
    if (decided instanceof Refusal) return writeRawResponse(socket, decided.status, decided.headers, decided.body);
    const outcome = await attemptUpstream(this.inputs.pool, {
      target: context.target,
      http2: false,
      method: req.method ?? 'GET',
      path: url,
      authority,
      headers: decided,
      body: req,
      timeoutMs: undefined,
      upgrade: String(req.headers.upgrade ?? ''),
    });
    if (outcome.kind !== 'response') {
      const reply = localReplyOf(outcome);
      return writeTextResponse(socket, reply.status, {}, reply.body);
    }
    const response = outcome.response;
    if (!response.upgraded) {
      // Refused upgrade: the workload's answer goes back as is, then the connection closes.
      socket.write(rawHead(response.status, response.headers, true));
      response.body.pipe(socket);
      return;
    }
    const upstream = response.upgraded.socket;
    if (socket.destroyed) {
      upstream.destroy();
      return;
    }
    socket.write(rawHead(response.status, { ...response.headers, connection: 'Upgrade' }, false));
    if (response.upgraded.head.length > 0) socket.write(response.upgraded.head);
    if (head.length > 0) upstream.write(head);
    void relay(socket as net.Socket, upstream);
  }
}

function authorityOf(req: DownstreamRequest): string {
  const headers = req.headers as Record<string, string | string[] | undefined>;
  const value = headers[':authority'] ?? headers.host;
  return typeof value === 'string' ? value : '';
}

function localReplyOf(outcome: Exclude<AttemptOutcome, { kind: 'response' }>): LocalReply {
  return outcome.kind === 'connect-failure' ? CONNECT_FAILURE : outcome.kind === 'timeout' ? UPSTREAM_TIMEOUT : CONNECTION_TERMINATION;
}

/** Streams the workload's response back, or Envoy's local reply when it gave none. */
function respond(outcome: AttemptOutcome, res: DownstreamResponse, log: Logger): void {
  if (outcome.kind !== 'response') {
    const reply = localReplyOf(outcome);
    log.debug({ flags: reply.flag, err: outcome.message }, 'local workload failed');
    if (res.headersSent) return destroyResponse(res);
    if (res.destroyed) return;
    res.writeHead(reply.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(reply.body) });
    res.end(reply.body);
    return;
  }
  forwardResponse(res, outcome.response, outcome.response.headers);
}
