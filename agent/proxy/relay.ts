// Moves bytes both ways between an accepted client socket and its upstream (a TCP socket or a
// tunnel stream), keeping half-close: each side's FIN ends only the other side's writing half.
import type * as net from 'node:net';
import type { Duplex } from 'node:stream';

/** A tunnel stream that was reset rather than ended carries these (http2.ClientHttp2Stream). */
interface MaybeReset {
  readonly aborted?: boolean;
  readonly rstCode?: number;
}

export interface RelayResult {
  /** Bytes from the client to the upstream, and back. */
  readonly sent: number;
  readonly received: number;
  /** Either side failed or was reset, and the other side was reset in turn. */
  readonly reset: boolean;
}

/**
 * Pipes `client` and `upstream` together and resolves once both are closed. An 'end' from a tunnel
 * stream may precede the reset that caused it (node's order), so the FIN towards the client waits
 * one turn of the event loop to learn which it was.
 */
export function relay(client: net.Socket, upstream: Duplex): Promise<RelayResult> {
  return new Promise((resolve) => {
    let sent = 0;
    let received = 0;
    let reset = false;
    let open = 2;
    const onClose = (): void => {
      if (--open === 0) resolve({ sent, received, reset });
    };
    const fail = (): void => {
      if (reset) return;
      reset = true;
      if (!client.destroyed) client.resetAndDestroy();
      if (!upstream.destroyed) upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      sent += chunk.length;
    });
    upstream.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    client.pipe(upstream);
    upstream.pipe(client, { end: false });
    upstream.once('end', () => {
      setImmediate(() => {
        const stream = upstream as Duplex & MaybeReset;
        if (stream.aborted || stream.rstCode) fail();
        else if (!client.destroyed) client.end();
      });
    });
    client.on('error', fail);
    upstream.on('error', fail);
    client.once('close', (hadError) => {
      // A client gone before both of its halves finished (error, reset, drain) takes the upstream with it.
      if (hadError || !client.readableEnded || !client.writableFinished) fail();
      onClose();
    });
    upstream.once('close', () => {
      const stream = upstream as Duplex & MaybeReset;
      // Closed without a clean end (reset stream, destroyed socket): the client must not see a FIN.
      if (stream.aborted || stream.rstCode || !upstream.readableEnded) fail();
      onClose();
    });
  });
}
