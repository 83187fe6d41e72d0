// Streaming an upstream response to the downstream client, in both directions of the agent: the
// head, the body with backpressure, the trailers, and a broken exchange on either side ending the
// other instead of looking finished.
import type * as http from 'node:http';
import type { HeaderBag } from './header-mutations';
import type { DownstreamResponse } from './http-connection';
import { destroyResponse } from './raw-response';
import type { UpstreamResponse } from './upstream-attempt';

export interface ForwardHooks {
  /** The client went away before the whole response (Envoy's DC). */
  clientGone?(): void;
  /** The upstream failed or closed before finishing its response. */
  upstreamBroken?(): void;
}

const NO_HOOKS: ForwardHooks = {};

/** Sends `response` to `res` with `headers` (the upstream's, possibly rewritten by the caller). */
export function forwardResponse(res: DownstreamResponse, response: UpstreamResponse, headers: HeaderBag, hooks: ForwardHooks = NO_HOOKS): void {
  if (res.destroyed || res.writableEnded) {
    response.abort();
    return;
  }
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
      hooks.clientGone?.();
      response.abort();
    }
  });
  body.on('error', () => {
    hooks.upstreamBroken?.();
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
      hooks.upstreamBroken?.();
      destroyResponse(res);
    }
  });
  // Data events rather than pipe(): pipe's bookkeeping (listeners added to both streams and removed
  // again, per response) cost more than the forwarding itself; backpressure works the same way.
  const sink = res as NodeJS.WritableStream;
  body.on('data', (chunk: Buffer) => {
    if (!sink.write(chunk)) {
      body.pause();
      res.once('drain', () => body.resume());
    }
  });
}
