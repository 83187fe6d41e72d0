// Checks across resources, in the spirit of `istioctl analyze`: duplicates, subsets and gateways
// that nothing defines, hosts bound twice, conflicting ServiceEntries and DestinationRules.
import type { ConfigIssue } from '../../lib/config/issue';
import { resourceKey, type ConfigResource } from './resource';
import type { DestinationRuleSpec } from '../kinds/destination-rule/schema';
import type { ServiceEntrySpec } from '../kinds/service-entry/schema';
import type { Destination, VirtualServiceSpec } from '../kinds/virtual-service/schema';
import { protocolFromPortName, type Service } from '../registry/service';

// Resources reaching the analyzer passed their kind's strict schema, so casting a resource's
// spec to its kind's spec type (`vs.spec as VirtualServiceSpec`) is sound.

/** The gateway name meaning "the sidecars of the mesh" rather than a Gateway resource. */
export const MESH_GATEWAY = 'mesh';

/** True when `host` falls under `pattern`: equal, or `*.example.com` / `*` style suffix wildcards. */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === host) return true;
  if (!pattern.startsWith('*')) return false;
  const suffix = pattern.slice(1);
  return host.length > suffix.length && host.endsWith(suffix);
}

/** Looks hosts up among known services by hostname, alias, or a wildcard service host. */
export class HostIndex {
  private readonly byName = new Map<string, Service>();
  private readonly wildcards: Service[] = [];

  constructor(services: readonly Service[]) {
    for (const service of services) {
      const hostname = service.hostname.toLowerCase();
      if (hostname.startsWith('*')) this.wildcards.push(service);
      else if (!this.byName.has(hostname)) this.byName.set(hostname, service);
    }
    // Aliases after hostnames: a bare Consul name must not shadow a service's canonical name.
    for (const service of services) {
      for (const alias of service.aliases) {
        const name = alias.toLowerCase();
        if (!this.byName.has(name)) this.byName.set(name, service);
      }
    }
  }

  /** The service's canonical hostname for a hostname or alias; otherwise the host as written. */
  canonical(host: string): string {
    const name = host.toLowerCase();
    return this.byName.get(name)?.hostname.toLowerCase() ?? name;
  }

  isKnown(host: string): boolean {
    const name = host.toLowerCase();
    if (this.byName.has(name)) return true;
    return this.wildcards.some((service) => hostMatches(service.hostname.toLowerCase(), name));
  }
}

/** Where a resource is visible under Istio's exportTo: every namespace, or a set. */
type Scope = '*' | ReadonlySet<string>;

function exportScope(resource: ConfigResource, exportTo: readonly string[] | undefined): Scope {
  if (!exportTo || exportTo.length === 0 || exportTo.includes('*')) return '*';
  const namespaces = new Set<string>();
  for (const entry of exportTo) {
    if (entry === '.') namespaces.add(resource.metadata.namespace);
    else if (entry !== '~') namespaces.add(entry);
  }
  return namespaces;
}

function visibleIn(scope: Scope, namespace: string): boolean {
  return scope === '*' || scope.has(namespace);
}

function scopesOverlap(a: Scope, b: Scope): boolean {
  if (a === '*') return b === '*' || b.size > 0;
  if (b === '*') return a.size > 0;
  for (const namespace of a) if (b.has(namespace)) return true;
  return false;
}

function describe(resource: ConfigResource): string {
  return `${resource.kind} ${resource.metadata.namespace}/${resource.metadata.name} (${resource.origin.file}, document ${resource.origin.document})`;
}

function issueAt(resource: ConfigResource, severity: 'error' | 'warning', code: string, path: string, message: string, value?: unknown): ConfigIssue {
  return {
    severity,
    code,
    message,
    file: resource.origin.file,
    document: resource.origin.document,
    kind: resource.kind,
    namespace: resource.metadata.namespace,
    name: resource.metadata.name,
    path,
    ...(value !== undefined ? { value } : {}),
  };
}

/**
 * Cross-resource issues of `resources` against the known `services`. The order of `resources` is
 * precedence: of two resources that clash, the later one gets the error, so a caller that lists
 * what already serves first keeps it serving.
 */
