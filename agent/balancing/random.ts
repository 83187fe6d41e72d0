// Envoy's RANDOM policy: priority and locality as for every policy, then a uniformly random
// healthy endpoint; endpoint weights are ignored, as Envoy's random load balancer does.
import type { Endpoint, EndpointSet } from './endpoint-set';
import type { LoadBalancer, PickContext } from './load-balancer';

export class RandomLoadBalancer implements LoadBalancer {
  constructor(private readonly set: EndpointSet) {}

  pick(context: PickContext): Endpoint | undefined {
    const pool = this.set.selectPool(context);
    if (!pool) return undefined;
    const endpoints = pool.endpoints;
    return endpoints[Math.floor(context.random() * endpoints.length)];
  }

  started(): void {}

  finished(): void {}
}
