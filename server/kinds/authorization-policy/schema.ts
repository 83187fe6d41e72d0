// AuthorizationPolicy (security.istio.io): strict schema of its spec — selector or targetRefs,
// action, CUSTOM provider and rules (from sources, to operations, when conditions) — and the kind.
import { z } from 'zod';
import type { KindDefinition } from '../../config/kind';
import { PolicyTargetReferenceSchema, WorkloadSelectorSchema } from '../common';
import { checkAuthorizationPolicy } from './check';

const values = z.array(z.string()).optional();

/** Peer attributes; fields are ANDed, values within a field ORed; `not*` negate. */
export const SourceSchema = z.strictObject({
  principals: values,
  notPrincipals: values,
  requestPrincipals: values,
  notRequestPrincipals: values,
  namespaces: values,
  notNamespaces: values,
  serviceAccounts: values,
  notServiceAccounts: values,
  ipBlocks: values,
  notIpBlocks: values,
  remoteIpBlocks: values,
  notRemoteIpBlocks: values,
});
export type Source = z.infer<typeof SourceSchema>;

/** Request attributes; ports are strings in Istio's API. */
export const OperationSchema = z.strictObject({
  hosts: values,
  notHosts: values,
  ports: values,
  notPorts: values,
  methods: values,
  notMethods: values,
  paths: values,
  notPaths: values,
});
export type Operation = z.infer<typeof OperationSchema>;

export const ConditionSchema = z.strictObject({
  key: z.string(),
  values: values,
  notValues: values,
});
export type Condition = z.infer<typeof ConditionSchema>;

export const RuleSchema = z.strictObject({
  from: z.array(z.strictObject({ source: SourceSchema.optional() })).optional(),
  to: z.array(z.strictObject({ operation: OperationSchema.optional() })).optional(),
  when: z.array(ConditionSchema).optional(),
});
export type Rule = z.infer<typeof RuleSchema>;

export const AuthorizationPolicyActionSchema = z.enum(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']);
export type AuthorizationPolicyAction = z.infer<typeof AuthorizationPolicyActionSchema>;

export const AuthorizationPolicySpecSchema = z.strictObject({
  selector: WorkloadSelectorSchema.optional(),
  targetRef: PolicyTargetReferenceSchema.optional(),
  targetRefs: z.array(PolicyTargetReferenceSchema).optional(),
  /** Absent rules never match (and with ALLOW deny everything); `[{}]` matches every request. */
  rules: z.array(RuleSchema).optional(),
  /** Istio's default is ALLOW. */
  action: AuthorizationPolicyActionSchema.optional(),
  /** Only with action CUSTOM: the extension provider (ext_authz) to ask. */
  provider: z.strictObject({ name: z.string().optional() }).optional(),
});
export type AuthorizationPolicySpec = z.infer<typeof AuthorizationPolicySpecSchema>;

export const authorizationPolicyKind: KindDefinition<AuthorizationPolicySpec> = {
  group: 'security.istio.io',
  kind: 'AuthorizationPolicy',
  versions: ['v1beta1', 'v1'],
  spec: AuthorizationPolicySpecSchema,
  check: checkAuthorizationPolicy,
};
