// AuthorizationPolicy to RBAC filters on virtualInbound chains: Istio's filter order and policy
// names, how sources, operations and conditions map, workload selection, and HTTP-only fields on TCP.
import test from 'ava';
import { chainFor, httpFilters, inboundListener, networkFilters, security } from './security-testing';
import type { AuthorizationPolicySpec } from '../kinds/authorization-policy/schema';

const policy = (name: string, spec: AuthorizationPolicySpec, namespace = 'shop') => security('AuthorizationPolicy', name, spec, namespace);
const rbacOf = (filters: any[]) => filters.filter((f) => f.name.endsWith('.rbac')).map((f) => f.typed_config.rules);

test('no policy leaves the inbound chains without RBAC filters', (t) => {
  t.deepEqual(httpFilters([]).map((f) => f.name), ['envoy.filters.http.router']);
  t.deepEqual(networkFilters([]).map((f) => f.name), ['envoy.filters.network.tcp_proxy']);
});

test('an ALLOW rule maps principals, namespaces, methods and paths as Istio does', (t) => {
  const filters = httpFilters([
    policy('frontend-only', {
      selector: { matchLabels: { app: 'web' } },
      rules: [{
        from: [{ source: { principals: ['cluster.local/ns/shop/sa/frontend'], namespaces: ['ops'] } }],
        to: [{ operation: { methods: ['GET', 'HEAD'], paths: ['/api/*', '*.png', '/exact'], notPaths: ['/api/admin*'] } }],
      }],
    }),
  ]);
  t.deepEqual(filters.map((f) => f.name), ['envoy.filters.http.rbac', 'envoy.filters.http.router']);
  const rules = filters[0].typed_config.rules;
  t.is(rules.action, 'ALLOW');
  const p = rules.policies['ns[shop]-policy[frontend-only]-rule[0]'];
  t.truthy(p);
  const [principalName, namespace] = p.principals[0].and_ids.ids;
  t.is(principalName.authenticated.principal_name.exact, 'spiffe://cluster.local/ns/shop/sa/frontend');
  t.is(namespace.authenticated.principal_name.safe_regex.regex, '.*/ns/ops/.*');
  const [methods, paths, notPaths] = p.permissions[0].and_rules.rules;
  t.deepEqual(methods.or_rules.rules.map((r: any) => r.header.string_match.exact), ['GET', 'HEAD']);
  t.deepEqual(paths.or_rules.rules.map((r: any) => r.url_path.path), [{ prefix: '/api/' }, { suffix: '.png' }, { exact: '/exact' }]);
  t.deepEqual(notPaths.not_rule.url_path.path, { prefix: '/api/admin' });
});

