// Simulated agents for control-plane benchmarks: ADS clients that subscribe as mesh-agent does
// (LDS/CDS wildcard, then EDS/RDS by the names those carry) and record when each type arrives.
import type * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import { AdsClient, type AdsUpdate, type DecodedResource } from '../../lib/xds/ads-client';
import { TYPE_SHORT_NAME, TypeUrl, type ResourceTypeUrl } from '../../lib/xds/protos';
import type { ClientSyncStatus } from '../../server/xds/sync-status';

export const ALL_TYPES: readonly ResourceTypeUrl[] = [TypeUrl.Listener, TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.RouteConfiguration];

export interface SimClient {
  readonly node: string;
  readonly ads: AdsClient;
  edsNames: string[];
  rdsNames: string[];
  /** Per-type arrival time of the first update after `watchFrom`, for the current round. */
  arrivals: Map<ResourceTypeUrl, number>;
  watchFrom: number;
  /** Version per type when the round's file was written: an update counts only if it differs. */
  before: Map<ResourceTypeUrl, string | undefined>;
  /** Called once the cluster list changed, so the client can widen its EDS subscription. */
  onCds?: () => void;
}

export function collectRouteNames(value: unknown, out: Set<string>, depth = 0): void {
  if (depth > 40 || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (const item of value) collectRouteNames(item, out, depth + 1);
    return;
  }
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    if (key === 'rds' && child && typeof child === 'object') {
      const name = (child as Record<string, unknown>).route_config_name;
      if (typeof name === 'string') out.add(name);
    } else collectRouteNames(child, out, depth + 1);
  }
}

function isEdsCluster(cluster: DecodedResource): boolean {
  return cluster.type === 'EDS' || cluster.eds_cluster_config !== undefined;
}

/** What an agent on `node` would subscribe to by name, read from decoded LDS and CDS (once, at setup). */
export async function discoverNames(target: string, node: string, timeoutMs: number): Promise<{ eds: string[]; rds: string[] }> {
  const probe = new AdsClient({ target, node: { id: node }, decode: true });
  try {
    const got = new Map<string, ReadonlyMap<string, DecodedResource>>();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`discovery for ${node}: no LDS and CDS within ${timeoutMs} ms`)), timeoutMs);
      probe.on('update', (update: AdsUpdate) => {
        got.set(update.typeUrl, update.resources);
        if (got.has(TypeUrl.Listener) && got.has(TypeUrl.Cluster)) {
          clearTimeout(timer);
          resolve();
        }
      });
      probe.subscribe(TypeUrl.Listener, '*');
      probe.subscribe(TypeUrl.Cluster, '*');
    });
    const eds: string[] = [];
    for (const [name, cluster] of got.get(TypeUrl.Cluster)!) if (isEdsCluster(cluster)) eds.push(name);
    const rds = new Set<string>();
    for (const listener of got.get(TypeUrl.Listener)!.values()) collectRouteNames(listener, rds);
    return { eds: eds.sort(), rds: [...rds].sort() };
  } finally {
    probe.close();
  }
}

export async function mapLimited<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

export function createClient(target: string, node: string, names: { eds: string[]; rds: string[] }, channelOptions?: grpc.ChannelOptions): SimClient {
  // decode: false keeps the bench side cheap (the envelope only); names come from discovery.
  const ads = new AdsClient({ target, node: { id: node }, decode: false, channelOptions });
  const client: SimClient = { node, ads, edsNames: names.eds, rdsNames: names.rds, arrivals: new Map(), watchFrom: Infinity, before: new Map() };
  ads.on('update', (update: AdsUpdate) => {
    const now = performance.now();
    const type = update.typeUrl as ResourceTypeUrl;
    // As an agent does: clusters known, ask for their endpoints; listeners known, ask for their routes.
    if (type === TypeUrl.Cluster) ads.subscribe(TypeUrl.ClusterLoadAssignment, client.edsNames);
    if (type === TypeUrl.Listener) ads.subscribe(TypeUrl.RouteConfiguration, client.rdsNames);
    if (now >= client.watchFrom && !client.arrivals.has(type) && update.version !== client.before.get(type)) {
      client.arrivals.set(type, now);
      if (type === TypeUrl.Cluster) client.onCds?.();
    }
  });
  ads.on('nack', (nack) => process.stderr.write(`client ${node} NACKed ${nack.typeUrl}: ${nack.message}\n`));
  ads.subscribe(TypeUrl.Listener, '*');
  ads.subscribe(TypeUrl.Cluster, '*');
  return client;
}

export async function waitFor(what: string, timeoutMs: number, done: () => boolean, missing: () => string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`${what}: not done after ${timeoutMs} ms; ${missing()}`);
    await sleep(5);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function checkSyncz(admin: string, clients: SimClient[]): Promise<{ ok: boolean; problems: string[] }> {
  const response = await fetch(`${admin}/debug/syncz`);
  const statuses = (await response.json()) as ClientSyncStatus[];
  const byNode = new Map(statuses.map((status) => [status.node, status]));
  const problems: string[] = [];
  for (const client of clients) {
    const status = byNode.get(client.node);
    if (!status) {
      problems.push(`${client.node}: not in /debug/syncz`);
      continue;
    }
    for (const type of ALL_TYPES) {
      const short = TYPE_SHORT_NAME[type];
      const sync = status.types[short];
      const held = client.ads.version(type);
      if (!sync || sync.sent !== sync.acked || sync.acked !== held) {
        problems.push(`${client.node} ${short}: sent ${sync?.sent}, acked ${sync?.acked}, client holds ${held}`);
      }
    }
  }
  return { ok: problems.length === 0, problems };
}
