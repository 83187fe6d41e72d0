// The inbound security decisions of one agent config, one function per decision point, compiled
// from virtualInbound once per config: plaintext admission (PeerAuthentication), request
// authentication (jwt_authn) and authorization (RBAC) of the workload port a stream is for.
//
// API (for the inbound path; compile again on every new config):
//   const policy = InboundPolicy.fromListener(virtualInbound, jwksCache);
//   policy.admitsPlaintext(address, port)                   before relaying a :15006 connection
//   policy.authorizeConnection(address, port, view)         TCP ports, and each new tunnel stream
//   policy.authenticateRequest(address, port, headers, url) each HTTP request, first
//   policy.authorizeRequest(address, port, view)            then, with view.metadata = result.metadata
//   policy.portOf(address, port)                            HTTP or TCP, and whether RBAC applies there
//   policy.at(address, port)                                the same per port, looked up once for a connection
// Denied HTTP: 403 RBAC_DENIED_BODY; denied TCP: close; unauthenticated HTTP: 401 with the reason.
import type { Decoded, HeaderLookup } from '../routing/request-matchers';
import { JwksCache } from './jwks-cache';
import { PeerAuthenticationTable, meshMetadata, type MtlsMode } from './peer-authentication';
import { InboundAuthorization, type AuthorizationDecision, type ConnectionView, type RequestView } from './rbac';
import { RequestAuthenticator, type AuthenticationResult } from './request-authentication';

/** How the inbound path treats one workload port; built at compile time, read per connection. */
export interface PortPolicy {
  /** `http` when the chain has an HTTP connection manager: requests are parsed and decided one by one. */
  readonly protocol: 'http' | 'tcp';
  /** Whether RBAC filters apply at this port's decision point (connections for TCP, requests for HTTP). */
  readonly rbac: boolean;
  /**
   * Requests reach the workload over HTTP/2: the server's inbound cluster asks for it on http2, grpc
   * and grpc-web ports (explicit_http_config), and HTTP/1.1 on http ports, whatever the client spoke.
   */
  readonly upstreamHttp2: boolean;
}

const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
/** Ports no chain names (the agent's own workload list): relayed as TCP, nothing enforced. */
const UNNAMED_PORT: PortPolicy = Object.freeze({ protocol: 'tcp', rbac: false, upstreamHttp2: false });
const HTTP2_PROTOCOLS = new Set(['HTTP2', 'GRPC', 'GRPC-WEB']);

function hasHttpConnectionManager(chain: Decoded): boolean {
  const filters = Array.isArray(chain.filters) ? (chain.filters as Decoded[]) : [];
  return filters.some((f) => ((f.typed_config as Decoded | undefined)?.['@type']) === HCM_TYPE);
}

const ALLOW_ALL_DECISION: AuthorizationDecision = Object.freeze({ allowed: true });
const DENY_ALL_DECISION: AuthorizationDecision = Object.freeze({ allowed: false, policy: 'agent: policy cannot be enforced' });
/** What denyAll() answers for every port: TCP, so even HTTP is refused at the connection. */
const CLOSED_PORT: PortPolicy = Object.freeze({ protocol: 'tcp', rbac: true, upstreamHttp2: false });
const NO_AUTHENTICATION = RequestAuthenticator.fromChain({}, new JwksCache());

/**
 * The decisions of one workload port, compiled with the config. The inbound path looks a port up
 * once (`InboundPolicy.at`) and keeps it while the config stays, so a request costs no lookup.
 */
export class PortDecisions {
  constructor(
    readonly port: PortPolicy,
    private readonly authorization: InboundAuthorization | undefined,
    private readonly authentication: RequestAuthenticator,
    private readonly closed = false,
  ) {}

  authorizeConnection(view: ConnectionView): AuthorizationDecision {
    if (this.closed) return DENY_ALL_DECISION;
    return this.authorization?.authorizeConnection(view) ?? ALLOW_ALL_DECISION;
  }

  authenticateRequest(headers: HeaderLookup, url: string): AuthenticationResult | Promise<AuthenticationResult> {
    return this.authentication.authenticateRequest(headers, url);
  }

