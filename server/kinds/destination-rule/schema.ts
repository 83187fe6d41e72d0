// DestinationRule (networking.istio.io): strict schema of its spec — traffic policy (load balancing,
// connection pool, outlier detection, TLS, per-port settings), subsets — and the kind definition.
import { z } from 'zod';
import type { KindDefinition } from '../../config/kind';
import {
  DurationSchema,
  Int32Schema,
  LabelsSchema,
  PortNumberSchema,
  UInt32Schema,
  UInt64Schema,
  WorkloadSelectorSchema,
  oneOf,
} from '../common';
import { PortSelectorSchema } from '../virtual-service/schema';
import { checkDestinationRule } from './check';

export const HTTPCookieSchema = z.strictObject({
  name: z.string(),
  path: z.string().optional(),
  ttl: DurationSchema.optional(),
  attributes: z.array(z.strictObject({ name: z.string(), value: z.string().optional() })).optional(),
});
export type HTTPCookie = z.infer<typeof HTTPCookieSchema>;

export const RingHashSchema = z.strictObject({ minimumRingSize: UInt64Schema.optional() });
export const MagLevSchema = z.strictObject({ tableSize: UInt64Schema.optional() });

export const ConsistentHashLBSchema = z
  .strictObject({
    httpHeaderName: z.string().optional(),
    httpCookie: HTTPCookieSchema.optional(),
    useSourceIp: z.boolean().optional(),
    httpQueryParameterName: z.string().optional(),
    ringHash: RingHashSchema.optional(),
    maglev: MagLevSchema.optional(),
    /** Deprecated; `ringHash.minimumRingSize` replaces it. */
    minimumRingSize: UInt64Schema.optional(),
  })
  .superRefine(oneOf(['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'], false))
  .superRefine(oneOf(['ringHash', 'maglev'], false));
export type ConsistentHashLB = z.infer<typeof ConsistentHashLBSchema>;

export const LocalityLoadBalancerSettingSchema = z.strictObject({
  distribute: z
    .array(z.strictObject({ from: z.string().optional(), to: z.record(z.string(), UInt32Schema).optional() }))
    .optional(),
  failover: z.array(z.strictObject({ from: z.string().optional(), to: z.string().optional() })).optional(),
  failoverPriority: z.array(z.string()).optional(),
  enabled: z.boolean().optional(),
});
export type LocalityLoadBalancerSetting = z.infer<typeof LocalityLoadBalancerSettingSchema>;

export const WarmupConfigurationSchema = z.strictObject({
  duration: DurationSchema,
  minimumPercent: z.number().min(0).max(100).optional(),
  aggression: z.number().min(1).optional(),
});
export type WarmupConfiguration = z.infer<typeof WarmupConfigurationSchema>;

