// Who is calling mesh-server's TLS port: the node a verified client certificate names. Shared by the
// certificate service and the ADS authorizer so both read a certificate the same way.
import type { PeerCertificate } from 'node:tls';
import { spiffeIdOf } from '../../lib/ca/peer-identity';
import { parseNodeId } from '../../lib/ca/spiffe';

export type CallerNode =
  | { kind: 'node'; node: string; spiffeId: string }
  /** A verified certificate that is not a node's (a workload's): never allowed to act as a node. */
  | { kind: 'other'; spiffeId: string; reason: string }
  /** No certificate that chains to the trust bundle (none, expired, foreign or tampered with). */
  | { kind: 'none' };

/** grpc-js reports a peer certificate only when TLS verified it against the trust bundle. */
export function callerNode(call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate } | null }, trustDomain: string): CallerNode {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  if (!cert) return { kind: 'none' };
  const id = spiffeIdOf(cert);
  if (!id.ok) return { kind: 'other', spiffeId: '(none)', reason: id.reason };
  const node = parseNodeId(id.id);
  if (!node.ok) return { kind: 'other', spiffeId: id.id, reason: `${id.id} is not a node identity (spiffe://${trustDomain}/node/NODE)` };
  if (node.value.trustDomain !== trustDomain) return { kind: 'other', spiffeId: id.id, reason: `${id.id} is not in trust domain "${trustDomain}"` };
  return { kind: 'node', node: node.value.node, spiffeId: id.id };
}
