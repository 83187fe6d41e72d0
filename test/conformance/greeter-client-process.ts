// Drives test/conformance/xds-greeter-client.ts as a child process: one process per xDS bootstrap,
// commands over stdin, one JSON answer per line on stdout.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';

export interface CallTally {
  backends: Record<string, number>;
  errors: Record<string, number>;
  ms: number;
  /** Each call's duration by outcome (backend name or status name), when the command asked for them. */
  latenciesMs?: Record<string, number[]>;
}

export interface CallCommand {
  target: string;
  count: number;
  concurrency?: number;
  metadata?: Record<string, string>;
  deadlineMs?: number;
  /** Also report each call's duration (CallTally.latenciesMs). */
  latencies?: boolean;
  /** Start the concurrent workers this many ms apart instead of in one event-loop turn. */
  staggerMs?: number;
}

export class GreeterClientProcess {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiting: Array<(line: string) => void> = [];
  private stderr = '';

  /** `xdsServer` is host:port of mesh-server's plaintext xDS port; `nodeId` names the client. */
  constructor(xdsServer: string, nodeId: string) {
    const bootstrap = {
      xds_servers: [{ server_uri: xdsServer, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: nodeId, cluster: 'proxyless', metadata: { GENERATOR: 'grpc' }, locality: { zone: 'test' } },
    };
    this.child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'xds-greeter-client.ts')], {
      env: { ...process.env, GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(bootstrap), GRPC_XDS_BOOTSTRAP: '' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stderr.on('data', (chunk: Buffer) => { this.stderr = (this.stderr + chunk.toString()).slice(-4000); });
    readline.createInterface({ input: this.child.stdout }).on('line', (line) => this.waiting.shift()?.(line));
  }

  run(command: CallCommand): Promise<CallTally> {
    return new Promise((resolve, reject) => {
      const onExit = () => reject(new Error(`greeter client exited: ${this.stderr}`));
      this.child.once('exit', onExit);
      this.waiting.push((line) => {
        this.child.off('exit', onExit);
        const answer = JSON.parse(line) as CallTally & { error?: string };
        if (answer.error) reject(new Error(answer.error));
        else resolve(answer);
      });
      this.child.stdin.write(`${JSON.stringify(command)}\n`);
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}
