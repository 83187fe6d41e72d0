// The route configurations of one xDS config compiled once into RouteTables, and each route's
// hash policy compiled once into a RequestHasher, so that routing a request is lookups only.
import { compileHashPolicies, type DecodedHashPolicy, type RequestHasher } from '../balancing/hash-policy';
import { compileRouteConfiguration, type HashPolicy, type RouteTable } from '../routing/route-table';
import type { AgentXdsConfig } from '../xds/agent-xds';

function decodedHashPolicy(policy: HashPolicy): DecodedHashPolicy {
  switch (policy.kind) {
    case 'header':
      return { header: { header_name: policy.name }, terminal: policy.terminal };
    case 'cookie':
      return { cookie: { name: policy.name }, terminal: policy.terminal };
    case 'sourceIp':
      return { connection_properties: { source_ip: true }, terminal: policy.terminal };
    case 'queryParameter':
      return { query_parameter: { name: policy.name }, terminal: policy.terminal };
  }
}

export class HttpRoutes {
  private readonly tables = new Map<string, RouteTable>();
  private readonly errors = new Map<string, string>();
  /** Keyed by the decision's hashPolicy array, which a compiled route shares across all its decisions. */
  private readonly hashers = new WeakMap<readonly HashPolicy[], RequestHasher | undefined>();

  /** A route configuration that cannot be compiled is kept out, its error kept for the requests that name it. */
  constructor(routes: AgentXdsConfig['routes']) {
    for (const [name, config] of routes) {
      try {
        this.tables.set(name, compileRouteConfiguration(config as Record<string, unknown>));
      } catch (error) {
        this.errors.set(name, (error as Error).message);
      }
    }
  }

  table(name: string): RouteTable | undefined {
    return this.tables.get(name);
  }

  /** Why `name` has no table: not sent by the server, or refused when compiled. */
  problem(name: string): string {
    return this.errors.get(name) ?? `route configuration ${name} is not known`;
  }

  hasher(policies: readonly HashPolicy[]): RequestHasher | undefined {
    if (policies.length === 0) return undefined;
    if (this.hashers.has(policies)) return this.hashers.get(policies);
    const hasher = compileHashPolicies(policies.map(decodedHashPolicy));
    this.hashers.set(policies, hasher);
    return hasher;
  }
}
