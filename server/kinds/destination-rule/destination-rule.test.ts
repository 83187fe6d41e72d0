// Tests of the DestinationRule schema and checks: Istio's documented examples pass, and each rule
// (load balancer oneof, pools, outlier detection, locality weights, TLS, subsets) reports its path.
import test from 'ava';
import { issueAt, lines, validateYaml } from '../testing';
import { destinationRuleKind } from './schema';

const dr = (yaml: string) => validateYaml(destinationRuleKind, yaml);

test('the documented bookinfo-ratings rule with subsets, pools, outlier detection and TLS is accepted', (t) => {
  const result = dr(`
host: ratings.prod.svc.cluster.local
exportTo: ["*"]
trafficPolicy:
  loadBalancer:
    simple: LEAST_REQUEST
    warmupDurationSecs: 60s
  connectionPool:
    tcp:
      maxConnections: 100
      connectTimeout: 30ms
      tcpKeepalive:
        probes: 5
        time: 7200s
        interval: 75s
      maxConnectionDuration: 1h
      idleTimeout: 1h
    http:
      http1MaxPendingRequests: 1024
      http2MaxRequests: 1000
      maxRequestsPerConnection: 10
      maxRetries: 3
      idleTimeout: 60s
      h2UpgradePolicy: UPGRADE
      maxConcurrentStreams: 100
  outlierDetection:
    consecutive5xxErrors: 7
    consecutiveGatewayErrors: 5
    splitExternalLocalOriginErrors: true
    consecutiveLocalOriginFailures: 3
    interval: 5m
    baseEjectionTime: 15m
    maxEjectionPercent: 50
    minHealthPercent: 10
  tls:
    mode: MUTUAL
    clientCertificate: /etc/certs/myclientcert.pem
    privateKey: /etc/certs/client_private_key.pem
    caCertificates: /etc/certs/rootcacerts.pem
    subjectAltNames: [ratings.example.com]
    sni: ratings.example.com
  portLevelSettings:
  - port: {number: 80}
    loadBalancer: {simple: LEAST_REQUEST}
  - port: {number: 9080}
    loadBalancer:
      consistentHash:
        httpCookie: {name: user, ttl: 0s, path: /, attributes: [{name: SameSite, value: Strict}]}
        ringHash: {minimumRingSize: 1024}
  proxyProtocol: {version: V2}
  retryBudget: {percent: 20, minRetryConcurrency: 3}
subsets:
- name: testversion
  labels:
    version: v3
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
- name: v1
  labels: {version: v1}
`);
  t.deepEqual(lines(result.issues), []);
  // Valid Istio; only the keepalive parts mesh-agent cannot honour are flagged.
  t.deepEqual(result.issues.filter((i) => i.severity === 'warning').map((i) => [i.path, i.code]), [
    ['trafficPolicy.connectionPool.tcp.tcpKeepalive.probes', 'agent-unsupported'],
    ['trafficPolicy.connectionPool.tcp.tcpKeepalive.interval', 'agent-unsupported'],
  ]);
  t.is(result.spec?.subsets?.[0]?.labels?.['version'], 'v3');
});

test('the documented locality distribute and failover settings are accepted', (t) => {
  const distribute = dr(`
host: helloworld.sample.svc.cluster.local
trafficPolicy:
  loadBalancer:
    localityLbSetting:
      enabled: true
      distribute:
      - from: us-west/zone1/*
        to:
          "us-west/zone1/*": 80
          "us-west/zone2/*": 20
      - from: us-west/zone2/*
        to:
          "us-west/zone1/*": 20
          "us-west/zone2/*": 80
`);
  t.deepEqual(distribute.issues, []);
  const failover = dr(`
host: helloworld.sample.svc.cluster.local
trafficPolicy:
  connectionPool: {http: {maxRequestsPerConnection: 1}}
  loadBalancer:
    simple: ROUND_ROBIN
    localityLbSetting:
      enabled: true
      failover: [{from: us-east, to: eu-west}, {from: us-west, to: us-east}]
  outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 1m}
`);
  t.deepEqual(failover.issues, []);
});

