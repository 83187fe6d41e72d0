// Sidecar rules beyond the schema, following Istio's validation: a non-empty configuration, unique
// listener ports, valid binds and default endpoints, `namespace/host` egress hosts, egress proxy use.
import type { ReportIssue } from '../../config/kind';
import {
  UNIX_ADDRESS_PREFIX,
  isDns1123Label,
  isFqdn,
  isIp,
  isKnownProtocol,
  isTlsProtocol,
  isValidPort,
  namespacedHostProblem,
  reportAt,
  unixAddressProblem,
  type Segments,
} from '../common';
import { checkConnectionPool } from '../destination-rule/check';
import { checkServerTls } from '../gateway/check';
import { checkDestination } from '../virtual-service/check';
import type { IstioEgressListener, IstioIngressListener, SidecarPort, SidecarSpec } from './schema';

export function checkSidecar(spec: SidecarSpec, report: ReportIssue): void {
  if (!spec.egress?.length && !spec.ingress?.length && !spec.outboundTrafficPolicy && !spec.inboundConnectionPool) {
    reportAt(report, [], 'sidecar: empty configuration provided', undefined, 'empty-sidecar');
  }

  const ingressPorts = new Set<number>();
  spec.ingress?.forEach((listener, i) => {
    const at: Segments = ['ingress', i];
    checkIngress(report, at, listener);
    if (ingressPorts.has(listener.port.number)) reportAt(report, [...at, 'port', 'number'], 'ports on IP bound listeners must be unique', listener.port.number, 'duplicate-port');
    ingressPorts.add(listener.port.number);
  });

  const egressPorts = new Set<number>();
  const socketBinds = new Set<string>();
  const egress = spec.egress ?? [];
  let catchAll = -1;
  egress.forEach((listener, i) => {
    const at: Segments = ['egress', i];
    if (!listener.port) {
      // The listener without a port catches everything else, so it can only come last, once.
      if (catchAll >= 0) reportAt(report, at, 'egress can have only one listener with empty port', i, 'invalid-egress');
      else if (i !== egress.length - 1) reportAt(report, at, 'the egress listener with empty port should be the last listener in the list', i, 'invalid-egress');
      catchAll = i;
    } else {
      checkEgressPort(report, at, listener, listener.port);
      if (listener.port.number === 0) {
        const bind = listener.bind ?? '';
        if (socketBinds.has(bind)) reportAt(report, [...at, 'bind'], 'unix domain socket values for listeners must be unique', bind, 'duplicate-port');
        socketBinds.add(bind);
      } else {
        if (egressPorts.has(listener.port.number)) reportAt(report, [...at, 'port', 'number'], 'ports on IP bound listeners must be unique', listener.port.number, 'duplicate-port');
        egressPorts.add(listener.port.number);
      }
    }
    checkEgressHosts(report, at, listener);
  });

  const policy = spec.outboundTrafficPolicy;
  if (policy?.egressProxy) {
    const at: Segments = ['outboundTrafficPolicy', 'egressProxy'];
    if (policy.mode !== 'ALLOW_ANY') {
      reportAt(report, at, 'egressProxy must be set only with ALLOW_ANY outbound traffic policy mode', policy.mode ?? 'REGISTRY_ONLY', 'invalid-egress-proxy');
    } else {
      if (!isFqdn(policy.egressProxy.host)) reportAt(report, [...at, 'host'], 'egressProxy host must be a fully qualified domain name', policy.egressProxy.host, 'invalid-egress-proxy');
      if (policy.egressProxy.port?.number === undefined) reportAt(report, [...at, 'port'], 'egressProxy port must be set', policy.egressProxy.port, 'invalid-egress-proxy');
      checkDestination(report, at, policy.egressProxy);
    }
  }
  checkConnectionPool(report, ['inboundConnectionPool'], spec.inboundConnectionPool);
}

function checkPortCommon(report: ReportIssue, at: Segments, port: SidecarPort): void {
  if (port.name !== undefined && port.name !== '' && !isDns1123Label(port.name)) {
    reportAt(report, [...at, 'name'], 'port name must be a DNS label', port.name, 'invalid-port-name');
  }
  if (port.protocol !== undefined && port.protocol !== '' && !isKnownProtocol(port.protocol)) {
    reportAt(report, [...at, 'protocol'], 'unsupported protocol', port.protocol, 'invalid-protocol');
  }
}

