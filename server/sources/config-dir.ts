// Reads the Istio config directory (recursively) into a ConfigStore and keeps it current: file
// events trigger a debounced rescan, a slow periodic rescan catches anything the watcher missed.
import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { silentLogger, type Logger } from '../../lib/log';
import { ConfigStore, type FileStatus, type StoreChange } from '../config/config-store';
import { formatIssue, type ConfigIssue } from '../../lib/config/issue';
import { readConfigFile, type ParsedFile, type ParseOptions } from '../config/parse-file';
import type { ConfigResource } from '../config/resource';
import type { Service } from '../registry/service';
import type { RegistrySource, SourceStatus } from './source';

export interface ConfigDirectoryOptions {
  dir: string;
  logger?: Logger;
  parse?: ParseOptions;
  /** Services of other registries, so that the analysis knows their hosts. */
  externalServices?: readonly Service[];
  /** Quiet time after the last file event before rescanning (editors write in bursts). */
  debounceMs?: number;
  /** A continuous stream of events still triggers a rescan at least this often. */
  maxDelayMs?: number;
  /** Full rescan as a safety net for events the watcher missed. */
  pollIntervalMs?: number;
  /** How often a missing directory is looked for. */
  missingPollMs?: number;
}

export interface ConfigSnapshot {
  /** Increases whenever resources or issues change. */
  version: number;
  /** Valid resources by kind, each list ordered by namespace then name. */
  resources: ReadonlyMap<string, readonly ConfigResource[]>;
  issues: readonly ConfigIssue[];
  /** The ServiceEntry/WorkloadEntry registry derived from `resources`. */
  services: readonly Service[];
}

/** Names the loader reads: YAML files that are not hidden, editor temporaries or backups. */
export function isConfigFileName(name: string): boolean {
  if (name.startsWith('.') || name.startsWith('#') || name.endsWith('~')) return false;
  return name.endsWith('.yaml') || name.endsWith('.yml');
}

/** What changes when a file is replaced or rewritten; equal signatures mean "not touched". */
export type Signature = string;

export interface ConfigTree {
  /** Every config file with its signature. */
  files: Map<string, Signature>;
  /** Every directory walked (the root included), by path, with its `dev:ino` identity. */
  directories: Map<string, string>;
}

/**
 * Walks `dir`: config files with their signatures and the directories holding them, following
 * symlinks (ConfigMap-style `..data` swaps) but each directory only once. Hidden entries are
 * skipped, hidden directories included. `onDirectory` hears of each directory before it is read.
 */
export async function walkConfigTree(dir: string, onDirectory?: (path: string, identity: string) => void): Promise<ConfigTree> {
  const files = new Map<string, Signature>();
  const directories = new Map<string, string>();
  const visited = new Set<string>();
  const walk = async (current: string): Promise<void> => {
    const identity = await stat(current).then((s) => `${s.dev}:${s.ino}`, () => undefined);
    if (identity === undefined || visited.has(identity)) return;
    visited.add(identity);
    directories.set(current, identity);
    // Before reading it: whatever is written into the directory from now on raises an event.
    onDirectory?.(current, identity);
    // A subdirectory removed while we walk is simply not there any more.
    const entries = await readdir(current, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const path = join(current, entry.name);
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        const target = await stat(path).catch(() => undefined);
        isDir = target?.isDirectory() ?? false;
        isFile = target?.isFile() ?? false;
      }
      if (isDir) {
        await walk(path);
      } else if (isFile && isConfigFileName(entry.name)) {
        // Only regular files (a FIFO would block the read). Nanosecond times, size and inode:
        // an in-place rewrite or an atomic rename changes at least one of them.
        const info = await stat(path, { bigint: true }).catch(() => undefined);
        if (info?.isFile()) files.set(path, `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`);
      }
    }
  };
  await walk(dir);
  return { files, directories };
}

/** Every config file under `dir` with its signature (see walkConfigTree). */
export async function listConfigFiles(dir: string): Promise<Map<string, Signature>> {
  return (await walkConfigTree(dir)).files;
}

export class ConfigDirectory implements RegistrySource {
  readonly name = 'file';
  readonly dir: string;
  private readonly log: Logger;
  private readonly parseOptions: ParseOptions;
  private readonly store: ConfigStore;
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly pollIntervalMs: number;
  private readonly missingPollMs: number;

  private readonly listeners = new Set<() => void>();
  private known = new Map<string, Signature>();
  /** Paths the watcher named since the last scan: read again even if their stat looks unchanged. */
  private dirty = new Set<string>();
  /**
   * One plain watcher per directory, by path, with the identity it was opened on. Not Node's
   * `recursive` watch: on Linux (Node 20) it stops reporting a file after it has been atomically
   * replaced twice, which is exactly how editors and config tools save.
   */
  private readonly watchers = new Map<string, { identity: string; watcher: FSWatcher }>();
  private debounceTimer: NodeJS.Timeout | undefined;
  private burstStartedAt: number | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private lastScanAt = 0;
  private missing = false;
  private running = false;
  private scans = 0;
  private version = 0;
  private seenStoreVersion = 0;
  private notifiedVersion = 0;

