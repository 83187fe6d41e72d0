// The SPIFFE ID a verified TLS peer proves: the single URI SAN of its certificate. Used by the CA
// service, the ADS server and both ends of the agent tunnel, after the chain was verified.
import type { PeerCertificate } from 'node:tls';

/**
 * The one `URI:` entry of Node's `subjectaltname` string, or a reason. Node escapes commas and
 * quotes inside names, so a name cannot smuggle a second entry past the split.
 */
export function spiffeIdOf(cert: Pick<PeerCertificate, 'subjectaltname'> | undefined): { ok: true; id: string } | { ok: false; reason: string } {
  const san = cert?.subjectaltname;
  if (!san) return { ok: false, reason: 'the peer certificate has no subjectAltName' };
  let id: string | undefined;
  for (const entry of san.split(', ')) {
    if (!entry.startsWith('URI:')) continue;
    if (id !== undefined) return { ok: false, reason: 'the peer certificate has more than one URI SAN' };
    id = entry.slice(4);
  }
  if (id === undefined || !id.startsWith('spiffe://')) return { ok: false, reason: 'the peer certificate has no SPIFFE URI SAN' };
  return { ok: true, id };
}
