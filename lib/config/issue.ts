// A config problem as a value: what is wrong, and exactly where (file, document, resource, field
// path, offending value), so the log, the admin API and `meshctl analyze` all say the same thing.

export type IssueSeverity = 'error' | 'warning';

export interface ConfigIssue {
  severity: IssueSeverity;
  /** Stable machine-readable code, e.g. `unknown-field`, `weights-sum`, `undefined-subset`. */
  code: string;
  message: string;
  file?: string;
  /** 1-based YAML document index inside the file. */
  document?: number;
  kind?: string;
  namespace?: string;
  name?: string;
  /** Field path in Istio's notation: `spec.http[0].route[1].weight`. Empty for whole-document problems. */
  path: string;
  value?: unknown;
}

/** Renders path segments (as zod reports them) in the `a.b[0].c` notation. */
export function formatPath(segments: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(segment)) out += out ? `.${segment}` : segment;
    else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}

function formatValue(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** One line a person can act on: `file, document N (Kind ns/name), path: message (got value)`. */
export function formatIssue(issue: ConfigIssue): string {
  const where: string[] = [];
  if (issue.file) where.push(issue.file);
  if (issue.document !== undefined) where.push(`document ${issue.document}`);
  let head = where.join(', ');
  if (issue.kind) head += `${head ? ' ' : ''}(${issue.kind}${issue.name ? ` ${issue.namespace ?? 'default'}/${issue.name}` : ''})`;
  const path = issue.path ? `${issue.path}: ` : '';
  // Checks often state the value themselves ("weights must sum to 100, got 90"): say it once.
  const shown = issue.value !== undefined ? formatValue(issue.value) : undefined;
  const value = shown !== undefined && !issue.message.endsWith(`got ${shown}`) ? ` (got ${shown})` : '';
  return `${head ? `${head}, ` : ''}${path}${issue.message}${value}`;
}
