// A whole-number command-line option of a benchmark script, with its default and allowed range.

/** `raw` as an integer in [min, max], `fallback` when absent; an error names the flag otherwise. */
export function integerOption(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max}, got ${raw}`);
  return n;
}
