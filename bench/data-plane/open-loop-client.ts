// Open-loop HTTP/1.1 load: requests are due at a fixed rate whatever the server does, sent over a
// fixed set of keep-alive connections, and each latency counts from when the request was DUE (not
// when a connection became free), so stalls show up instead of being hidden (coordinated omission).
// Runs as its own process (pinned by the caller) and prints one JSON line: latencies in µs.
import * as net from 'node:net';
import { parseArgs } from 'node:util';

interface Options {
  host: string;
  port: number;
  rate: number;
  connections: number;
  seconds: number;
  path: string;
}

function readOptions(): Options {
  const { values } = parseArgs({
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      rate: { type: 'string', default: '1000' },
      connections: { type: 'string', default: '16' },
      seconds: { type: 'string', default: '60' },
      path: { type: 'string', default: '/' },
    },
    strict: true,
  });
  const number = (name: string, raw: string | undefined, min: number, max: number): number => {
    const n = Number(raw);
    if (raw === undefined || !Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number from ${min} to ${max}, got ${String(raw)}`);
    return n;
  };
  if (!values.host) throw new Error('--host is required');
  return {
    host: values.host,
    port: number('port', values.port, 1, 65535),
    rate: number('rate', values.rate, 1, 100_000),
    connections: number('connections', values.connections, 1, 1024),
    seconds: number('seconds', values.seconds, 0.1, 3600),
    path: values.path ?? '/',
  };
}

const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:\s*(\d+)/i;

/** One keep-alive connection with at most one request in flight (no pipelining, as browsers and proxies do). */
class Connection {
  /** Due time (ms, performance clock) of the request in flight, or -1 when idle. */
  due = -1;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes of the current response still expected once the headers are in; -1 while reading headers. */
  private bodyLeft = -1;
  private status = 0;

  constructor(readonly socket: net.Socket, private readonly onResponse: (connection: Connection, status: number) => void) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.read(chunk));
  }

  private read(chunk: Buffer): void {
    if (this.bodyLeft >= 0) {
      this.bodyLeft -= chunk.length;
      if (this.bodyLeft <= 0) this.complete(this.status);
      return;
    }
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const data = this.pending.length === 1 ? chunk : Buffer.concat(this.pending, this.pendingBytes);
    const end = data.indexOf(HEADER_END);
    if (end === -1) {
      this.pending = [data];
      return;
    }
    const head = data.toString('latin1', 0, end);
    this.status = Number(head.slice(9, 12));
    const length = CONTENT_LENGTH.exec(head);
    if (!length) throw new Error(`response without Content-Length from ${this.socket.remoteAddress}:${this.socket.remotePort}: ${head.slice(0, 200)}`);
    this.bodyLeft = Number(length[1]) - (data.length - end - 4);
    this.pending = [];
    this.pendingBytes = 0;
    if (this.bodyLeft <= 0) this.complete(this.status);
  }

  private complete(status: number): void {
    this.bodyLeft = -1;
    this.onResponse(this, status);
  }
}

async function main(): Promise<void> {
  const options = readOptions();
  const request = Buffer.from(`GET ${options.path} HTTP/1.1\r\nHost: ${options.host}:${options.port}\r\nUser-Agent: mesh-open-loop\r\n\r\n`);
  const total = Math.round(options.rate * options.seconds);
  const latenciesUs = new Float64Array(total);
  let completed = 0;
  /** Requests still unanswered when the run was cut off (counted with their latency so far). */
  let incomplete = 0;
  let non2xx = 0;
  let sent = 0;
  let maxQueue = 0;
  const idle: Connection[] = [];
  /** Due times of requests that found no idle connection, oldest first. */
  const queue: number[] = [];
  let queueHead = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));

  const dispatch = (connection: Connection, due: number): void => {
    connection.due = due;
    connection.socket.write(request);
  };
  const onResponse = (connection: Connection, status: number): void => {
    latenciesUs[completed++] = (performance.now() - connection.due) * 1000;
    if (status < 200 || status > 299) non2xx++;
    if (completed === total) finish();
    if (queueHead < queue.length) dispatch(connection, queue[queueHead++]!);
    else {
      connection.due = -1;
      idle.push(connection);
    }
  };

  /** Requests that died with their connection (the server closed it or it failed while they were in flight). */
  let failed = 0;
  const connections: Connection[] = [];
  const open = (): Promise<Connection> =>
    new Promise<Connection>((resolve, reject) => {
      const socket = net.connect({ host: options.host, port: options.port }, () => {
        socket.off('error', reject);
        resolve(watch(new Connection(socket, onResponse)));
      });
      socket.once('error', reject);
    });
  // A server may close a kept-alive connection at any time (nginx after keepalive_requests or
  // keepalive_time, a proxy draining): like wrk, count the request in flight as failed, with its
  // latency so far, and carry on over a new connection.
  const watch = (connection: Connection): Connection => {
    connections.push(connection);
    connection.socket.on('error', () => undefined);
    connection.socket.once('close', () => {
      connections.splice(connections.indexOf(connection), 1);
      const idleAt = idle.indexOf(connection);
      if (idleAt !== -1) idle.splice(idleAt, 1);
      if (completed >= total || stopped) return;
      if (connection.due >= 0) {
        failed++;
        latenciesUs[completed++] = (performance.now() - connection.due) * 1000;
        connection.due = -1;
        if (completed === total) return finish();
      }
      open().then(
        (fresh) => {
          if (queueHead < queue.length) dispatch(fresh, queue[queueHead++]!);
          else idle.push(fresh);
        },
        (error: unknown) => {
          process.stderr.write(`open-loop: cannot reconnect: ${error instanceof Error ? error.message : String(error)}\n`);
          process.exit(1);
        },
      );
    });
    return connection;
  };
  let stopped = false;
  for (const connection of await Promise.all(Array.from({ length: options.connections }, open))) idle.push(connection);

  const intervalMs = 1000 / options.rate;
  const start = performance.now();
  // A 1 ms tick sends every request that has become due; late ticks count against latency, which
  // is the point: the client's own delays are measured the same way on every path.
  const tick = (): void => {
    const now = performance.now();
    const dueCount = Math.min(total, Math.floor((now - start) / intervalMs) + 1);
    while (sent < dueCount) {
      const due = start + sent * intervalMs;
      sent++;
      const connection = idle.pop();
      if (connection) dispatch(connection, due);
      else queue.push(due);
    }
    maxQueue = Math.max(maxQueue, queue.length - queueHead);
    if (sent < total) setTimeout(tick, 1);
  };
  tick();
  // Bounded: a path that cannot keep up is stopped at twice the run's length (plus slack), and
  // each request still unanswered counts with the latency it has so far (at least that slow).
  const deadline = setTimeout(() => {
    const now = performance.now();
    const pending = [...connections.filter((c) => c.due >= 0).map((c) => c.due), ...queue.slice(queueHead)];
    incomplete = pending.length;
    for (const due of pending) latenciesUs[completed++] = (now - due) * 1000;
    finish();
  }, (options.seconds * 2 + 10) * 1000);
  await finished;
  stopped = true;
  clearTimeout(deadline);
  const elapsedS = (performance.now() - start) / 1000;
  for (const connection of [...connections]) connection.socket.destroy();
  const sorted = latenciesUs.subarray(0, completed).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
  process.stdout.write(JSON.stringify({
    requests: completed - incomplete - failed, incomplete, failed, non2xx, seconds: elapsedS, achievedRate: (completed - incomplete - failed) / elapsedS, maxQueue,
    p50Us: at(0.5), p90Us: at(0.9), p99Us: at(0.99), maxUs: sorted[sorted.length - 1],
  }) + '\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`open-loop: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
