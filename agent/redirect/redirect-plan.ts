// The plan: a plain, validated value saying which TCP traffic the agent captures and where it goes.
// Backends turn it into iptables or nftables rules; tests, logs and `meshctl redirect` print it.
import { CidrError, parseCidr, type Cidr } from './cidr';

/** Istio's port layout (DESIGN.md decision 9). */
export const DEFAULT_OUTBOUND_PORT = 15001;
export const DEFAULT_INBOUND_PORT = 15006;
/** SSH is never captured inbound, whatever the plan says: a bad plan must not lock operators out. */
export const SSH_PORT = 22;
/**
 * Ports the agent itself serves to other hosts (15008 mTLS tunnel, 15020 metrics, 15021 readiness):
 * redirecting them to the plain inbound listener would break the tunnel and health checks.
 */
export const AGENT_INBOUND_PORTS: readonly number[] = [15008, 15020, 15021];

export type InboundCapture =
  /** Every inbound TCP port except `excludePorts`. */
  | { readonly mode: 'all'; readonly excludePorts: readonly number[] }
  /** Only these destination ports. */
  | { readonly mode: 'ports'; readonly ports: readonly number[] };

export interface RedirectPlan {
  /** Where captured outbound connections are redirected (the agent's outbound listener). */
  readonly outboundPort: number;
  /** Where captured inbound connections are redirected (the agent's plain inbound listener). */
  readonly inboundPort: number;
  /** The agent's uid: its own outbound connections are never captured, or they would loop. */
  readonly agentUid: number;
  /** Destination ports left alone outbound, sorted and unique. */
  readonly excludeOutboundPorts: readonly number[];
  /** Destinations left alone outbound, canonical and unique; each applies to its own family. */
  readonly excludeOutboundCidrs: readonly Cidr[];
  readonly inbound: InboundCapture;
  /**
   * Inbound ports never captured, in either mode: SSH, the agent's own ports and, in `all` mode,
   * the user's exclusions. Sorted and unique.
   */
  readonly neverCaptureInboundPorts: readonly number[];
  readonly ipv4: boolean;
  readonly ipv6: boolean;
}

/** What callers may leave out; `createRedirectPlan` fills defaults and validates. */
export interface RedirectPlanInput {
  outboundPort?: number;
  inboundPort?: number;
  agentUid: number;
  excludeOutboundPorts?: readonly number[];
  excludeOutboundCidrs?: readonly string[];
  /** `'*'` (the default) captures every port; a list captures only those. */
  inboundPorts?: '*' | readonly number[];
  /** Only meaningful with `inboundPorts: '*'`. */
  excludeInboundPorts?: readonly number[];
  ipv4?: boolean;
  ipv6?: boolean;
}

