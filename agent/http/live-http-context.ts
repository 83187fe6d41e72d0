// The per-connection context of the outbound HTTP path that follows config updates: a kept-alive
// connection's next request is routed with the route configuration and clusters in force when it
// arrives, as Envoy applies an RDS update to new requests on existing connections. What was
// decided for the connection itself (its filter chain, destination, protocol, sender) stays.
import type { SourceWorkload } from '../identity/workload-resolver';
import type { OutboundTable, Target } from '../proxy/outbound-table';
import type { RouteTable } from '../routing/route-table';
import type { OutboundHttpContext } from './outbound-http';

export interface LiveHttpContextInit {
  /** The table in force now; undefined never happens once a connection was decided, but is tolerated. */
  readonly current: () => OutboundTable | undefined;
  /** The table the connection was decided with. */
  readonly decidedWith: OutboundTable;
  readonly routeConfig: string;
  readonly destination: Target;
  readonly chain: string;
  readonly downstreamHttp2: boolean;
  readonly sourceIp: string | undefined;
  readonly sourceWorkload: SourceWorkload | undefined;
}

export class LiveHttpContext implements OutboundHttpContext {
  readonly routeConfig: string;
  readonly destination: Target;
  readonly chain: string;
  readonly downstreamHttp2: boolean;
  readonly sourceIp: string | undefined;
  readonly sourceWorkload: SourceWorkload | undefined;
  private readonly current: () => OutboundTable | undefined;
  private latest: OutboundTable;
  /** Route tables are compiled once per config by the table; this only remembers the lookup. */
  private latestRoutes: RouteTable | undefined;

  constructor(init: LiveHttpContextInit) {
    this.current = init.current;
    this.latest = init.decidedWith;
    this.latestRoutes = init.decidedWith.httpRoutes.table(init.routeConfig);
    this.routeConfig = init.routeConfig;
    this.destination = init.destination;
    this.chain = init.chain;
    this.downstreamHttp2 = init.downstreamHttp2;
    this.sourceIp = init.sourceIp;
    this.sourceWorkload = init.sourceWorkload;
  }

  get table(): OutboundTable {
    this.refresh();
    return this.latest;
  }

  get routes(): RouteTable | undefined {
    this.refresh();
    return this.latestRoutes;
  }

  private refresh(): void {
    const now = this.current();
    if (now === undefined || now === this.latest) return;
    this.latest = now;
    this.latestRoutes = now.httpRoutes.table(this.routeConfig);
  }
}