export const LoadBalancerSettingsSchema = z
  .strictObject({
    simple: z.enum(['UNSPECIFIED', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST', 'LEAST_CONN']).optional(),
    consistentHash: ConsistentHashLBSchema.optional(),
    localityLbSetting: LocalityLoadBalancerSettingSchema.optional(),
    warmupDurationSecs: DurationSchema.optional(),
    warmup: WarmupConfigurationSchema.optional(),
  })
  .superRefine(oneOf(['simple', 'consistentHash'], false));
export type LoadBalancerSettings = z.infer<typeof LoadBalancerSettingsSchema>;

export const TCPKeepaliveSchema = z.strictObject({
  probes: UInt32Schema.optional(),
  time: DurationSchema.optional(),
  interval: DurationSchema.optional(),
});
export type TCPKeepalive = z.infer<typeof TCPKeepaliveSchema>;

export const TCPSettingsSchema = z.strictObject({
  maxConnections: Int32Schema.optional(),
  connectTimeout: DurationSchema.optional(),
  tcpKeepalive: TCPKeepaliveSchema.optional(),
  maxConnectionDuration: DurationSchema.optional(),
  idleTimeout: DurationSchema.optional(),
});
export type TCPSettings = z.infer<typeof TCPSettingsSchema>;

export const HTTPSettingsSchema = z.strictObject({
  http1MaxPendingRequests: Int32Schema.optional(),
  http2MaxRequests: Int32Schema.optional(),
  maxRequestsPerConnection: Int32Schema.optional(),
  maxRetries: Int32Schema.optional(),
  idleTimeout: DurationSchema.optional(),
  h2UpgradePolicy: z.enum(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']).optional(),
  useClientProtocol: z.boolean().optional(),
  maxConcurrentStreams: Int32Schema.optional(),
});
export type HTTPSettings = z.infer<typeof HTTPSettingsSchema>;

export const ConnectionPoolSettingsSchema = z.strictObject({
  tcp: TCPSettingsSchema.optional(),
  http: HTTPSettingsSchema.optional(),
});
export type ConnectionPoolSettings = z.infer<typeof ConnectionPoolSettingsSchema>;

export const OutlierDetectionSchema = z.strictObject({
  splitExternalLocalOriginErrors: z.boolean().optional(),
  consecutiveLocalOriginFailures: UInt32Schema.optional(),
  consecutiveGatewayErrors: UInt32Schema.optional(),
  consecutive5xxErrors: UInt32Schema.optional(),
  interval: DurationSchema.optional(),
  baseEjectionTime: DurationSchema.optional(),
  maxEjectionPercent: Int32Schema.optional(),
  minHealthPercent: Int32Schema.optional(),
  /** Deprecated; consecutiveGatewayErrors / consecutive5xxErrors replace it. */
  consecutiveErrors: Int32Schema.optional(),
});
export type OutlierDetection = z.infer<typeof OutlierDetectionSchema>;

export const ClientTLSSettingsSchema = z.strictObject({
  mode: z.enum(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']).optional(),
  clientCertificate: z.string().optional(),
  privateKey: z.string().optional(),
  caCertificates: z.string().optional(),
  credentialName: z.string().optional(),
  subjectAltNames: z.array(z.string()).optional(),
  sni: z.string().optional(),
  insecureSkipVerify: z.boolean().optional(),
  caCrl: z.string().optional(),
});
export type ClientTLSSettings = z.infer<typeof ClientTLSSettingsSchema>;

export const TunnelSettingsSchema = z.strictObject({
  protocol: z.string().optional(),
  targetHost: z.string(),
  targetPort: PortNumberSchema,
});
export type TunnelSettings = z.infer<typeof TunnelSettingsSchema>;

export const ProxyProtocolSchema = z.strictObject({ version: z.enum(['V1', 'V2']).optional() });
export type ProxyProtocol = z.infer<typeof ProxyProtocolSchema>;

export const RetryBudgetSchema = z.strictObject({
  percent: z.number().min(0).max(100).optional(),
  minRetryConcurrency: UInt32Schema.optional(),
});
export type RetryBudget = z.infer<typeof RetryBudgetSchema>;

const policyShape = {
  loadBalancer: LoadBalancerSettingsSchema.optional(),
  connectionPool: ConnectionPoolSettingsSchema.optional(),
  outlierDetection: OutlierDetectionSchema.optional(),
  tls: ClientTLSSettingsSchema.optional(),
};

export const PortTrafficPolicySchema = z.strictObject({
  port: PortSelectorSchema.optional(),
  ...policyShape,
});
export type PortTrafficPolicy = z.infer<typeof PortTrafficPolicySchema>;

export const TrafficPolicySchema = z.strictObject({
  ...policyShape,
  portLevelSettings: z.array(PortTrafficPolicySchema).optional(),
  tunnel: TunnelSettingsSchema.optional(),
  proxyProtocol: ProxyProtocolSchema.optional(),
  retryBudget: RetryBudgetSchema.optional(),
});
export type TrafficPolicy = z.infer<typeof TrafficPolicySchema>;

export const SubsetSchema = z.strictObject({
  name: z.string(),
  labels: LabelsSchema.optional(),
  trafficPolicy: TrafficPolicySchema.optional(),
});
export type Subset = z.infer<typeof SubsetSchema>;

export const DestinationRuleSpecSchema = z.strictObject({
  host: z.string(),
  trafficPolicy: TrafficPolicySchema.optional(),
  subsets: z.array(SubsetSchema).optional(),
  exportTo: z.array(z.string()).optional(),
  workloadSelector: WorkloadSelectorSchema.optional(),
});
export type DestinationRuleSpec = z.infer<typeof DestinationRuleSpecSchema>;

export const destinationRuleKind: KindDefinition<DestinationRuleSpec> = {
  group: 'networking.istio.io',
  kind: 'DestinationRule',
  versions: ['v1alpha3', 'v1beta1', 'v1'],
  spec: DestinationRuleSpecSchema,
  check: checkDestinationRule,
};
