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
// Denied HTTP: 403 RBAC_DENIED_BODY; denied TCP: close; unauthenticated HTTP: 401 with the reason.
import type { Decoded, HeaderLookup } from '../routing/request-matchers';
import { JwksCache } from './jwks-cache';
import { PeerAuthenticationTable } from './peer-authentication';
import { InboundAuthorization, type AuthorizationDecision, type ConnectionView, type RequestView } from './rbac';
import { RequestAuthenticator, type AuthenticationResult } from './request-authentication';

interface ChainPolicy {
  readonly authorization: InboundAuthorization;
  readonly authentication: RequestAuthenticator;
}

const ALLOW_ALL_DECISION: AuthorizationDecision = Object.freeze({ allowed: true });
const NO_AUTHENTICATION = RequestAuthenticator.fromChain({}, new JwksCache());

export class InboundPolicy {
  private readonly chains = new Map<string, ChainPolicy>();
  private readonly modes: PeerAuthenticationTable;

  private constructor(listener: Decoded | undefined, jwks: JwksCache) {
    this.modes = PeerAuthenticationTable.fromListener(listener);
    const chains = Array.isArray(listener?.filter_chains) ? (listener.filter_chains as Decoded[]) : [];
    chains.forEach((chain, i) => {
      const match = (chain.filter_chain_match ?? {}) as Decoded;
      const port = Number((match.destination_port as Decoded | undefined)?.value);
      // The refusal chain of a STRICT port is what plaintext meets; admitsPlaintext covers it.
      if (!Number.isInteger(port) || match.transport_protocol === 'raw_buffer') return;
      const path = `virtualInbound.filter_chains[${i}]`;
      const policy: ChainPolicy = {
        authorization: InboundAuthorization.fromChain(chain, path),
        authentication: RequestAuthenticator.fromChain(chain, jwks),
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

  private chain(address: string, port: number): ChainPolicy | undefined {
    return this.chains.get(`${address}|${port}`) ?? this.chains.get(`|${port}`);
  }

  admitsPlaintext(address: string, port: number): boolean {
    return this.modes.admitsPlaintext(address, port);
  }

  /**
   * Ports without a chain are either not workloads (the inbound table refuses them first) or
   * workloads the agent's own config lists, which no server policy can name: nothing applies.
   */
  authorizeConnection(address: string, port: number, view: ConnectionView): AuthorizationDecision {
    return this.chain(address, port)?.authorization.authorizeConnection(view) ?? ALLOW_ALL_DECISION;
  }

  authenticateRequest(address: string, port: number, headers: HeaderLookup, url: string): AuthenticationResult | Promise<AuthenticationResult> {
    return (this.chain(address, port)?.authentication ?? NO_AUTHENTICATION).authenticateRequest(headers, url);
  }

  authorizeRequest(address: string, port: number, view: RequestView): AuthorizationDecision {
    return this.chain(address, port)?.authorization.authorizeRequest(view) ?? ALLOW_ALL_DECISION;
  }
}