export function analyzeResources(resources: readonly ConfigResource[], services: readonly Service[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const hosts = new HostIndex(services);

  // Duplicates first: the later copy is reported and left out of every other check, which
  // would otherwise report the same mistake again in other words.
  const firstByKey = new Map<string, ConfigResource>();
  const unique: ConfigResource[] = [];
  for (const resource of resources) {
    const key = resourceKey(resource);
    const first = firstByKey.get(key);
    if (first) {
      issues.push(issueAt(resource, 'error', 'duplicate-resource', 'metadata.name', `${resource.kind} ${resource.metadata.namespace}/${resource.metadata.name} is already defined in ${first.origin.file}, document ${first.origin.document}`, resource.metadata.name));
      continue;
    }
    firstByKey.set(key, resource);
    unique.push(resource);
  }

  const ofKind = (kind: string) => unique.filter((r) => r.kind === kind);
  const virtualServices = ofKind('VirtualService');
  const destinationRules = ofKind('DestinationRule');

  checkServiceEntries(ofKind('ServiceEntry'), issues);
  checkDestinationRuleConflicts(destinationRules, hosts, issues);
  checkMeshHostConflicts(virtualServices, hosts, issues);
  const gateways = new Set(ofKind('Gateway').map((g) => `${g.metadata.namespace}/${g.metadata.name}`));
  for (const vs of virtualServices) checkGatewayReferences(vs, gateways, issues);
  const rules = new DestinationRuleIndex(destinationRules, hosts);
  for (const vs of virtualServices) checkDestinations(vs, rules, hosts, issues);
  return issues;
}

function checkGatewayReferences(vs: ConfigResource, gateways: ReadonlySet<string>, issues: ConfigIssue[]): void {
  const spec = vs.spec as VirtualServiceSpec;
  spec.gateways?.forEach((gateway, i) => {
    if (gateway === MESH_GATEWAY) return;
    const key = gateway.includes('/') ? gateway : `${vs.metadata.namespace}/${gateway}`;
    if (!gateways.has(key)) {
      issues.push(issueAt(vs, 'error', 'undefined-gateway', `spec.gateways[${i}]`, `Referenced gateway not found: no Gateway ${key} is defined (IST0101 ReferencedResourceNotFound)`, gateway));
    }
  });
}

/** IST0109: two VirtualServices binding one host on the mesh gateway, visible in a common namespace. */
function checkMeshHostConflicts(virtualServices: readonly ConfigResource[], hosts: HostIndex, issues: ConfigIssue[]): void {
  const bound = new Map<string, Array<{ vs: ConfigResource; scope: Scope }>>();
  for (const vs of virtualServices) {
    const spec = vs.spec as VirtualServiceSpec;
    const onMesh = !spec.gateways || spec.gateways.length === 0 || spec.gateways.includes(MESH_GATEWAY);
    if (!onMesh) continue;
    const scope = exportScope(vs, spec.exportTo);
    const seenHere = new Set<string>();
    spec.hosts?.forEach((host, i) => {
      const canonical = hosts.canonical(host);
      if (seenHere.has(canonical)) return;
      seenHere.add(canonical);
      const earlier = bound.get(canonical) ?? [];
      const clash = earlier.find((other) => scopesOverlap(other.scope, scope));
      if (clash) {
        issues.push(issueAt(vs, 'error', 'conflicting-virtual-service-host', `spec.hosts[${i}]`, `host is already bound on the mesh gateway by ${describe(clash.vs)}; merge the two or scope them with exportTo (IST0109 ConflictingMeshGatewayVirtualServiceHosts)`, host));
        return;
      }
      earlier.push({ vs, scope });
      bound.set(canonical, earlier);
    });
  }
}

/** Same host and port defined differently by two ServiceEntries of one namespace. */
function checkServiceEntries(entries: readonly ConfigResource[], issues: ConfigIssue[]): void {
  interface PortDefinition {
    name: string;
    protocol: string;
    targetPort: number | undefined;
    resolution: string;
    location: string;
  }
  const defined = new Map<string, { entry: ConfigResource; definition: PortDefinition }>();
  for (const entry of entries) {
    const spec = entry.spec as ServiceEntrySpec;
    const reported = new Set<number>();
    for (const host of spec.hosts) {
      spec.ports?.forEach((port, i) => {
        const definition: PortDefinition = {
          name: port.name,
          protocol: port.protocol?.toUpperCase() ?? protocolFromPortName(port.name),
          targetPort: port.targetPort,
          resolution: spec.resolution ?? 'NONE',
          location: spec.location ?? 'MESH_EXTERNAL',
        };
        const key = `${entry.metadata.namespace}|${host.toLowerCase()}|${port.number}`;
        const first = defined.get(key);
        if (!first) {
          defined.set(key, { entry, definition });
          return;
        }
        const differences = (Object.keys(definition) as Array<keyof PortDefinition>)
          .filter((field) => definition[field] !== first.definition[field])
          .map((field) => `${field} ${String(definition[field] ?? 'unset')} vs ${String(first.definition[field] ?? 'unset')}`);
        if (differences.length === 0 || reported.has(i)) return;
        reported.add(i);
        issues.push(issueAt(entry, 'error', 'conflicting-service-entry', `spec.ports[${i}]`, `host "${host}" port ${port.number} is already defined differently by ${describe(first.entry)}: ${differences.join(', ')}`, port.number));
      });
    }
  }
}

/** Two DestinationRules for one host in one namespace, neither narrowed by a workloadSelector. */
function checkDestinationRuleConflicts(rules: readonly ConfigResource[], hosts: HostIndex, issues: ConfigIssue[]): void {
  const first = new Map<string, ConfigResource>();
  for (const rule of rules) {
    const spec = rule.spec as DestinationRuleSpec;
    if (spec.workloadSelector !== undefined) continue;
    const key = `${rule.metadata.namespace}|${hosts.canonical(spec.host)}`;
    const earlier = first.get(key);
    if (earlier) {
      issues.push(issueAt(rule, 'error', 'conflicting-destination-rule', 'spec.host', `${describe(earlier)} already applies to this host in namespace ${rule.metadata.namespace} without a workloadSelector; merge them into one or add a workloadSelector`, spec.host));
      continue;
    }
    first.set(key, rule);
  }
}

/** DestinationRules by the canonical host they apply to, with wildcard hosts apart. */
class DestinationRuleIndex {
  private readonly byHost = new Map<string, ConfigResource[]>();
  private readonly wildcard: ConfigResource[] = [];

  constructor(rules: readonly ConfigResource[], private readonly hosts: HostIndex) {
    for (const rule of rules) {
      const host = hosts.canonical((rule.spec as DestinationRuleSpec).host);
      if (host.startsWith('*')) this.wildcard.push(rule);
      else this.byHost.set(host, [...(this.byHost.get(host) ?? []), rule]);
    }
  }

  /** The rules a client in `namespace` sees for `host`. */
  rulesFor(host: string, namespace: string): ConfigResource[] {
    const canonical = this.hosts.canonical(host);
    const candidates = [
      ...(this.byHost.get(canonical) ?? []),
      ...this.wildcard.filter((rule) => hostMatches(this.hosts.canonical((rule.spec as DestinationRuleSpec).host), canonical)),
    ];
    return candidates.filter((rule) => visibleIn(exportScope(rule, (rule.spec as DestinationRuleSpec).exportTo), namespace));
  }
}

function checkDestinations(vs: ConfigResource, rules: DestinationRuleIndex, hosts: HostIndex, issues: ConfigIssue[]): void {
  const spec = vs.spec as VirtualServiceSpec;
  const destinations: Array<[string, Destination]> = [];
  spec.http?.forEach((http, i) => {
    http.route?.forEach((route, j) => destinations.push([`spec.http[${i}].route[${j}].destination`, route.destination]));
    if (http.mirror) destinations.push([`spec.http[${i}].mirror`, http.mirror]);
    http.mirrors?.forEach((mirror, j) => destinations.push([`spec.http[${i}].mirrors[${j}].destination`, mirror.destination]));
  });
  spec.tcp?.forEach((tcp, i) => tcp.route?.forEach((route, j) => destinations.push([`spec.tcp[${i}].route[${j}].destination`, route.destination])));
  spec.tls?.forEach((tls, i) => tls.route?.forEach((route, j) => destinations.push([`spec.tls[${i}].route[${j}].destination`, route.destination])));

  for (const [path, destination] of destinations) {
    if (!hosts.isKnown(destination.host)) {
      // A warning, as in istioctl: the service may register later (a Consul service not yet up).
      issues.push(issueAt(vs, 'warning', 'unknown-host', `${path}.host`, 'Referenced host not found: no Consul service or ServiceEntry has this host (IST0101 ReferencedResourceNotFound)', destination.host));
    }
    if (destination.subset === undefined) continue;
    const applicable = rules.rulesFor(destination.host, vs.metadata.namespace);
    if (applicable.some((rule) => (rule.spec as DestinationRuleSpec).subsets?.some((subset) => subset.name === destination.subset))) continue;
    const defined = applicable.flatMap((rule) => (rule.spec as DestinationRuleSpec).subsets?.map((subset) => subset.name) ?? []);
    const detail = applicable.length === 0
      ? `no DestinationRule visible in namespace ${vs.metadata.namespace} applies to host "${destination.host}"`
      : `${applicable.map((rule) => `DestinationRule ${rule.metadata.namespace}/${rule.metadata.name}`).join(', ')} define${applicable.length === 1 ? 's' : ''} ${defined.length > 0 ? `only ${defined.map((name) => `"${name}"`).join(', ')}` : 'no subsets'}`;
    issues.push(issueAt(vs, 'error', 'undefined-subset', `${path}.subset`, `Referenced host+subset in destinationrule not found: "${destination.host}+${destination.subset}"; ${detail} (IST0101 ReferencedResourceNotFound)`, destination.subset));
  }
}
