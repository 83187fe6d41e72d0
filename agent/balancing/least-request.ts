// Envoy's LEAST_REQUEST policy: with equal weights, the less busy of `choiceCount` random healthy
// endpoints (power of two choices); with unequal weights, weighted scheduling by
// weight / (active + 1)^bias, so both weights and in-flight requests steer traffic.
import type { Endpoint, EndpointSet } from './endpoint-set';
import type { LoadBalancer, PickContext } from './load-balancer';

export interface LeastRequestOptions {
  /** Envoy's choice_count (default 2). */
  choiceCount?: number;
  /** Envoy's active_request_bias (default 1.0); 0 makes unequal weights plain weighted round robin. */
  activeRequestBias?: number;
  /**
   * The balancer this one replaces after an EDS update: in-flight counts carry over for the
   * endpoints that stay, as Envoy keeps its host objects, so a busy endpoint does not look idle.
   */
  previous?: LeastRequestLoadBalancer;
}

export class LeastRequestLoadBalancer implements LoadBalancer {
  private readonly active: Int32Array;
  private readonly choiceCount: number;
  private readonly bias: number;
  private readonly credits: Float64Array[];

  constructor(private readonly set: EndpointSet, options: LeastRequestOptions = {}) {
    this.choiceCount = options.choiceCount ?? 2;
    this.bias = options.activeRequestBias ?? 1;
    if (!Number.isInteger(this.choiceCount) || this.choiceCount < 2) throw new Error(`least_request_lb_config.choice_count must be at least 2, got ${this.choiceCount}`);
    if (!(this.bias >= 0)) throw new Error(`least_request_lb_config.active_request_bias must be at least 0, got ${this.bias}`);
    this.active = new Int32Array(set.endpoints.length);
    const previous = options.previous;
    if (previous) for (const e of set.endpoints) this.active[e.index] = previous.activeRequests(e);
    this.credits = set.pools.map((pool) => new Float64Array(pool.equalWeights ? 0 : pool.endpoints.length));
  }

  /** Requests in flight to `endpoint` as this balancer counts them. */
  activeRequests(endpoint: Endpoint): number {
    const index = this.set.indexOf(endpoint);
    return index < 0 ? 0 : this.active[index]!;
  }

  pick(context: PickContext): Endpoint | undefined {
    const pool = this.set.selectPool(context);
    if (!pool) return undefined;
    const endpoints = pool.endpoints;
    const active = this.active;
    if (pool.equalWeights) {
      // Choices are drawn with replacement and ties keep the first, as in Envoy: the busiest
      // endpoint only wins when every draw lands on it.
      let best = endpoints[Math.floor(context.random() * endpoints.length)]!;
      for (let c = 1; c < this.choiceCount; c++) {
        const candidate = endpoints[Math.floor(context.random() * endpoints.length)]!;
        if (active[candidate.index]! < active[best.index]!) best = candidate;
      }
      return best;
    }
    const credit = this.credits[pool.index]!;
    const weights = pool.weights;
    const bias = this.bias;
    let total = 0;
    let best = 0;
    for (let i = 0; i < credit.length; i++) {
      const load = active[endpoints[i]!.index]! + 1;
      const effective = bias === 1 ? weights[i]! / load : bias === 0 ? weights[i]! : weights[i]! / Math.pow(load, bias);
      total += effective;
      credit[i] = credit[i]! + effective;
      if (credit[i]! > credit[best]!) best = i;
    }
    credit[best] = credit[best]! - total;
    return endpoints[best];
  }

  started(endpoint: Endpoint): void {
    const index = this.set.indexOf(endpoint);
    if (index >= 0) this.active[index]!++;
  }

  finished(endpoint: Endpoint): void {
    const index = this.set.indexOf(endpoint);
    // A finish whose start was counted by no balancer must not drive the count negative.
    if (index >= 0 && this.active[index]! > 0) this.active[index]!--;
  }
}
