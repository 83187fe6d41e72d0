// Envoy's request/response header changes from a RouteDecision, applied to a header object about
// to be sent: removals first, then additions with their append actions.
import type { HeaderMutations } from '../routing/route-table';

/** Lower-case names to values, as node's http and http2 take them. */
export type HeaderBag = Record<string, string | string[] | number | undefined>;

export function applyHeaderMutations(headers: HeaderBag, mutations: HeaderMutations): void {
  for (const name of mutations.remove) delete headers[name];
  for (const add of mutations.add) {
    if (add.value === '' && !add.keepEmptyValue) continue;
    const current = headers[add.name];
    switch (add.action) {
      case 'APPEND_IF_EXISTS_OR_ADD':
        if (current === undefined) headers[add.name] = add.value;
        else headers[add.name] = Array.isArray(current) ? [...current, add.value] : [String(current), add.value];
        break;
      case 'ADD_IF_ABSENT':
        if (current === undefined) headers[add.name] = add.value;
        break;
      case 'OVERWRITE_IF_EXISTS_OR_ADD':
        headers[add.name] = add.value;
        break;
      case 'OVERWRITE_IF_EXISTS':
        if (current !== undefined) headers[add.name] = add.value;
        break;
    }
  }
}
