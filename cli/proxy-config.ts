// `meshctl proxy-config listeners|routes|clusters|endpoints`: reads a mesh-agent's /config_dump
// (its admin port, :15000) and prints the xDS config it runs as tables, like istioctl proxy-config.
import type { CommandIo } from './proxy-status';
import { fetchAdminJson } from './admin-client';

export const DEFAULT_AGENT_URL = 'http://127.0.0.1:15000';
export const PROXY_CONFIG_KINDS = ['listeners', 'routes', 'clusters', 'endpoints'] as const;
export type ProxyConfigKind = (typeof PROXY_CONFIG_KINDS)[number];

export interface ProxyConfigOptions {
  /** Base URL of the mesh-agent's admin API. */
  agent: string;
  output: 'table' | 'json';
  timeoutMs?: number;
}

type Json = Record<string, unknown>;

/** Which config_dump section holds each kind, and the field of each entry that holds the resource. */
const SECTIONS: Record<ProxyConfigKind, { type: string; list: string; resource: (entry: Json) => unknown }> = {
  listeners: { type: 'ListenersConfigDump', list: 'dynamic_listeners', resource: (entry) => (isRecord(entry.active_state) ? entry.active_state.listener : undefined) },
  routes: { type: 'RoutesConfigDump', list: 'dynamic_route_configs', resource: (entry) => entry.route_config },
  clusters: { type: 'ClustersConfigDump', list: 'dynamic_active_clusters', resource: (entry) => entry.cluster },
  endpoints: { type: 'EndpointsConfigDump', list: 'dynamic_endpoint_configs', resource: (entry) => entry.endpoint_config },
};

/** Domains shown per route before "+N more": enough to recognise the service, short enough for one line. */
const DOMAINS_SHOWN = 3;

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function records(value: unknown): Json[] {
  return Array.isArray(value) ? value.filter(isRecord) : [];
}

function text(value: unknown, fallback = ''): string {
  return typeof value === 'string' || typeof value === 'number' ? String(value) : fallback;
}

function socketAddress(address: unknown): string {
  const socket = isRecord(address) && isRecord(address.socket_address) ? address.socket_address : undefined;
  if (!socket) return '-';
  const host = text(socket.address);
  return `${host.includes(':') ? `[${host}]` : host}:${text(socket.port_value, '0')}`;
}

function alignColumns(rows: readonly string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, column) => (widths[column] = Math.max(widths[column] ?? 0, cell.length)));
  return rows
    .map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd((widths[column] ?? 0) + 3))).join(''))
    .join('\n');
}

/** The resources of one kind in a config dump, or a message saying why the body is not one. */
export function resourcesOf(dump: unknown, kind: ProxyConfigKind): Json[] | string {
  const section = SECTIONS[kind];
  if (!isRecord(dump) || !Array.isArray(dump.configs)) return 'the answer has no "configs" list; is this a mesh-agent admin port?';
  const config = records(dump.configs).find((entry) => text(entry['@type']).endsWith(`.${section.type}`));
  if (!config) return `the config dump has no ${section.type} section`;
  return records(config[section.list]).map(section.resource).filter(isRecord);
}

export function renderListeners(listeners: readonly Json[]): string {
  const rows = [['NAME', 'ADDRESS:PORT', 'CHAINS']];
  for (const listener of listeners) {
    const chains = records(listener.filter_chains).length + (isRecord(listener.default_filter_chain) ? 1 : 0);
    rows.push([text(listener.name), socketAddress(listener.address), String(chains)]);
  }
  return `${alignColumns(rows)}\n`;
}

export function renderRoutes(routes: readonly Json[]): string {
  const rows = [['NAME', 'VIRTUAL HOSTS', 'DOMAINS']];
  for (const route of routes) {
    const hosts = records(route.virtual_hosts);
    const domains = hosts.flatMap((host) => (Array.isArray(host.domains) ? host.domains.map((domain) => text(domain)) : []));
    const shown = domains.slice(0, DOMAINS_SHOWN).join(', ');
    const more = domains.length > DOMAINS_SHOWN ? ` +${domains.length - DOMAINS_SHOWN} more` : '';
    rows.push([text(route.name), String(hosts.length), `${shown}${more}` || '-']);
  }
  return `${alignColumns(rows)}\n`;
}

export function renderClusters(clusters: readonly Json[]): string {
  const rows = [['NAME', 'TYPE', 'LB']];
  // Envoy leaves defaults out of decoded messages: an absent type is STATIC, an absent policy ROUND_ROBIN.
  for (const cluster of clusters) rows.push([text(cluster.name), text(cluster.type, 'STATIC'), text(cluster.lb_policy, 'ROUND_ROBIN')]);
  return `${alignColumns(rows)}\n`;
}

export function renderEndpoints(assignments: readonly Json[]): string {
  const rows = [['CLUSTER', 'ENDPOINT', 'HEALTH']];
  for (const cla of assignments) {
    for (const group of records(cla.endpoints)) {
      for (const lb of records(group.lb_endpoints)) {
        const endpoint = isRecord(lb.endpoint) ? lb.endpoint : {};
        rows.push([text(cla.cluster_name), socketAddress(endpoint.address), text(lb.health_status, 'UNKNOWN')]);
      }
    }
  }
  return `${alignColumns(rows)}\n`;
}

const RENDER: Record<ProxyConfigKind, (resources: readonly Json[]) => string> = {
  listeners: renderListeners,
  routes: renderRoutes,
  clusters: renderClusters,
  endpoints: renderEndpoints,
};

export async function proxyConfigCommand(kind: ProxyConfigKind, options: ProxyConfigOptions, io: CommandIo): Promise<number> {
  const fetched = await fetchAdminJson(options.agent, '/config_dump', {}, options.timeoutMs, { program: 'mesh-agent', flag: '--agent', defaultUrl: DEFAULT_AGENT_URL });
  if (!fetched.ok) {
    io.stderr(`meshctl proxy-config ${kind}: ${fetched.message}\n`);
    return 1;
  }
  const resources = resourcesOf(fetched.body, kind);
  if (typeof resources === 'string') {
    io.stderr(`meshctl proxy-config ${kind}: ${fetched.url.href}: ${resources}\n`);
    return 1;
  }
  io.stdout(options.output === 'json' ? `${JSON.stringify(resources, null, 2)}\n` : RENDER[kind](resources));
  return 0;
}
