// The mesh-agent's own configuration (/etc/mesh/agent.yaml): its schema with defaults, loading with
// errors that name the file, field path and value, and command-line flags taking precedence.
import { readFile } from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { formatIssue, formatPath, type ConfigIssue } from '../../lib/config/issue';
import { schemaIssues } from '../../lib/config/schema-issues';

export const DEFAULT_AGENT_CONFIG_PATH = '/etc/mesh/agent.yaml';
/** Where flag values are said to come from in errors. */
export const FLAGS_SOURCE = 'command-line flags';

const port = z.number().int().min(1).max(65535);

/** `host:port` or `[v6]:port`; `allowEmptyHost` accepts `:port` (all interfaces). */
function address(allowEmptyHost: boolean) {
  return z.string().refine((value) => {
    const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
    if (!match) return false;
    const host = match[1] ?? match[2] ?? '';
    if (match[1] !== undefined && net.isIPv6(match[1]) === false) return false;
    if (host === '' && !allowEmptyHost) return false;
    const number = Number(match[3]);
    return number >= 1 && number <= 65535;
  }, { message: allowEmptyHost ? 'expected [host]:port with a port from 1 to 65535' : 'expected host:port with a port from 1 to 65535' });
}

const cidr = z.string().refine((value) => {
  const [ip, bits, extra] = value.split('/');
  if (extra !== undefined || ip === undefined || bits === undefined || !/^\d{1,3}$/.test(bits)) return false;
  const family = net.isIP(ip);
  return family !== 0 && Number(bits) <= (family === 4 ? 32 : 128);
}, { message: 'expected an address range in CIDR notation, e.g. 10.0.0.0/8' });

/** DNS-1123 label, what Istio accepts for names that end up in SPIFFE IDs and cluster names. */
const label = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'expected a lowercase DNS label (a-z, 0-9, -)');

const uid = z.number().int().min(0).max(4294967294);

const workloadSchema = z.strictObject({
  name: label,
  serviceAccount: label.default('default'),
  /**
   * The uid (or uids) its processes run as: outbound connections from sockets these uids own are
   * this workload's (its identity on the tunnel, `source_workload` in logs and stats). Without a
   * uid, a host's only workload is the source of all its outbound traffic; a connection that
   * belongs to no workload presents the node's identity, never another workload's.
   */
  uid: z.union([uid, z.array(uid).min(1)]).optional(),
  /** Port name to the workload's own port, as in a WorkloadEntry. */
  ports: z.record(z.string().min(1), port).default({}),
});

const redirectSchema = z.strictObject({
  enabled: z.boolean().default(true),
  backend: z.enum(['auto', 'iptables', 'iptables-legacy', 'nftables']).default('auto'),
  outboundPort: port.default(15001),
  inboundPort: port.default(15006),
  excludeOutboundPorts: z.array(port).default([]),
  excludeOutboundCidrs: z.array(cidr).default([]),
  /** `*` captures every inbound port except the excluded ones (Istio's default). */
  inboundPorts: z.union([z.literal('*'), z.array(port)]).default('*'),
  excludeInboundPorts: z.array(port).default([]),
  ipv6: z.boolean().default(false),
});

const absolutePath = z.string().startsWith('/', 'expected an absolute path');

/**
 * mTLS to mesh-server (`server` is then its TLS port, 15012) and between agents. Without it the agent
 * speaks plaintext xDS to a development server and h2c between agents.
 */
const tlsSchema = z.strictObject({
  /** PEM roots that vouch for mesh-server before the agent holds a trust bundle of its own. */
  caFile: absolutePath,
  /** From `meshctl bootstrap --node NAME`; needed only while no valid node certificate is stored. */
  joinToken: z.string().min(1).optional(),
  joinTokenFile: absolutePath.optional(),
  /** The SPIFFE ID mesh-server's certificate must carry; default spiffe://TRUST_DOMAIN/ns/istio-system/sa/mesh-server. */
  serverIdentity: z.string().startsWith('spiffe://', 'expected a SPIFFE ID (spiffe://...)').optional(),
  /** Requested certificate lifetime in hours; absent, the server's default (24 h). */
  certificateTtlHours: z.number().int().min(1).max(90 * 24).optional(),
}).refine((tls) => !(tls.joinToken && tls.joinTokenFile), { message: 'give joinToken or joinTokenFile, not both', path: ['joinTokenFile'] });

export const agentConfigSchema = z.strictObject({
  server: address(false),
  /** The xDS node.id; WorkloadEntries name it in their `mesh.io/node` annotation. */
  node: z.string().regex(/^[A-Za-z0-9]([-A-Za-z0-9._]*[A-Za-z0-9])?$/, 'expected a host name').default(() => os.hostname()),
  namespace: label.default('default'),
  trustDomain: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'expected a DNS name').default('cluster.local'),
  stateDir: z.string().startsWith('/', 'expected an absolute path').default('/var/lib/mesh'),
  workloads: z.array(workloadSchema).default([]).superRefine((workloads, context) => {
    const seen = new Set<string>();
    const uidOwners = new Map<number, string>();
    workloads.forEach((workload, index) => {
      if (seen.has(workload.name)) context.addIssue({ code: 'custom', path: [index, 'name'], message: `workload name "${workload.name}" appears twice`, input: workload.name });
      seen.add(workload.name);
      // One uid, one workload: otherwise a connection could not be attributed to one identity.
      for (const owned of workloadUids(workload)) {
        const owner = uidOwners.get(owned);
        if (owner !== undefined && owner !== workload.name) context.addIssue({ code: 'custom', path: [index, 'uid'], message: `uid ${owned} is already workload "${owner}"'s`, input: owned });
        uidOwners.set(owned, workload.name);
      }
    });
  }),
  redirect: redirectSchema.default(() => redirectSchema.parse({})),
  admin: address(false).default('127.0.0.1:15000'),
  readiness: address(true).default(':15021'),
  /** `region/zone/subzone`; trailing parts may be left out. */
  locality: z.string().regex(/^[^/\s]+(\/[^/\s]+){0,2}$/, 'expected region/zone/subzone').optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  tls: tlsSchema.optional(),
});

