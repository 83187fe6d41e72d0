// DestinationRule rules beyond the schema, following Istio's validation: host syntax, non-empty
// policies, durations, outlier/pool limits, locality LB consistency, TLS material, subsets, exportTo;
// and warnings for settings that contradict each other or that mesh-agent cannot honour.
import type { ReportIssue } from '../../config/kind';
import {
  checkDuration,
  checkExportTo,
  isDns1123Label,
  isWildcardDomain,
  reportAt,
  type Segments,
} from '../common';
import type {
  ClientTLSSettings,
  ConnectionPoolSettings,
  DestinationRuleSpec,
  LoadBalancerSettings,
  LocalityLoadBalancerSetting,
  OutlierDetection,
  TrafficPolicy,
} from './schema';

export function checkDestinationRule(spec: DestinationRuleSpec, report: ReportIssue): void {
  if (!isWildcardDomain(spec.host)) {
    reportAt(report, ['host'], 'host must be a service name or DNS name, optionally with a leading wildcard', spec.host, 'invalid-host');
  }
  checkTrafficPolicy(report, ['trafficPolicy'], spec.trafficPolicy);
  const ruleHasOutlier = spec.trafficPolicy?.outlierDetection !== undefined;
  checkFailoverNeedsOutlier(report, ['trafficPolicy'], spec.trafficPolicy, false);

  const names = new Set<string>();
  spec.subsets?.forEach((subset, i) => {
    const at: Segments = ['subsets', i];
    if (!isDns1123Label(subset.name)) reportAt(report, [...at, 'name'], 'subset name must be a DNS label', subset.name, 'invalid-subset');
    if (names.has(subset.name)) reportAt(report, [...at, 'name'], 'duplicate subset name', subset.name, 'duplicate-subset');
    names.add(subset.name);
    checkTrafficPolicy(report, [...at, 'trafficPolicy'], subset.trafficPolicy);
    // A subset inherits the rule's outlier detection unless it sets its own.
    checkFailoverNeedsOutlier(report, [...at, 'trafficPolicy'], subset.trafficPolicy, ruleHasOutlier);
  });

  checkExportTo(report, ['exportTo'], spec.exportTo, false);
  // A rule scoped to some workloads cannot be offered to other namespaces' workloads.
  if (spec.workloadSelector && spec.exportTo?.some((e) => e !== '.')) {
    reportAt(report, ['exportTo'], 'destination rule with workloadSelector can only be exported to its own namespace (".")', spec.exportTo, 'invalid-export-to');
  }
}

export function checkTrafficPolicy(report: ReportIssue, at: Segments, policy: TrafficPolicy | undefined): void {
  if (!policy) return;
  const empty = !policy.loadBalancer && !policy.connectionPool && !policy.outlierDetection && !policy.tls
    && !policy.portLevelSettings && !policy.tunnel && !policy.proxyProtocol && !policy.retryBudget;
  if (empty) reportAt(report, at, 'traffic policy must have at least one field', policy, 'empty-policy');
  checkOutlierDetection(report, [...at, 'outlierDetection'], policy.outlierDetection);
  checkConnectionPool(report, [...at, 'connectionPool'], policy.connectionPool);
  checkLoadBalancer(report, [...at, 'loadBalancer'], policy.loadBalancer);
  checkClientTls(report, [...at, 'tls'], policy.tls);
  policy.portLevelSettings?.forEach((portPolicy, i) => {
    const where: Segments = [...at, 'portLevelSettings', i];
    if (portPolicy.port?.number === undefined) reportAt(report, [...where, 'port'], 'port level traffic policy must have a port number', portPolicy.port, 'missing-port');
    if (!portPolicy.loadBalancer && !portPolicy.connectionPool && !portPolicy.outlierDetection && !portPolicy.tls) {
      reportAt(report, where, 'port traffic policy must have at least one field', portPolicy, 'empty-policy');
    }
    checkOutlierDetection(report, [...where, 'outlierDetection'], portPolicy.outlierDetection);
    checkConnectionPool(report, [...where, 'connectionPool'], portPolicy.connectionPool);
    checkLoadBalancer(report, [...where, 'loadBalancer'], portPolicy.loadBalancer);
    checkClientTls(report, [...where, 'tls'], portPolicy.tls);
  });
}