test('filters run CUSTOM, AUDIT (LOG), DENY, then ALLOW, each holding only its policies', (t) => {
  const filters = httpFilters([
    policy('allow', { rules: [{}] }),
    policy('deny', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/private'] } }] }] }),
    policy('audit', { action: 'AUDIT', rules: [{ to: [{ operation: { methods: ['DELETE'] } }] }] }),
    policy('ext', { action: 'CUSTOM', provider: { name: 'opa' }, rules: [{ to: [{ operation: { paths: ['/ext'] } }] }] }),
  ]);
  const rules = rbacOf(filters);
  t.deepEqual(rules.map((r) => r.action), ['DENY', 'LOG', 'DENY', 'ALLOW']);
  t.deepEqual(rules.map((r) => Object.keys(r.policies ?? {})), [
    ['ns[shop]-policy[ext]-rule[0]'],
    ['ns[shop]-policy[audit]-rule[0]'],
    ['ns[shop]-policy[deny]-rule[0]'],
    ['ns[shop]-policy[allow]-rule[0]'],
  ]);
  // An empty rule matches everything.
  t.deepEqual(rules[3].policies['ns[shop]-policy[allow]-rule[0]'], { permissions: [{ any: true }], principals: [{ any: true }] });
});

test('an ALLOW policy without rules is an ALLOW filter with no policies: it denies everything', (t) => {
  const [rules] = rbacOf(httpFilters([policy('allow-nothing', {})]));
  t.is(rules.action, 'ALLOW');
  t.is(rules.policies, undefined);
});

test('policies select by namespace, root namespace and labels', (t) => {
  const names = (resources: any[]) => rbacOf(httpFilters(resources)).flatMap((r) => Object.keys(r.policies ?? {}));
  t.deepEqual(names([policy('other-ns', { rules: [{}] }, 'billing')]), []);
  t.deepEqual(names([policy('mesh', { rules: [{}] }, 'istio-system')]), ['ns[istio-system]-policy[mesh]-rule[0]']);
  t.deepEqual(names([policy('not-web', { selector: { matchLabels: { app: 'db' } }, rules: [{}] })]), []);
  t.deepEqual(names([policy('web-v1', { selector: { matchLabels: { app: 'web', version: 'v1' } }, rules: [{}] })]), ['ns[shop]-policy[web-v1]-rule[0]']);
  t.deepEqual(names([policy('by-ref', { targetRefs: [{ kind: 'Service', group: '', name: 'web' }], rules: [{}] })]), ['ns[shop]-policy[by-ref]-rule[0]']);
  t.deepEqual(names([policy('other-ref', { targetRefs: [{ kind: 'Service', group: '', name: 'db' }], rules: [{}] })]), []);
});

test('conditions go to principals or permissions by key, with values ORed and notValues negated', (t) => {
  const [rules] = rbacOf(httpFilters([
    policy('conditions', {
      rules: [{
        when: [
          { key: 'request.auth.claims[groups]', values: ['admins'] },
          { key: 'request.auth.claims[realm][role]', values: ['ops*'] },
          { key: 'source.ip', values: ['10.1.0.0/16'], notValues: ['10.1.2.3'] },
          { key: 'request.headers[x-tenant]', values: ['*'] },
          { key: 'destination.port', values: ['8080'] },
          { key: 'remote.ip', values: ['192.0.2.1'] },
        ],
      }],
    }),
  ]));
  const p = rules.policies['ns[shop]-policy[conditions]-rule[0]'];
  const [groups, role, sourceIp, notSourceIp, tenant, remoteIp] = p.principals[0].and_ids.ids;
  t.deepEqual(groups.metadata.path.map((s: any) => s.key), ['request.auth.claims', 'groups']);
  t.is(groups.metadata.filter, 'istio_authn');
  t.deepEqual(groups.metadata.value.list_match.one_of.string_match, { exact: 'admins' });
  t.deepEqual(role.metadata.path.map((s: any) => s.key), ['request.auth.claims', 'realm', 'role']);
  t.deepEqual(role.metadata.value.list_match.one_of.string_match, { prefix: 'ops' });
  t.deepEqual(sourceIp.direct_remote_ip, { address_prefix: '10.1.0.0', prefix_len: { value: 16 } });
  t.deepEqual(notSourceIp.not_id.direct_remote_ip, { address_prefix: '10.1.2.3', prefix_len: { value: 32 } });
  t.deepEqual(tenant.header, { name: 'x-tenant', present_match: true });
  t.deepEqual(remoteIp.remote_ip.address_prefix, '192.0.2.1');
  t.deepEqual(p.permissions[0].and_rules.rules, [{ destination_port: 8080 }]);
});

test('requestPrincipals match the istio_authn principal; hosts match :authority ignoring case', (t) => {
  const [rules] = rbacOf(httpFilters([
    policy('jwt', { rules: [{ from: [{ source: { requestPrincipals: ['https://issuer.example/*'] } }], to: [{ operation: { hosts: ['web.shop.svc.cluster.local'] } }] }] }),
  ]));
  const p = rules.policies['ns[shop]-policy[jwt]-rule[0]'];
  const [requestPrincipal] = p.principals[0].and_ids.ids;
  t.deepEqual(requestPrincipal.metadata.path, [{ key: 'request.auth.principal' }]);
  t.deepEqual(requestPrincipal.metadata.value.string_match, { prefix: 'https://issuer.example/' });
  const [host] = p.permissions[0].and_rules.rules;
  t.is(host.header.name, ':authority');
  t.deepEqual(host.header.string_match, { exact: 'web.shop.svc.cluster.local', ignore_case: true });
});

test('TCP chains get network RBAC before tcp_proxy; an ALLOW rule with HTTP-only fields is dropped', (t) => {
  const filters = networkFilters([
    policy('mixed', {
      rules: [
        { to: [{ operation: { methods: ['GET'] } }] },
        { from: [{ source: { requestPrincipals: ['*'] } }] },
        { when: [{ key: 'request.headers[x-a]', values: ['1'] }] },
        { to: [{ operation: { ports: ['5432'] } }] },
      ],
    }),
  ]);
  t.deepEqual(filters.map((f) => f.name), ['envoy.filters.network.rbac', 'envoy.filters.network.tcp_proxy']);
  const rules = filters[0].typed_config.rules;
  t.is(filters[0].typed_config.stat_prefix, 'tcp.');
  t.deepEqual(Object.keys(rules.policies), ['ns[shop]-policy[mixed]-rule[3]']);
});

test('TCP: an ALLOW policy whose rules are all HTTP-only allows nothing', (t) => {
  const [filter] = networkFilters([policy('http-only', { rules: [{ to: [{ operation: { paths: ['/'] } }] }] })]);
  t.is(filter.typed_config.rules.action, 'ALLOW');
  t.is(filter.typed_config.rules.policies, undefined);
});

test('TCP: a DENY rule ignores its HTTP-only fields, so it denies more (Istio: never less)', (t) => {
  const [filter] = networkFilters([
    policy('deny', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['untrusted'] } }], to: [{ operation: { methods: ['POST'], ports: ['5432'] } }] }] }),
  ]);
  const rules = filter.typed_config.rules;
  t.is(rules.action, 'DENY');
  const p = rules.policies['ns[shop]-policy[deny]-rule[0]'];
  // methods is gone; ports and the namespace stay.
  t.deepEqual(p.permissions[0].and_rules.rules, [{ destination_port: 5432 }]);
  t.is(p.principals[0].and_ids.ids[0].authenticated.principal_name.safe_regex.regex, '.*/ns/untrusted/.*');
  // With nothing else left the rule matches every connection.
  const [all] = networkFilters([policy('deny-get', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['GET'] } }] }] })]);
  t.deepEqual(all.typed_config.rules.policies['ns[shop]-policy[deny-get]-rule[0]'].permissions, [{ any: true }]);
});

test('the HTTP chain of the same policies keeps HTTP-only rules', (t) => {
  const [rules] = rbacOf(httpFilters([policy('http-only', { rules: [{ to: [{ operation: { paths: ['/'] } }] }] })]));
  t.deepEqual(Object.keys(rules.policies), ['ns[shop]-policy[http-only]-rule[0]']);
  t.truthy(chainFor(inboundListener([]), 8080));
});

test('dry-run policies become shadow rules: reported, never enforced', (t) => {
  const dry = { ...policy('dry-allow', { rules: [{ to: [{ operation: { paths: ['/ok'] } }] }] }) };
  dry.metadata = { ...dry.metadata, annotations: { 'istio.io/dry-run': 'true' } };
  const [filter] = httpFilters([dry]);
  t.is(filter.typed_config.rules, undefined, 'no enforced rules, so no default deny');
  t.is(filter.typed_config.shadow_rules.action, 'ALLOW');
  t.deepEqual(Object.keys(filter.typed_config.shadow_rules.policies), ['ns[shop]-policy[dry-allow]-rule[0]']);
  t.is(filter.typed_config.shadow_rules_stat_prefix, 'istio_dry_run_allow_');
});
