// Holds, per config file, the last version that was valid, and decides which version of each file
// serves: a file with any error (its own or cross-resource) is refused whole, the rest apply.
import { analyzeResources } from './analyze';
import type { ConfigIssue } from '../../lib/config/issue';
import { hasErrors, parseConfigText, type ParsedFile, type ParseOptions } from './parse-file';
import { resourceKey, type ConfigResource } from './resource';
import { servicesFromConfig } from '../registry/file-services';
import type { Service } from '../registry/service';

/** One file's new content (already parsed), or its removal (`parsed: null`). */
export interface StoreChange {
  file: string;
  parsed: ParsedFile | null;
}

export interface FileStatus {
  file: string;
  /** `applied`: the file as on disk serves. `rejected`: it has errors and does not. */
  state: 'applied' | 'rejected';
  /** Which version's resources serve: the one on disk, the last good one, or none at all. */
  serving: 'current' | 'previous' | 'none';
  /** Number of resources served from this file. */
  resources: number;
}

export interface ConfigStoreOptions {
  parse?: ParseOptions;
  /** Services of other registries (Consul), so that hosts they define count as known. */
  externalServices?: readonly Service[];
}

interface FileEntry {
  current: ParsedFile;
  /** Resources of the last version that was accepted; undefined if none ever was. */
  good: readonly ConfigResource[] | undefined;
  /** The cross-resource errors that kept `current` out at the last evaluation. */
  rejection: ConfigIssue[];
}

const EMPTY: readonly ConfigResource[] = Object.freeze([]);

export class ConfigStore {
  private readonly files = new Map<string, FileEntry>();
  private readonly parseOptions: ParseOptions;
  private externalServices: readonly Service[];
  private changeCounter = 0;
  private servedResources: ReadonlyMap<string, readonly ConfigResource[]> = new Map();
  private servedServices: readonly Service[] = [];
  private currentIssues: readonly ConfigIssue[] = [];
  private issueSignature = '';
  /** Served array per file at the last evaluation: a change of identity means new resources. */
  private served = new Map<string, readonly ConfigResource[]>();

  constructor(options: ConfigStoreOptions = {}) {
    this.parseOptions = options.parse ?? {};
    this.externalServices = options.externalServices ?? [];
  }

  /** Increases whenever the served resources or the issues change. */
  get version(): number {
    return this.changeCounter;
  }

  /** Parses `content` as `file` and applies it. */
  apply(file: string, content: string | Uint8Array): FileStatus {
    this.update([{ file, parsed: parseConfigText(file, content, this.parseOptions) }]);
    return this.fileStatus(file)!;
  }

  remove(file: string): void {
    this.update([{ file, parsed: null }]);
  }

  /** Applies many files at once (a directory scan) with one analysis instead of one per file. */
  update(changes: readonly StoreChange[]): void {
    for (const { file, parsed } of changes) {
      if (parsed === null) {
        this.files.delete(file);
        continue;
      }
      const entry = this.files.get(file);
      if (entry) {
        // Same resources as the version serving (a touch, a comment edit): keep its identity so
        // that nothing counts as changed downstream.
        const same = entry.good !== undefined && !hasErrors(parsed.issues) && JSON.stringify(parsed.resources) === JSON.stringify(entry.good);
        entry.current = same ? { ...parsed, resources: entry.good! } : parsed;
        entry.rejection = [];
      } else {
        this.files.set(file, { current: parsed, good: undefined, rejection: [] });
      }
    }
    this.evaluate();
  }

  /** Replaces the services of other registries and re-runs the analysis against them. */
  setExternalServices(services: readonly Service[]): void {
    this.externalServices = services;
    this.evaluate();
  }

  /** Valid resources by kind, each list ordered by namespace then name. */
  resources(): ReadonlyMap<string, readonly ConfigResource[]> {
    return this.servedResources;
  }

  /** Every current problem: parse errors, cross-resource errors and warnings, by file and document. */
  issues(): readonly ConfigIssue[] {
    return this.currentIssues;
  }

  /** The file-based registry (ServiceEntry/WorkloadEntry) computed from the served resources. */
  services(): readonly Service[] {
    return this.servedServices;
  }

  fileStatus(file: string): FileStatus | undefined {
    const entry = this.files.get(file);
    if (!entry) return undefined;
    const served = this.served.get(file) ?? EMPTY;
    const applied = entry.good === entry.current.resources;
    return {
      file,
      state: applied ? 'applied' : 'rejected',
      serving: applied ? 'current' : entry.good ? 'previous' : 'none',
      resources: served.length,
    };
  }

  fileStatuses(): FileStatus[] {
    return [...this.files.keys()].sort().map((file) => this.fileStatus(file)!);
  }