  private chain: Promise<void> = Promise.resolve();
  private queued: { force: boolean; promise: Promise<void> } | undefined;
  private readonly firstLoad: Promise<void>;
  private resolveFirstLoad!: () => void;
  private loaded = false;

  constructor(options: ConfigDirectoryOptions) {
    this.dir = resolve(options.dir);
    this.log = (options.logger ?? silentLogger()).child({ component: 'config-dir', dir: this.dir });
    this.parseOptions = options.parse ?? {};
    this.store = new ConfigStore({ parse: this.parseOptions, externalServices: options.externalServices ?? [] });
    this.debounceMs = options.debounceMs ?? 75;
    this.maxDelayMs = options.maxDelayMs ?? 500;
    this.pollIntervalMs = options.pollIntervalMs ?? 10_000;
    this.missingPollMs = options.missingPollMs ?? 500;
    this.firstLoad = new Promise((resolveLoad) => (this.resolveFirstLoad = resolveLoad));
  }

  /** Loads the directory once and starts watching; resolves after that first load. */
  async start(): Promise<void> {
    if (this.running) return this.firstLoad;
    this.running = true;
    const tick = Math.min(this.missingPollMs, this.pollIntervalMs);
    this.pollTimer = setInterval(() => {
      if (this.missing || Date.now() - this.lastScanAt >= this.pollIntervalMs) this.requestScan(false).catch(() => undefined);
    }, tick);
    this.pollTimer.unref();
    await this.requestScan(false);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.pollTimer = undefined;
    this.debounceTimer = undefined;
    this.closeWatchers();
    await this.chain;
  }

  /** Resolves once the first complete load is done (also when the directory is missing). */
  ready(): Promise<void> {
    return this.firstLoad;
  }

  /** Re-reads every file regardless of what the watcher saw (SIGHUP, /debug/reload). */
  async reload(): Promise<void> {
    // A watcher that silently stopped is replaced as part of the reload.
    this.closeWatchers();
    await this.requestScan(true);
  }

  snapshot(): ConfigSnapshot {
    return {
      version: this.version,
      resources: this.store.resources(),
      issues: this.issues(),
      services: this.store.services(),
    };
  }

  services(): readonly Service[] {
    return this.store.services();
  }

  /** Per-file outcome: applied, or rejected with the last good version (or nothing) serving. */
  files(): FileStatus[] {
    return this.store.fileStatuses();
  }

  status(): SourceStatus {
    const files = this.store.fileStatuses();
    const rejected = files.filter((file) => file.state === 'rejected').length;
    const issues = this.issues();
    let detail: string | undefined;
    if (this.missing) detail = `config directory ${this.dir} does not exist`;
    else if (rejected > 0) detail = `${rejected} config file(s) rejected`;
    return {
      ready: this.loaded,
      ...(detail !== undefined ? { detail } : {}),
      stats: {
        files: files.length,
        rejectedFiles: rejected,
        resources: [...this.store.resources().values()].reduce((total, list) => total + list.length, 0),
        errors: issues.filter((issue) => issue.severity === 'error').length,
        warnings: issues.filter((issue) => issue.severity === 'warning').length,
        scans: this.scans,
      },
    };
  }

  /** Calls `listener` after each change of resources or issues; returns a function to unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** New services from other registries: re-analyses, since host checks depend on them. */
  setExternalServices(services: readonly Service[]): void {
    this.store.setExternalServices(services);
    this.publishIfChanged();
  }

  private issues(): readonly ConfigIssue[] {
    if (!this.missing) return this.store.issues();
    return [
      { severity: 'error', code: 'config-dir-missing', file: this.dir, path: '', message: 'config directory does not exist; serving what was last loaded and watching for it to appear' },
      ...this.store.issues(),
    ];
  }

  /** Serialises scans; requests made while one waits to start share it. */
  private requestScan(force: boolean): Promise<void> {
    if (this.queued) {
      this.queued.force ||= force;
      return this.queued.promise;
    }
    const queued = { force, promise: Promise.resolve() };
    queued.promise = this.chain.then(() => {
      this.queued = undefined;
      return this.scan(queued.force);
    });
    this.queued = queued;
    this.chain = queued.promise.catch((error: unknown) => {
      this.log.error({ err: error }, 'config directory scan failed');
    });
    return queued.promise;
  }

