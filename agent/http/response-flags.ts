// Envoy's response flags as Istio's access log and metrics show them: short names joined by
// commas, always in Envoy's own order (its ResponseFlag enum), so "UT,URX" and never "URX,UT".

/** Envoy's short flag names in Envoy's order; the ones the agent's HTTP path can set. */
const ORDER: readonly string[] = ['LH', 'UH', 'UT', 'LR', 'UR', 'UF', 'UC', 'UO', 'NR', 'DI', 'FI', 'RL', 'UAEX', 'RLSE', 'DC', 'URX', 'SI', 'IH', 'DPE', 'UMSDR', 'RFCF', 'NFCF', 'DT', 'UPE', 'NC'];
const RANK = new Map(ORDER.map((flag, i) => [flag, i]));

/** `flags` with `flag` added in Envoy's order; unchanged when already present. */
export function addFlag(flags: string, flag: string): string {
  if (flags === '') return flag;
  const present = flags.split(',');
  if (present.includes(flag)) return flags;
  present.push(flag);
  present.sort((a, b) => (RANK.get(a) ?? ORDER.length) - (RANK.get(b) ?? ORDER.length));
  return present.join(',');
}
