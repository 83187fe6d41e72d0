// Istio's locality load balancing, applied per client to the localities of one load assignment:
// `distribute` rewrites locality weights, failover assigns priorities by proximity to the client
// (and by failoverPriority labels), and priorities are compacted to 0..N as Envoy requires.
import type { Endpoint, Locality } from '../registry/service';
import type { LocalityLoadBalancerSetting } from './specs';

/** One locality's endpoints as the load assignment is being built. */
export interface LocalityGroup {
  locality: Locality;
  weight: number;
  priority: number;
  endpoints: Endpoint[];
}

/** Istio's LocalityMatch: `region/zone/subzone` where `*` or an omitted part matches anything. */
export function localityMatches(locality: Locality | undefined, rule: string): boolean {
  const [region = '', zone = '', subzone = ''] = rule.split('/');
  const regionOk = region === '*' || (locality !== undefined && locality.region === region);
  const zoneOk = zone === '*' || zone === '' || (locality !== undefined && locality.zone === zone);
  const subzoneOk = subzone === '*' || subzone === '' || (locality !== undefined && locality.subzone === subzone);
  return regionOk && zoneOk && subzoneOk;
}

/** 0 same subzone, 1 same zone, 2 same region, 3 elsewhere (Istio's LbPriority). */
function proximity(client: Locality, locality: Locality): number {
  if (client.region !== locality.region) return 3;
  if (client.zone !== locality.zone) return 2;
  return client.subzone === locality.subzone ? 0 : 1;
}

function sumWeights(endpoints: readonly Endpoint[]): number {
  return endpoints.reduce((sum, e) => sum + Math.max(1, e.weight), 0);
}

/** Renumbers priorities so that the used ones are 0..N without gaps, keeping their order. */
function compactPriorities(groups: LocalityGroup[]): void {
  const used = [...new Set(groups.map((g) => g.priority))].sort((a, b) => a - b);
  const rank = new Map(used.map((p, i) => [p, i]));
  for (const group of groups) group.priority = rank.get(group.priority)!;
}

function applyDistribute(client: Locality, groups: LocalityGroup[], distribute: NonNullable<LocalityLoadBalancerSetting['distribute']>): void {
  const rule = distribute.find((d) => localityMatches(client, d.from ?? ''));
  if (!rule) return;
  const unmatched = new Set(groups);
  for (const [target, weight] of Object.entries(rule.to ?? {})) {
    const matched = groups.filter((g) => unmatched.has(g) && localityMatches(g.locality, target));
    const total = matched.reduce((sum, g) => sum + g.weight, 0);
    for (const group of matched) {
      unmatched.delete(group);
      // Several localities under one wildcard share the target's weight in proportion to their own.
      const share = (group.weight * weight) / total;
      if (share > 0) group.weight = Math.ceil(share);
    }
  }
  // Localities the rule does not send traffic to keep their place but lose their endpoints.
  for (const group of unmatched) group.endpoints = [];
}

/** failoverPriority: endpoints whose labels differ from the client's earlier in the list rank lower. */
function applyFailoverPriority(clientLabels: Readonly<Record<string, string>>, groups: LocalityGroup[], failoverPriority: readonly string[]): LocalityGroup[] {
  const names: string[] = [];
  const overrides = new Map<string, string>();
  for (const entry of failoverPriority) {
    const [name, value] = entry.split('=') as [string, string | undefined];
    names.push(name);
    if (value !== undefined) overrides.set(name, value);
  }
  const lowest = names.length;
  const out: LocalityGroup[] = [];
  for (const group of groups) {
    const byPriority = new Map<number, Endpoint[]>();
    for (const endpoint of group.endpoints) {
      let priority = 0;
      for (let j = 0; j < names.length; j++) {
        const name = names[j]!;
        const wanted = overrides.get(name) ?? clientLabels[name];
        if (wanted !== endpoint.labels[name]) {
          priority = lowest - j;
          break;
        }
      }
      const list = byPriority.get(priority);
      if (list) list.push(endpoint);
      else byPriority.set(priority, [endpoint]);
    }
    for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
      const endpoints = byPriority.get(priority)!;
      out.push({ locality: group.locality, weight: sumWeights(endpoints), priority, endpoints });
    }
  }
  compactPriorities(out);
  return out;
}

function applyFailover(client: Locality, groups: LocalityGroup[], failover: NonNullable<LocalityLoadBalancerSetting['failover']>): void {
  for (const group of groups) {
    let priority = proximity(client, group.locality);
    if (priority === 3) {
      const rule = failover.find((f) => f.from === client.region);
      if (rule && group.locality.region !== rule.to) priority = 4;
    }
    // Five proximity levels per label priority keep an earlier failoverPriority split in charge.
    group.priority = group.priority * 5 + priority;
  }
  compactPriorities(groups);
}

export interface LocalityClient {
  locality: Locality;
  labels: Readonly<Record<string, string>>;
}

/**
 * Applies `setting` for `client` (Istio's ApplyLocalityLoadBalancer): distribute when given, else
 * failover when outlier detection can notice unhealthy endpoints (`failoverEnabled`).
 */
export function applyLocalityLoadBalancing(
  groups: LocalityGroup[],
  client: LocalityClient,
  setting: LocalityLoadBalancerSetting,
  failoverEnabled: boolean,
): LocalityGroup[] {
  if (setting.distribute && setting.distribute.length > 0) {
    applyDistribute(client.locality, groups, setting.distribute);
    return groups;
  }
  if (!failoverEnabled) return groups;
  let result = groups;
  if (setting.failoverPriority && setting.failoverPriority.length > 0) {
    if (Object.keys(client.labels).length > 0) result = applyFailoverPriority(client.labels, groups, setting.failoverPriority);
    if (setting.failover && setting.failover.length > 0) applyFailover(client.locality, result, setting.failover);
    return result;
  }
  applyFailover(client.locality, result, setting.failover ?? []);
  return result;
}

/** Whether a setting makes a load assignment depend on who asks for it. */
export function isClientDependent(setting: LocalityLoadBalancerSetting | undefined, failoverEnabled: boolean): boolean {
  if (!setting) return false;
  return (setting.distribute !== undefined && setting.distribute.length > 0) || failoverEnabled;
}

/** The setting in force: the rule's, unless it disables locality LB; Istio's mesh default is enabled. */
export function resolveLocalitySetting(fromRule: LocalityLoadBalancerSetting | undefined): LocalityLoadBalancerSetting | undefined {
  if (fromRule) return fromRule.enabled === false ? undefined : fromRule;
  return {};
}
