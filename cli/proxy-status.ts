// `meshctl proxy-status`: asks mesh-server's admin API (/debug/syncz) which xDS clients are
// connected and whether each acknowledged the latest CDS/LDS/EDS/RDS, as `istioctl proxy-status`.
import type { ClientSyncStatus, TypeSyncStatus, XdsShortType } from '../server/xds/sync-status';
import { DEFAULT_ADMIN_URL, DEFAULT_TIMEOUT_MS, fetchAdminJson } from './admin-client';

export { DEFAULT_ADMIN_URL, DEFAULT_TIMEOUT_MS };

export interface ProxyStatusOptions {
  /** Base URL of mesh-server's admin API. */
  server: string;
  output: 'table' | 'json';
  /** Show only the streams of this node id. */
  node?: string;
  /** How long to wait for the admin API before giving up. */
  timeoutMs?: number;
  /** The clock CONNECTED ages are measured against; tests fix it. */
  now?: () => number;
}

export interface CommandIo {
  stdout(s: string): void;
  stderr(s: string): void;
}

/** Column order as istioctl prints it. */
const TYPES: readonly XdsShortType[] = ['CDS', 'LDS', 'EDS', 'RDS'];
const STATES: ReadonlySet<string> = new Set(['SYNCED', 'STALE', 'NACKED', 'NOT SENT']);
/** Versions may be content hashes; eight characters tell them apart, as short git hashes do. */
const SHORT_VERSION = 8;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isTypeSyncStatus(value: unknown): value is TypeSyncStatus {
  if (!isRecord(value) || typeof value.state !== 'string' || !STATES.has(value.state)) return false;
  if (value.acked !== undefined && typeof value.acked !== 'string') return false;
  if (value.sent !== undefined && typeof value.sent !== 'string') return false;
  if (value.lastNack !== undefined) {
    const nack = value.lastNack;
    if (!isRecord(nack) || typeof nack.version !== 'string' || typeof nack.message !== 'string') return false;
  }
  return true;
}

function isClientSyncStatus(value: unknown): value is ClientSyncStatus {
  if (!isRecord(value)) return false;
  if (typeof value.node !== 'string' || typeof value.stream !== 'string') return false;
  if (typeof value.peer !== 'string' || typeof value.connectedAt !== 'string') return false;
  return isRecord(value.types) && Object.values(value.types).every(isTypeSyncStatus);
}

export function shortVersion(version: string): string {
  return version.length > SHORT_VERSION + 2 ? version.slice(0, SHORT_VERSION) : version;
}

/** One table cell: the state, then the version the client runs (what it last acknowledged). */
export function syncCell(status: TypeSyncStatus | undefined): string {
  if (!status) return 'NOT SENT';
  if (status.acked !== undefined) return `${status.state} (${shortVersion(status.acked)})`;
  // istioctl's wording for a client that has been sent config but has never confirmed any.
  return status.state === 'STALE' ? 'STALE (never acked)' : status.state;
}

/** kubectl-style age: 45s, 3m12s, 2h5m, 3d4h. */
export function formatAge(since: string, now: number): string {
  const started = Date.parse(since);
  if (Number.isNaN(started)) return since;
  const seconds = Math.max(0, Math.floor((now - started) / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${seconds % 60}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours}h${minutes % 60}m`;
  return `${Math.floor(hours / 24)}d${hours % 24}h`;
}

function alignColumns(rows: readonly string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, column) => (widths[column] = Math.max(widths[column] ?? 0, cell.length)));
  return rows
    .map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd((widths[column] ?? 0) + 3))).join(''))
    .join('\n');
}

/** The table, then one line per refused push so the reason is on screen without a second command. */
export function renderProxyStatus(statuses: readonly ClientSyncStatus[], now: number): string {
  const sorted = [...statuses].sort((a, b) => a.node.localeCompare(b.node) || a.connectedAt.localeCompare(b.connectedAt));
  const rows = [['NAME', ...TYPES, 'PEER', 'CONNECTED']];
  for (const status of sorted) {
    rows.push([status.node, ...TYPES.map((type) => syncCell(status.types[type])), status.peer, formatAge(status.connectedAt, now)]);
  }
  let out = `${alignColumns(rows)}\n`;

  const nacks: string[] = [];
  for (const status of sorted) {
    for (const type of TYPES) {
      const typeStatus = status.types[type];
      if (typeStatus?.state === 'NACKED' && typeStatus.lastNack) {
        nacks.push(`${status.node} ${type} version ${shortVersion(typeStatus.lastNack.version)}: ${typeStatus.lastNack.message}`);
      }
    }
  }
  if (nacks.length > 0) out += `\nNACKED:\n${nacks.map((line) => `  ${line}\n`).join('')}`;
  return out;
}

export async function proxyStatusCommand(options: ProxyStatusOptions, io: CommandIo): Promise<number> {
  const base = (options.server || DEFAULT_ADMIN_URL).replace(/\/+$/, '');
  const fetched = await fetchAdminJson(base, '/debug/syncz', options.node !== undefined ? { node: options.node } : {}, options.timeoutMs);
  if (!fetched.ok) {
    io.stderr(`meshctl proxy-status: ${fetched.message}\n`);
    return 1;
  }
  if (!Array.isArray(fetched.body) || !fetched.body.every(isClientSyncStatus)) {
    io.stderr(`meshctl proxy-status: ${fetched.url.href} did not return a list of xDS client sync states; is this a mesh-server admin port?\n`);
    return 1;
  }
  const statuses: ClientSyncStatus[] = fetched.body;

  if (options.node !== undefined && statuses.length === 0) {
    io.stderr(`meshctl proxy-status: no xDS client with node id ${JSON.stringify(options.node)} is connected to ${base}\n`);
    return 1;
  }
  io.stdout(options.output === 'json' ? `${JSON.stringify(statuses, null, 2)}\n` : renderProxyStatus(statuses, (options.now ?? Date.now)()));
  return 0;
}
