// Test helpers for the kind folders: parse a YAML spec the way a user writes it and run a kind's
// schema and checks over it, so each test reads as "this YAML gives these issues".
import { parse } from 'yaml';
import type { KindDefinition } from '../config/kind';
import { validateSpec, type SpecIssue, type SpecValidation } from './validate';

export function validateYaml<Spec>(kind: KindDefinition<Spec>, yamlSpec: string): SpecValidation<Spec> {
  return validateSpec(kind, parse(yamlSpec));
}

/** The issues of one severity, as `path: message` lines, for compact assertions. */
export function lines(issues: readonly SpecIssue[], severity: 'error' | 'warning' = 'error'): string[] {
  return issues.filter((i) => i.severity === severity).map((i) => `${i.path}: ${i.message}`);
}

/** The single issue reported at `path`, or undefined; tests assert on its message/code/value. */
export function issueAt(issues: readonly SpecIssue[], path: string): SpecIssue | undefined {
  const found = issues.filter((i) => i.path === path);
  return found.length === 1 ? found[0] : undefined;
}
