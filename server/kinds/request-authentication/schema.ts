// RequestAuthentication (security.istio.io): strict schema of its spec — which workloads it applies
// to and the JWT rules (issuer, audiences, keys, token locations, claim outputs) — and the kind.
import { z } from 'zod';
import type { KindDefinition } from '../../config/kind';
import { DurationSchema, PolicyTargetReferenceSchema, WorkloadSelectorSchema } from '../common';
import { checkRequestAuthentication } from './check';

export const JWTHeaderSchema = z.strictObject({
  name: z.string(),
  /** Stripped from the header value before the token is read, e.g. `Bearer `. */
  prefix: z.string().optional(),
});
export type JWTHeader = z.infer<typeof JWTHeaderSchema>;

export const ClaimToHeaderSchema = z.strictObject({
  header: z.string(),
  claim: z.string(),
});
export type ClaimToHeader = z.infer<typeof ClaimToHeaderSchema>;

export const JWTRuleSchema = z.strictObject({
  issuer: z.string().optional(),
  audiences: z.array(z.string()).optional(),
  jwksUri: z.string().optional(),
  /** An inline JSON Web Key Set document. */
  jwks: z.string().optional(),
  fromHeaders: z.array(JWTHeaderSchema).optional(),
  fromParams: z.array(z.string()).optional(),
  fromCookies: z.array(z.string()).optional(),
  outputPayloadToHeader: z.string().optional(),
  forwardOriginalToken: z.boolean().optional(),
  outputClaimToHeaders: z.array(ClaimToHeaderSchema).optional(),
  /** How long fetching the JWKS from jwksUri may take. */
  timeout: DurationSchema.optional(),
  spaceDelimitedClaims: z.array(z.string()).optional(),
});
export type JWTRule = z.infer<typeof JWTRuleSchema>;

export const RequestAuthenticationSpecSchema = z.strictObject({
  selector: WorkloadSelectorSchema.optional(),
  targetRef: PolicyTargetReferenceSchema.optional(),
  targetRefs: z.array(PolicyTargetReferenceSchema).optional(),
  jwtRules: z.array(JWTRuleSchema).optional(),
});
export type RequestAuthenticationSpec = z.infer<typeof RequestAuthenticationSpecSchema>;

export const requestAuthenticationKind: KindDefinition<RequestAuthenticationSpec> = {
  group: 'security.istio.io',
  kind: 'RequestAuthentication',
  versions: ['v1beta1', 'v1'],
  spec: RequestAuthenticationSpecSchema,
  check: checkRequestAuthentication,
};
