// mesh-agent's admin HTTP API (Envoy's :15000: config_dump, clusters, logging, stats) and its
// readiness probe (Istio's :15021 /healthz/ready), both reading the agent's state per request.
import type { FastifyReply } from 'fastify';
import { createAdminHttp, queryString, type AdminHttpAddress, type AdminRoute } from '../../lib/admin/admin-http';
import { parseListenAddress } from '../../lib/listen-address';
import type { Logger } from '../../lib/log';
import type { DecodedResource } from '../../lib/xds/ads-client';
import type { AgentXdsConfig, ConfigSource } from '../xds/agent-xds';

/** The config in force and when the agent applied it (Envoy's `last_updated`). */
export interface AppliedConfig {
  view: AgentXdsConfig;
  appliedAt: Date;
}

/** Counters by group (`outbound`, `inbound`, `tunnelPool`), each a flat record of numbers. */
export type AgentStats = Record<string, Record<string, number>>;

export interface AgentReadiness {
  ready: boolean;
  /** Why the agent is not ready, in words an operator can act on; absent when ready. */
  reason?: string;
  source?: ConfigSource;
  redirect: 'disabled' | 'pending' | 'verified' | 'failed';
}

/** Everything the admin API reads, as functions so every request sees the current state. */
export interface AgentAdminInputs {
  /** The logger whose level GET/POST /logging read and change; children without their own level follow it. */
  logger: Logger;
  config(): AppliedConfig | undefined;
  stats(): AgentStats;
}

export interface ReadinessInputs {
  logger: Logger;
  readiness(): AgentReadiness;
}

export type HttpAddress = AdminHttpAddress;

export interface AgentHttpServer {
  /** `host:port`, `[v6]:port`, or `:port` for every interface (port 0 picks a free one). */
  listen(address: string): Promise<HttpAddress>;
  close(): Promise<void>;
}

