// Gateway rules beyond the schema, following Istio's validation: servers and hosts present, port
// names unique, protocols known, binds valid, TLS settings consistent with the mode and protocol.
import type { ReportIssue } from '../../config/kind';
import {
  UNIX_ADDRESS_PREFIX,
  isHttpLikeProtocol,
  isIp,
  isKnownProtocol,
  isTlsProtocol,
  isValidPort,
  namespacedHostProblem,
  reportAt,
  unixAddressProblem,
  type Segments,
} from '../common';
import type { GatewaySpec, Port, Server, ServerTLSSettings } from './schema';

export function checkGateway(spec: GatewaySpec, report: ReportIssue): void {
  const servers = spec.servers ?? [];
  if (servers.length === 0) reportAt(report, ['servers'], 'gateway must have at least one server', spec.servers, 'missing-server');
  const portNames = new Map<string, number>();
  servers.forEach((server, i) => {
    const at: Segments = ['servers', i];
    checkServer(report, at, server);
    const name = server.port.name;
    if (name !== undefined) {
      if (portNames.has(name)) reportAt(report, [...at, 'port', 'name'], `port names in servers must be unique (also used by servers[${portNames.get(name)}])`, name, 'duplicate-port');
      else portNames.set(name, i);
    }
    if (server.tls?.httpsRedirect && !isHttpLikeProtocol(server.port.protocol)) {
      reportAt(report, [...at, 'tls', 'httpsRedirect'], 'httpsRedirect should only be used with HTTP servers', true, 'https-redirect-non-http');
    }
  });
}

function checkServer(report: ReportIssue, at: Segments, server: Server): void {
  const hosts = server.hosts ?? [];
  if (hosts.length === 0) reportAt(report, [...at, 'hosts'], 'server must contain at least one host', server.hosts, 'missing-host');
  hosts.forEach((host, i) => {
    const problem = namespacedHostProblem(host, true);
    if (problem) reportAt(report, [...at, 'hosts', i], problem, host, 'invalid-host');
  });
  const portOk = checkServerPort(report, [...at, 'port'], server.port);
  checkBind(report, at, server.port, server.bind);
  checkServerTls(report, [...at, 'tls'], server.tls);
  if (!portOk) return;
  const protocol = server.port.protocol;
  if (isTlsProtocol(protocol) && !server.tls) {
    reportAt(report, [...at, 'tls'], 'server must have TLS settings for HTTPS/TLS protocols', protocol, 'missing-tls');
  } else if (!isTlsProtocol(protocol) && server.tls) {
    const tls = server.tls;
    // Plain HTTP servers may carry `tls: {httpsRedirect: true}` and nothing else.
    const redirectOnly = tls.httpsRedirect === true && !tls.mode && !tls.serverCertificate && !tls.privateKey && !tls.caCertificates && !tls.credentialName;
    if (!isHttpLikeProtocol(protocol)) {
      reportAt(report, [...at, 'tls'], 'server cannot have TLS settings for non HTTPS/TLS ports', protocol, 'invalid-tls');
    } else if (!redirectOnly) {
      reportAt(report, [...at, 'tls'], 'server cannot have TLS settings for plain text HTTP ports', protocol, 'invalid-tls');
    }
  }
}

function checkServerPort(report: ReportIssue, at: Segments, port: Port): boolean {
  let ok = true;
  if (!isKnownProtocol(port.protocol)) {
    reportAt(report, [...at, 'protocol'], 'invalid protocol, supported protocols are HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP, TLS', port.protocol, 'invalid-protocol');
    ok = false;
  }
  if (port.number > 0 && !isValidPort(port.number)) {
    reportAt(report, [...at, 'number'], 'port must be in the range 1..65535', port.number, 'port-range');
    ok = false;
  }
  if (!port.name) {
    reportAt(report, [...at, 'name'], 'port name must be set', port.name, 'missing-port-name');
    ok = false;
  }
  return ok;
}

function checkBind(report: ReportIssue, at: Segments, port: Port, bind: string | undefined): void {
  if (bind === undefined || bind === '') return;
  if (bind.startsWith(UNIX_ADDRESS_PREFIX)) {
    const problem = unixAddressProblem(bind.slice(UNIX_ADDRESS_PREFIX.length));
    if (problem) reportAt(report, [...at, 'bind'], problem, bind, 'invalid-bind');
    if (port.number !== 0) reportAt(report, [...at, 'port', 'number'], 'port number must be 0 for a unix domain socket bind', port.number, 'invalid-bind');
  } else if (!isIp(bind)) {
    reportAt(report, [...at, 'bind'], 'bind must be an IP address or unix://path', bind, 'invalid-bind');
  }
}

const TLS_VERSION_ORDER = ['TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'];

/** Server-side TLS settings as Istio validates them for Gateway servers and Sidecar ingress. */
export function checkServerTls(report: ReportIssue, at: Segments, tls: ServerTLSSettings | undefined): void {
  if (!tls) return;
  const hasFileCerts = Boolean(tls.serverCertificate || tls.privateKey || tls.caCertificates);
  const credentials = [tls.credentialName ? 'credentialName' : '', tls.credentialNames?.length ? 'credentialNames' : '', tls.tlsCertificates?.length ? 'tlsCertificates' : '']
    .filter((x) => x !== '');
  if (credentials.length > 1) {
    reportAt(report, at, `only one of credentialName, credentialNames or tlsCertificates may be set, got ${credentials.join(' and ')}`, tls, 'invalid-tls');
  }
  const min = tls.minProtocolVersion;
  const max = tls.maxProtocolVersion;
  if (min && max && min !== 'TLS_AUTO' && max !== 'TLS_AUTO' && TLS_VERSION_ORDER.indexOf(min) > TLS_VERSION_ORDER.indexOf(max)) {
    reportAt(report, [...at, 'minProtocolVersion'], `minProtocolVersion is higher than maxProtocolVersion ${max}`, min, 'invalid-tls');
  }
  switch (tls.mode) {
    case 'ISTIO_MUTUAL':
      // The mesh certificate is used; any other material would be silently ignored, so Istio refuses it.
      for (const key of ['serverCertificate', 'privateKey', 'caCertificates', 'credentialName'] as const) {
        if (tls[key]) reportAt(report, [...at, key], `ISTIO_MUTUAL TLS cannot have an associated ${key}`, tls[key], 'invalid-tls');
      }
      return;
    case 'PASSTHROUGH':
    case 'AUTO_PASSTHROUGH':
      if (hasFileCerts || credentials.length > 0) reportAt(report, at, `${tls.mode} mode does not use certificates, they will be ignored`, tls.mode, 'ignored-certificates');
      return;
    case 'SIMPLE':
    case 'MUTUAL':
    case 'OPTIONAL_MUTUAL': {
      if (credentials.length > 0) return;
      if (!tls.serverCertificate) reportAt(report, [...at, 'serverCertificate'], `${tls.mode} TLS requires a server certificate`, undefined, 'invalid-tls');
      if (!tls.privateKey) reportAt(report, [...at, 'privateKey'], `${tls.mode} TLS requires a private key`, undefined, 'invalid-tls');
      if (tls.mode !== 'SIMPLE' && !tls.caCertificates) reportAt(report, [...at, 'caCertificates'], `${tls.mode} TLS requires a client CA bundle`, undefined, 'invalid-tls');
      return;
    }
    default:
      return;
  }
}