/**
 * Istio turns locality failover on only when outlier detection is configured (failover needs
 * something that marks endpoints unhealthy), so failover settings without it do nothing.
 * Port-level settings replace the rule's components wholesale, so they need their own.
 */
function checkFailoverNeedsOutlier(report: ReportIssue, at: Segments, policy: TrafficPolicy | undefined, inherited: boolean): void {
  if (!policy) return;
  const check = (where: Segments, lb: LoadBalancerSettings | undefined, hasOutlier: boolean): void => {
    const locality = lb?.localityLbSetting;
    if (!locality || locality.enabled === false || hasOutlier) return;
    const field = (locality.failover?.length ?? 0) > 0 ? 'failover' : (locality.failoverPriority?.length ?? 0) > 0 ? 'failoverPriority' : undefined;
    if (field === undefined) return;
    reportAt(report, [...where, 'loadBalancer', 'localityLbSetting', field], 'locality failover is only active with outlierDetection (as in Istio); add outlierDetection to this traffic policy', locality[field], 'failover-without-outlier-detection');
  };
  check(at, policy.loadBalancer, inherited || policy.outlierDetection !== undefined);
  policy.portLevelSettings?.forEach((portPolicy, i) => check([...at, 'portLevelSettings', i], portPolicy.loadBalancer, portPolicy.outlierDetection !== undefined));
}

function checkOutlierDetection(report: ReportIssue, at: Segments, outlier: OutlierDetection | undefined): void {
  if (!outlier) return;
  // Envoy's consecutive_5xx defaults to 5 and gateway ejection is off unless stated: with 5xx
  // ejection explicitly 0 and nothing else enabled, no endpoint is ever ejected.
  const gateway = outlier.consecutiveGatewayErrors ?? 0;
  const legacy = outlier.consecutiveErrors ?? 0;
  const localOrigin = outlier.splitExternalLocalOriginErrors ? (outlier.consecutiveLocalOriginFailures ?? 5) : 0;
  if (outlier.consecutive5xxErrors === 0 && gateway === 0 && legacy === 0 && localOrigin === 0) {
    reportAt(report, [...at, 'consecutive5xxErrors'], 'outlier detection never ejects: consecutive5xxErrors is 0 and neither consecutiveGatewayErrors nor local-origin failures are enabled, so interval, baseEjectionTime and maxEjectionPercent have no effect', outlier.consecutive5xxErrors, 'outlier-never-ejects');
  }
  checkDuration(report, [...at, 'baseEjectionTime'], outlier.baseEjectionTime);
  checkDuration(report, [...at, 'interval'], outlier.interval);
  if (outlier.consecutiveErrors !== undefined && outlier.consecutiveErrors !== 0) {
    reportAt(report, [...at, 'consecutiveErrors'], 'consecutiveErrors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors', outlier.consecutiveErrors, 'deprecated-field');
  }
  if (!outlier.splitExternalLocalOriginErrors && (outlier.consecutiveLocalOriginFailures ?? 0) > 0) {
    reportAt(report, [...at, 'consecutiveLocalOriginFailures'], 'consecutiveLocalOriginFailures requires splitExternalLocalOriginErrors: true', outlier.consecutiveLocalOriginFailures, 'invalid-outlier');
  }
  for (const key of ['maxEjectionPercent', 'minHealthPercent'] as const) {
    const value = outlier[key];
    if (value !== undefined && (value < 0 || value > 100)) reportAt(report, [...at, key], 'percentage must be in the range 0..100', value, 'percent-range');
  }
}

