// Turns zod's complaints about a document into issues a person can act on: unknown fields named one
// by one, types in YAML's words, the most plausible branch of a oneof. Shared by loader and kinds.
import type { z } from 'zod';
import { formatPath } from './issue';

type ZodIssue = z.core.$ZodIssue;

export interface SchemaIssue {
  code: 'unknown-field' | 'missing-field' | 'invalid-type' | 'invalid-key' | 'invalid-value';
  /** Field path segments, relative to what was validated. */
  segments: PropertyKey[];
  message: string;
  value?: unknown;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** One zod issue as zero or more schema issues; `base` prefixes the path (for nested unions). */
export function schemaIssues(issue: ZodIssue, base: readonly PropertyKey[] = []): SchemaIssue[] {
  const out: SchemaIssue[] = [];
  collect(issue, base, out);
  return out;
}

function collect(issue: ZodIssue, base: readonly PropertyKey[], out: SchemaIssue[]): void {
  const segments = [...base, ...issue.path];
  const input: unknown = 'input' in issue ? issue.input : undefined;
  switch (issue.code) {
    case 'unrecognized_keys': {
      // One issue per unknown field, pointing at the field itself: that is what the user must delete.
      const object = isMapping(input) ? input : {};
      for (const key of issue.keys) {
        out.push({ code: 'unknown-field', segments: [...segments, key], message: `unknown field "${key}"`, value: object[key] });
      }
      return;
    }
    case 'invalid_type': {
      if (input === undefined) {
        out.push({ code: 'missing-field', segments, message: 'required field is missing' });
        return;
      }
      const expected = issue.expected === 'int' ? 'integer' : issue.expected === 'object' ? 'mapping' : issue.expected === 'array' ? 'list' : issue.expected;
      out.push({ code: 'invalid-type', segments, message: `expected ${expected}, found ${describeType(input)}`, value: input });
      return;
    }
    case 'invalid_union': {
      const branches = issue.errors.filter((branch) => branch.length > 0);
      const fewest = Math.min(...branches.map((branch) => branch.length));
      const best = branches.filter((branch) => branch.length === fewest);
      // One branch got furthest: its complaints are the useful ones. Otherwise say it matched none.
      if (best.length === 1) {
        for (const nested of best[0]!) collect(nested, segments, out);
        return;
      }
      const reasons = [...new Set(branches.map((branch) => describeZodIssue(branch[0]!)))].slice(0, 3);
      out.push({ code: 'invalid-value', segments, message: `matches none of the accepted forms (${reasons.join('; ')})`, value: input });
      return;
    }
    case 'invalid_key': {
      for (const nested of issue.issues) {
        out.push({ code: 'invalid-key', segments, message: `invalid key: ${describeZodIssue(nested)}`, value: input });
      }
      return;
    }
    case 'invalid_element': {
      for (const nested of issue.issues) collect(nested, segments, out);
      return;
    }
    default:
      out.push({ code: 'invalid-value', segments, message: issue.message, ...(input !== undefined ? { value: input } : {}) });
  }
}

function describeZodIssue(issue: ZodIssue): string {
  const where = issue.path.length > 0 ? `${formatPath(issue.path)}: ` : '';
  if (issue.code === 'unrecognized_keys') return `${where}unknown field ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  if (issue.code === 'invalid_type' && issue.input === undefined) return `${where}required field is missing`;
  return `${where}${issue.message}`;
}

/** How YAML values are named to users: YAML's words, and integer apart from number. */
export function describeType(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  if (typeof value === 'object') return 'a mapping';
  return typeof value;
}
