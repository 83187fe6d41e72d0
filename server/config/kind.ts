// What the config loader needs to know about one Istio resource kind. Each kind lives in its own
// folder under server/kinds/ (schema, checks, tests side by side) and exports one of these.
import type { z } from 'zod';
import type { IstioGroup } from './resource';

/** Reports one problem found by a kind's semantic checks; `path` is relative to `spec`. */
export type ReportIssue = (path: string, message: string, value?: unknown, code?: string) => void;

export interface KindDefinition<Spec = unknown> {
  group: IstioGroup;
  kind: string;
  /** API versions accepted for this kind, e.g. ['v1alpha3', 'v1beta1', 'v1']. */
  versions: readonly string[];
  /** Strict schema of `spec`: unknown fields and wrong types are errors. */
  spec: z.ZodType<Spec>;
  /**
   * Checks of one resource that a schema cannot express: regexes compile, durations parse,
   * route weights sum to 100, ports are in range... Cross-resource checks live in the analyzer.
   */
  check?(spec: Spec, report: ReportIssue): void;
}
