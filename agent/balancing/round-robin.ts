// Envoy's ROUND_ROBIN policy: a plain rotation when weights are equal, otherwise smooth weighted
// round robin, so a 3:1 pair cycles a a b a instead of bunching a a a b.
import type { Endpoint, EndpointSet } from './endpoint-set';
import type { LoadBalancer, PickContext } from './load-balancer';

export class RoundRobinLoadBalancer implements LoadBalancer {
  private readonly cursors: Uint32Array;
  /** Per weighted pool, each endpoint's running credit (nginx's smooth weighted round robin). */
  private readonly credits: Float64Array[];

  constructor(private readonly set: EndpointSet) {
    this.cursors = new Uint32Array(set.pools.length);
    this.credits = set.pools.map((pool) => new Float64Array(pool.equalWeights ? 0 : pool.endpoints.length));
  }

  pick(context: PickContext): Endpoint | undefined {
    const pool = this.set.selectPool(context);
    if (!pool) return undefined;
    const endpoints = pool.endpoints;
    if (pool.equalWeights) {
      const at = this.cursors[pool.index]!;
      this.cursors[pool.index] = at + 1 === endpoints.length ? 0 : at + 1;
      return endpoints[at];
    }
    const credit = this.credits[pool.index]!;
    const weights = pool.weights;
    let best = 0;
    for (let i = 0; i < credit.length; i++) {
      credit[i] = credit[i]! + weights[i]!;
      if (credit[i]! > credit[best]!) best = i;
    }
    credit[best] = credit[best]! - pool.totalWeight;
    return endpoints[best];
  }

  started(): void {}

  finished(): void {}
}