const TYPE_PREFIX = 'type.googleapis.com/envoy.admin.v3.';
const LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const NO_CONFIG = 'no xDS config has been received from the server or read from a snapshot yet';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function records(value: unknown): Record<string, unknown>[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

function sorted(resources: ReadonlyMap<string, DecodedResource>): Array<[string, DecodedResource]> {
  return [...resources].sort(([a], [b]) => a.localeCompare(b));
}

/** Envoy's `/config_dump` for the dynamic resources; `@type` on each resource keeps the dump self-describing. */
export function configDump(applied: AppliedConfig): { configs: Array<Record<string, unknown>>; source: ConfigSource } {
  const { view } = applied;
  const lastUpdated = applied.appliedAt.toISOString();
  const typed = (type: string, resource: DecodedResource): DecodedResource => ({ '@type': `type.googleapis.com/envoy.${type}`, ...resource });
  return {
    configs: [
      {
        '@type': `${TYPE_PREFIX}ListenersConfigDump`,
        version_info: view.versions.LDS ?? '',
        dynamic_listeners: sorted(view.listeners).map(([name, listener]) => ({
          name,
          active_state: { version_info: view.versions.LDS ?? '', listener: typed('config.listener.v3.Listener', listener), last_updated: lastUpdated },
        })),
      },
      {
        '@type': `${TYPE_PREFIX}RoutesConfigDump`,
        dynamic_route_configs: sorted(view.routes).map(([, route]) => ({
          version_info: view.versions.RDS ?? '',
          route_config: typed('config.route.v3.RouteConfiguration', route),
          last_updated: lastUpdated,
        })),
      },
      {
        '@type': `${TYPE_PREFIX}ClustersConfigDump`,
        version_info: view.versions.CDS ?? '',
        dynamic_active_clusters: sorted(view.clusters).map(([, cluster]) => ({
          version_info: view.versions.CDS ?? '',
          cluster: typed('config.cluster.v3.Cluster', cluster),
          last_updated: lastUpdated,
        })),
      },
      {
        '@type': `${TYPE_PREFIX}EndpointsConfigDump`,
        dynamic_endpoint_configs: sorted(view.endpoints).map(([, cla]) => ({
          version_info: view.versions.EDS ?? '',
          endpoint_config: typed('config.endpoint.v3.ClusterLoadAssignment', cla),
          last_updated: lastUpdated,
        })),
      },
    ],
    // Not in Envoy's dump: whether the agent serves the server's answer or its persisted snapshot.
    source: view.source,
  };
}

export interface ClusterEndpointStatus {
  address: string;
  port: number;
  /** The EDS health status as sent (UNKNOWN when absent: no health checking, traffic allowed). */
  health_status: string;
  /** Envoy's flags: `healthy`, or why the endpoint takes no traffic. */
  health_flags: string;
  weight: number;
  priority: number;
  locality: { region: string; zone: string; sub_zone: string };
}

export interface ClusterStatus {
  name: string;
  type: string;
  lb_policy: string;
  endpoints: ClusterEndpointStatus[];
}

/** Envoy's wording for EDS health in /clusters, so output reads the same as a sidecar's. */
function healthFlags(status: string): string {
  switch (status) {
    case 'HEALTHY':
    case 'UNKNOWN':
      return 'healthy';
    case 'DRAINING':
      return '/eds_status_draining';
    case 'DEGRADED':
      return '/degraded_eds_health';
    default:
      return '/failed_eds_health';
  }
}

/** The load assignment of a cluster: EDS from the endpoints view (by service name), else the cluster's inline one. */
function assignmentOf(view: AgentXdsConfig, name: string, cluster: DecodedResource): Record<string, unknown> | undefined {
  if (cluster.type === 'EDS') {
    const eds = cluster.eds_cluster_config;
    const service = isRecord(eds) && typeof eds.service_name === 'string' && eds.service_name !== '' ? eds.service_name : name;
    return view.endpoints.get(service);
  }
  return isRecord(cluster.load_assignment) ? cluster.load_assignment : undefined;
}

export function clusterStatuses(view: AgentXdsConfig): ClusterStatus[] {
  return sorted(view.clusters).map(([name, cluster]) => {
    const endpoints: ClusterEndpointStatus[] = [];
    for (const group of records(assignmentOf(view, name, cluster)?.endpoints)) {
      const locality = isRecord(group.locality) ? group.locality : {};
      for (const lb of records(group.lb_endpoints)) {
        const endpoint = isRecord(lb.endpoint) ? lb.endpoint : {};
        const address = isRecord(endpoint.address) ? endpoint.address : {};
        const socket = isRecord(address.socket_address) ? address.socket_address : {};
        const health = typeof lb.health_status === 'string' ? lb.health_status : 'UNKNOWN';
        const weight = isRecord(lb.load_balancing_weight) ? Number(lb.load_balancing_weight.value ?? 1) : 1;
        endpoints.push({
          address: String(socket.address ?? ''),
          port: Number(socket.port_value ?? 0),
          health_status: health,
          health_flags: healthFlags(health),
          weight,
          priority: Number(group.priority ?? 0),
          locality: { region: String(locality.region ?? ''), zone: String(locality.zone ?? ''), sub_zone: String(locality.sub_zone ?? '') },
        });
      }
    }
    return { name, type: String(cluster.type ?? 'STATIC'), lb_policy: String(cluster.lb_policy ?? 'ROUND_ROBIN'), endpoints };
  });
}

/** Envoy's text form of /clusters: `cluster::host:port::field::value`, one field a line. */
export function renderClusters(clusters: readonly ClusterStatus[]): string {
  const lines: string[] = [];
  for (const cluster of clusters) {
    lines.push(`${cluster.name}::added_via_api::true`);
    for (const e of cluster.endpoints) {
      const prefix = `${cluster.name}::${e.address}:${e.port}`;
      lines.push(
        `${prefix}::health_flags::${e.health_flags}`,
        `${prefix}::weight::${e.weight}`,
        `${prefix}::region::${e.locality.region}`,
        `${prefix}::zone::${e.locality.zone}`,
        `${prefix}::sub_zone::${e.locality.sub_zone}`,
        `${prefix}::priority::${e.priority}`,
      );
    }
  }
  return lines.map((line) => `${line}\n`).join('');
}

/** `group.counter: value` lines, sorted, as Envoy's /stats prints them. */
export function renderStats(stats: AgentStats): string {
  const lines: string[] = [];
  for (const [group, counters] of Object.entries(stats)) {
    for (const [name, value] of Object.entries(counters)) lines.push(`agent.${group}.${name}: ${value}`);
  }
  return lines.sort().map((line) => `${line}\n`).join('');
}

/** The shared admin HTTP shape (lib/admin/admin-http.ts), listening on an agent.yaml-style address. */
function createHttpServer(logger: Logger, component: string, routes: readonly AdminRoute[]): AgentHttpServer {
  const http = createAdminHttp(logger, component, routes);
  return {
    listen: (address: string) => {
      const { host, port } = parseListenAddress(address);
      return http.listen(host, port);
    },
    close: () => http.close(),
  };
}

export function createAgentAdmin(inputs: AgentAdminInputs): AgentHttpServer {
  const log = inputs.logger.child({ component: 'admin' });
  const noConfig = (reply: FastifyReply): FastifyReply => reply.code(503).send({ error: 'Service Unavailable', message: NO_CONFIG });
  const routes: AdminRoute[] = [
    {
      method: 'GET',
      url: '/config_dump',
      description: 'the xDS config in force, in Envoy\'s admin config dump shape (plus its source: server or snapshot)',
      handler: async (_request, reply) => {
        const applied = inputs.config();
        return applied ? reply.send(configDump(applied)) : noConfig(reply);
      },
    },
    {
      method: 'GET',
      url: '/clusters',
      description: 'clusters and their endpoints with health, as Envoy prints them (?format=json for JSON)',
      handler: async (request, reply) => {
        const applied = inputs.config();
        if (!applied) return noConfig(reply);
        const clusters = clusterStatuses(applied.view);
        if (queryString(request, 'format') === 'json') return reply.send({ cluster_statuses: clusters });
        return reply.type('text/plain; charset=utf-8').send(renderClusters(clusters));
      },
    },
    {
      method: 'GET',
      url: '/logging',
      description: 'the log level',
      handler: async (_request, reply) => reply.send({ level: inputs.logger.level }),
    },
    {
      method: 'POST',
      url: '/logging',
      description: `change the log level at run time: ?level=${LEVELS.join('|')}`,
      handler: async (request, reply) => {
        const level = queryString(request, 'level');
        if (level === undefined || !LEVELS.includes(level)) {
          return reply.code(400).send({ error: 'Bad Request', message: `level must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(level ?? '')}` });
        }
        const previous = inputs.logger.level;
        inputs.logger.level = level;
        // Logged at warn so the change is visible whichever way the level moved.
        log.warn({ previous, level }, 'log level changed over the admin API');
        return reply.send({ level, previous });
      },
    },
    {
      method: 'GET',
      url: '/stats',
      description: 'connection, tunnel and decision counters, one `name: value` a line',
      handler: async (_request, reply) => reply.type('text/plain; charset=utf-8').send(renderStats(inputs.stats())),
    },
  ];
  return createHttpServer(inputs.logger, 'admin', routes);
}

export function createReadinessServer(inputs: ReadinessInputs): AgentHttpServer {
  const routes: AdminRoute[] = [
    {
      method: 'GET',
      url: '/healthz/ready',
      description: 'readiness: 200 once config is applied and the redirection (when enabled) is verified',
      handler: async (_request, reply) => {
        const report = inputs.readiness();
        return reply.code(report.ready ? 200 : 503).send(report);
      },
    },
  ];
  return createHttpServer(inputs.logger, 'readiness', routes);
}