  private onWatchEvent(path: string | null): void {
    if (path) this.dirty.add(path);
    const now = Date.now();
    this.burstStartedAt ??= now;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    const delay = Math.max(0, Math.min(this.debounceMs, this.burstStartedAt + this.maxDelayMs - now));
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      this.burstStartedAt = undefined;
      if (this.running) this.requestScan(false).catch(() => undefined);
    }, delay);
  }

  /** Watches `path` unless a watcher on that same directory (identity) exists already. */
  private ensureWatcher(path: string, identity: string): void {
    const existing = this.watchers.get(path);
    if (existing?.identity === identity) return;
    existing?.watcher.close();
    this.watchers.delete(path);
    try {
      const watcher = watch(path, (_event, name) => this.onWatchEvent(name ? join(path, name.toString()) : null));
      watcher.on('error', (error) => {
        // Typically the directory went away; the rescan this triggers notices and adapts.
        this.log.debug({ err: error, directory: path }, 'config directory watcher ended');
        watcher.close();
        if (this.watchers.get(path)?.watcher === watcher) this.watchers.delete(path);
        this.onWatchEvent(null);
      });
      this.watchers.set(path, { identity, watcher });
    } catch (error) {
      this.log.warn({ err: error, directory: path }, 'cannot watch a config directory; relying on periodic rescans for it');
    }
  }

  /** Closes the watchers of directories the last walk did not find. */
  private dropStaleWatchers(directories: ReadonlyMap<string, string>): void {
    for (const [path, entry] of this.watchers) {
      if (directories.get(path) !== entry.identity) {
        entry.watcher.close();
        this.watchers.delete(path);
      }
    }
  }

  private closeWatchers(): void {
    for (const { watcher } of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }

  private async scan(force: boolean): Promise<void> {
    this.scans++;
    this.lastScanAt = Date.now();
    const dirty = this.dirty;
    this.dirty = new Set();
    const root = await stat(this.dir).catch(() => undefined);
    if (!root?.isDirectory()) {
      this.markMissing();
      return;
    }
    if (this.missing) this.log.info('config directory appeared');
    const wasMissing = this.missing;
    this.missing = false;
    const tree = await walkConfigTree(this.dir, this.running ? (path, identity) => this.ensureWatcher(path, identity) : undefined);
    // Deleted while we walked: an empty listing must not read as "every file was removed".
    if (!(await stat(this.dir).catch(() => undefined))?.isDirectory()) {
      this.missing = wasMissing;
      this.markMissing();
      return;
    }
    this.dropStaleWatchers(tree.directories);
    const listing = tree.files;
    const changes: StoreChange[] = [];
    const next = new Map<string, Signature>();
    for (const [file, signature] of listing) {
      const unchanged = !force && !dirty.has(file) && this.known.get(file) === signature;
      if (unchanged) {
        next.set(file, signature);
        continue;
      }
      const parsed = await this.read(file);
      if (parsed === undefined) continue;
      next.set(file, signature);
      changes.push({ file, parsed });
    }
    for (const file of this.known.keys()) {
      if (!next.has(file)) changes.push({ file, parsed: null });
    }
    this.known = next;
    if (changes.length > 0) {
      this.store.update(changes);
      this.logOutcome(changes);
    }
    if (wasMissing) this.version++;
    this.finishLoad();
    this.publishIfChanged();
  }

  /** The directory is gone: keep serving what was last loaded, say so, and poll for it. */
  private markMissing(): void {
    if (!this.missing) {
      this.missing = true;
      this.version++;
      this.closeWatchers();
      this.log.warn('config directory does not exist; keeping the last loaded config and polling for it');
    }
    this.finishLoad();
    this.notify();
  }

  private finishLoad(): void {
    if (this.loaded) return;
    this.loaded = true;
    this.resolveFirstLoad();
  }

  /** The file parsed, a read failure as an issue, or undefined if it vanished meanwhile. */
  private async read(file: string): Promise<ParsedFile | undefined> {
    try {
      return await readConfigFile(file, this.parseOptions);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      return { file, resources: [], issues: [{ severity: 'error', code: 'read-error', file, path: '', message: `cannot read file: ${(error as Error).message}` }] };
    }
  }

  private logOutcome(changes: readonly StoreChange[]): void {
    for (const { file, parsed } of changes) {
      if (parsed === null) {
        this.log.info({ file }, 'config file removed');
        continue;
      }
      const status = this.store.fileStatus(file);
      if (!status) continue;
      if (status.state === 'applied') {
        this.log.info({ file, resources: status.resources }, 'config file applied');
        continue;
      }
      const errors = this.store.issues().filter((issue) => issue.file === file && issue.severity === 'error');
      this.log.warn(
        { file, serving: status.serving, errors: errors.slice(0, 20).map(formatIssue) },
        status.serving === 'previous' ? 'config file rejected; its last valid version keeps serving' : 'config file rejected; nothing from it is served',
      );
    }
  }

  private publishIfChanged(): void {
    if (this.store.version !== this.seenStoreVersion) {
      this.seenStoreVersion = this.store.version;
      this.version++;
    }
    this.notify();
  }

  private notify(): void {
    if (this.version === this.notifiedVersion) return;
    this.notifiedVersion = this.version;
    for (const listener of this.listeners) {
      try {
        listener();
      } catch (error) {
        this.log.error({ err: error }, 'config change listener failed');
      }
    }
  }
}
