// Runs the firewall tools (iptables*, nft, cat) for the redirect backends, optionally inside a
// network namespace, so tests and `meshctl redirect --netns` never touch the root namespace.
import { spawn } from 'node:child_process';

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

export interface RunOptions {
  /** Written to the command's stdin (iptables-restore and nft -f read their rules from there). */
  readonly input?: string;
  /** Resolve with the result instead of throwing when the command exits non-zero. */
  readonly allowFailure?: boolean;
}

export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    /** The full command line as run, including any `ip netns exec NS` prefix. */
    readonly command: readonly string[],
    /** Exit code, or null when the command could not start or was killed. */
    readonly exitCode: number | null,
    readonly stderr: string,
    reason: string,
  ) {
    const detail = stderr.trim() ? `: ${stderr.trim()}` : '';
    super(`\`${command.join(' ')}\` ${reason}${detail}`);
  }
}

export interface CommandRunner {
  /** The namespace commands run in, or undefined for the caller's own. */
  readonly netns: string | undefined;
  run(command: readonly string[], options?: RunOptions): Promise<CommandResult>;
  /** Whether `program` can be found on PATH (where the commands would run). */
  has(program: string): Promise<boolean>;
}

export interface CommandRunnerOptions {
  readonly netns?: string;
  /** Per command; a firewall tool waiting on the xtables lock must not hang the agent. */
  readonly timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/**
 * PATH for the firewall tools. Under npm/npx, PATH starts with node_modules/.bin, which holds an
 * unrelated `nft` (@vercel/nft, a file tracer), so those folders are dropped; the sbin folders are
 * added because a non-login root shell may lack them.
 */
export function systemToolPath(path: string | undefined = process.env.PATH): string {
  const kept = (path ?? '').split(':').filter((dir) => dir !== '' && !dir.split('/').includes('node_modules'));
  return [...new Set([...kept, ...SYSTEM_DIRS])].join(':');
}
/** Bounds captured output: a listing of a huge foreign ruleset must not exhaust memory. */
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

export function createCommandRunner(options: CommandRunnerOptions = {}): CommandRunner {
  const netns = options.netns;
  if (netns !== undefined && !/^[A-Za-z0-9_.-]+$/.test(netns)) {
    throw new Error(`network namespace name "${netns}" must contain only letters, digits, "_", "." and "-"`);
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const toolPath = systemToolPath();
  const wrap = (command: readonly string[]): string[] =>
    netns === undefined ? [...command] : ['ip', 'netns', 'exec', netns, ...command];

  const run = (command: readonly string[], runOptions: RunOptions = {}): Promise<CommandResult> => {
    const argv = wrap(command);
    return new Promise((resolve, reject) => {
      const [program, ...args] = argv as [string, ...string[]];
      const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PATH: toolPath } });
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let outputBytes = 0;
      let failure: string | undefined;
      const collect = (into: Buffer[]) => (chunk: Buffer) => {
        outputBytes += chunk.length;
        if (outputBytes > MAX_OUTPUT_BYTES) {
          failure ??= `produced more than ${MAX_OUTPUT_BYTES} bytes of output`;
          child.kill('SIGKILL');
          return;
        }
        into.push(chunk);
      };
      child.stdout.on('data', collect(stdout));
      child.stderr.on('data', collect(stderr));
      const timer = setTimeout(() => {
        failure ??= `timed out after ${timeoutMs} ms`;
        child.kill('SIGKILL');
      }, timeoutMs);
      child.on('error', (error) => {
        failure ??= `could not be started (${error.message})`;
      });
      // A tool that exits before reading all of its input makes the pipe fail with EPIPE; its exit
      // code and stderr then explain the problem better than the write error does.
      child.stdin.on('error', () => undefined);
      child.stdin.end(runOptions.input ?? '');
      child.on('close', (code) => {
        clearTimeout(timer);
        const result: CommandResult = {
          stdout: Buffer.concat(stdout).toString('utf8'),
          stderr: Buffer.concat(stderr).toString('utf8'),
          exitCode: code ?? -1,
        };
        if (failure !== undefined) {
          reject(new CommandError(argv, code, result.stderr, failure));
        } else if (code !== 0 && !runOptions.allowFailure) {
          reject(new CommandError(argv, code, result.stderr, `exited with code ${String(code)}`));
        } else {
          resolve(result);
        }
      });
    });
  };

  const has = async (program: string): Promise<boolean> => {
    // `command -v` is a shell builtin; running it through sh inside the namespace checks the PATH
    // the real commands will see.
    const result = await run(['sh', '-c', 'command -v "$1"', 'sh', program], { allowFailure: true });
    return result.exitCode === 0 && result.stdout.trim() !== '';
  };

  return { netns, run, has };
}
