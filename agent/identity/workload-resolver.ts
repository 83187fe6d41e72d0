// Which of this host's workloads sent an outbound connection: by the uid owning the client's socket
// (agent.yaml `workloads[].uid`), the host's only workload when uids are not configured, else none.
// The answer decides the identity the tunnel presents and the `source_workload` of logs and stats.
import type net from 'node:net';
import { formatNodeId, formatWorkloadId } from '../../lib/ca/spiffe';
import type { Logger } from '../../lib/log';
import { workloadUids, type AgentConfig } from '../config/agent-config';
import type { OriginalDestination } from '../redirect/original-destination';
import { connectionUid } from './connection-uid';

/** Istio's value for a workload label it cannot name. */
export const UNKNOWN_WORKLOAD = 'unknown';

/** How a connection's source was decided, for logs. */
export type Attribution = 'uid' | 'only-workload' | 'unattributed';

/** One connection's source: shared per workload (no allocation per connection), read-only. */
export interface SourceWorkload {
  /** The workload's name, or `unknown` (Istio's label value) when the connection is no workload's. */
  readonly name: string;
  /**
   * The SPIFFE ID the tunnel presents: the workload's, or the node's for an unattributed connection
   * (never another workload's). Undefined only when the node's name is not a valid SPIFFE path,
   * which an agent with mTLS refuses at start, so it matters only without mTLS (where no identity is presented).
   */
  readonly identity: string | undefined;
  readonly attribution: Attribution;
}

export interface WorkloadResolverOptions {
  config: Pick<AgentConfig, 'workloads' | 'trustDomain' | 'namespace' | 'node'>;
  logger: Logger;
  /** The uid that opened the connection; the inet_diag lookup unless a test supplies one. */
  uidOf?: (socket: net.Socket, destination: OriginalDestination) => number | undefined;
}

interface Entry extends SourceWorkload {
  connections: number;
}

export class WorkloadResolver {
  private readonly byUid = new Map<number, Entry>();
  /** Where connections of no listed uid go: the only workload when it has no uid, else the node. */
  private readonly fallback: Entry;
  private readonly entries: Entry[] = [];
  private readonly uidOf: (socket: net.Socket, destination: OriginalDestination) => number | undefined;
  private readonly log: Logger;
  private lookupFailures = 0;

  constructor(options: WorkloadResolverOptions) {
    const { config } = options;
    this.log = options.logger.child({ component: 'workload-resolver' });
    this.uidOf = options.uidOf ?? connectionUid;
    const nodeId = formatNodeId(config.trustDomain, config.node);
    this.fallback = this.entry(UNKNOWN_WORKLOAD, nodeId.ok ? nodeId.value : undefined, 'unattributed');
    for (const workload of config.workloads) {
      const id = formatWorkloadId({ trustDomain: config.trustDomain, namespace: config.namespace, serviceAccount: workload.serviceAccount });
      if (!id.ok) throw new Error(`workloads "${workload.name}": no SPIFFE ID can be made of it: ${id.reason}`);
      const uids = workloadUids(workload);
      if (uids.length === 0 && config.workloads.length === 1) {
        // A VM running one service (Istio's VM model): everything it sends is that service.
        this.fallback = this.entry(workload.name, id.value, 'only-workload');
        continue;
      }
      const entry = this.entry(workload.name, id.value, 'uid');
      for (const uid of uids) this.byUid.set(uid, entry);
    }
  }

  /**
   * The source of one accepted outbound connection. A failed lookup (a closed client, a netlink
   * error) attributes the connection to no workload rather than guessing.
   */
  resolve(socket: net.Socket, destination: OriginalDestination): SourceWorkload {
    let found = this.fallback;
    if (this.byUid.size > 0) {
      try {
        const uid = this.uidOf(socket, destination);
        if (uid !== undefined) found = this.byUid.get(uid) ?? this.fallback;
      } catch (error) {
        // Logged once at warn: the same kernel failure would repeat for every connection.
        if (this.lookupFailures++ === 0) this.log.warn({ err: (error as Error).message }, 'cannot find the uid of an outbound connection; such connections are attributed to no workload');
        else this.log.debug({ err: (error as Error).message }, 'outbound connection uid lookup failed');
      }
    }
    found.connections++;
    return found;
  }

  /** Outbound connections attributed to each workload (and to `unknown`), and failed uid lookups. */
  stats(): Record<string, number> {
    const out: Record<string, number> = { lookupFailures: this.lookupFailures };
    // Summed: a workload may itself be named `unknown`.
    for (const entry of this.entries) out[entry.name] = (out[entry.name] ?? 0) + entry.connections;
    return out;
  }

  private entry(name: string, identity: string | undefined, attribution: Attribution): Entry {
    const entry: Entry = { name, identity, attribution, connections: 0 };
    this.entries.push(entry);
    return entry;
  }
}
