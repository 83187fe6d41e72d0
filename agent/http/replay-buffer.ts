// A request body kept while it streams to the first attempt, so that a retry or a shadow copy can
// send it again; past a byte limit it is dropped and the request can no longer be replayed (Envoy's
// retry buffer: a request whose body outgrew the buffer is sent once and not retried).
import { PassThrough, Readable } from 'node:stream';

/**
 * Envoy's bound on a body buffered for retries and shadowing when the route sets no
 * per_request_buffer_limit_bytes: the listener's per_connection_buffer_limit_bytes, 1 MiB by
 * default (Istio's listeners leave it unset).
 */
export const DEFAULT_REPLAY_LIMIT_BYTES = 1024 * 1024;

export class ReplayBuffer {
  private chunks: Buffer[] | undefined = [];
  private size = 0;
  private ended = false;
  private failed = false;
  private readonly waiters: Array<(complete: boolean) => void> = [];
  private readonly tee: PassThrough | undefined;
  /** The first attempt's view of the body: the live stream, with backpressure. */
  readonly first: Readable;

  /** `empty`: the request's headers say it has no body, so the source is sent as is and nothing is kept. */
  constructor(
    private readonly source: Readable,
    private readonly limitBytes: number,
    empty = false,
  ) {
    if (empty) {
      this.first = source;
      this.ended = true;
      return;
    }
    const first = new PassThrough();
    this.tee = first;
    this.first = first;
    source.on('data', (chunk: Buffer) => {
      if (!this.chunks) return;
      this.size += chunk.length;
      if (this.size > this.limitBytes) {
        this.chunks = undefined;
        this.settle(false);
      } else this.chunks.push(chunk);
    });
    source.once('end', () => {
      this.ended = true;
      this.settle(this.chunks !== undefined);
    });
    source.once('error', () => {
      this.failed = true;
      this.settle(false);
    });
    // The downstream closing before its body ended also ends any wait for it.
    source.once('close', () => {
      if (!this.ended) {
        this.failed = true;
        this.settle(false);
      }
    });
    source.pipe(first);
  }

  /** Still replayable: under the limit so far and the downstream has not failed. */
  get replayable(): boolean {
    return this.chunks !== undefined && !this.failed;
  }

  /**
   * Resolves once the body is complete (true) or can no longer be replayed (false). `firstAbandoned`:
   * the first attempt failed and reads no more, so the body is read on without it.
   */
  complete(firstAbandoned = false): Promise<boolean> {
    if (this.ended || !this.replayable) return Promise.resolve(this.replayable && this.ended);
    if (firstAbandoned && this.tee) {
      this.source.unpipe(this.tee);
      this.source.resume();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** A fresh stream of the whole body; only after `complete()` resolved true. */
  replay(): Readable {
    const chunks = this.chunks ?? [];
    return Readable.from(chunks.length === 1 ? [chunks[0]!] : chunks, { objectMode: false });
  }

  private settle(complete: boolean): void {
    for (const waiter of this.waiters.splice(0)) waiter(complete);
  }
}
