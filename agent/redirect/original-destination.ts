// The destination a redirected connection was headed for before NAT sent it to the agent, read
// from an accepted net.Socket through the @mesh/original-dst addon (getsockopt SO_ORIGINAL_DST).
import type net from 'node:net';
import { originalDestination as originalDestinationOfFd } from '@mesh/original-dst';

export interface OriginalDestination {
  /** Plain dotted IPv4 for IPv4 connections (also those accepted on a dual-stack listener). */
  readonly address: string;
  readonly port: number;
}

/** The libuv handle behind a net.Socket; `fd` is -1 on platforms or states without one. */
interface SocketWithHandle {
  readonly _handle?: { readonly fd?: unknown } | null;
}

const MAPPED_IPV4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/**
 * Throws the addon's error (with `code`, e.g. ENOENT when the connection was not redirected), or
 * an Error with code ERR_SOCKET_NO_FD when the socket has no file descriptor (closed, or not a
 * TCP socket).
 */
export function originalDestination(socket: net.Socket): OriginalDestination {
  const fd = (socket as unknown as SocketWithHandle)._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    const error = new Error('originalDestination: the socket has no file descriptor (closed or not TCP)');
    Object.assign(error, { code: 'ERR_SOCKET_NO_FD' });
    throw error;
  }
  const found = originalDestinationOfFd(fd);
  // The addon asks the IPv4 table for IPv4-mapped sockets and so answers in dotted form; if an
  // IPv6 answer ever carries a mapped address, unmap it too, so callers compare one spelling only.
  const mapped = found.family === 6 ? MAPPED_IPV4.exec(found.address) : null;
  const address = mapped?.[1] ?? found.address;
  // Once the namespace tracks connections (our own rules turn that on), a connection that was NOT
  // redirected still has a conntrack entry, and SO_ORIGINAL_DST answers with its unchanged
  // destination: the listener itself. Proxying that would connect the agent to its own port, over
  // and over. It is what the kernel says for an untracked connection: not redirected.
  if (found.port === socket.localPort && address === unmapped(socket.localAddress)) {
    const error = new Error(`originalDestination: the connection was not redirected (its destination ${address}:${found.port} is the listener itself)`);
    Object.assign(error, { code: 'ENOENT' });
    throw error;
  }
  return { address, port: found.port };
}

function unmapped(address: string | undefined): string | undefined {
  return address === undefined ? undefined : (MAPPED_IPV4.exec(address)?.[1] ?? address);
}
