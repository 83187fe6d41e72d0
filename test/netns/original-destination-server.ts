// A TCP server for end-to-end tests, run inside a test namespace: it answers every connection with
// one JSON line (ConnectionReport) naming itself and the connection's original destination.
import net from 'node:net';
import { parseArgs } from 'node:util';
import { originalDestination } from '../../agent/redirect/original-destination';

export interface ConnectionReport {
  /** The --name the server was started with, so a test sees which listener answered. */
  readonly server: string;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteAddress: string;
  /** Where the client was connecting before NAT redirected it; null when it was not redirected. */
  readonly original: { readonly address: string; readonly port: number } | null;
  /** The error code getsockopt gave when there is no original destination (ENOENT: not NATed). */
  readonly originalError: string | null;
}

/** Printed on stdout once the server accepts connections, followed by the port. */
export const LISTENING_MARKER = 'LISTENING';

function report(name: string, socket: net.Socket): ConnectionReport {
  let original: ConnectionReport['original'] = null;
  let originalError: string | null = null;
  try {
    original = originalDestination(socket);
  } catch (error) {
    originalError = (error as NodeJS.ErrnoException).code ?? String(error);
  }
  return {
    server: name,
    localAddress: socket.localAddress ?? '',
    localPort: socket.localPort ?? 0,
    remoteAddress: socket.remoteAddress ?? '',
    original,
    originalError,
  };
}

function main(): void {
  const { values } = parseArgs({
    options: {
      name: { type: 'string', default: 'server' },
      host: { type: 'string', default: '::' },
      port: { type: 'string' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    process.stderr.write('usage: original-destination-server --port N [--host ADDR] [--name NAME]\n');
    process.exit(2);
  }
  const name = values.name;
  const server = net.createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.end(`${JSON.stringify(report(name, socket))}\n`);
  });
  server.on('error', (error) => {
    process.stderr.write(`original-destination-server ${name}: ${error.message}\n`);
    process.exit(1);
  });
  // `::` without ipv6Only accepts IPv4 too (as IPv4-mapped), which the addon must handle.
  server.listen({ host: values.host, port }, () => {
    process.stdout.write(`${LISTENING_MARKER} ${port}\n`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

// Only as a program: tests import this module for its types and constants.
if (require.main === module) main();
