// ServiceEntry (networking.istio.io): strict schema of its spec — hosts, addresses, ports,
// location, resolution, endpoints or workloadSelector — and the kind definition.
import { z } from 'zod';
import type { KindDefinition } from '../../config/kind';
import { NetworkingWorkloadSelectorSchema, PortNumberSchema } from '../common';
import { WorkloadEntrySpecSchema } from '../workload-entry/schema';
import { checkServiceEntry } from './check';

export const ServicePortSchema = z.strictObject({
  number: PortNumberSchema,
  /** HTTP|HTTPS|HTTP2|GRPC|GRPC-WEB|MONGO|REDIS|MYSQL|TCP|TLS|UDP; empty means sniffed. */
  protocol: z.string().optional(),
  name: z.string(),
  targetPort: PortNumberSchema.optional(),
});
export type ServicePort = z.infer<typeof ServicePortSchema>;

export const ServiceEntrySpecSchema = z.strictObject({
  hosts: z.array(z.string()),
  addresses: z.array(z.string()).optional(),
  ports: z.array(ServicePortSchema).optional(),
  /** Istio's default is MESH_EXTERNAL. */
  location: z.enum(['MESH_EXTERNAL', 'MESH_INTERNAL']).optional(),
  /** Istio's default is NONE. */
  resolution: z.enum(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN']).optional(),
  endpoints: z.array(WorkloadEntrySpecSchema).optional(),
  workloadSelector: NetworkingWorkloadSelectorSchema.optional(),
  exportTo: z.array(z.string()).optional(),
  subjectAltNames: z.array(z.string()).optional(),
});
export type ServiceEntrySpec = z.infer<typeof ServiceEntrySpecSchema>;

export const serviceEntryKind: KindDefinition<ServiceEntrySpec> = {
  group: 'networking.istio.io',
  kind: 'ServiceEntry',
  versions: ['v1alpha3', 'v1beta1', 'v1'],
  spec: ServiceEntrySpecSchema,
  check: checkServiceEntry,
};
