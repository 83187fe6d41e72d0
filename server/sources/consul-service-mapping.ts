// Consul health entries (/v1/health/service/:name) to the mesh's Service model: which instances
// join (tag and meta filter), their health, labels, locality and weight, the port and protocol.
import { z } from 'zod';
import type { Endpoint, PortProtocol, Service } from '../registry/service';

/** Which Consul services join the mesh. Both conditions must hold when both are given. */
export interface ConsulServiceFilter {
  /** Only instances carrying this tag (e.g. `mesh`); services with no such instance are not watched. */
  tag?: string;
  /** Only instances whose Service Meta has all these key=value pairs. */
  meta?: Record<string, string>;
}

const stringMap = z.record(z.string(), z.string()).nullish();

const healthEntrySchema = z.object({
  Node: z.object({
    Node: z.string(),
    Address: z.string(),
    Datacenter: z.string().nullish(),
    Meta: stringMap,
  }),
  Service: z.object({
    ID: z.string(),
    Service: z.string(),
    Tags: z.array(z.string()).nullish(),
    Address: z.string().nullish(),
    Port: z.number().int().min(0).max(65535),
    Meta: stringMap,
    Weights: z.object({ Passing: z.number().optional(), Warning: z.number().optional() }).nullish(),
  }),
  Checks: z.array(z.object({ CheckID: z.string(), Status: z.string() })).nullish(),
});

export const healthSchema = z.array(healthEntrySchema);

export type ConsulHealthEntry = z.infer<typeof healthEntrySchema>;

export interface ConsulMappingOptions {
  namespace: string;
  datacenter?: string;
  passingOnly: boolean;
  filter: ConsulServiceFilter;
}

/** Consul's `protocol` convention (service-defaults, Meta) to the mesh's port protocols. */
const PROTOCOLS: Record<string, PortProtocol> = {
  http: 'HTTP', http2: 'HTTP2', grpc: 'GRPC', tcp: 'TCP',
  https: 'HTTPS', tls: 'TLS', 'grpc-web': 'GRPC-WEB', mongo: 'MONGO', redis: 'REDIS', mysql: 'MYSQL', udp: 'UDP',
};

function tagValues(tags: readonly string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const tag of tags) {
    const at = tag.indexOf('=');
    if (at > 0) values[tag.slice(0, at)] = tag.slice(at + 1);
  }
  return values;
}

/** The most frequent value; ties go to the one that sorts first. */
function mostCommon<T extends string | number>(values: readonly T[]): T | undefined {
  const counts = new Map<T, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  let best: T | undefined;
  let bestCount = 0;
  for (const [value, count] of counts) {
    if (count > bestCount || (count === bestCount && best !== undefined && value < best)) {
      best = value;
      bestCount = count;
    }
  }
  return best;
}

function instanceMatches(entry: ConsulHealthEntry, filter: ConsulServiceFilter): boolean {
  if (filter.tag !== undefined && !(entry.Service.Tags ?? []).includes(filter.tag)) return false;
  for (const [key, value] of Object.entries(filter.meta ?? {})) {
    if (entry.Service.Meta?.[key] !== value) return false;
  }
  return true;
}

/** Aggregate health as Consul computes it: critical wins over warning wins over passing. */
function aggregateStatus(entry: ConsulHealthEntry): 'passing' | 'warning' | 'critical' {
  const statuses = (entry.Checks ?? []).map((check) => check.Status);
  if (statuses.every((status) => status === 'passing')) return 'passing';
  if (statuses.every((status) => status === 'passing' || status === 'warning')) return 'warning';
  return 'critical';
}

/**
 * Maps one Consul service's health entries to a mesh Service, or undefined when no instance passes
 * the filter. The port and protocol come from every matching instance, healthy or not, so that an
 * outage does not change the service's shape; endpoints follow passingOnly.
 */
export function toMeshService(name: string, entries: readonly ConsulHealthEntry[], options: ConsulMappingOptions): Service | undefined {
  const matching = entries.filter((entry) => instanceMatches(entry, options.filter));
  if (matching.length === 0) return undefined;
  const declared = matching
    .map((entry) => (entry.Service.Meta?.protocol ?? tagValues(entry.Service.Tags ?? []).protocol)?.toLowerCase())
    .filter((value): value is string => value !== undefined && value !== '');
  const protocol = PROTOCOLS[mostCommon(declared) ?? ''] ?? 'UNSPECIFIED';
  const portName = protocol.toLowerCase();
  const portNumber = mostCommon(matching.map((entry) => entry.Service.Port))!;
  const datacenter = options.datacenter ?? matching.find((entry) => entry.Node.Datacenter)?.Node.Datacenter ?? undefined;

  const endpoints: Endpoint[] = [];
  for (const entry of matching) {
    const status = aggregateStatus(entry);
    if (options.passingOnly && status !== 'passing') continue;
    const meta = entry.Service.Meta ?? {};
    const nodeMeta = entry.Node.Meta ?? {};
    // Meta is the explicit channel; key=value tags are the older convention and yield to it.
    const labels = { ...tagValues(entry.Service.Tags ?? []), ...meta };
    const weights = entry.Service.Weights ?? {};
    const weight = status === 'warning' ? weights.Warning ?? 1 : weights.Passing ?? 1;
    endpoints.push({
      address: entry.Service.Address || entry.Node.Address,
      ports: { [portName]: entry.Service.Port },
      labels,
      node: entry.Node.Node,
      healthy: status !== 'critical',
      locality: {
        region: entry.Node.Datacenter ?? datacenter ?? '',
        zone: meta.zone ?? nodeMeta.zone ?? '',
        subzone: meta.subzone ?? nodeMeta.subzone ?? '',
      },
      weight: Math.max(1, Math.floor(weight)),
      serviceAccount: meta['service-account'] ?? name,
    });
  }
  endpoints.sort((a, b) => a.address.localeCompare(b.address) || (a.ports[portName]! - b.ports[portName]!) || (a.node ?? '').localeCompare(b.node ?? ''));

  return {
    hostname: `${name}.service.consul`,
    namespace: options.namespace,
    aliases: datacenter ? [name, `${name}.service.${datacenter}.consul`] : [name],
    addresses: [],
    ports: [{ name: portName, number: portNumber, protocol }],
    resolution: 'STATIC',
    location: 'MESH_INTERNAL',
    endpoints,
    source: 'consul',
    exportTo: ['*'],
    subjectAltNames: [],
  };
}

