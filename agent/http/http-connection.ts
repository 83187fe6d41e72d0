// Serves HTTP on byte streams the agent accepted itself: node's own HTTP/1.1 and HTTP/2 servers,
// never listening, are handed each connection, and every request goes to one callback with its
// connection's context. Outbound uses it today; inbound can reuse it for authorization and telemetry.
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';

export type DownstreamRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type DownstreamResponse = http.ServerResponse | http2.Http2ServerResponse;

export interface HttpExchangeHandler<Context> {
  /** One request; `res` is finished or destroyed by the handler. */
  request(req: DownstreamRequest, res: DownstreamResponse, context: Context): void;
  /** An HTTP/1.1 Upgrade (WebSocket): `socket` is the client's connection, `head` bytes already read after the request. */
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, context: Context): void;
}

export interface HttpConnectionOptions {
  /** A client must finish a request's headers within this (slowloris guard); Node's default is 60 s. */
  headersTimeoutMs?: number;
  /** A keep-alive connection with no request in flight is closed after this. */
  idleTimeoutMs?: number;
}

/** The connection's context rides on the socket; HTTP/2's proxied `req.socket` forwards reads of it. */
const CONTEXT = Symbol('mesh.httpContext');

type WithContext<Context> = { [CONTEXT]?: Context };

const BAD_REQUEST = 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';
const REQUEST_TIMEOUT = 'HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';

export class HttpConnectionServer<Context> {
  private readonly h1: http.Server;
  private readonly h2: http2.Http2Server;

  constructor(handler: HttpExchangeHandler<Context>, options: HttpConnectionOptions = {}) {
    const headersTimeout = options.headersTimeoutMs ?? 60_000;
    const idle = options.idleTimeoutMs ?? 300_000;
    const contextOf = (socket: unknown): Context => (socket as WithContext<Context>)[CONTEXT]!;
    this.h1 = http.createServer({
      headersTimeout,
      requestTimeout: 0,
      // No separate keep-alive timeout: `timeout` below already closes a connection idle for `idle`,
      // between requests as within one. A keep-alive timeout makes node re-arm the socket's timer
      // twice per request (after each response and at the next request) and add a Keep-Alive header
      // to every response, which Envoy does not send.
      keepAliveTimeout: 0,
      // The server checks header deadlines on this period; a tenth keeps the overshoot small.
      connectionsCheckingInterval: Math.max(100, Math.floor(headersTimeout / 10)),
    });
    this.h1.timeout = idle;
    this.h1.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => handler.request(req, res, contextOf(req.socket)));
    this.h1.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => handler.upgrade(req, socket, head, contextOf(req.socket)));
    this.h1.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
      // Malformed bytes, oversized or overdue headers: a 400 or 408 when the socket still takes one, then close.
      if (!socket.writable || socket.writableEnded) {
        socket.destroy();
        return;
      }
      socket.end(error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? REQUEST_TIMEOUT : BAD_REQUEST);
      // Whatever else the client sends is not read: close once the answer is out.
      socket.once('finish', () => socket.destroy());
    });
    // The header-deadline sweep starts on 'listening'; this server never listens, it is fed sockets.
    this.h1.emit('listening');
    this.h2 = http2.createServer({ settings: { enableConnectProtocol: false } });
    this.h2.setTimeout(idle);
    this.h2.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => handler.request(req, res, contextOf(req.socket)));
    this.h2.on('sessionError', () => undefined);
    this.h2.on('session', (session: http2.ServerHttp2Session) => session.on('error', () => undefined));
  }

  /** Serves `socket` (its first bytes still unread) as HTTP/1.x or HTTP/2 with prior knowledge. */
  serve(socket: net.Socket, protocol: 'http1' | 'h2c', context: Context): void {
    (socket as WithContext<Context>)[CONTEXT] = context;
    if (protocol === 'h2c') {
      this.h2.emit('connection', socket);
      return;
    }
    this.h1.emit('connection', socket);
    // The HTTP/1 parser reads the handle directly; bytes put back by sniffing flow as 'data' once resumed.
    socket.resume();
  }

  /** Stops the header-deadline sweep; open connections are closed by their owner. */
  close(): void {
    this.h1.close();
    this.h2.close();
  }
}
