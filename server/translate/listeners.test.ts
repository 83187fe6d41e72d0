// Agent listeners: virtualOutbound, per-port outbound listeners with HTTP/TCP/TLS/sniffed chains,
// virtualInbound for the node's own workloads, and Envoy's one-chain-per-match rule.
import test from 'ava';
import { MeshTranslator } from './mesh-translator';
import { fromStruct } from './proto-values';
import { TypeUrl, endpoint, generateDecoded, model, node, port, resource, service } from './testing';
import type { ConfigResource } from '../config/resource';
import type { Service } from '../registry/service';

function listenersFor(services: Service[], resources: ConfigResource[] = [], nodeId = 'host-x') {
  return generateDecoded(new MeshTranslator(), model(services, resources), node(nodeId), TypeUrl.Listener);
}

const web = service('web.default.svc.cluster.local', { aliases: ['web'], ports: [port(8080, 'HTTP', 'http')], endpoints: [endpoint('10.0.0.1', { node: 'host-a' })] });
const db = service('db.default.svc.cluster.local', { aliases: ['db'], addresses: ['10.96.0.20'], ports: [port(5432, 'TCP', 'tcp')], endpoints: [endpoint('10.0.1.1', { node: 'host-b' })] });
const cache = service('cache.default.svc.cluster.local', { ports: [port(5432, 'TCP', 'tcp')], endpoints: [endpoint('10.0.2.1'), endpoint('10.0.2.2')] });

test('virtualOutbound captures on 15001 with original destination and passes unknown traffic through', (t) => {
  const l = listenersFor([web]).get('virtualOutbound');
  t.deepEqual(l.address.socket_address, { address: '0.0.0.0', port_value: 15001, port_specifier: 'port_value' });
  t.true(l.use_original_dst.value);
  t.is(l.filter_chains.length, 1);
  t.is(l.filter_chains[0].filters[0].typed_config.cluster, 'PassthroughCluster');
});