  /**
   * Decides what serves. Every file without parse errors whose content is new is tried; while
   * the analysis blames any of them, those fall back to their last good version and the rest
   * are tried again. Each round removes at least one file, so this ends.
   */
  private evaluate(): void {
    const trial = new Map<string, readonly ConfigResource[]>();
    const pending = new Set<string>();
    for (const [file, entry] of this.files) {
      if (hasErrors(entry.current.issues)) trial.set(file, entry.good ?? EMPTY);
      else if (entry.good === entry.current.resources) trial.set(file, entry.good);
      else {
        trial.set(file, entry.current.resources);
        pending.add(file);
      }
    }

    let analysis: ConfigIssue[];
    let ordered: ConfigResource[];
    let services: Service[];
    for (;;) {
      ordered = this.order(trial);
      services = servicesFromConfig(ordered);
      analysis = analyzeResources(ordered, [...this.externalServices, ...services]);
      const blamed = new Set<string>();
      for (const issue of analysis) {
        if (issue.severity === 'error' && issue.file !== undefined && pending.has(issue.file)) blamed.add(issue.file);
      }
      if (blamed.size === 0) break;
      for (const file of blamed) {
        const entry = this.files.get(file)!;
        entry.rejection = analysis.filter((issue) => issue.file === file);
        trial.set(file, entry.good ?? EMPTY);
        pending.delete(file);
      }
    }
    for (const file of pending) {
      const entry = this.files.get(file)!;
      entry.good = entry.current.resources;
      entry.rejection = [];
    }

    const servingChanged = trial.size !== this.served.size || [...trial].some(([file, resources]) => this.served.get(file) !== resources);
    if (servingChanged) {
      this.served = trial;
      this.servedResources = groupByKind(ordered);
      this.servedServices = services;
    }
    const issues = this.collectIssues(analysis);
    const signature = JSON.stringify(issues);
    const issuesChanged = signature !== this.issueSignature;
    if (issuesChanged) {
      this.currentIssues = issues;
      this.issueSignature = signature;
    }
    if (servingChanged || issuesChanged) this.changeCounter++;
  }

  /**
   * Precedence for the analysis, which blames the later of two clashing resources: first what a
   * file already served under the same identity (so a newcomer cannot displace it), then by
   * file path and position, which makes the outcome of a fresh start deterministic.
   */
  private order(trial: ReadonlyMap<string, readonly ConfigResource[]>): ConfigResource[] {
    const ranked: Array<{ resource: ConfigResource; rank: number; index: number }> = [];
    for (const [file, resources] of trial) {
      const good = this.files.get(file)?.good;
      const owned = good ? new Set(good.map(resourceKey)) : undefined;
      resources.forEach((resource, index) => ranked.push({ resource, rank: owned?.has(resourceKey(resource)) ? 0 : 1, index }));
    }
    ranked.sort((a, b) => a.rank - b.rank || compare(a.resource.origin.file, b.resource.origin.file) || a.index - b.index);
    return ranked.map((entry) => entry.resource);
  }

  private collectIssues(analysis: readonly ConfigIssue[]): ConfigIssue[] {
    const all: ConfigIssue[] = [];
    for (const [file, entry] of this.files) {
      all.push(...entry.current.issues, ...entry.rejection);
      const applied = entry.good === entry.current.resources;
      if (!applied && entry.good) {
        all.push({ severity: 'warning', code: 'file-rejected', file, path: '', message: 'file rejected as a whole because of the errors reported for it; its last valid version keeps serving' });
      }
    }
    all.push(...analysis);
    const seen = new Set<string>();
    const unique = all.filter((issue) => {
      const key = JSON.stringify([issue.severity, issue.code, issue.file, issue.document, issue.path, issue.message]);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    // Stable sort: by file, then document; a file's own issues keep their discovery order.
    return unique
      .map((issue, index) => ({ issue, index }))
      .sort((a, b) => compare(a.issue.file ?? '', b.issue.file ?? '') || (a.issue.document ?? 0) - (b.issue.document ?? 0) || a.index - b.index)
      .map((entry) => entry.issue);
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function groupByKind(resources: readonly ConfigResource[]): ReadonlyMap<string, readonly ConfigResource[]> {
  const byKind = new Map<string, ConfigResource[]>();
  for (const resource of resources) {
    const list = byKind.get(resource.kind);
    if (list) list.push(resource);
    else byKind.set(resource.kind, [resource]);
  }
  const sorted = new Map<string, readonly ConfigResource[]>();
  for (const kind of [...byKind.keys()].sort()) {
    sorted.set(kind, byKind.get(kind)!.sort((a, b) => compare(a.metadata.namespace, b.metadata.namespace) || compare(a.metadata.name, b.metadata.name)));
  }
  return sorted;
}
