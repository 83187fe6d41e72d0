// Persists the agent's last accepted xDS resources under <stateDir>/xds/ so that after a restart it
// serves them while the server is unreachable (DESIGN.md decision 7, static stability).
//
// One file holds every type, so a reload sees one consistent set. Resources are kept as the Any bytes
// the server sent (base64), so a reload decodes exactly what was accepted. A checksum over the payload
// catches damage that still parses as JSON; a damaged file is moved aside and ignored, never fatal.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import * as path from 'node:path';
import { z } from 'zod';
import { silentLogger, type Logger } from '../../lib/log';
import { unpackAny, type PackedAny } from '../../lib/xds/protos';

export const SNAPSHOT_FILE = 'snapshot.json';
const FORMAT = 1;
const TEMP_SUFFIX = '.tmp';

export interface TypeSnapshot {
  version: string;
  /** Resource name to the Any as received. */
  resources: ReadonlyMap<string, PackedAny>;
}

/** Type URL to what was accepted of that type. */
export type XdsSnapshot = ReadonlyMap<string, TypeSnapshot>;

const fileSchema = z.strictObject({
  format: z.literal(FORMAT),
  savedAt: z.string(),
  /** sha256 (hex) of JSON.stringify(types). */
  checksum: z.string().regex(/^[0-9a-f]{64}$/),
  types: z.record(z.string().min(1), z.strictObject({
    version: z.string(),
    resources: z.array(z.strictObject({ name: z.string().min(1), any: z.base64() })),
  })),
});
type SnapshotFile = z.infer<typeof fileSchema>;

function checksum(types: SnapshotFile['types']): string {
  return createHash('sha256').update(JSON.stringify(types)).digest('hex');
}

export interface SnapshotStoreOptions {
  stateDir: string;
  logger?: Logger;
}

export class SnapshotStore {
  readonly dir: string;
  readonly file: string;
  private readonly log: Logger;
  /** Saves run one after another, so the last one called is the one left on disk. */
  private queue: Promise<void> = Promise.resolve();

  constructor(options: SnapshotStoreOptions) {
    this.dir = path.join(options.stateDir, 'xds');
    this.file = path.join(this.dir, SNAPSHOT_FILE);
    this.log = options.logger ?? silentLogger();
  }

  /** Writes the snapshot atomically: a reader (or a crash) sees the previous file or this one, whole. */
  save(snapshot: XdsSnapshot): Promise<void> {
    const types: SnapshotFile['types'] = {};
    for (const [typeUrl, { version, resources }] of snapshot) {
      types[typeUrl] = {
        version,
        resources: [...resources].map(([name, any]) => {
          if (any.type_url !== typeUrl) throw new Error(`resource ${name} has type ${any.type_url}, stored under ${typeUrl}`);
          return { name, any: Buffer.from(any.value).toString('base64') };
        }),
      };
    }
    const content: SnapshotFile = { format: FORMAT, savedAt: new Date().toISOString(), checksum: checksum(types), types };
    const text = JSON.stringify(content);
    const run = this.queue.then(() => this.write(text));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** What was last saved, or undefined when there is nothing usable (a damaged file is set aside). */
  async load(): Promise<XdsSnapshot | undefined> {
    await this.queue;
    await this.removeStaleTemps();
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      this.log.error({ err: error, file: this.file }, 'cannot read the persisted xDS snapshot; starting without it');
      return undefined;
    }
    const problem = this.decode(text);
    if (typeof problem !== 'string') return problem;
    const aside = `${this.file}.corrupt`;
    try {
      await rename(this.file, aside);
    } catch (error) {
      this.log.error({ err: error, file: this.file }, 'cannot move the damaged xDS snapshot aside');
    }
    this.log.error({ file: this.file, movedTo: aside, problem }, 'persisted xDS snapshot is damaged; moved aside and ignored');
    return undefined;
  }

  /** Waits for saves in flight. */
  async flush(): Promise<void> {
    await this.queue;
  }

  private decode(text: string): XdsSnapshot | string {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      return `not JSON: ${(error as Error).message}`;
    }
    const parsed = fileSchema.safeParse(json);
    if (!parsed.success) return `unexpected content: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`;
    if (checksum(parsed.data.types) !== parsed.data.checksum) return 'checksum mismatch';
    const snapshot = new Map<string, TypeSnapshot>();
    for (const [typeUrl, stored] of Object.entries(parsed.data.types)) {
      const resources = new Map<string, PackedAny>();
      for (const { name, any } of stored.resources) {
        const packed = { type_url: typeUrl, value: Buffer.from(any, 'base64') };
        // Decoded once here so that a snapshot the agent cannot use is refused as a whole, up front.
        try {
          unpackAny(packed);
        } catch (error) {
          return `${typeUrl} resource ${name} does not decode: ${(error as Error).message}`;
        }
        resources.set(name, packed);
      }
      snapshot.set(typeUrl, { version: stored.version, resources });
    }
    return snapshot;
  }

  private async write(text: string): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // mkdir's mode is masked by the umask and ignored for an existing directory.
    await chmod(this.dir, 0o700);
    const temp = path.join(this.dir, `.${SNAPSHOT_FILE}.${process.pid}.${randomBytes(4).toString('hex')}${TEMP_SUFFIX}`);
    try {
      const handle = await open(temp, 'wx', 0o600);
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.file);
    } catch (error) {
      await unlink(temp).catch(() => undefined);
      throw error;
    }
    // The rename is durable only once the directory entry is on disk.
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  /** Temp files left by a crash before their rename; the snapshot they did not replace is still whole. */
  private async removeStaleTemps(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (name.startsWith(`.${SNAPSHOT_FILE}.`) && name.endsWith(TEMP_SUFFIX)) await unlink(path.join(this.dir, name)).catch(() => undefined);
    }
  }
}