test('locality distribute weights must sum to 100', (t) => {
  const result = dr(`
host: a.b.svc.cluster.local
trafficPolicy:
  loadBalancer:
    localityLbSetting:
      distribute: [{from: "us-west/*", to: {"us-west/*": 60, "us-east/*": 30}}]
`);
  const issue = issueAt(result.issues, 'trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to');
  t.is(issue?.message, 'locality weights must sum to 100, got 90');
  t.is(issue?.code, 'weights-sum');
});

test('distribute and failover cannot both be set, and failover regions differ', (t) => {
  const result = dr(`
host: a
trafficPolicy:
  loadBalancer:
    localityLbSetting:
      distribute: [{from: "r1/*", to: {"r1/*": 100}}]
      failover: [{from: r1, to: r1}]
`);
  t.is(issueAt(result.issues, 'trafficPolicy.loadBalancer.localityLbSetting')?.message, 'can not simultaneously specify distribute and failover');
  t.is(issueAt(result.issues, 'trafficPolicy.loadBalancer.localityLbSetting.failover[0].to')?.message, 'failover from and to must be different regions');
});

test('simple and consistentHash are a oneof', (t) => {
  const result = dr(`{host: a, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN, consistentHash: {useSourceIp: true}}}}`);
  t.regex(issueAt(result.issues, 'trafficPolicy.loadBalancer')?.message ?? '', /only one of simple, consistentHash/);
});

test('consistent hash keys are a oneof, and a cookie needs a ttl', (t) => {
  const keys = dr(`{host: a, trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user, useSourceIp: true}}}}`);
  t.regex(issueAt(keys.issues, 'trafficPolicy.loadBalancer.consistentHash')?.message ?? '', /only one of httpHeaderName/);
  const cookie = dr(`{host: a, trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: user}}}}}`);
  t.is(issueAt(cookie.issues, 'trafficPolicy.loadBalancer.consistentHash.httpCookie.ttl')?.message, 'ttl required for httpCookie');
});

test('an unknown load balancing policy name is rejected at its path', (t) => {
  const result = dr(`{host: a, trafficPolicy: {loadBalancer: {simple: FASTEST}}}`);
  t.truthy(issueAt(result.issues, 'trafficPolicy.loadBalancer.simple'));
});

test('an unknown field deep in the connection pool is reported at its path', (t) => {
  const result = dr(`{host: a, trafficPolicy: {connectionPool: {tcp: {maxConnection: 10}}}}`);
  t.is(issueAt(result.issues, 'trafficPolicy.connectionPool.tcp.maxConnection')?.code, 'unknown-field');
});

test('a wrong type in subsets is reported at its path', (t) => {
  const result = dr(`{host: a, subsets: [{name: v1, labels: {version: 1}}]}`);
  t.is(issueAt(result.issues, 'subsets[0].labels.version')?.code, 'invalid-type');
});

test('durations in pools and outlier detection must be at least 1ms', (t) => {
  const result = dr(`{host: a, trafficPolicy: {connectionPool: {tcp: {connectTimeout: 0s}}, outlierDetection: {interval: 500us}}}`);
  t.is(issueAt(result.issues, 'trafficPolicy.connectionPool.tcp.connectTimeout')?.message, 'duration must be at least 1ms');
  t.is(issueAt(result.issues, 'trafficPolicy.outlierDetection.interval')?.message, 'duration must be at least 1ms');
});

test('negative pool limits and out-of-range ejection percentages are errors', (t) => {
  const result = dr(`{host: a, trafficPolicy: {connectionPool: {http: {maxRetries: -1}}, outlierDetection: {maxEjectionPercent: 150}}}`);
  t.is(issueAt(result.issues, 'trafficPolicy.connectionPool.http.maxRetries')?.message, 'must be non-negative');
  t.is(issueAt(result.issues, 'trafficPolicy.outlierDetection.maxEjectionPercent')?.message, 'percentage must be in the range 0..100');
});

