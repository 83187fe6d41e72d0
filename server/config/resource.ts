// The envelope every Istio resource is held in once parsed: apiVersion/kind/metadata as Istio's,
// the validated spec, and where it came from so that every later error can point back to it.

export type IstioGroup = 'networking.istio.io' | 'security.istio.io';

export interface ResourceMetadata {
  name: string;
  /** Istio's default namespace when a document gives none. */
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface ResourceOrigin {
  /** Path of the file as read (absolute when read from the config directory). */
  file: string;
  /** 1-based index of the YAML document inside the file. */
  document: number;
}

export interface ConfigResource<Spec = unknown> {
  apiVersion: string;
  kind: string;
  metadata: ResourceMetadata;
  spec: Spec;
  origin: ResourceOrigin;
}

/** `Kind/namespace/name`, the identity two resources must not share. */
export function resourceKey(resource: Pick<ConfigResource, 'kind' | 'metadata'>): string {
  return `${resource.kind}/${resource.metadata.namespace}/${resource.metadata.name}`;
}

export const DEFAULT_NAMESPACE = 'default';