function checkIngress(report: ReportIssue, at: Segments, listener: IstioIngressListener): void {
  checkPortCommon(report, [...at, 'port'], listener.port);
  if (!isValidPort(listener.port.number)) reportAt(report, [...at, 'port', 'number'], 'port must be in the range 1..65535', listener.port.number, 'port-range');
  if (listener.bind && !isIp(listener.bind)) reportAt(report, [...at, 'bind'], 'bind must be an IP address', listener.bind, 'invalid-bind');

  const endpoint = listener.defaultEndpoint;
  if (endpoint) {
    if (endpoint.startsWith(UNIX_ADDRESS_PREFIX)) {
      const problem = unixAddressProblem(endpoint.slice(UNIX_ADDRESS_PREFIX.length));
      if (problem) reportAt(report, [...at, 'defaultEndpoint'], problem, endpoint, 'invalid-default-endpoint');
    } else {
      const colon = endpoint.lastIndexOf(':');
      const host = colon >= 0 ? endpoint.slice(0, colon) : '';
      const port = colon >= 0 ? endpoint.slice(colon + 1) : '';
      if (colon < 0 || (host !== '' && host !== '127.0.0.1' && host !== '0.0.0.0')) {
        reportAt(report, [...at, 'defaultEndpoint'], 'defaultEndpoint must be of form 127.0.0.1:<port>, 0.0.0.0:<port>, unix://filepath, or unset', endpoint, 'invalid-default-endpoint');
      } else if (!/^[0-9]+$/.test(port) || !isValidPort(Number(port))) {
        reportAt(report, [...at, 'defaultEndpoint'], 'defaultEndpoint port must be a number in the range 1..65535', endpoint, 'invalid-default-endpoint');
      }
    }
  }

  const tls = listener.tls;
  if (tls) {
    const where: Segments = [...at, 'tls'];
    if (tls.subjectAltNames?.length) reportAt(report, [...where, 'subjectAltNames'], 'subjectAltNames is not supported in ingress tls', tls.subjectAltNames, 'invalid-tls');
    if (tls.httpsRedirect) reportAt(report, [...where, 'httpsRedirect'], 'httpsRedirect is not supported', tls.httpsRedirect, 'invalid-tls');
    if (tls.credentialName) reportAt(report, [...where, 'credentialName'], 'credentialName is not supported in sidecar ingress tls', tls.credentialName, 'invalid-tls');
    if (tls.mode === 'ISTIO_MUTUAL' || tls.mode === 'AUTO_PASSTHROUGH') {
      reportAt(report, [...where, 'mode'], `cannot set mode to ${tls.mode} in sidecar ingress tls`, tls.mode, 'invalid-tls');
    }
    if (!isTlsProtocol(listener.port.protocol)) {
      reportAt(report, where, 'listener cannot have TLS settings for non HTTPS/TLS ports', listener.port.protocol, 'invalid-tls');
    }
    checkServerTls(report, where, tls);
  }
  checkConnectionPool(report, [...at, 'connectionPool'], listener.connectionPool);
}

function checkEgressPort(report: ReportIssue, at: Segments, listener: IstioEgressListener, port: SidecarPort): void {
  checkPortCommon(report, [...at, 'port'], port);
  const bind = listener.bind ?? '';
  if (port.number === 0) {
    // Port 0 means "listen on a unix domain socket" rather than an IP port.
    if (!bind.startsWith(UNIX_ADDRESS_PREFIX)) {
      reportAt(report, [...at, 'bind'], 'ports with 0 value must have a unix domain socket bind address', bind, 'invalid-bind');
    } else {
      const problem = unixAddressProblem(bind.slice(UNIX_ADDRESS_PREFIX.length));
      if (problem) reportAt(report, [...at, 'bind'], problem, bind, 'invalid-bind');
    }
    if (listener.captureMode !== undefined && listener.captureMode !== 'DEFAULT' && listener.captureMode !== 'NONE') {
      reportAt(report, [...at, 'captureMode'], 'captureMode must be DEFAULT or NONE for unix domain socket listeners', listener.captureMode, 'invalid-bind');
    }
    return;
  }
  if (!isValidPort(port.number)) reportAt(report, [...at, 'port', 'number'], 'port must be in the range 1..65535', port.number, 'port-range');
  if (bind !== '' && !isIp(bind)) reportAt(report, [...at, 'bind'], 'bind must be an IP address', bind, 'invalid-bind');
}

function checkEgressHosts(report: ReportIssue, at: Segments, listener: IstioEgressListener): void {
  if (listener.hosts.length === 0) {
    reportAt(report, [...at, 'hosts'], 'egress listener must contain at least one host', listener.hosts, 'missing-host');
    return;
  }
  const byNamespace = new Map<string, Set<string>>();
  listener.hosts.forEach((host, i) => {
    const problem = namespacedHostProblem(host, false);
    if (problem) {
      reportAt(report, [...at, 'hosts', i], problem, host, 'invalid-host');
      return;
    }
    const slash = host.indexOf('/');
    const ns = host.slice(0, slash);
    const name = host.slice(slash + 1);
    const seen = byNamespace.get(ns) ?? new Set<string>();
    const duplicate = name === '*' ? seen.size > 0 : seen.has(name) || seen.has('*');
    if (duplicate) reportAt(report, [...at, 'hosts', i], 'duplicated egress host', host, 'duplicate-egress-host');
    seen.add(name);
    byNamespace.set(ns, seen);
  });
}
