// The uid of the process that opened a redirected outbound connection: the client's own socket is
// looked up by its 4-tuple (our peer address as its source, the original destination as its target).
import type net from 'node:net';
import { socketUid } from '@mesh/original-dst';
import type { OriginalDestination } from '../redirect/original-destination';

const MAPPED_IPV4_PREFIX = '::ffff:';

/**
 * Undefined when the client's socket is already gone (it closed before the lookup) or the accepted
 * socket has no peer address; throws the addon's error (with `code`) when the netlink query fails.
 */
export function connectionUid(socket: net.Socket, destination: OriginalDestination): number | undefined {
  let source = socket.remoteAddress;
  const sourcePort = socket.remotePort;
  if (source === undefined || sourcePort === undefined) return undefined;
  // A dual-stack listener shows IPv4 clients as ::ffff:a.b.c.d; their socket lives in the IPv4 table.
  if (source.startsWith(MAPPED_IPV4_PREFIX) && source.includes('.')) source = source.slice(MAPPED_IPV4_PREFIX.length);
  const family = source.includes(':') ? 6 : 4;
  return socketUid(family, source, sourcePort, destination.address, destination.port);
}