  authorizeRequest(view: RequestView): AuthorizationDecision {
    if (this.closed) return DENY_ALL_DECISION;
    return this.authorization?.authorizeRequest(view) ?? ALLOW_ALL_DECISION;
  }
}

/**
 * Ports without a chain are either not workloads (the inbound table refuses them first) or
 * workloads the agent's own config lists, which no server policy can name: nothing applies.
 */
const UNNAMED_PORT_DECISIONS = new PortDecisions(UNNAMED_PORT, undefined, NO_AUTHENTICATION);
const CLOSED_PORT_DECISIONS = new PortDecisions(CLOSED_PORT, undefined, NO_AUTHENTICATION, true);

export class InboundPolicy {
  private readonly chains = new Map<string, PortDecisions>();
  private readonly modes: PeerAuthenticationTable;

  private constructor(
    listener: Decoded | undefined,
    jwks: JwksCache,
    /** Fail closed: nothing is admitted (a config whose policy could not be compiled). */
    private readonly closed = false,
  ) {
    this.modes = PeerAuthenticationTable.fromListener(listener);
    const chains = Array.isArray(listener?.filter_chains) ? (listener.filter_chains as Decoded[]) : [];
    chains.forEach((chain, i) => {
      const match = (chain.filter_chain_match ?? {}) as Decoded;
      const port = Number((match.destination_port as Decoded | undefined)?.value);
      // The refusal chain of a STRICT port is what plaintext meets; admitsPlaintext covers it.
      if (!Number.isInteger(port) || match.transport_protocol === 'raw_buffer') return;
      const path = `virtualInbound.filter_chains[${i}]`;
      const authorization = InboundAuthorization.fromChain(chain, path);
      const http = hasHttpConnectionManager(chain);
      const portPolicy: PortPolicy = Object.freeze({
        protocol: http ? 'http' : 'tcp',
        rbac: http ? authorization.enforcesRequests : authorization.enforcesConnections,
        upstreamHttp2: http && HTTP2_PROTOCOLS.has(String(meshMetadata(chain).protocol)),
      });
      const policy = new PortDecisions(portPolicy, authorization, RequestAuthenticator.fromChain(chain, jwks));
      const ranges = Array.isArray(match.prefix_ranges) ? (match.prefix_ranges as Decoded[]) : [];
      if (ranges.length === 0) this.chains.set(`|${port}`, policy);
      for (const range of ranges) if (typeof range.address_prefix === 'string') this.chains.set(`${range.address_prefix}|${port}`, policy);
    });
  }

  /** Throws RouteConfigError (from routing/request-matchers) naming the field the agent cannot honour. */
  static fromListener(listener: Decoded | undefined, jwks: JwksCache): InboundPolicy {
    return new InboundPolicy(listener, jwks);
  }

  /** Refuses every connection and plaintext everywhere: for a config whose policy cannot be enforced. */
  static denyAll(): InboundPolicy {
    return new InboundPolicy(undefined, new JwksCache(), true);
  }

  /** The decisions of one workload port (an address-bound chain first, then one for any address). */
  at(address: string, port: number): PortDecisions {
    if (this.closed) return CLOSED_PORT_DECISIONS;
    return this.chains.get(`${address}|${port}`) ?? this.chains.get(`|${port}`) ?? UNNAMED_PORT_DECISIONS;
  }

  portOf(address: string, port: number): PortPolicy {
    return this.at(address, port).port;
  }

  /** The PeerAuthentication mode in force at a workload port, for logs. */
  mtlsModeOf(address: string, port: number): MtlsMode {
    return this.modes.modeOf(address, port);
  }

  admitsPlaintext(address: string, port: number): boolean {
    return !this.closed && this.modes.admitsPlaintext(address, port);
  }

  authorizeConnection(address: string, port: number, view: ConnectionView): AuthorizationDecision {
    return this.at(address, port).authorizeConnection(view);
  }

  authenticateRequest(address: string, port: number, headers: HeaderLookup, url: string): AuthenticationResult | Promise<AuthenticationResult> {
    return this.at(address, port).authenticateRequest(headers, url);
  }

  authorizeRequest(address: string, port: number, view: RequestView): AuthorizationDecision {
    return this.at(address, port).authorizeRequest(view);
  }
}
