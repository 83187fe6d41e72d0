// WorkloadEntry (networking.istio.io): strict schema of its spec — one non-Kubernetes workload with
// address, ports, labels, locality and identity — shared with ServiceEntry endpoints.
import { z } from 'zod';
import type { KindDefinition } from '../../config/kind';
import { LabelsSchema, UInt32Schema } from '../common';
import { checkWorkloadEntry } from './check';

export const WorkloadEntrySpecSchema = z.strictObject({
  /** IP address, DNS name (DNS resolution), or `unix:///path`; may be empty only with a network. */
  address: z.string().optional(),
  /** Workload port per service port name; defaults to the service port's number. */
  ports: z.record(z.string(), UInt32Schema).optional(),
  labels: LabelsSchema.optional(),
  network: z.string().optional(),
  /** `region/zone/subzone`. */
  locality: z.string().optional(),
  /** Load balancing weight; Istio treats 0 as 1. */
  weight: UInt32Schema.optional(),
  serviceAccount: z.string().optional(),
});
export type WorkloadEntrySpec = z.infer<typeof WorkloadEntrySpecSchema>;
/** The same message as a ServiceEntry endpoint. */
export type WorkloadEntry = WorkloadEntrySpec;

export const workloadEntryKind: KindDefinition<WorkloadEntrySpec> = {
  group: 'networking.istio.io',
  kind: 'WorkloadEntry',
  versions: ['v1alpha3', 'v1beta1', 'v1'],
  spec: WorkloadEntrySpecSchema,
  check: checkWorkloadEntry,
};