test('an HTTP port gets 0.0.0.0_PORT, not bound, with an HCM on RDS PORT and fault before router', (t) => {
  const l = listenersFor([web]).get('0.0.0.0_8080');
  t.false(l.bind_to_port.value);
  t.is(l.traffic_direction, 'OUTBOUND');
  t.is(l.filter_chains.length, 1);
  const hcm = l.filter_chains[0].filters[0].typed_config;
  t.is(hcm['@type'], 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
  t.is(hcm.rds.route_config_name, '8080');
  t.truthy(hcm.rds.config_source.ads);
  t.deepEqual(hcm.http_filters.map((f: any) => f.name), ['envoy.filters.http.fault', 'envoy.filters.http.router']);
  t.is(hcm.http_filters[0].typed_config['@type'], 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault');
  t.is(fromStruct(l.filter_chains[0].metadata.filter_metadata.mesh).kind, 'http');
});

test('TCP services sharing a port get tcp_proxy chains matched by destination port and VIP or endpoint IPs', (t) => {
  const l = listenersFor([db, cache]).get('0.0.0.0_5432');
  const chains = Object.fromEntries(l.filter_chains.map((c: any) => [fromStruct(c.metadata.filter_metadata.mesh).service, c]));
  const dbChain = chains['db.default.svc.cluster.local'];
  t.deepEqual(dbChain.filter_chain_match.prefix_ranges, [{ address_prefix: '10.96.0.20', prefix_len: { value: 32 } }]);
  t.is(dbChain.filters[0].typed_config.cluster, 'outbound|5432||db.default.svc.cluster.local');
  const cacheChain = chains['cache.default.svc.cluster.local'];
  t.deepEqual(cacheChain.filter_chain_match.prefix_ranges.map((r: any) => r.address_prefix), ['10.0.2.1', '10.0.2.2']);
  // Unknown destinations on a TCP-only port follow the outbound traffic policy.
  t.is(l.default_filter_chain.filters[0].typed_config.cluster, 'PassthroughCluster');
});

test('a VirtualService tcp route with several destinations becomes weighted tcp_proxy clusters', (t) => {
  const vs = resource('VirtualService', 'db', { hosts: ['db'], tcp: [{ route: [{ destination: { host: 'db', subset: 'primary' }, weight: 90 }, { destination: { host: 'db', subset: 'replica' }, weight: 10 }] }] });
  const l = listenersFor([db], [vs]).get('0.0.0.0_5432');
  const proxy = l.filter_chains[0].filters[0].typed_config;
  t.deepEqual(proxy.weighted_clusters.clusters, [
    { name: 'outbound|5432|primary|db.default.svc.cluster.local', weight: 90 },
    { name: 'outbound|5432|replica|db.default.svc.cluster.local', weight: 10 },
  ]);
  t.is(fromStruct(l.filter_chains[0].metadata.filter_metadata.mesh).virtualService, 'VirtualService/default/db');
});

test('tcp routes with destinationSubnets get their own chains before the service-wide one', (t) => {
  const vs = resource('VirtualService', 'db', { hosts: ['db'], tcp: [
    { match: [{ destinationSubnets: ['10.96.0.0/24'] }], route: [{ destination: { host: 'db', subset: 'a' } }] },
    { route: [{ destination: { host: 'db', subset: 'b' } }] },
  ] });
  const l = listenersFor([db], [vs]).get('0.0.0.0_5432');
  t.deepEqual(l.filter_chains.map((c: any) => [c.filter_chain_match.prefix_ranges[0].address_prefix, c.filter_chain_match.prefix_ranges[0].prefix_len.value, c.filters[0].typed_config.cluster]), [
    ['10.96.0.0', 24, 'outbound|5432|a|db.default.svc.cluster.local'],
    ['10.96.0.20', 32, 'outbound|5432|b|db.default.svc.cluster.local'],
  ]);
});

test('TLS services are matched by SNI with the TLS inspector; VirtualService tls routes by sniHosts', (t) => {
  const api = service('api.example.com', { resolution: 'DNS', location: 'MESH_EXTERNAL', ports: [port(443, 'TLS', 'tls')] });
  const other = service('other.example.com', { resolution: 'DNS', location: 'MESH_EXTERNAL', ports: [port(443, 'HTTPS', 'https')] });
  const vs = resource('VirtualService', 'other', { hosts: ['other.example.com'], tls: [{ match: [{ sniHosts: ['other.example.com'] }], route: [{ destination: { host: 'api.example.com' } }] }] });
  const l = listenersFor([api, other], [vs]).get('0.0.0.0_443');
  t.deepEqual(l.listener_filters.map((f: any) => f.name), ['envoy.filters.listener.tls_inspector']);
  const bySni = Object.fromEntries(l.filter_chains.map((c: any) => [c.filter_chain_match.server_names.join(','), c]));
  t.is(bySni['api.example.com'].filters[0].typed_config.cluster, 'outbound|443||api.example.com');
  t.is(bySni['api.example.com'].filter_chain_match.transport_protocol, 'tls');
  t.is(bySni['other.example.com'].filters[0].typed_config.cluster, 'outbound|443||api.example.com');
});

test('a port with an HTTP service and a TCP service without addresses keeps HTTP; no two chains share a match', (t) => {
  const http = service('h.default.svc.cluster.local', { ports: [port(9000, 'HTTP', 'http')] });
  const tcp = service('t.default.svc.cluster.local', { ports: [port(9000, 'TCP', 'tcp')] });
  const l = listenersFor([http, tcp]).get('0.0.0.0_9000');
  t.is(l.filter_chains.length, 1);
  t.is(l.filter_chains[0].filters[0].name, 'envoy.filters.network.http_connection_manager');
});

test('sniffed (unnamed protocol) ports get an HTTP chain on application protocols next to a TCP chain', (t) => {
  const sniffed = service('s.default.svc.cluster.local', { addresses: ['10.96.0.30'], ports: [port(7000, 'UNSPECIFIED', 'web')] });
  const l = listenersFor([sniffed]).get('0.0.0.0_7000');
  t.deepEqual(l.listener_filters.map((f: any) => f.name), ['envoy.filters.listener.http_inspector']);
  const http = l.filter_chains.find((c: any) => c.filter_chain_match?.application_protocols);
  t.deepEqual(http.filter_chain_match.application_protocols, ['http/1.0', 'http/1.1', 'h2c']);
  t.is(http.filters[0].typed_config.rds.route_config_name, '7000');
  const tcp = l.filter_chains.find((c: any) => c.filters[0].name === 'envoy.filters.network.tcp_proxy');
  t.is(tcp.filters[0].typed_config.cluster, 'outbound|7000||s.default.svc.cluster.local');
  // Other destinations: HTTP-looking traffic is routed, the rest follows the outbound policy.
  const generic = l.filter_chains.find((c: any) => c.name === '0.0.0.0_7000/http');
  t.is(generic.filter_chain_match.prefix_ranges, undefined);
  t.deepEqual(generic.filter_chain_match.application_protocols, ['http/1.0', 'http/1.1', 'h2c']);
  t.is(l.default_filter_chain.filters[0].typed_config.cluster, 'PassthroughCluster');
});

test('virtualInbound on 15006 has a chain per local workload port and a passthrough chain', (t) => {
  const grpc = service('greeter.default.svc.cluster.local', { ports: [port(50051, 'GRPC', 'grpc')], endpoints: [endpoint('10.0.0.1', { node: 'host-a' })] });
  const l = listenersFor([web, db, grpc], [], 'host-a').get('virtualInbound');
  t.deepEqual(l.address.socket_address, { address: '0.0.0.0', port_value: 15006, port_specifier: 'port_value' });
  t.is(l.listener_filters[0].name, 'envoy.filters.listener.original_dst');
  const names = l.filter_chains.map((c: any) => c.name);
  t.deepEqual(names, ['inbound|8080||/10.0.0.1', 'inbound|50051||/10.0.0.1', 'virtualInbound-passthrough']);
  const webChain = l.filter_chains[0];
  t.is(webChain.filter_chain_match.destination_port.value, 8080);
  t.is(webChain.filter_chain_match.prefix_ranges[0].address_prefix, '10.0.0.1');
  const hcm = webChain.filters[0].typed_config;
  t.is(hcm.route_config.virtual_hosts[0].routes[0].route.cluster, 'inbound|8080||');
  t.deepEqual(hcm.http_filters.map((f: any) => f.name), ['envoy.filters.http.router']);
  t.deepEqual(fromStruct(webChain.metadata.filter_metadata.mesh), {
    kind: 'http', service: 'web.default.svc.cluster.local', namespace: 'default', port: 8080, targetPort: 8080, protocol: 'HTTP', workload: '10.0.0.1', mtlsMode: 'PERMISSIVE',
  });
  t.is(l.filter_chains.at(-1).filters[0].typed_config.cluster, 'InboundPassthroughClusterIpv4');
});

test('a node without local workloads has only the passthrough chain inbound', (t) => {
  const l = listenersFor([web, db], [], 'host-x').get('virtualInbound');
  t.deepEqual(l.filter_chains.map((c: any) => c.name), ['virtualInbound-passthrough']);
  const tcpNode = listenersFor([web, db], [], 'host-b').get('virtualInbound');
  t.is(tcpNode.filter_chains[0].filters[0].typed_config.cluster, 'inbound|5432||');
});

test('across a mixed fleet no listener has two filter chains with the same match or name (Envoy rejects that)', (t) => {
  const services: Service[] = [];
  const protocols = ['HTTP', 'TCP', 'TLS', 'UNSPECIFIED', 'GRPC', 'HTTPS'] as const;
  for (let i = 0; i < 60; i++) {
    const protocol = protocols[i % protocols.length]!;
    services.push(service(`s${i}.default.svc`, {
      addresses: i % 4 === 0 ? [] : [`10.96.0.${i}`],
      ports: [port(9000 + (i % 5), protocol, `${protocol.toLowerCase()}-p`)],
      endpoints: i % 7 === 0 ? [] : [endpoint(`10.0.0.${i}`), endpoint(`10.0.1.${i % 3}`)],
    }));
  }
  const resources = [
    resource('VirtualService', 'tcp', { hosts: ['s1.default.svc'], tcp: [{ match: [{ destinationSubnets: ['10.96.0.0/16'] }, { port: 9001 }], route: [{ destination: { host: 's1.default.svc' } }] }] }),
    resource('VirtualService', 'tls', { hosts: ['s2.default.svc'], tls: [{ match: [{ sniHosts: ['a.example', 's2.default.svc'] }, { sniHosts: ['a.example'] }], route: [{ destination: { host: 's2.default.svc' } }] }] }),
  ];
  const listeners = listenersFor(services, resources, 'host-x');
  for (const l of listeners.values()) {
    const seen = new Set<string>();
    const names = new Set<string>();
    for (const chain of l.filter_chains) {
      t.false(names.has(chain.name), `${l.name}: duplicate chain name ${chain.name}`);
      names.add(chain.name);
      const m = chain.filter_chain_match ?? {};
      const prefixes = (m.prefix_ranges ?? [{}]).map((r: any) => `${r.address_prefix}/${r.prefix_len?.value}`);
      for (const p of prefixes) {
        for (const sni of m.server_names ?? ['']) {
          for (const alpn of m.application_protocols ?? ['']) {
            const key = [m.destination_port?.value, p, sni, m.transport_protocol ?? '', alpn].join('|');
            t.false(seen.has(key), `${l.name}: two chains match ${key}`);
            seen.add(key);
          }
        }
      }
    }
  }
  t.true(listeners.size > 5);
});