export type AgentConfig = z.output<typeof agentConfigSchema>;
export type AgentConfigFile = z.input<typeof agentConfigSchema>;
export type AgentWorkload = AgentConfig['workloads'][number];

/** A workload's `uid` field as a list (it may be one uid or several). */
export function workloadUids(workload: { readonly uid?: number | readonly number[] | undefined }): readonly number[] {
  const value = workload.uid;
  return value === undefined ? [] : typeof value === 'number' ? [value] : value;
}

/** What flags may set: any field, nested objects field by field. */
export type AgentConfigOverrides = {
  [K in keyof AgentConfigFile]?: NonNullable<AgentConfigFile[K]> extends readonly unknown[]
    ? AgentConfigFile[K]
    : NonNullable<AgentConfigFile[K]> extends object
      ? Partial<NonNullable<AgentConfigFile[K]>>
      : AgentConfigFile[K];
};

export class AgentConfigError extends Error {
  constructor(readonly issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
    this.name = 'AgentConfigError';
  }
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The file's values with the flags' on top: a flag replaces one field and leaves its siblings
 * (`--redirect-backend` keeps the file's `redirect.excludeOutboundPorts`); lists are replaced whole.
 */
export function mergeAgentConfig(file: Record<string, unknown>, overrides: AgentConfigOverrides): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...file };
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) continue;
    const base = merged[key];
    merged[key] = isMapping(value) && isMapping(base) ? { ...base, ...dropUndefined(value) } : value;
  }
  return merged;
}

function dropUndefined(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined));
}

/** Whether the flags set the value at `segments`, so the error can point at them instead of the file. */
function setByFlags(overrides: AgentConfigOverrides, segments: readonly PropertyKey[]): boolean {
  let current: unknown = overrides;
  for (const segment of segments) {
    if (!isMapping(current) && !Array.isArray(current)) return false;
    current = (current as Record<PropertyKey, unknown>)[segment as string];
    if (current === undefined) return false;
  }
  return true;
}

/** Validates merged values; each issue names where its value came from (the file or the flags). */
export function parseAgentConfig(values: unknown, file: string, overrides: AgentConfigOverrides = {}): AgentConfig {
  // reportInput: the offending value goes into the message, so the user sees what to fix.
  const result = agentConfigSchema.safeParse(values, { reportInput: true });
  if (result.success) return result.data;
  const issues: ConfigIssue[] = [];
  for (const zodIssue of result.error.issues) {
    for (const issue of schemaIssues(zodIssue)) {
      const fromFlags = issue.segments.length > 0 && setByFlags(overrides, issue.segments);
      let message = issue.message;
      if (issue.code === 'missing-field' && formatPath(issue.segments) === 'server') message = `required field is missing (set it in ${file} or with --server)`;
      issues.push({
        severity: 'error',
        code: issue.code,
        message,
        file: fromFlags ? FLAGS_SOURCE : file,
        path: formatPath(issue.segments),
        ...(issue.value !== undefined ? { value: issue.value } : {}),
      });
    }
  }
  throw new AgentConfigError(issues);
}

/**
 * Reads the agent's config file and applies the flags. A missing file is not an error: an agent
 * started with `--server` alone runs on defaults; without a server it fails on that field.
 */
export async function loadAgentConfig(file: string = DEFAULT_AGENT_CONFIG_PATH, overrides: AgentConfigOverrides = {}): Promise<AgentConfig> {
  let text: string | undefined;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new AgentConfigError([{ severity: 'error', code: 'unreadable-file', message: `cannot read: ${(error as Error).message}`, file, path: '' }]);
    }
  }
  let values: Record<string, unknown> = {};
  if (text !== undefined) {
    const lineCounter = new LineCounter();
    const document = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
    if (document.errors.length > 0) {
      throw new AgentConfigError(document.errors.map((error) => ({
        severity: 'error' as const,
        code: 'invalid-yaml',
        message: `${error.message} (line ${lineCounter.linePos(error.pos[0]).line}, column ${lineCounter.linePos(error.pos[0]).col})`,
        file,
        path: '',
      })));
    }
    const content: unknown = document.toJS();
    // An empty file (or one with only comments) means "all defaults", like a missing one.
    if (content !== null && content !== undefined) {
      if (!isMapping(content)) throw new AgentConfigError([{ severity: 'error', code: 'invalid-type', message: 'expected a mapping at the top level', file, path: '', value: content }]);
      values = content;
    }
  }
  return parseAgentConfig(mergeAgentConfig(values, overrides), file, overrides);
}
