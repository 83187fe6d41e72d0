// The contract between the ADS server (which tracks streams, versions and ACKs) and translation
// (which decides what each node should get). The server never looks inside resources.
import type { PackedAny, ResourceTypeUrl } from '../../lib/xds/protos';
import type { MeshModel } from '../model/mesh-model';

/** The identifying part of an xDS client, from DiscoveryRequest.node. */
export interface XdsNode {
  /** node.id: for mesh-agent, its node name (the name endpoints carry in `Endpoint.node`). */
  id: string;
  cluster: string;
  /** node.metadata, decoded from google.protobuf.Struct to plain JSON. */
  metadata: Record<string, unknown>;
  /** node.locality when the client states one (mesh-agent sends its agent.yaml `locality`). */
  locality?: { region: string; zone: string; subzone: string };
}

export interface EncodedResource {
  name: string;
  any: PackedAny;
  /** Content hash of `any.value`: equal hashes mean nothing changed for this resource. */
  hash: string;
}

/**
 * What the client asked for: `wildcard` for Envoy-style LDS/CDS subscriptions (empty or `*`
 * resource names), otherwise the names subscribed to.
 */
export type Subscription = { wildcard: true } | { wildcard: false; names: ReadonlySet<string> };

export interface ResourceGenerator {
  /**
   * Resources of one type for one node under the given model. For a named subscription only
   * (a subset of) those names are returned; names the mesh does not know are simply absent.
   */
  generate(model: MeshModel, node: XdsNode, typeUrl: ResourceTypeUrl, subscription: Subscription): Map<string, EncodedResource>;
}
