// One immutable snapshot of everything the control plane knows: the valid Istio resources and
// the merged service registry. Sources produce new snapshots; translation reads one at a time.
import type { ConfigResource } from '../config/resource';
import type { ConfigIssue } from '../../lib/config/issue';
import type { Service } from '../registry/service';

export interface MeshModel {
  /** Increases with every new snapshot; used for logging and debug output, not as an xDS version. */
  readonly version: number;
  /** Valid resources by kind (e.g. `VirtualService`), in a stable order (namespace, name). */
  readonly resources: ReadonlyMap<string, readonly ConfigResource[]>;
  /** Every known service, keyed by canonical hostname. */
  readonly services: ReadonlyMap<string, Service>;
  /** Problems of the config currently on disk (rejected files keep their last good version). */
  readonly issues: readonly ConfigIssue[];
  /** Istio's mesh-wide root namespace (PeerAuthentication/Sidecar defaults live there). */
  readonly rootNamespace: string;
  readonly trustDomain: string;
}

/** Resources of one kind, typed by the caller who knows the kind's spec type. */
export function resourcesOf<Spec>(model: MeshModel, kind: string): readonly ConfigResource<Spec>[] {
  return (model.resources.get(kind) ?? []) as readonly ConfigResource<Spec>[];
}
