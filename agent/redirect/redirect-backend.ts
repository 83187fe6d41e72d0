// The contract every redirection backend (iptables nft/legacy, nftables) implements, and the
// comparison of expected against installed rule text that their `verify` reports.
import type { RedirectPlan } from './redirect-plan';

export type BackendName = 'iptables' | 'iptables-legacy' | 'nftables';

export interface VerifyResult {
  /** True when nothing is missing and nothing unexpected is in our chains or table. */
  readonly ok: boolean;
  /** Expected rules (and chains) not in force, as readable rule text. */
  readonly missing: readonly string[];
  /** Rules in our chains or table, or jumps into them, that the plan does not call for. */
  readonly unexpected: readonly string[];
}

export interface RedirectBackend {
  readonly name: BackendName;
  /** Makes the rules in force equal the plan. Running it twice leaves the same rules. */
  install(plan: RedirectPlan): Promise<void>;
  /** Deletes our chains or table and the jumps into them; touches nothing else. Idempotent. */
  remove(): Promise<void>;
  /** Compares what is in force with what `plan` asks for. */
  verify(plan: RedirectPlan): Promise<VerifyResult>;
  /** Whether any chain or table of ours exists (used to pick a backend on `auto`). */
  isInstalled(): Promise<boolean>;
}

/**
 * Multiset difference of rule texts. Rules are compared as text because that is what an operator
 * reads and what the tools print back; a rule present twice but expected once is unexpected once.
 * When both sides hold the same rules in a different order the result names the reordering,
 * because the first matching rule wins and order therefore changes behaviour.
 */
export function compareRules(
  expected: readonly string[],
  actual: readonly string[],
  orderScopes: ReadonlyMap<string, { expected: readonly string[]; actual: readonly string[] }> = new Map(),
): VerifyResult {
  const remaining = new Map<string, number>();
  for (const rule of actual) remaining.set(rule, (remaining.get(rule) ?? 0) + 1);
  const missing: string[] = [];
  for (const rule of expected) {
    const count = remaining.get(rule) ?? 0;
    if (count > 0) remaining.set(rule, count - 1);
    else missing.push(rule);
  }
  const unexpected: string[] = [];
  for (const rule of actual) {
    const count = remaining.get(rule) ?? 0;
    if (count > 0) {
      unexpected.push(rule);
      remaining.set(rule, count - 1);
    }
  }
  if (missing.length === 0 && unexpected.length === 0) {
    for (const [scope, rules] of orderScopes) {
      if (rules.expected.join('\n') !== rules.actual.join('\n')) {
        unexpected.push(`${scope}: rules are in a different order than planned`);
      }
    }
  }
  return { ok: missing.length === 0 && unexpected.length === 0, missing, unexpected };
}
