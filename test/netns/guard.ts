// Registers ava tests that need network namespaces, or registers them skipped (the reason in the
// title) when this machine cannot run them: not root, no working `ip netns`, a tool missing.
import test, { type ExecutionContext } from 'ava';
import { netnsUnavailableReason } from './test-network';

export type NetnsTestImplementation = (t: ExecutionContext) => Promise<void> | void;

/**
 * `const netnsTest = requireNetns(['nft'])` then `netnsTest('title', async (t) => ...)`. ava has no
 * skip from inside a running test, so the decision is taken when the test is registered; the
 * reason goes into the skipped test's title so the run's output says why.
 */
export function requireNetns(
  tools: readonly string[] = [],
  options: { readonly serial?: boolean } = {},
): (title: string, implementation: NetnsTestImplementation) => void {
  const reason = netnsUnavailableReason(tools);
  return (title, implementation) => {
    if (reason !== undefined) test.skip(`${title} (skipped: ${reason})`, implementation);
    else if (options.serial) test.serial(title, implementation);
    else test(title, implementation);
  };
}
