// Builders for the translator's tests: services, endpoints, Istio resources and models written
// by hand (no YAML), nodes, and a generate-and-decode helper that returns plain Envoy objects.
import { TypeUrl, unpackAny, type ResourceTypeUrl } from '../../lib/xds/protos';
import type { ConfigResource } from '../config/resource';
import type { MeshModel } from '../model/mesh-model';
import type { Endpoint, Service, ServicePort } from '../registry/service';
import type { EncodedResource, ResourceGenerator, Subscription, XdsNode } from '../xds/generator';
import { verifyEncodedResources } from './hash';

// Every resource a translator test emits is verified against Envoy's protos on the way out.
verifyEncodedResources(true);

export function endpoint(address: string, fields: Partial<Endpoint> = {}): Endpoint {
  return {
    address,
    ports: {},
    labels: {},
    healthy: true,
    locality: { region: '', zone: '', subzone: '' },
    weight: 1,
    ...fields,
  };
}

export function port(number: number, protocol: ServicePort['protocol'] = 'HTTP', name?: string, targetPort?: number): ServicePort {
  const p: ServicePort = { name: name ?? `${protocol.toLowerCase()}-${number}`, number, protocol };
  if (targetPort !== undefined) p.targetPort = targetPort;
  return p;
}

export function service(hostname: string, fields: Partial<Service> = {}): Service {
  return {
    hostname,
    namespace: 'default',
    aliases: [],
    addresses: [],
    ports: [port(80)],
    resolution: 'STATIC',
    location: 'MESH_INTERNAL',
    endpoints: [],
    source: 'file',
    exportTo: ['*'],
    subjectAltNames: [],
    ...fields,
  };
}

export function resource<Spec>(kind: string, name: string, spec: Spec, namespace = 'default'): ConfigResource<Spec> {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind,
    metadata: { name, namespace, labels: {}, annotations: {} },
    spec,
    origin: { file: `/etc/mesh/${name}.yaml`, document: 1 },
  };
}

let version = 0;

export function model(services: readonly Service[], resources: readonly ConfigResource[] = []): MeshModel {
  const byKind = new Map<string, ConfigResource[]>();
  for (const r of resources) {
    const list = byKind.get(r.kind) ?? [];
    list.push(r);
    byKind.set(r.kind, list);
  }
  return {
    version: ++version,
    resources: byKind,
    services: new Map(services.map((s) => [s.hostname, s])),
    issues: [],
    rootNamespace: 'istio-system',
    trustDomain: 'cluster.local',
  };
}

export function node(id: string, metadata: Record<string, unknown> = {}): XdsNode {
  return { id, cluster: 'mesh', metadata };
}

export const WILDCARD: Subscription = { wildcard: true };

export function named(...names: string[]): Subscription {
  return { wildcard: false, names: new Set(names) };
}

/**
 * Decoded resources by name; decoding proves each one is a well-formed encoded message. The
 * default element type is loose on purpose: assertions read Envoy's messages field by field, and
 * typing them here would hand-write what the .proto files already define.
 */
export function decodeAll<T = any>(resources: Map<string, EncodedResource>): Map<string, T> {
  const out = new Map<string, T>();
  for (const [name, r] of resources) out.set(name, unpackAny<T>(r.any));
  return out;
}

export function generateDecoded<T = any>(
  generator: ResourceGenerator,
  m: MeshModel,
  n: XdsNode,
  typeUrl: ResourceTypeUrl,
  subscription: Subscription = WILDCARD,
): Map<string, T> {
  return decodeAll<T>(generator.generate(m, n, typeUrl, subscription));
}

export { TypeUrl };
