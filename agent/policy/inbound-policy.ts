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
// Denied HTTP: 403 RBAC_DENIED_BODY; denied TCP: close; unauthenticated HTTP: 401 with the reason.
import type { Decoded, HeaderLookup } from '../routing/request-matchers';
import { JwksCache } from './jwks-cache';
import { PeerAuthenticationTable, meshMetadata, type MtlsMode } from './peer-authentication';
import { InboundAuthorization, type AuthorizationDecision, type ConnectionView, type RequestView } from './rbac';
import { RequestAuthenticator, type AuthenticationResult } from './request-authentication';

interface ChainPolicy {
  readonly authorization: InboundAuthorization;
  readonly authentication: RequestAuthenticator;
  readonly port: PortPolicy;
}

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

export class InboundPolicy {
  private readonly chains = new Map<string, ChainPolicy>();
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
      const policy: ChainPolicy = {
        authorization,
        authentication: RequestAuthenticator.fromChain(chain, jwks),
        port: Object.freeze({
          protocol: http ? 'http' : 'tcp',
          rbac: http ? authorization.enforcesRequests : authorization.enforcesConnections,
          upstreamHttp2: http && HTTP2_PROTOCOLS.has(String(meshMetadata(chain).protocol)),
        }),
      };
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

  private chain(address: string, port: number): ChainPolicy | undefined {
    return this.chains.get(`${address}|${port}`) ?? this.chains.get(`|${port}`);
  }

  portOf(address: string, port: number): PortPolicy {
    if (this.closed) return CLOSED_PORT;
    return this.chain(address, port)?.port ?? UNNAMED_PORT;
  }

  /** The PeerAuthentication mode in force at a workload port, for logs. */
  mtlsModeOf(address: string, port: number): MtlsMode {
    return this.modes.modeOf(address, port);
  }

  admitsPlaintext(address: string, port: number): boolean {
    return !this.closed && this.modes.admitsPlaintext(address, port);
  }

  /**
   * Ports without a chain are either not workloads (the inbound table refuses them first) or
   * workloads the agent's own config lists, which no server policy can name: nothing applies.
   */
  authorizeConnection(address: string, port: number, view: ConnectionView): AuthorizationDecision {
    if (this.closed) return DENY_ALL_DECISION;
    return this.chain(address, port)?.authorization.authorizeConnection(view) ?? ALLOW_ALL_DECISION;
  }

  authenticateRequest(address: string, port: number, headers: HeaderLookup, url: string): AuthenticationResult | Promise<AuthenticationResult> {
    return (this.chain(address, port)?.authentication ?? NO_AUTHENTICATION).authenticateRequest(headers, url);
  }

  authorizeRequest(address: string, port: number, view: RequestView): AuthorizationDecision {
    if (this.closed) return DENY_ALL_DECISION;
    return this.chain(address, port)?.authorization.authorizeRequest(view) ?? ALLOW_ALL_DECISION;
  }
}
