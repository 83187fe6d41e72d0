// Request hashing from the hash_policy the translator puts on routes (Istio's consistentHash):
// header, cookie, source IP and query parameter, Envoy's combination of several and `terminal`.
import test from 'ava';
import { MeshTranslator } from '../../server/translate/mesh-translator';
import { TypeUrl, endpoint, generateDecoded, model, named, node, port, resource, service } from '../../server/translate/testing';
import type { ConsistentHashLB } from '../../server/translate/specs';
import { EndpointSet } from './endpoint-set';
import { compileHashPolicies, cookieValue, type DecodedHashPolicy, type RequestView } from './hash-policy';
import { hashPosition } from './hash64';
import { RingHashLoadBalancer } from './ring-hash';
import { translated } from './testing';

const HOST = 'reviews.default.svc.cluster.local';

/** The decoded hash_policy of the route to reviews when its DestinationRule says `consistentHash`. */
function routeHashPolicy(consistentHash: ConsistentHashLB): DecodedHashPolicy[] {
  const reviews = service(HOST, { aliases: ['reviews'], ports: [port(9080, 'HTTP', 'http')], endpoints: [endpoint('10.0.0.1')] });
  const m = model([reviews], [
    resource('VirtualService', 'reviews', { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] }),
    resource('DestinationRule', 'reviews', { host: 'reviews', trafficPolicy: { loadBalancer: { consistentHash } } }),
  ]);
  const config = generateDecoded(new MeshTranslator(), m, node('host-x'), TypeUrl.RouteConfiguration, named('9080')).get('9080');
  const vhost = config.virtual_hosts.find((v: { name: string }) => v.name === `${HOST}:9080`);
  return vhost.routes[0].route.hash_policy;
}

function request(fields: { headers?: Record<string, string>; query?: Record<string, string>; sourceIp?: string }): RequestView {
  return {
    header: (name) => fields.headers?.[name],
    query: (name) => fields.query?.[name],
    sourceIp: fields.sourceIp,
  };
}

test('httpHeaderName: the header\'s value is the key, whatever the header name\'s case in the policy', (t) => {
  const hasher = compileHashPolicies(routeHashPolicy({ httpHeaderName: 'X-User' }))!;
  t.is(hasher.hash(request({ headers: { 'x-user': 'alice' } })), hashPosition('alice'));
  t.not(hasher.hash(request({ headers: { 'x-user': 'bob' } })), hashPosition('alice'));
  t.is(hasher.hash(request({ headers: { other: 'alice' } })), undefined);
});

test('httpCookie: the named cookie\'s value is the key; a missing cookie yields no hash', (t) => {
  const policy = routeHashPolicy({ httpCookie: { name: 'session', ttl: '0s' } });
  t.is(policy[0]!.cookie!.name, 'session');
  const hasher = compileHashPolicies(policy)!;
  t.is(hasher.hash(request({ headers: { cookie: 'theme=dark; session=abc123; x=1' } })), hashPosition('abc123'));
  t.is(hasher.hash(request({ headers: { cookie: 'mysession=abc123' } })), undefined);
  t.is(hasher.hash(request({})), undefined);
});

test('useSourceIp: the downstream address is the key', (t) => {
  const hasher = compileHashPolicies(routeHashPolicy({ useSourceIp: true }))!;
  t.is(hasher.hash(request({ sourceIp: '10.1.2.3' })), hashPosition('10.1.2.3'));
  t.is(hasher.hash(request({})), undefined);
});

test('httpQueryParameterName: the parameter\'s value is the key', (t) => {
  const hasher = compileHashPolicies(routeHashPolicy({ httpQueryParameterName: 'user' }))!;
  t.is(hasher.hash(request({ query: { user: 'carol' } })), hashPosition('carol'));
});

test('several policies combine every hash produced; a terminal policy that produced one stops the rest', (t) => {
  const header = { header: { header_name: 'x-user' } };
  const source = { connection_properties: { source_ip: true } };
  const both = request({ headers: { 'x-user': 'alice' }, sourceIp: '10.1.2.3' });
  const combined = compileHashPolicies([header, source])!.hash(both);
  t.not(combined, hashPosition('alice'));
  t.not(combined, hashPosition('10.1.2.3'));
  t.is(compileHashPolicies([{ ...header, terminal: true }, source])!.hash(both), hashPosition('alice'));
  // The terminal header produced nothing, so the source IP is the fallback.
  t.is(compileHashPolicies([{ ...header, terminal: true }, source])!.hash(request({ sourceIp: '10.1.2.3' })), hashPosition('10.1.2.3'));
});

test('the same user reaches the same endpoint through the ring built from the translator\'s cluster', (t) => {
  const endpoints = [1, 2, 3, 4, 5].map((i) => endpoint(`10.0.0.${i}`));
  const cluster = `outbound|9080||${HOST}`;
  const { cla } = translated([service(HOST, { ports: [port(9080, 'HTTP', 'http')], endpoints })], { host: HOST, trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: 'x-user' } } } }, cluster, 'host-x');
  const lb = new RingHashLoadBalancer(EndpointSet.fromLoadAssignment(cla));
  const hasher = compileHashPolicies(routeHashPolicy({ httpHeaderName: 'x-user' }))!;
  const random = () => 0;
  const seen = new Set<string>();
  for (let user = 0; user < 50; user++) {
    const view = request({ headers: { 'x-user': `user-${user}` } });
    const first = lb.pick({ hash: hasher.hash(view)!, random })!;
    for (let again = 0; again < 5; again++) t.is(lb.pick({ hash: hasher.hash(view)!, random }), first);
    seen.add(first.address);
  }
  t.is(seen.size, 5, 'fifty users spread over all five endpoints');
});

test('cookie parsing handles spacing, quotes and names that are prefixes of others', (t) => {
  t.is(cookieValue('a=1;b=2', 'b'), '2');
  t.is(cookieValue('  a=1;   b="quoted"', 'b'), 'quoted');
  t.is(cookieValue('ab=1; b=2', 'b'), '2');
  t.is(cookieValue('ab=1', 'b'), undefined);
});

test('policies the agent cannot evaluate are rejected with their position, and an empty list compiles to nothing', (t) => {
  t.is(compileHashPolicies([]), undefined);
  t.throws(() => compileHashPolicies([{ filter_state: { key: 'k' } }], 'route r'), { message: 'route r: hash_policy[0].filter_state is not supported by mesh-agent' });
  t.throws(() => compileHashPolicies([{ header: {} }]), { message: /hash_policy\[0\]\.header\.header_name is required/ });
  t.throws(() => compileHashPolicies([{ terminal: true }]), { message: /sets no policy/ });
});
