// Real-socket fixtures for the tunnel tests: an echo app, a TCP relay whose backend can be swapped
// (a peer agent "restarting" on a new port 0) or frozen (a black-holed connection), and helpers.
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ExecutionContext } from 'ava';

export function listen(server: net.Server, t: ExecutionContext): Promise<number> {
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
      }),
  );
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** An app that echoes every byte and ends its side when the client ends its own. */
export interface EchoApp {
  port: number;
  /** Resolves with the connection's socket each time the app sees a client FIN. */
  fins: Array<Promise<void>>;
  connections: net.Socket[];
}

export async function startEcho(t: ExecutionContext, replyOnFin?: string): Promise<EchoApp> {
  const app: EchoApp = { port: 0, fins: [], connections: [] };
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    app.connections.push(socket);
    socket.on('error', () => undefined);
    app.fins.push(
      new Promise<void>((resolve) => {
        socket.once('end', () => {
          resolve();
          // Still writable after the peer's FIN: proves half-close travels through the tunnel.
          if (replyOnFin !== undefined) socket.end(replyOnFin);
          else socket.end();
        });
      }),
    );
    socket.pipe(socket, { end: false });
  });
  t.teardown(() => {
    for (const socket of app.connections) socket.destroy();
  });
  app.port = await listen(server, t);
  return app;
}

/** A port on which nothing listens: bound on port 0, then released. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A fixed front address for a peer agent whose real port changes. `freeze()` stops moving bytes
 * without closing anything, which is what a dead host or a dropped route looks like.
 */
export class SwitchableRelay {
  port = 0;
  backendPort = 0;
  frozen = false;
  private readonly sockets = new Set<net.Socket>();
  private readonly closeWaiters: Array<() => void> = [];
  private readonly server = net.createServer((client) => this.accept(client));

  /** Resolves when the next front connection closes (the pool's session went away). */
  nextClose(): Promise<void> {
    return new Promise((resolve) => this.closeWaiters.push(resolve));
  }

  async start(t: ExecutionContext, backendPort: number): Promise<void> {
    this.backendPort = backendPort;
    t.teardown(() => this.dropAll());
    this.port = await listen(this.server, t);
  }

  freeze(): void {
    // Sockets keep reading (and so still notice a close); what they read is dropped.
    this.frozen = true;
  }

  dropAll(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.backendPort, '127.0.0.1');
    client.once('close', () => {
      for (const resolve of this.closeWaiters.splice(0)) resolve();
    });
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.once('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    // Data read while frozen is dropped rather than forwarded.
    client.on('data', (chunk: Buffer) => {
      if (!this.frozen) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!this.frozen) client.write(chunk);
    });
  }
}

/** Writes `payload` (optionally ending), reads until the other side ends, returns what came back. */
export function exchange(stream: Duplex, payload: Buffer | string, end = true): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
    // readBytes() may have paused the stream, and a paused stream ignores new 'data' listeners.
    stream.resume();
    if (end) stream.end(payload);
    else stream.write(payload);
  });
}

/** Reads from `stream` until exactly `length` bytes have arrived (the stream stays open). */
export function readBytes(stream: Duplex, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      have += chunk.length;
      if (have >= length) {
        stream.off('data', onData);
        stream.off('error', reject);
        stream.pause();
        resolve(Buffer.concat(chunks));
      }
    };
    stream.on('data', onData);
    stream.once('error', reject);
  });
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