test('local origin failures need splitExternalLocalOriginErrors; consecutiveErrors is deprecated', (t) => {
  const result = dr(`{host: a, trafficPolicy: {outlierDetection: {consecutiveLocalOriginFailures: 5, consecutiveErrors: 3}}}`);
  t.is(issueAt(result.issues, 'trafficPolicy.outlierDetection.consecutiveLocalOriginFailures')?.severity, 'error');
  t.is(issueAt(result.issues, 'trafficPolicy.outlierDetection.consecutiveErrors')?.severity, 'warning');
});

test('UPGRADE with useClientProtocol is contradictory', (t) => {
  const result = dr(`{host: a, trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}}}`);
  t.is(issueAt(result.issues, 'trafficPolicy.connectionPool.http.useClientProtocol')?.code, 'invalid-pool');
});

test('MUTUAL TLS needs a client certificate and key unless credentialName is set', (t) => {
  const result = dr(`{host: a, trafficPolicy: {tls: {mode: MUTUAL, caCertificates: /ca.pem}}}`);
  t.is(issueAt(result.issues, 'trafficPolicy.tls.clientCertificate')?.message, 'client certificate required for mutual tls');
  t.is(issueAt(result.issues, 'trafficPolicy.tls.privateKey')?.message, 'private key required for mutual tls');
  t.deepEqual(dr(`{host: a, trafficPolicy: {tls: {mode: MUTUAL, credentialName: client-credential}}}`).issues, []);
  const mixed = dr(`{host: a, trafficPolicy: {tls: {mode: SIMPLE, credentialName: c, caCertificates: /ca.pem}}}`);
  t.is(issueAt(mixed.issues, 'trafficPolicy.tls.credentialName')?.code, 'invalid-tls');
});

test('empty traffic policies and port-level settings without a port are errors', (t) => {
  const result = dr(`{host: a, trafficPolicy: {portLevelSettings: [{loadBalancer: {simple: RANDOM}}, {port: {number: 80}}]}, subsets: [{name: v1, trafficPolicy: {}}]}`);
  t.is(issueAt(result.issues, 'trafficPolicy.portLevelSettings[0].port')?.message, 'port level traffic policy must have a port number');
  t.is(issueAt(result.issues, 'trafficPolicy.portLevelSettings[1]')?.message, 'port traffic policy must have at least one field');
  t.is(issueAt(result.issues, 'subsets[0].trafficPolicy')?.message, 'traffic policy must have at least one field');
});

test('subset names must be DNS labels and unique', (t) => {
  const result = dr(`{host: a, subsets: [{name: v1}, {name: v1}, {name: "v_2"}]}`);
  t.is(issueAt(result.issues, 'subsets[1].name')?.message, 'duplicate subset name');
  t.is(issueAt(result.issues, 'subsets[2].name')?.message, 'subset name must be a DNS label');
});

test('host syntax, exportTo entries and workloadSelector scope are checked', (t) => {
  const result = dr(`{host: "bad host", exportTo: [".", "."]}`);
  t.is(issueAt(result.issues, 'host')?.code, 'invalid-host');
  t.is(issueAt(result.issues, 'exportTo[1]')?.message, 'duplicate entry in exportTo');
  const selector = dr(`{host: a, workloadSelector: {matchLabels: {app: a}}, exportTo: ["*"]}`);
  t.is(issueAt(selector.issues, 'exportTo')?.code, 'invalid-export-to');
});

test('selector labels reject wildcards', (t) => {
  const result = dr(`{host: a, workloadSelector: {matchLabels: {app: "*"}}}`);
  t.is(issueAt(result.issues, 'workloadSelector.matchLabels.app')?.message, 'wildcard is not supported in labels or selectors');
});

test('warmup and warmupDurationSecs are exclusive; the deprecated minimumRingSize warns', (t) => {
  const result = dr(`{host: a, trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 10s, warmup: {duration: 10s, minimumPercent: 10, aggression: 1.5}}}}`);
  t.is(issueAt(result.issues, 'trafficPolicy.loadBalancer.warmupDurationSecs')?.message, 'only one of warmup or warmupDurationSecs may be set');
  const ring = dr(`{host: a, trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 1024}}}}`);
  t.is(issueAt(ring.issues, 'trafficPolicy.loadBalancer.consistentHash.minimumRingSize')?.severity, 'warning');
  const both = dr(`{host: a, trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 1024, maglev: {tableSize: 65537}}}}}`);
  t.is(issueAt(both.issues, 'trafficPolicy.loadBalancer.consistentHash.minimumRingSize')?.code, 'invalid-lb');
});