export function checkConnectionPool(report: ReportIssue, at: Segments, pool: ConnectionPoolSettings | undefined): void {
  if (!pool) return;
  if (!pool.http && !pool.tcp) reportAt(report, at, 'connection pool must have at least one of tcp or http', pool, 'empty-policy');
  const http = pool.http;
  if (http) {
    for (const key of ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'maxConcurrentStreams'] as const) {
      const value = http[key];
      if (value !== undefined && value < 0) reportAt(report, [...at, 'http', key], 'must be non-negative', value, 'negative-value');
    }
    checkDuration(report, [...at, 'http', 'idleTimeout'], http.idleTimeout);
    if (http.h2UpgradePolicy === 'UPGRADE' && http.useClientProtocol) {
      reportAt(report, [...at, 'http', 'useClientProtocol'], 'useClientProtocol must not be true when h2UpgradePolicy is UPGRADE', http.useClientProtocol, 'invalid-pool');
    }
  }
  const tcp = pool.tcp;
  if (tcp) {
    if (tcp.maxConnections !== undefined && tcp.maxConnections < 0) reportAt(report, [...at, 'tcp', 'maxConnections'], 'must be non-negative', tcp.maxConnections, 'negative-value');
    checkDuration(report, [...at, 'tcp', 'connectTimeout'], tcp.connectTimeout);
    checkDuration(report, [...at, 'tcp', 'maxConnectionDuration'], tcp.maxConnectionDuration);
    checkDuration(report, [...at, 'tcp', 'idleTimeout'], tcp.idleTimeout);
    checkDuration(report, [...at, 'tcp', 'tcpKeepalive', 'time'], tcp.tcpKeepalive?.time);
    checkDuration(report, [...at, 'tcp', 'tcpKeepalive', 'interval'], tcp.tcpKeepalive?.interval);
    // Valid Istio, but Node sets only the keepalive idle time: mesh-agent NACKs clusters with these.
    if ((tcp.tcpKeepalive?.probes ?? 0) > 0) {
      reportAt(report, [...at, 'tcp', 'tcpKeepalive', 'probes'], 'mesh-agent cannot set the keepalive probe count (Node has no TCP_KEEPCNT) and rejects this cluster, keeping its previous config; remove it to use the host\'s net.ipv4.tcp_keepalive_probes', tcp.tcpKeepalive?.probes, 'agent-unsupported');
    }
    if (tcp.tcpKeepalive?.interval !== undefined) {
      reportAt(report, [...at, 'tcp', 'tcpKeepalive', 'interval'], 'mesh-agent cannot set the keepalive probe interval (Node has no TCP_KEEPINTVL) and rejects this cluster, keeping its previous config; remove it to use the host\'s net.ipv4.tcp_keepalive_intvl', tcp.tcpKeepalive.interval, 'agent-unsupported');
    }
  }
}

function checkLoadBalancer(report: ReportIssue, at: Segments, lb: LoadBalancerSettings | undefined): void {
  if (!lb) return;
  const hash = lb.consistentHash;
  if (hash) {
    const cookie = hash.httpCookie;
    if (cookie) {
      if (cookie.name === '') reportAt(report, [...at, 'consistentHash', 'httpCookie', 'name'], 'name required for httpCookie', cookie.name, 'invalid-lb');
      // Envoy generates the cookie only when a TTL is given; Istio requires it (0s means session cookie).
      if (cookie.ttl === undefined) reportAt(report, [...at, 'consistentHash', 'httpCookie', 'ttl'], 'ttl required for httpCookie', undefined, 'invalid-lb');
    }
    if (hash.minimumRingSize !== undefined) {
      if (hash.ringHash || hash.maglev) {
        reportAt(report, [...at, 'consistentHash', 'minimumRingSize'], 'minimumRingSize cannot be combined with ringHash or maglev', hash.minimumRingSize, 'invalid-lb');
      } else {
        reportAt(report, [...at, 'consistentHash', 'minimumRingSize'], 'minimumRingSize is deprecated, use ringHash.minimumRingSize', hash.minimumRingSize, 'deprecated-field');
      }
    }
  }
  checkLocalityLb(report, [...at, 'localityLbSetting'], lb.localityLbSetting);
  checkDuration(report, [...at, 'warmupDurationSecs'], lb.warmupDurationSecs);
  if (lb.warmup) checkDuration(report, [...at, 'warmup', 'duration'], lb.warmup.duration);
  if (lb.warmup && lb.warmupDurationSecs !== undefined) {
    reportAt(report, [...at, 'warmupDurationSecs'], 'only one of warmup or warmupDurationSecs may be set', lb.warmupDurationSecs, 'invalid-lb');
  }
}

