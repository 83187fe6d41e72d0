// VirtualService (networking.istio.io): the strict schema of its spec with Istio's field names,
// the types the xDS translator reads, and the kind definition the config loader registers.
import { z } from 'zod';
import type { KindDefinition } from '../../config/kind';
import {
  DurationSchema,
  Int32Schema,
  LabelsSchema,
  PercentSchema,
  PortNumberSchema,
  PresenceStringMatchSchema,
  StringMatchSchema,
  UInt32Schema,
  oneOf,
} from '../common';
import { checkVirtualService } from './check';

export type { StringMatch, Percent, Duration } from '../common';

/** Selects a port of the destination service by number. */
export const PortSelectorSchema = z.strictObject({ number: PortNumberSchema.optional() });
export type PortSelector = z.infer<typeof PortSelectorSchema>;

/** A service (and optionally a subset and port) traffic is sent to. */
export const DestinationSchema = z.strictObject({
  host: z.string(),
  subset: z.string().optional(),
  port: PortSelectorSchema.optional(),
});
export type Destination = z.infer<typeof DestinationSchema>;

export const HeaderOperationsSchema = z.strictObject({
  set: z.record(z.string(), z.string()).optional(),
  add: z.record(z.string(), z.string()).optional(),
  remove: z.array(z.string()).optional(),
});
export type HeaderOperations = z.infer<typeof HeaderOperationsSchema>;

export const HeadersSchema = z.strictObject({
  request: HeaderOperationsSchema.optional(),
  response: HeaderOperationsSchema.optional(),
});
export type Headers = z.infer<typeof HeadersSchema>;

export const HTTPMatchRequestSchema = z.strictObject({
  name: z.string().optional(),
  uri: StringMatchSchema.optional(),
  scheme: StringMatchSchema.optional(),
  method: StringMatchSchema.optional(),
  authority: StringMatchSchema.optional(),
  /** Header name to match; `{}` tests presence. */
  headers: z.record(z.string(), PresenceStringMatchSchema).optional(),
  port: PortNumberSchema.optional(),
  sourceLabels: LabelsSchema.optional(),
  gateways: z.array(z.string()).optional(),
  queryParams: z.record(z.string(), PresenceStringMatchSchema).optional(),
  ignoreUriCase: z.boolean().optional(),
  withoutHeaders: z.record(z.string(), PresenceStringMatchSchema).optional(),
  sourceNamespace: z.string().optional(),
  statPrefix: z.string().optional(),
});
export type HTTPMatchRequest = z.infer<typeof HTTPMatchRequestSchema>;

export const HTTPRouteDestinationSchema = z.strictObject({
  destination: DestinationSchema,
  /** Relative share in percent; may be omitted when the route has a single destination. */
  weight: Int32Schema.optional(),
  headers: HeadersSchema.optional(),
});
export type HTTPRouteDestination = z.infer<typeof HTTPRouteDestinationSchema>;

/** TCP/TLS route destination (no header manipulation). */
export const RouteDestinationSchema = z.strictObject({
  destination: DestinationSchema,
  weight: Int32Schema.optional(),
});
export type RouteDestination = z.infer<typeof RouteDestinationSchema>;

