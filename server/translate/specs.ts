// The Istio spec types translation reads, taken from the kind schemas (type-only imports, so the
// translator never loads the validators), plus the ConfigResource aliases used across this folder.
import type { ConfigResource } from '../config/resource';
import type { VirtualServiceSpec } from '../kinds/virtual-service/schema';
import type { DestinationRuleSpec } from '../kinds/destination-rule/schema';
import type { SidecarSpec } from '../kinds/sidecar/schema';

export type {
  VirtualServiceSpec,
  HTTPRoute,
  HTTPMatchRequest,
  HTTPRouteDestination,
  RouteDestination,
  Destination,
  StringMatch,
  Headers,
  HeaderOperations,
  HTTPRetry,
  HTTPFaultInjection,
  HTTPRedirect,
  HTTPDirectResponse,
  HTTPRewrite,
  HTTPMirrorPolicy,
  CorsPolicy,
  Percent,
  TCPRoute,
  TLSRoute,
  L4MatchAttributes,
  TLSMatchAttributes,
} from '../kinds/virtual-service/schema';

export type {
  DestinationRuleSpec,
  TrafficPolicy,
  PortTrafficPolicy,
  Subset,
  LoadBalancerSettings,
  ConsistentHashLB,
  LocalityLoadBalancerSetting,
  ConnectionPoolSettings,
  OutlierDetection,
  ClientTLSSettings,
} from '../kinds/destination-rule/schema';

export type { SidecarSpec } from '../kinds/sidecar/schema';

export type VirtualServiceResource = ConfigResource<VirtualServiceSpec>;
export type DestinationRuleResource = ConfigResource<DestinationRuleSpec>;
export type SidecarResource = ConfigResource<SidecarSpec>;

export const Kind = {
  VirtualService: 'VirtualService',
  DestinationRule: 'DestinationRule',
  Sidecar: 'Sidecar',
} as const;
