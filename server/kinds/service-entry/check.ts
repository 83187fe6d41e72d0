// ServiceEntry rules beyond the schema, following Istio's validation: hosts, addresses vs
// resolution, unique port names and numbers, endpoints consistent with the resolution mode.
import type { ReportIssue } from '../../config/kind';
import {
  checkExportTo,
  isDns1123Label,
  isFqdn,
  isHttpLikeProtocol,
  isIpOrCidr,
  isKnownProtocol,
  isTlsProtocol,
  isWildcardDomain,
  reportAt,
} from '../common';
import { checkEndpointAddress, checkEndpointPorts, checkLocality } from '../workload-entry/check';
import type { ServiceEntrySpec } from './schema';

export function checkServiceEntry(spec: ServiceEntrySpec, report: ReportIssue): void {
  const resolution = spec.resolution ?? 'NONE';
  const endpoints = spec.endpoints ?? [];
  const ports = spec.ports ?? [];

  if (spec.workloadSelector && spec.endpoints) {
    reportAt(report, ['workloadSelector'], 'only one of workloadSelector or endpoints is allowed', spec.workloadSelector, 'endpoints-conflict');
  }

  if (spec.hosts.length === 0) reportAt(report, ['hosts'], 'service entry must have at least one host', spec.hosts, 'missing-host');
  spec.hosts.forEach((host, i) => {
    if (host === '*') reportAt(report, ['hosts', i], 'the full wildcard * is not allowed as a ServiceEntry host', host, 'invalid-host');
    else if (!isWildcardDomain(host)) reportAt(report, ['hosts', i], 'host must be a DNS name, optionally with a leading wildcard', host, 'invalid-host');
  });

  let cidrFound = false;
  spec.addresses?.forEach((address, i) => {
    cidrFound ||= address.includes('/');
    if (!isIpOrCidr(address)) reportAt(report, ['addresses', i], 'address must be an IP address or CIDR block', address, 'invalid-address');
  });
  if (cidrFound && resolution !== 'NONE' && resolution !== 'STATIC') {
    reportAt(report, ['resolution'], 'CIDR addresses are allowed only for NONE/STATIC resolution types', resolution, 'resolution');
  }

  const names = new Set<string>();
  const numbers = new Set<number>();
  ports.forEach((port, i) => {
    if (names.has(port.name)) reportAt(report, ['ports', i, 'name'], 'service entry port name already defined', port.name, 'duplicate-port');
    names.add(port.name);
    if (numbers.has(port.number)) reportAt(report, ['ports', i, 'number'], 'service entry port number already defined', port.number, 'duplicate-port');
    numbers.add(port.number);
    if (!isDns1123Label(port.name)) reportAt(report, ['ports', i, 'name'], 'port name must be a DNS label', port.name, 'invalid-port-name');
    if (port.protocol !== undefined && port.protocol !== '' && !isKnownProtocol(port.protocol)) {
      reportAt(report, ['ports', i, 'protocol'], 'unsupported protocol', port.protocol, 'invalid-protocol');
    }
  });

  switch (resolution) {
    case 'NONE':
      if (endpoints.length > 0) reportAt(report, ['endpoints'], 'no endpoints should be provided for resolution NONE', endpoints.length, 'resolution');
      break;
    case 'STATIC': {
      let unixEndpoint = false;
      endpoints.forEach((endpoint, i) => {
        unixEndpoint ||= (endpoint.address ?? '').startsWith('unix://');
        if (endpoint.address) checkEndpointAddress(report, ['endpoints', i], endpoint, 'static');
      });
      if (unixEndpoint && ports.length !== 1) {
        reportAt(report, ['ports'], 'exactly 1 service port required for unix endpoints', ports.length, 'resolution');
      }
      break;
    }
    case 'DNS':
    case 'DNS_ROUND_ROBIN':
      // Without endpoints the hosts themselves are resolved, so they must be resolvable names.
      if (endpoints.length === 0) {
        spec.hosts.forEach((host, i) => {
          if (!isFqdn(host)) reportAt(report, ['hosts', i], `hosts must be FQDN if no endpoints are provided for resolution ${resolution}`, host, 'resolution');
        });
      }
      if (resolution === 'DNS_ROUND_ROBIN' && endpoints.length > 1) {
        reportAt(report, ['endpoints'], 'resolution DNS_ROUND_ROBIN allows at most one endpoint', endpoints.length, 'resolution');
      }
      endpoints.forEach((endpoint, i) => {
        if (endpoint.address) checkEndpointAddress(report, ['endpoints', i], endpoint, 'dns');
      });
      if ((spec.addresses?.length ?? 0) > 0 && spec.hosts.length > 1 && ports.some((p) => !isHttpLikeProtocol(p.protocol) && !isTlsProtocol(p.protocol))) {
        reportAt(report, ['hosts'], 'service entry should not have more than one host together with addresses and a TCP port', spec.hosts, 'tcp-hosts-with-addresses');
      }
      break;
  }

  endpoints.forEach((endpoint, i) => {
    if (endpoint.address === undefined || endpoint.address === '') {
      if (!endpoint.network) reportAt(report, ['endpoints', i, 'address'], 'endpoint address is required (or a network reached through its gateway)', endpoint.address, 'missing-address');
    }
    checkEndpointPorts(report, ['endpoints', i], endpoint);
    for (const name of Object.keys(endpoint.ports ?? {})) {
      if (!names.has(name)) reportAt(report, ['endpoints', i, 'ports', name], 'endpoint port is not defined by the service entry', name, 'undefined-port');
    }
    checkLocality(report, ['endpoints', i, 'locality'], endpoint.locality);
  });

  // For plain TCP nothing on the wire tells hosts apart, so several hosts need resolution NONE.
  if (resolution !== 'NONE' && spec.hosts.length > 1) {
    const index = ports.findIndex((p) => !isHttpLikeProtocol(p.protocol) && !isTlsProtocol(p.protocol));
    if (index >= 0) reportAt(report, ['ports', index, 'protocol'], 'multiple hosts provided with non-HTTP, non-TLS ports', ports[index]!.protocol, 'resolution');
  }

  checkExportTo(report, ['exportTo'], spec.exportTo, true);
}
