// Which SPIFFE IDs the agent in front of each mesh endpoint may prove, from the xDS view: the
// endpoint's service account (its `mesh` metadata) narrowed within its cluster's subjectAltNames.
// Built once per applied config; the tunnel looks destinations up per connection.
import { structToJson } from '../../lib/xds/struct';
import type { DecodedLoadAssignment } from '../balancing/endpoint-set';
import type { ResourceMap } from '../xds/agent-xds';

export type PeerIdentityIndex = ReadonlyMap<string, readonly string[]>;

function clusterSans(cluster: unknown): readonly string[] {
  const metadata = (cluster as { metadata?: { filter_metadata?: Record<string, unknown> } }).metadata;
  const mesh = structToJson(metadata?.filter_metadata?.mesh);
  const tls = mesh.tls as { subjectAltNames?: unknown } | null | undefined;
  const sans = tls && typeof tls === 'object' ? tls.subjectAltNames : undefined;
  return Array.isArray(sans) ? sans.filter((s): s is string => typeof s === 'string' && s.startsWith('spiffe://')) : [];
}

export function buildPeerIdentityIndex(clusters: ResourceMap, endpoints: ResourceMap): PeerIdentityIndex {
  const index = new Map<string, string[]>();
  for (const [name, assignment] of endpoints) {
    const sans = clusterSans(clusters.get(name));
    if (sans.length === 0) continue;
    for (const locality of (assignment as DecodedLoadAssignment).endpoints ?? []) {
      for (const lb of locality.lb_endpoints ?? []) {
        const socket = lb.endpoint?.address?.socket_address;
        if (!socket?.address || socket.port_value === undefined) continue;
        const mesh = structToJson(lb.metadata?.filter_metadata?.mesh);
        // Only endpoints with an agent in front of them (a node) are reached through the tunnel.
        if (typeof mesh.node !== 'string') continue;
        const sa = typeof mesh.serviceAccount === 'string' ? mesh.serviceAccount : undefined;
        const allowed = sa ? sans.filter((id) => id.endsWith(`/sa/${sa}`)) : sans;
        if (allowed.length === 0) continue;
        const key = `${socket.address}:${socket.port_value}`;
        const known = index.get(key);
        if (!known) index.set(key, [...allowed]);
        else for (const id of allowed) if (!known.includes(id)) known.push(id);
      }
    }
  }
  return index;
}
