// Fixtures for the security translation tests: one HTTP and one TCP workload on host-a in
// namespace `shop`, and a reader for the RBAC/jwt_authn filters of their virtualInbound chains.
import { MeshTranslator } from './mesh-translator';
import { TypeUrl, endpoint, generateDecoded, model, node, port, resource, service } from './testing';
import type { ConfigResource } from '../config/resource';

export const web = service('web.shop.svc.cluster.local', {
  namespace: 'shop',
  aliases: ['web'],
  ports: [port(8080, 'HTTP', 'http')],
  endpoints: [endpoint('10.0.0.1', { node: 'host-a', labels: { app: 'web', version: 'v1' } })],
});
export const db = service('db.shop.svc.cluster.local', {
  namespace: 'shop',
  ports: [port(5432, 'TCP', 'tcp')],
  endpoints: [endpoint('10.0.0.2', { node: 'host-a', labels: { app: 'db' } })],
});

export function security<Spec>(kind: string, name: string, spec: Spec, namespace = 'shop'): ConfigResource<Spec> {
  return { ...resource(kind, name, spec, namespace), apiVersion: 'security.istio.io/v1' };
}

/** Fields holding data whose value could by chance name a sibling field. */
const DATA_FIELDS = new Set(['name', 'address_prefix', 'exact', 'prefix', 'suffix', 'key', 'filter']);

/**
 * A decoded message without the oneof discriminators protobufjs adds (`match_pattern: 'prefix'`
 * next to `prefix`), so expectations read like the config Istio documents.
 */
export function withoutOneofNames(value: any): any {
  if (Array.isArray(value)) return value.map(withoutOneofNames);
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) {
    if (typeof field === 'string' && field !== key && field in value && !DATA_FIELDS.has(key)) continue;
    out[key] = withoutOneofNames(field);
  }
  return out;
}

/** virtualInbound of host-a under the given resources, decoded. */
export function inboundListener(resources: ConfigResource[]): any {
  return withoutOneofNames(generateDecoded(new MeshTranslator(), model([web, db], resources), node('host-a'), TypeUrl.Listener).get('virtualInbound'));
}

export function chainFor(listener: any, targetPort: number): any {
  return listener.filter_chains.find((c: any) => c.filter_chain_match?.destination_port?.value === targetPort && c.filter_chain_match.transport_protocol !== 'raw_buffer');
}

/** The HTTP filters of web's chain (8080). */
export function httpFilters(resources: ConfigResource[]): any[] {
  return chainFor(inboundListener(resources), 8080).filters[0].typed_config.http_filters;
}

/** The network filters of db's chain (5432). */
export function networkFilters(resources: ConfigResource[]): any[] {
  return chainFor(inboundListener(resources), 5432).filters;
}
