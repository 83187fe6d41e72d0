// Runs one kind's strict schema and then its semantic checks over a document's `spec`, turning
// both into issues with paths relative to spec (`http[0].route[1].weight`) and a severity.
import { formatPath, type IssueSeverity } from '../../lib/config/issue';
import { schemaIssues } from '../../lib/config/schema-issues';
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

/**
 * Validates `spec` for `kind`: schema first (unknown fields, types, enums, ranges, oneofs), then,
 * only when the schema passed, the kind's own checks, whose codes map to severities.
 */
export function validateSpec<Spec>(kind: KindDefinition<Spec>, spec: unknown): SpecValidation<Spec> {
  const parsed = kind.spec.safeParse(spec, { reportInput: true });
  if (!parsed.success) {
    return {
      issues: parsed.error.issues.flatMap((issue) =>
        schemaIssues(issue).map(({ segments, ...rest }) => ({ severity: 'error' as const, ...rest, path: formatPath(segments) }))),
    };
  }
  const issues: SpecIssue[] = [];
  kind.check?.(parsed.data, (path, message, value, code) => {
    issues.push({ severity: severityOf(code), code: code ?? 'invalid-value', message, path, value });
  });
  return { spec: parsed.data, issues };
}
