// Writing responses where Node's HTTP server no longer can: on the raw socket of an Upgrade
// request (a refusal, or the upstream's 101 handed through), and cutting an exchange short.
import * as http from 'node:http';
import type { Duplex } from 'node:stream';
import type { HeaderBag } from './header-mutations';
import type { DownstreamResponse } from './http-connection';

/** Ends an exchange whose headers already went out: HTTP/1 closes the connection, HTTP/2 resets the stream. */
export function destroyResponse(res: DownstreamResponse): void {
  if ('stream' in res) res.stream.close(2);
  else res.destroy();
}

/** An HTTP/1.1 response head; `close` adds `connection: close`. */
export function rawHead(status: number, headers: HeaderBag, close: boolean): string {
  let head = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Status'}\r\n`;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) head += `${name}: ${v}\r\n`;
    else head += `${name}: ${value}\r\n`;
  }
  if (close) head += 'connection: close\r\n';
  return head + '\r\n';
}

/** A whole response with `headers` as given, then the connection closes. */
export function writeRawResponse(socket: Duplex, status: number, headers: HeaderBag, body: string): void {
  if (socket.destroyed) return;
  socket.end(rawHead(status, headers, true) + body);
}

/** A plain-text response (the agent's own replies), then the connection closes. */
export function writeTextResponse(socket: Duplex, status: number, headers: HeaderBag, body: string): void {
  writeRawResponse(socket, status, { ...headers, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) }, body);
}
