// A TCP client for end-to-end tests, run inside a test namespace (possibly as another uid): it
// connects, prints everything the server sends, and exits 0, or prints the error and exits 1.
import net from 'node:net';

function main(): void {
  const [host, portText, timeoutText] = process.argv.slice(2);
  const port = Number(portText);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) {
    process.stderr.write('usage: tcp-client HOST PORT [TIMEOUT_MS]\n');
    process.exit(2);
  }
  const timeoutMs = Number(timeoutText ?? 5_000);
  const chunks: Buffer[] = [];
  const socket = net.connect({ host, port });
  socket.setTimeout(timeoutMs, () => {
    process.stderr.write(`tcp-client: no answer from ${host}:${port} within ${timeoutMs} ms\n`);
    process.exit(1);
  });
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('end', () => {
    process.stdout.write(Buffer.concat(chunks));
    process.exit(0);
  });
  socket.on('error', (error: NodeJS.ErrnoException) => {
    process.stderr.write(`tcp-client: ${host}:${port}: ${error.code ?? error.message}\n`);
    process.exit(1);
  });
}

// Run only as a program, never on import.
if (require.main === module) main();
