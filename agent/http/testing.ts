// Real-socket fixtures for the HTTP request path tests: an outbound listener on loopback fed the
// real translator's config, a tunnel server standing in for the peer agent, and HTTP apps to reach.
import * as http from 'node:http';
import type * as net from 'node:net';
import { Writable } from 'node:stream';
import type { ExecutionContext } from 'ava';
import pino from 'pino';
import type { ConfigResource } from '../../server/config/resource';
import type { Service } from '../../server/registry/service';
import { MeshTranslator } from '../../server/translate/mesh-translator';
import { TypeUrl, generateDecoded, model, named, node } from '../../server/translate/testing';
import type { Logger } from '../../lib/log';
import { Outbound, type OutboundInputs } from '../proxy/outbound';
import { OutboundTable, type Target } from '../proxy/outbound-table';
import { TunnelPool } from '../tunnel/tunnel-pool';
import { TunnelServer } from '../tunnel/tunnel-server';
import type { AgentXdsConfig } from '../xds/agent-xds';

/** What the real translator sends agent `nodeId` for `services` and `resources`. */
export function translatedView(services: readonly Service[], resources: readonly ConfigResource[] = [], nodeId = 'a'): AgentXdsConfig {
  const m = model(services, resources);
  const translator = new MeshTranslator();
  const n = node(nodeId);
  const listeners = generateDecoded(translator, m, n, TypeUrl.Listener);
  const clusters = generateDecoded(translator, m, n, TypeUrl.Cluster);
  const eds = [...clusters].filter(([, c]) => c.type === 'EDS').map(([name]) => name);
  const routeNames = [...new Set(services.flatMap((s) => s.ports.map((p) => String(p.number))))];
  return {
    listeners,
    clusters,
    routes: generateDecoded(translator, m, n, TypeUrl.RouteConfiguration, named(...routeNames)),
    endpoints: generateDecoded(translator, m, n, TypeUrl.ClusterLoadAssignment, named(...eds)),
    versions: {},
    source: 'server',
  };
}

/** A pino logger at debug level whose lines the test reads back. */
export function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

export interface Harness {
  /** The outbound listener clients connect to on 127.0.0.1. */
  port: number;
  outbound: Outbound;
  tunnels: TunnelPool;
  /** The original destination every accepted connection reports (what SO_ORIGINAL_DST would say). */
  destination: Target;
  apply(services: readonly Service[], resources?: readonly ConfigResource[]): void;
  /** The table the last `apply` built: its cluster guards show breaker and outlier state. */
  table(): OutboundTable | undefined;
  lines: Array<Record<string, unknown>>;
}

export interface HarnessOptions extends Partial<Pick<OutboundInputs, 'protocolDetectionTimeoutMs' | 'http' | 'upstreamIdleTimeoutMs'>> {
  destination: Target;
}

/** An Outbound on loopback whose meshed endpoints (node set) are reached through a local TunnelServer. */
export async function startHarness(t: ExecutionContext, options: HarnessOptions): Promise<Harness> {
  const tunnelServer = new TunnelServer({ resolveInbound: (destination) => ({ host: destination.address, port: destination.port }) });
  const tunnelPort = (await tunnelServer.listen(0, '127.0.0.1')).port;
  const tunnels = new TunnelPool();
  const { logger, lines } = capturingLogger();
  let table: OutboundTable | undefined;
  const harness: Harness = {
    port: 0,
    outbound: undefined as unknown as Outbound,
    tunnels,
    destination: options.destination,
    lines,
    apply(services, resources = []) {
      table = new OutboundTable(translatedView(services, resources), { node: 'a', tunnelPort });
    },
    table: () => table,
  };
  harness.outbound = new Outbound({
    table: () => table,
    pool: tunnels,
    logger,
    originalDestination: () => harness.destination,
    ...(options.protocolDetectionTimeoutMs !== undefined ? { protocolDetectionTimeoutMs: options.protocolDetectionTimeoutMs } : {}),
    ...(options.http ? { http: options.http } : {}),
    ...(options.upstreamIdleTimeoutMs !== undefined ? { upstreamIdleTimeoutMs: options.upstreamIdleTimeoutMs } : {}),
  });
  t.teardown(async () => {
    await harness.outbound.drain(100);
    await tunnels.close(100);
    await tunnelServer.close(100);
  });
  harness.port = await harness.outbound.listen(0, false);
  return harness;
}

export interface HttpApp {
  name: string;
  port: number;
  server: http.Server;
  /** TCP connections the app accepted: few for many requests means upstream keep-alive works. */
  connections(): number;
  requests(): number;
}

/** An HTTP/1.1 app on 127.0.0.1 answering JSON {app, method, url, headers}, or `handler` when given. */
export async function startHttpApp(t: ExecutionContext, name: string, handler?: http.RequestListener): Promise<HttpApp> {
  let connections = 0;
  let requests = 0;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((req, res) => {
    requests++;
    if (handler) return handler(req, res);
    const body = JSON.stringify({ app: name, method: req.method, url: req.url, headers: req.headers });
    req.resume();
    req.once('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-app': name });
      res.end(body);
    });
  });
  server.on('connection', (socket: net.Socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return { name, port, server, connections: () => connections, requests: () => requests };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request to the outbound listener, as a client of `authority` would send it. */
export function request(port: number, options: { method?: string; path?: string; authority: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer; agent?: http.Agent | false }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'GET',
        path: options.path ?? '/',
        headers: { host: options.authority, ...options.headers },
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.once('error', reject);
      },
    );
    req.once('error', reject);
    req.end(options.body);
  });
}