/** Istio's validateLocalityLbSetting: distribute or failover, weights summing to 100, distinct regions. */
function checkLocalityLb(report: ReportIssue, at: Segments, locality: LocalityLoadBalancerSetting | undefined): void {
  if (!locality) return;
  if (locality.enabled === false && ((locality.distribute?.length ?? 0) > 0 || (locality.failover?.length ?? 0) > 0 || (locality.failoverPriority?.length ?? 0) > 0)) {
    reportAt(report, [...at, 'enabled'], 'locality load balancing is disabled, so distribute, failover and failoverPriority are ignored', locality.enabled, 'locality-lb-disabled');
  }
  const distribute = locality.distribute ?? [];
  const failover = locality.failover ?? [];
  if (distribute.length > 0 && failover.length > 0) {
    reportAt(report, at, 'can not simultaneously specify distribute and failover', locality, 'invalid-locality-lb');
  }
  const fromSeen = new Set<string>();
  distribute.forEach((entry, i) => {
    const where: Segments = [...at, 'distribute', i];
    const from = entry.from ?? '';
    if (fromSeen.has(from)) reportAt(report, [...where, 'from'], 'locality may not be distributed from more than once', from, 'invalid-locality-lb');
    fromSeen.add(from);
    checkLocalityPattern(report, [...where, 'from'], from);
    let sum = 0;
    for (const [to, weight] of Object.entries(entry.to ?? {})) {
      checkLocalityPattern(report, [...where, 'to', to], to);
      sum += weight;
    }
    if (sum !== 100) reportAt(report, [...where, 'to'], `locality weights must sum to 100, got ${sum}`, sum, 'weights-sum');
  });
  failover.forEach((entry, i) => {
    const where: Segments = [...at, 'failover', i];
    if (!entry.from || entry.from.includes('/')) reportAt(report, [...where, 'from'], 'failover from must be a region', entry.from, 'invalid-locality-lb');
    if (!entry.to || entry.to.includes('/')) reportAt(report, [...where, 'to'], 'failover to must be a region', entry.to, 'invalid-locality-lb');
    if (entry.from && entry.from === entry.to) reportAt(report, [...where, 'to'], 'failover from and to must be different regions', entry.to, 'invalid-locality-lb');
  });
}

/** `region/zone/subzone` with `*` allowed only as a whole, last segment. */
function checkLocalityPattern(report: ReportIssue, at: Segments, pattern: string): void {
  if (pattern === '') {
    reportAt(report, at, 'locality must not be empty', pattern, 'invalid-locality-lb');
    return;
  }
  const parts = pattern.split('/');
  const bad = parts.length > 3 || parts.some((part, i) => part === '' || (part.includes('*') && (part !== '*' || i !== parts.length - 1)));
  if (bad) reportAt(report, at, 'locality must be region[/zone[/subzone]] with * only as the last segment', pattern, 'invalid-locality-lb');
}

function checkClientTls(report: ReportIssue, at: Segments, tls: ClientTLSSettings | undefined): void {
  if (!tls) return;
  if ((tls.mode === 'SIMPLE' || tls.mode === 'MUTUAL') && tls.credentialName) {
    if (tls.clientCertificate || tls.privateKey || tls.caCertificates) {
      reportAt(report, [...at, 'credentialName'], 'cannot specify client certificates or CA certificate when credentialName is set', tls.credentialName, 'invalid-tls');
    }
    return;
  }
  if (tls.mode === 'MUTUAL') {
    if (!tls.clientCertificate) reportAt(report, [...at, 'clientCertificate'], 'client certificate required for mutual tls', undefined, 'invalid-tls');
    if (!tls.privateKey) reportAt(report, [...at, 'privateKey'], 'private key required for mutual tls', undefined, 'invalid-tls');
  }
}
