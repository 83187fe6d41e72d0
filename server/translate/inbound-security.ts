// The security side of one inbound chain, from the model's security.istio.io resources: the mTLS
// mode (PeerAuthentication), the jwt_authn filter (RequestAuthentication) and the RBAC filters
// (AuthorizationPolicy) of the workload the chain delivers to. Collected once per model.
import { resourcesOf, type MeshModel } from '../model/mesh-model';
import { buildRbacFilters, type AuthorizationPolicyResource } from './authorization';
import { effectiveMtlsMode, type EffectiveMtlsMode, type PeerAuthenticationResource } from './peer-authentication';
import { appliesToWorkload, type PolicyWorkload } from './policy-selection';
import type { ProtoObject } from './proto-values';
import { buildJwtAuthnFilter, type RequestAuthenticationResource } from './request-authentication';

export interface InboundSecurity {
  mtlsMode: EffectiveMtlsMode;
  /** jwt_authn then RBAC, to run before the router of an HTTP chain. */
  httpFilters: ProtoObject[];
  /** RBAC, to run before tcp_proxy of a TCP chain. */
  networkFilters: ProtoObject[];
}

export class SecurityPolicies {
  private readonly peer: readonly PeerAuthenticationResource[];
  private readonly authorization: readonly AuthorizationPolicyResource[];
  private readonly requestAuthn: readonly RequestAuthenticationResource[];

  constructor(private readonly model: MeshModel) {
    this.peer = resourcesOf(model, 'PeerAuthentication');
    this.authorization = resourcesOf(model, 'AuthorizationPolicy');
    this.requestAuthn = resourcesOf(model, 'RequestAuthentication');
  }

  /** `http` says whether the chain parses HTTP (only then do JWT and HTTP-only fields apply). */
  forPort(workload: PolicyWorkload, port: number, http: boolean): InboundSecurity {
    const root = this.model.rootNamespace;
    const mtlsMode = effectiveMtlsMode(this.peer, workload, port, root);
    const authz = this.authorization.filter((p) => appliesToWorkload(p, workload, root));
    if (!http) return { mtlsMode, httpFilters: [], networkFilters: buildRbacFilters(authz, true, this.model.trustDomain) };
    const jwt = buildJwtAuthnFilter(this.requestAuthn.filter((p) => appliesToWorkload(p, workload, root)));
    const httpFilters = [...(jwt ? [jwt] : []), ...buildRbacFilters(authz, false, this.model.trustDomain)];
    return { mtlsMode, httpFilters, networkFilters: [] };
  }
}
