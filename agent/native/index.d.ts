// Types of the SO_ORIGINAL_DST addon (see src/original_dst.c).
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
