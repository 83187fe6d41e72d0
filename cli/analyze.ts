// `meshctl analyze`: validates config files and directories exactly as mesh-server would (parse,
// cross-resource analysis, file registry) and reports every issue, for humans or as JSON.
import { stat } from 'node:fs/promises';
import { relative, resolve } from 'node:path';
import { ConfigStore, type StoreChange } from '../server/config/config-store';
import { formatIssue, type ConfigIssue } from '../lib/config/issue';
import { readConfigFile } from '../server/config/parse-file';
import { listConfigFiles } from '../server/sources/config-dir';
import { fetchAdminJson } from './admin-client';

export interface AnalyzeOptions {
  output: 'human' | 'json';
}

export interface AnalyzeIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

/** Exit codes: 0 no errors (warnings allowed), 1 errors found, 2 usage problem. */
export async function analyzeCommand(paths: string[], options: AnalyzeOptions, io: AnalyzeIo): Promise<number> {
  if (paths.length === 0) {
    io.stderr('meshctl analyze: give at least one file or directory to analyze\n');
    return 2;
  }
  // Files are named as the user spelled the paths, so that the output can be pasted back.
  const files = new Map<string, string>();
  const missing: string[] = [];
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (!info) {
      missing.push(path);
    } else if (info.isDirectory()) {
      const root = resolve(path);
      for (const absolute of (await listConfigFiles(root)).keys()) {
        files.set(absolute, displayPath(path, relative(root, absolute)));
      }
    } else {
      // An explicitly named file is read whatever its extension: the user chose it.
      files.set(resolve(path), path);
    }
  }
  if (missing.length > 0) {
    for (const path of missing) io.stderr(`meshctl analyze: no such file or directory: ${path}\n`);
    return 2;
  }

  const changes: StoreChange[] = [];
  for (const [absolute, shown] of [...files].sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))) {
    try {
      changes.push({ file: shown, parsed: await readConfigFile(absolute, {}, shown) });
    } catch (error) {
      changes.push({ file: shown, parsed: { file: shown, resources: [], issues: [{ severity: 'error', code: 'read-error', file: shown, path: '', message: `cannot read file: ${(error as Error).message}` }] } });
    }
  }
  const store = new ConfigStore();
  store.update(changes);
  const issues = store.issues();
  const errors = issues.filter((issue) => issue.severity === 'error').length;

  if (options.output === 'json') {
    io.stdout(`${JSON.stringify(issues, null, 2)}\n`);
  } else {
    for (const issue of issues) io.stdout(`${humanLine(issue)}\n`);
    io.stdout(`${summary(issues, store, changes.length)}\n`);
  }
  return errors > 0 ? 1 : 0;
}

function displayPath(root: string, rel: string): string {
  const base = root.endsWith('/') ? root.slice(0, -1) : root;
  return `${base}/${rel}`;
}

/**
 * `meshctl analyze --server URL`: the issues of the config a running mesh-server has on disk now
 * (its rejected files keep serving their last good version), in the same form as offline.
 */
export async function analyzeServerCommand(server: string, options: AnalyzeOptions, io: AnalyzeIo): Promise<number> {
  const fetched = await fetchAdminJson(server, '/debug/issues', {});
  if (!fetched.ok) {
    io.stderr(`meshctl analyze: ${fetched.message}\n`);
    return 2;
  }
  const body = fetched.body as { issues?: unknown; modelVersion?: unknown };
  if (!Array.isArray(body.issues) || !body.issues.every((issue) => typeof issue === 'object' && issue !== null && typeof (issue as ConfigIssue).message === 'string')) {
    io.stderr(`meshctl analyze: ${fetched.url.href} did not return config issues; is this a mesh-server admin port?\n`);
    return 2;
  }
  const issues = (body.issues as Array<ConfigIssue & { text?: string }>).map(({ text: _text, ...issue }) => issue);
  const errors = issues.filter((issue) => issue.severity === 'error').length;
  if (options.output === 'json') {
    io.stdout(`${JSON.stringify(issues, null, 2)}\n`);
  } else {
    for (const issue of issues) io.stdout(`${humanLine(issue)}\n`);
    const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
    io.stdout(issues.length === 0
      ? `No validation issues in the config mesh-server at ${server} serves (model version ${String(body.modelVersion)}).\n`
      : `${plural(errors, 'error')}, ${plural(issues.length - errors, 'warning')} in the config mesh-server at ${server} serves; files with errors keep serving their last good version.\n`);
  }
  return errors > 0 ? 1 : 0;
}

/** istioctl's shape, `Error [code] where: message`, with our location and path. */
function humanLine(issue: ConfigIssue): string {
  return `${issue.severity === 'error' ? 'Error' : 'Warning'} [${issue.code}] ${formatIssue(issue)}`;
}

function summary(issues: readonly ConfigIssue[], store: ConfigStore, fileCount: number): string {
  const resources = [...store.resources().values()].reduce((total, list) => total + list.length, 0);
  const errors = issues.filter((issue) => issue.severity === 'error').length;
  const warnings = issues.length - errors;
  const rejected = store.fileStatuses().filter((status) => status.state === 'rejected').length;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (issues.length === 0) return `No validation issues found when analyzing ${plural(fileCount, 'file')} (${plural(resources, 'valid resource')}).`;
  const rejectedText = rejected > 0 ? `; ${plural(rejected, 'file')} would be rejected` : '';
  return `${plural(errors, 'error')}, ${plural(warnings, 'warning')} in ${plural(fileCount, 'file')} (${plural(resources, 'valid resource')})${rejectedText}.`;
}