export class RedirectPlanError extends Error {
  override readonly name = 'RedirectPlanError';
  constructor(
    /** The input field at fault, e.g. `excludeOutboundCidrs[1]`. */
    readonly field: string,
    problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

export function createRedirectPlan(input: RedirectPlanInput): RedirectPlan {
  const outboundPort = checkPort('outboundPort', input.outboundPort ?? DEFAULT_OUTBOUND_PORT);
  const inboundPort = checkPort('inboundPort', input.inboundPort ?? DEFAULT_INBOUND_PORT);
  if (outboundPort === inboundPort) {
    throw new RedirectPlanError('inboundPort', `must differ from outboundPort (both are ${inboundPort})`);
  }
  if (!Number.isInteger(input.agentUid) || input.agentUid < 0 || input.agentUid > 0xfffffffe) {
    throw new RedirectPlanError('agentUid', `must be a uid (integer 0..4294967294), got ${String(input.agentUid)}`);
  }
  const excludeOutboundPorts = checkPorts('excludeOutboundPorts', input.excludeOutboundPorts ?? []);
  const excludeOutboundCidrs = checkCidrs(input.excludeOutboundCidrs ?? []);
  const ipv4 = input.ipv4 ?? true;
  const ipv6 = input.ipv6 ?? true;
  if (!ipv4 && !ipv6) {
    throw new RedirectPlanError('ipv4', 'IPv4 and IPv6 are both disabled: there would be nothing to capture');
  }

  const excludeInbound = checkPorts('excludeInboundPorts', input.excludeInboundPorts ?? []);
  const alwaysExcluded = [SSH_PORT, ...AGENT_INBOUND_PORTS];
  let inbound: InboundCapture;
  let neverCaptureInboundPorts: number[];
  const inboundPorts = input.inboundPorts ?? '*';
  if (inboundPorts === '*') {
    inbound = { mode: 'all', excludePorts: excludeInbound };
    neverCaptureInboundPorts = sortedUnique([...alwaysExcluded, ...excludeInbound]);
  } else {
    const ports = checkPorts('inboundPorts', inboundPorts);
    if (ports.length === 0) {
      throw new RedirectPlanError('inboundPorts', 'is empty; use "*" to capture every port');
    }
    ports.forEach((port) => {
      if (alwaysExcluded.includes(port)) {
        throw new RedirectPlanError(
          'inboundPorts',
          `port ${port} is never captured (${port === SSH_PORT ? 'SSH' : 'served by the agent itself'}); remove it`,
        );
      }
    });
    inbound = { mode: 'ports', ports };
    neverCaptureInboundPorts = sortedUnique(alwaysExcluded);
  }

  return {
    outboundPort,
    inboundPort,
    agentUid: input.agentUid,
    excludeOutboundPorts,
    excludeOutboundCidrs,
    inbound,
    neverCaptureInboundPorts,
    ipv4,
    ipv6,
  };
}

/** One line per setting, for logs and `meshctl redirect` output. */
export function describeRedirectPlan(plan: RedirectPlan): string {
  const families = [plan.ipv4 ? 'IPv4' : '', plan.ipv6 ? 'IPv6' : ''].filter(Boolean).join(' + ');
  const inbound =
    plan.inbound.mode === 'all'
      ? `all TCP ports except ${plan.neverCaptureInboundPorts.join(', ')}`
      : `TCP ports ${plan.inbound.ports.join(', ')}`;
  const cidrs = plan.excludeOutboundCidrs.map((c) => `${c.address}/${c.prefix}`);
  return [
    `families: ${families}`,
    `outbound: TCP -> :${plan.outboundPort}, except uid ${plan.agentUid}, loopback` +
      (plan.excludeOutboundPorts.length ? `, ports ${plan.excludeOutboundPorts.join(', ')}` : '') +
      (cidrs.length ? `, destinations ${cidrs.join(', ')}` : ''),
    `inbound: ${inbound} -> :${plan.inboundPort}`,
  ].join('\n');
}

function checkPort(field: string, port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RedirectPlanError(field, `must be a TCP port (integer 1..65535), got ${String(port)}`);
  }
  return port;
}

function checkPorts(field: string, ports: readonly number[]): number[] {
  return sortedUnique(ports.map((port, i) => checkPort(`${field}[${i}]`, port)));
}

function checkCidrs(cidrs: readonly string[]): Cidr[] {
  const seen = new Set<string>();
  const result: Cidr[] = [];
  cidrs.forEach((text, i) => {
    let cidr: Cidr;
    try {
      cidr = parseCidr(text);
    } catch (error) {
      if (error instanceof CidrError) throw new RedirectPlanError(`excludeOutboundCidrs[${i}]`, error.message);
      throw error;
    }
    const key = `${cidr.address}/${cidr.prefix}`;
    if (!seen.has(key)) {
      seen.add(key);
      result.push(cidr);
    }
  });
  return result;
}

function sortedUnique(values: readonly number[]): number[] {
  return [...new Set(values)].sort((a, b) => a - b);
}
