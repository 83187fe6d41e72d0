// Helpers for the balancing tests: a seeded PRNG, and clusters and load assignments produced by
// the real translator (MeshTranslator) and decoded with unpackAny, as the agent receives them.
import { MeshTranslator } from '../../server/translate/mesh-translator';
import { TypeUrl, generateDecoded, model, named, node, resource } from '../../server/translate/testing';
import type { DestinationRuleSpec } from '../../server/translate/specs';
import type { Service } from '../../server/registry/service';
import type { DecodedLoadAssignment, Endpoint } from './endpoint-set';
import type { DecodedCluster } from './create-load-balancer';
import type { LoadBalancer, PickContext } from './load-balancer';

/** mulberry32: small, fast, and the same sequence for the same seed on every machine. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function context(seed: number): PickContext {
  return { random: seededRandom(seed) };
}

/** The outbound cluster and its load assignment for `clusterName`, as node `nodeId` receives them. */
export function translated(
  services: readonly Service[],
  rule: DestinationRuleSpec | undefined,
  clusterName: string,
  nodeId: string,
): { cluster: DecodedCluster; cla: DecodedLoadAssignment } {
  const m = model(services, rule ? [resource('DestinationRule', 'rule', rule)] : []);
  const translator = new MeshTranslator();
  // Agents subscribe to CDS as a wildcard; a named CDS request marks a proxyless gRPC client.
  const cluster = generateDecoded<DecodedCluster>(translator, m, node(nodeId), TypeUrl.Cluster).get(clusterName);
  const cla = generateDecoded<DecodedLoadAssignment>(translator, m, node(nodeId), TypeUrl.ClusterLoadAssignment, named(clusterName)).get(clusterName);
  if (!cluster || !cla) throw new Error(`translator produced no cluster or load assignment named ${clusterName}`);
  return { cluster, cla };
}

/** How often each address is picked over `picks` picks, each request finishing at once. */
export function countPicks(lb: LoadBalancer, ctx: PickContext, picks: number): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < picks; i++) {
    const e: Endpoint | undefined = lb.pick(ctx);
    const key = e ? e.address : 'none';
    counts.set(key, (counts.get(key) ?? 0) + 1);
    if (e) {
      lb.started(e);
      lb.finished(e);
    }
  }
  return counts;
}

/** Percent of `picks` that went to `address`. */
export function share(counts: Map<string, number>, address: string, picks: number): number {
  return ((counts.get(address) ?? 0) * 100) / picks;
}
