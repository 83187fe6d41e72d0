// WorkloadEntry rules beyond the schema, following Istio's validation: an address that is an IP,
// a DNS name or a unix socket (without ports), port names that are DNS labels and numbers in range.
import type { ReportIssue } from '../../config/kind';
import {
  UNIX_ADDRESS_PREFIX,
  isDns1123Label,
  isFqdn,
  isIp,
  isValidPort,
  reportAt,
  unixAddressProblem,
  type Segments,
} from '../common';
import type { WorkloadEntrySpec } from './schema';

export function checkWorkloadEntry(spec: WorkloadEntrySpec, report: ReportIssue): void {
  // Istio lets the address be empty only for a workload reached through a network gateway.
  if (!spec.address && !spec.network) {
    reportAt(report, ['address'], 'address is required (or a network reached through its gateway)', spec.address, 'missing-address');
  }
  if (spec.address) checkEndpointAddress(report, [], spec, 'any');
  checkEndpointPorts(report, [], spec);
  checkLocality(report, ['locality'], spec.locality);
}

/**
 * The address of a workload or ServiceEntry endpoint. `kind` narrows it to what a ServiceEntry's
 * resolution allows: STATIC wants an IP (or unix socket), DNS an IP or a hostname.
 */
export function checkEndpointAddress(report: ReportIssue, at: Segments, endpoint: WorkloadEntrySpec, kind: 'any' | 'static' | 'dns'): void {
  const address = endpoint.address ?? '';
  if (address.startsWith(UNIX_ADDRESS_PREFIX)) {
    if (kind === 'dns') {
      reportAt(report, [...at, 'address'], 'unix domain socket endpoints need resolution STATIC', address, 'invalid-address');
      return;
    }
    const problem = unixAddressProblem(address.slice(UNIX_ADDRESS_PREFIX.length));
    if (problem) reportAt(report, [...at, 'address'], problem, address, 'invalid-address');
    if (endpoint.ports && Object.keys(endpoint.ports).length > 0) {
      reportAt(report, [...at, 'ports'], 'unix endpoint must not include ports', endpoint.ports, 'invalid-address');
    }
    return;
  }
  if (isIp(address)) return;
  if (kind === 'static') reportAt(report, [...at, 'address'], 'endpoint address must be an IP address (or unix://path) for resolution STATIC', address, 'invalid-address');
  else if (!isFqdn(address)) reportAt(report, [...at, 'address'], 'endpoint address is not a valid FQDN or an IP address', address, 'invalid-address');
}

export function checkEndpointPorts(report: ReportIssue, at: Segments, endpoint: WorkloadEntrySpec): void {
  for (const [name, port] of Object.entries(endpoint.ports ?? {})) {
    if (!isDns1123Label(name)) reportAt(report, [...at, 'ports', name], 'port name must be a DNS label', name, 'invalid-port-name');
    if (!isValidPort(port)) reportAt(report, [...at, 'ports', name], 'port must be in the range 1..65535', port, 'port-range');
  }
}

export function checkLocality(report: ReportIssue, at: Segments, locality: string | undefined): void {
  if (locality === undefined || locality === '') return;
  const parts = locality.split('/');
  if (parts.length > 3 || parts.some((p) => p === '' || p.includes('*'))) {
    reportAt(report, at, 'locality must be region[/zone[/subzone]]', locality, 'invalid-locality');
  }
}
