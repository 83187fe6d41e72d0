// `meshctl proxy-status`: asks mesh-server's admin API (/debug/syncz) which xDS clients are
// connected and whether each acknowledged the latest CDS/LDS/EDS/RDS, as `istioctl proxy-status`.
import type { ClientSyncStatus, TypeSyncStatus, XdsShortType } from '../server/xds/sync-status';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:15014';
export const DEFAULT_TIMEOUT_MS = 5000;

export interface ProxyStatusOptions {
  /** Base URL of mesh-server's admin API. */
  server: string;
  output: 'table' | 'json';
  /** Show only the streams of this node id. */
  node?: string;
  /** How long to wait for the admin API before giving up. */
  timeoutMs?: number;
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

/** What went wrong in words: fetch hides the socket error in `cause`, and a timeout is a DOMException. */
function describeFetchError(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `no answer within ${timeoutMs} ms`;
  }
  if (error instanceof Error) {
    const cause: unknown = error.cause;
    if (cause instanceof Error) {
      const code = (cause as NodeJS.ErrnoException).code;
      return code && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message;
    }
    return error.message;
  }
  return String(error);
}

/** The error message of one of our JSON error bodies, else the start of whatever came back. */
function describeErrorBody(body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    if (isRecord(parsed) && typeof parsed.message === 'string') return parsed.message;
  } catch {
    // Not JSON (a proxy's HTML page, say): show the raw text below.
  }
  const text = body.trim();
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

export async function proxyStatusCommand(options: ProxyStatusOptions, io: CommandIo): Promise<number> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const base = (options.server || DEFAULT_ADMIN_URL).replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(`${base}/debug/syncz`);
  } catch {
    io.stderr(`meshctl proxy-status: --server ${JSON.stringify(options.server)} is not a URL (expected e.g. ${DEFAULT_ADMIN_URL})\n`);
    return 1;
  }
  if (options.node !== undefined) url.searchParams.set('node', options.node);

  let statuses: ClientSyncStatus[];
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } });
    const body = await response.text();
    if (!response.ok) {
      io.stderr(`meshctl proxy-status: ${url.href} answered HTTP ${response.status}: ${describeErrorBody(body)}\n`);
      return 1;
    }
    const parsed: unknown = JSON.parse(body);
    if (!Array.isArray(parsed) || !parsed.every(isClientSyncStatus)) {
      io.stderr(`meshctl proxy-status: ${url.href} did not return a list of xDS client sync states; is this a mesh-server admin port?\n`);
      return 1;
    }
    statuses = parsed;
  } catch (error) {
    if (error instanceof SyntaxError) {
      io.stderr(`meshctl proxy-status: ${url.href} returned a body that is not JSON; is this a mesh-server admin port?\n`);
    } else {
      io.stderr(`meshctl proxy-status: cannot reach mesh-server admin API at ${url.href}: ${describeFetchError(error, timeoutMs)}\n`);
    }
    return 1;
  }

  if (options.node !== undefined && statuses.length === 0) {
    io.stderr(`meshctl proxy-status: no xDS client with node id ${JSON.stringify(options.node)} is connected to ${base}\n`);
    return 1;
  }
  io.stdout(options.output === 'json' ? `${JSON.stringify(statuses, null, 2)}\n` : renderProxyStatus(statuses, Date.now()));
  return 0;
}