test('locality patterns allow * only as the last segment', (t) => {
  const result = dr(`{host: a, trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: "*/zone1", to: {"us/*": 100}}]}}}}`);
  t.is(issueAt(result.issues, 'trafficPolicy.loadBalancer.localityLbSetting.distribute[0].from')?.code, 'invalid-locality-lb');
});

test('outlier detection that can never eject is a warning naming the field', (t) => {
  const result = dr(`{host: a, trafficPolicy: {outlierDetection: {consecutive5xxErrors: 0, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}}}`);
  const issue = issueAt(result.issues, 'trafficPolicy.outlierDetection.consecutive5xxErrors');
  t.like(issue, { severity: 'warning', code: 'outlier-never-ejects' });
  t.regex(issue?.message ?? '', /never ejects/);
  t.is(issueAt(dr(`{host: a, trafficPolicy: {outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 3}}}`).issues, 'trafficPolicy.outlierDetection.consecutive5xxErrors'), undefined);
  t.is(issueAt(dr(`{host: a, trafficPolicy: {outlierDetection: {interval: 10s}}}`).issues, 'trafficPolicy.outlierDetection.consecutive5xxErrors'), undefined, 'unset means Envoy\'s 5');
});

test('locality failover without outlier detection does nothing, as in Istio: a warning at the failover field', (t) => {
  const result = dr(`{host: a, trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: eu, to: us}]}}}}`);
  t.like(issueAt(result.issues, 'trafficPolicy.loadBalancer.localityLbSetting.failover'), { severity: 'warning', code: 'failover-without-outlier-detection' });
  const inherited = dr(`{host: a, trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}}, subsets: [{name: v1, labels: {v: "1"}, trafficPolicy: {loadBalancer: {localityLbSetting: {failoverPriority: [topology.istio.io/network]}}}}]}`);
  t.is(issueAt(inherited.issues, 'subsets[0].trafficPolicy.loadBalancer.localityLbSetting.failoverPriority'), undefined, 'a subset inherits the rule\'s outlier detection');
  const portLevel = dr(`{host: a, trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}, portLevelSettings: [{port: {number: 80}, loadBalancer: {localityLbSetting: {failover: [{from: eu, to: us}]}}}]}}`);
  t.is(issueAt(portLevel.issues, 'trafficPolicy.portLevelSettings[0].loadBalancer.localityLbSetting.failover')?.code, 'failover-without-outlier-detection', 'port-level settings replace the rule\'s components');
  const disabled = dr(`{host: a, trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}, loadBalancer: {localityLbSetting: {enabled: false, failover: [{from: eu, to: us}]}}}}`);
  t.like(issueAt(disabled.issues, 'trafficPolicy.loadBalancer.localityLbSetting.enabled'), { severity: 'warning', code: 'locality-lb-disabled' });
});

test('keepalive probes and interval are valid Istio but mesh-agent cannot set them: warnings saying agents reject the cluster', (t) => {
  const result = dr(`{host: a, trafficPolicy: {connectionPool: {tcp: {tcpKeepalive: {time: 60s, probes: 3, interval: 10s}}}}}`);
  const probes = issueAt(result.issues, 'trafficPolicy.connectionPool.tcp.tcpKeepalive.probes');
  t.like(probes, { severity: 'warning', code: 'agent-unsupported' });
  t.regex(probes?.message ?? '', /mesh-agent cannot set the keepalive probe count .* rejects this cluster/);
  t.like(issueAt(result.issues, 'trafficPolicy.connectionPool.tcp.tcpKeepalive.interval'), { severity: 'warning', code: 'agent-unsupported' });
  t.is(issueAt(result.issues, 'trafficPolicy.connectionPool.tcp.tcpKeepalive.time'), undefined);
});