export const HTTPRedirectSchema = z
  .strictObject({
    uri: z.string().optional(),
    authority: z.string().optional(),
    port: PortNumberSchema.optional(),
    derivePort: z.enum(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']).optional(),
    scheme: z.string().optional(),
    redirectCode: UInt32Schema.optional(),
  })
  .superRefine(oneOf(['port', 'derivePort'], false));
export type HTTPRedirect = z.infer<typeof HTTPRedirectSchema>;

export const HTTPBodySchema = z
  .strictObject({
    string: z.string().optional(),
    /** Base64-encoded bytes, as protobuf's JSON mapping writes `bytes`. */
    bytes: z.string().optional(),
  })
  .superRefine(oneOf(['string', 'bytes'], true));
export type HTTPBody = z.infer<typeof HTTPBodySchema>;

export const HTTPDirectResponseSchema = z.strictObject({
  status: UInt32Schema,
  body: HTTPBodySchema.optional(),
});
export type HTTPDirectResponse = z.infer<typeof HTTPDirectResponseSchema>;

export const DelegateSchema = z.strictObject({
  name: z.string().optional(),
  namespace: z.string().optional(),
});
export type Delegate = z.infer<typeof DelegateSchema>;

export const RegexRewriteSchema = z.strictObject({
  match: z.string().optional(),
  rewrite: z.string().optional(),
});
export type RegexRewrite = z.infer<typeof RegexRewriteSchema>;

export const HTTPRewriteSchema = z.strictObject({
  uri: z.string().optional(),
  authority: z.string().optional(),
  uriRegexRewrite: RegexRewriteSchema.optional(),
});
export type HTTPRewrite = z.infer<typeof HTTPRewriteSchema>;

export const HTTPRetrySchema = z.strictObject({
  attempts: Int32Schema.optional(),
  perTryTimeout: DurationSchema.optional(),
  /** Comma-separated Envoy retry conditions (`5xx,connect-failure`) and HTTP status codes. */
  retryOn: z.string().optional(),
  retryRemoteLocalities: z.boolean().optional(),
  retryIgnorePreviousHosts: z.boolean().optional(),
  backoff: DurationSchema.optional(),
});
export type HTTPRetry = z.infer<typeof HTTPRetrySchema>;

export const CorsPolicySchema = z.strictObject({
  allowOrigins: z.array(StringMatchSchema).optional(),
  /** Deprecated exact-match list; `allowOrigins` replaces it. */
  allowOrigin: z.array(z.string()).optional(),
  allowMethods: z.array(z.string()).optional(),
  allowHeaders: z.array(z.string()).optional(),
  exposeHeaders: z.array(z.string()).optional(),
  maxAge: DurationSchema.optional(),
  allowCredentials: z.boolean().optional(),
  unmatchedPreflights: z.enum(['UNSPECIFIED', 'FORWARD', 'IGNORE']).optional(),
});
export type CorsPolicy = z.infer<typeof CorsPolicySchema>;

export const HTTPFaultInjectionDelaySchema = z
  .strictObject({
    fixedDelay: DurationSchema.optional(),
    exponentialDelay: DurationSchema.optional(),
    percentage: PercentSchema.optional(),
    /** Deprecated integer percentage; `percentage.value` replaces it. */
    percent: Int32Schema.optional(),
  })
  .superRefine(oneOf(['fixedDelay', 'exponentialDelay'], false));
export type HTTPFaultInjectionDelay = z.infer<typeof HTTPFaultInjectionDelaySchema>;

export const HTTPFaultInjectionAbortSchema = z
  .strictObject({
    httpStatus: Int32Schema.optional(),
    grpcStatus: z.string().optional(),
    http2Error: z.string().optional(),
    percentage: PercentSchema.optional(),
  })
  .superRefine(oneOf(['httpStatus', 'grpcStatus', 'http2Error'], false));
export type HTTPFaultInjectionAbort = z.infer<typeof HTTPFaultInjectionAbortSchema>;

export const HTTPFaultInjectionSchema = z.strictObject({
  delay: HTTPFaultInjectionDelaySchema.optional(),
  abort: HTTPFaultInjectionAbortSchema.optional(),
});
export type HTTPFaultInjection = z.infer<typeof HTTPFaultInjectionSchema>;

export const HTTPMirrorPolicySchema = z.strictObject({
  destination: DestinationSchema,
  percentage: PercentSchema.optional(),
});
export type HTTPMirrorPolicy = z.infer<typeof HTTPMirrorPolicySchema>;

export const HTTPRouteSchema = z.strictObject({
  name: z.string().optional(),
  match: z.array(HTTPMatchRequestSchema).optional(),
  route: z.array(HTTPRouteDestinationSchema).optional(),
  redirect: HTTPRedirectSchema.optional(),
  directResponse: HTTPDirectResponseSchema.optional(),
  delegate: DelegateSchema.optional(),
  rewrite: HTTPRewriteSchema.optional(),
  timeout: DurationSchema.optional(),
  retries: HTTPRetrySchema.optional(),
  fault: HTTPFaultInjectionSchema.optional(),
  mirror: DestinationSchema.optional(),
  mirrors: z.array(HTTPMirrorPolicySchema).optional(),
  /** Deprecated; Istio's CRD accepts both spellings (the proto's json_name is `mirror_percent`). */
  mirrorPercent: UInt32Schema.optional(),
  mirror_percent: UInt32Schema.optional(),
  mirrorPercentage: PercentSchema.optional(),
  corsPolicy: CorsPolicySchema.optional(),
  headers: HeadersSchema.optional(),
});
export type HTTPRoute = z.infer<typeof HTTPRouteSchema>;

export const L4MatchAttributesSchema = z.strictObject({
  destinationSubnets: z.array(z.string()).optional(),
  port: PortNumberSchema.optional(),
  sourceLabels: LabelsSchema.optional(),
  gateways: z.array(z.string()).optional(),
  sourceNamespace: z.string().optional(),
});
export type L4MatchAttributes = z.infer<typeof L4MatchAttributesSchema>;

export const TLSMatchAttributesSchema = z.strictObject({
  sniHosts: z.array(z.string()).optional(),
  destinationSubnets: z.array(z.string()).optional(),
  port: PortNumberSchema.optional(),
  sourceLabels: LabelsSchema.optional(),
  gateways: z.array(z.string()).optional(),
  sourceNamespace: z.string().optional(),
});
export type TLSMatchAttributes = z.infer<typeof TLSMatchAttributesSchema>;

export const TCPRouteSchema = z.strictObject({
  match: z.array(L4MatchAttributesSchema).optional(),
  route: z.array(RouteDestinationSchema).optional(),
});
export type TCPRoute = z.infer<typeof TCPRouteSchema>;

export const TLSRouteSchema = z.strictObject({
  match: z.array(TLSMatchAttributesSchema).optional(),
  route: z.array(RouteDestinationSchema).optional(),
});
export type TLSRoute = z.infer<typeof TLSRouteSchema>;

export const VirtualServiceSpecSchema = z.strictObject({
  hosts: z.array(z.string()).optional(),
  gateways: z.array(z.string()).optional(),
  http: z.array(HTTPRouteSchema).optional(),
  tls: z.array(TLSRouteSchema).optional(),
  tcp: z.array(TCPRouteSchema).optional(),
  exportTo: z.array(z.string()).optional(),
});
export type VirtualServiceSpec = z.infer<typeof VirtualServiceSpecSchema>;

export const virtualServiceKind: KindDefinition<VirtualServiceSpec> = {
  group: 'networking.istio.io',
  kind: 'VirtualService',
  versions: ['v1alpha3', 'v1beta1', 'v1'],
  spec: VirtualServiceSpecSchema,
  check: checkVirtualService,
};
