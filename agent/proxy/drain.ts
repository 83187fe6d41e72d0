// Graceful shutdown of a listener's connections: wait for open sockets to finish on their own,
// and reset whatever is still open when the grace period ends.
import type * as net from 'node:net';

/** Resolves once every socket in `clients` has closed, or after `graceMs` with the rest reset. */
export function drainSockets(clients: ReadonlySet<net.Socket>, graceMs: number): Promise<void> {
  if (clients.size === 0) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      for (const socket of clients) socket.resetAndDestroy();
      resolve();
    }, graceMs);
    const check = (): void => {
      if (clients.size > 0) return;
      clearTimeout(timer);
      resolve();
    };
    // setImmediate: the owner removes the socket from `clients` in its own 'close' handler.
    for (const socket of clients) socket.once('close', () => setImmediate(check));
  });
}
