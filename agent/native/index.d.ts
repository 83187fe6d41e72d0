// Types of mesh-agent's native addon: SO_ORIGINAL_DST (src/original_dst.c) and a socket's owner uid (src/socket_uid.c).
// The error thrown on failure carries Node's system-error fields so callers can branch on `code`.

export interface OriginalDestination {
  /** Dotted IPv4 (family 4, also for IPv4-mapped sockets on a dual-stack listener) or IPv6 text. */
  address: string;
  port: number;
  family: 4 | 6;
}

export interface OriginalDestinationError extends Error {
  /** errno name: ENOENT when the connection was not redirected (no NAT in its conntrack entry). */
  code: string;
  /** Negative errno, as in Node's own system errors. */
  errno: number;
  syscall: 'getsockname' | 'getsockopt' | 'inet_ntop';
}

/** Destination of the connection on `fd` before NAT redirected it; throws OriginalDestinationError. */
export function originalDestination(fd: number): OriginalDestination;

export interface SocketUidError extends Error {
  /** errno name of the netlink failure, e.g. EPROTONOSUPPORT on a kernel without inet_diag. */
  code: string;
  errno: number;
  syscall: 'socket' | 'sendto' | 'recv' | 'SOCK_DIAG_BY_FAMILY';
}

/**
 * Owner uid of the local TCP socket whose own view is `localAddress:localPort` to
 * `remoteAddress:remotePort`, by an exact inet_diag lookup; undefined when no such socket exists.
 * Addresses are text of the given family (4 or 6). Throws TypeError on bad arguments and
 * SocketUidError when the netlink query itself fails.
 */
export function socketUid(family: 4 | 6, localAddress: string, localPort: number, remoteAddress: string, remotePort: number): number | undefined;
