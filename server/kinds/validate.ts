// Runs one kind's strict schema and then its semantic checks over a document's `spec`, turning
// both into issues with paths relative to spec (`http[0].route[1].weight`) and a severity.
import type { z } from 'zod';
import { formatPath, type IssueSeverity } from '../config/issue';
import type { KindDefinition } from '../config/kind';
import { severityOf } from './common';

export interface SpecIssue {
  severity: IssueSeverity;
  code: string;
  message: string;
  /** Relative to `spec`, in Istio's notation; empty for the spec itself. */
  path: string;
  value?: unknown;
}

export interface SpecValidation<Spec> {
  /** The parsed spec when the schema accepted it (even if checks then reported problems). */
  spec?: Spec;
  issues: SpecIssue[];
}

function valueAt(root: unknown, segments: ReadonlyArray<PropertyKey>): unknown {
  let current: unknown = root;
  for (const segment of segments) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[segment];
  }
  return current;
}

function fromZodIssue(issue: z.core.$ZodIssue, input: unknown): SpecIssue[] {
  if (issue.code === 'unrecognized_keys') {
    // One issue per unknown field, pointing at the field itself: that is what the user must delete.
    const parent = valueAt(input, issue.path);
    return issue.keys.map((key) => ({
      severity: 'error' as const,
      code: 'unknown-field',
      message: 'unknown field',
      path: formatPath([...issue.path, key]),
      value: valueAt(parent, [key]),
    }));
  }
  const code = issue.code === 'invalid_type' ? 'wrong-type' : 'invalid-value';
  return [{ severity: 'error', code, message: issue.message, path: formatPath(issue.path), value: valueAt(input, issue.path) }];
}

/**
 * Validates `spec` for `kind`: schema first (unknown fields, types, enums, ranges, oneofs), then,
 * only when the schema passed, the kind's own checks, whose codes map to severities.
 */
export function validateSpec<Spec>(kind: KindDefinition<Spec>, spec: unknown): SpecValidation<Spec> {
  const parsed = kind.spec.safeParse(spec);
  if (!parsed.success) {
    return { issues: parsed.error.issues.flatMap((issue) => fromZodIssue(issue, spec)) };
  }
  const issues: SpecIssue[] = [];
  kind.check?.(parsed.data, (path, message, value, code) => {
    issues.push({ severity: severityOf(code), code: code ?? 'invalid-value', message, path, value });
  });
  return { spec: parsed.data, issues };
}
