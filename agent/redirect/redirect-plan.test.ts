// Unit tests of the redirect plan: defaults, the exclusions that always apply (SSH, the agent's
// own ports), normalization, and validation errors that name the field at fault.
import test from 'ava';
import { createRedirectPlan, describeRedirectPlan, RedirectPlanError } from './redirect-plan';

test('defaults: Istio ports, every inbound port, both families, SSH and agent ports never captured', (t) => {
  const plan = createRedirectPlan({ agentUid: 1337 });
  t.is(plan.outboundPort, 15001);
  t.is(plan.inboundPort, 15006);
  t.deepEqual(plan.inbound, { mode: 'all', excludePorts: [] });
  t.deepEqual(plan.neverCaptureInboundPorts, [22, 15008, 15020, 15021]);
  t.true(plan.ipv4);
  t.true(plan.ipv6);
  t.deepEqual(plan.excludeOutboundPorts, []);
  t.deepEqual(plan.excludeOutboundCidrs, []);
});

test('ports are sorted and deduplicated, CIDRs canonical and deduplicated', (t) => {
  const plan = createRedirectPlan({
    agentUid: 0,
    excludeOutboundPorts: [5432, 53, 5432],
    excludeOutboundCidrs: ['10.1.2.3/8', '10.0.0.0/8', '2001:DB8::/32'],
    excludeInboundPorts: [9090, 8081, 9090],
  });
  t.deepEqual(plan.excludeOutboundPorts, [53, 5432]);
  t.deepEqual(plan.excludeOutboundCidrs, [
    { family: 4, address: '10.0.0.0', prefix: 8 },
    { family: 6, address: '2001:db8::', prefix: 32 },
  ]);
  t.deepEqual(plan.neverCaptureInboundPorts, [22, 8081, 9090, 15008, 15020, 15021]);
});

test('a list of inbound ports captures only those, and SSH stays excluded', (t) => {
  const plan = createRedirectPlan({ agentUid: 1337, inboundPorts: [9080, 8080] });
  t.deepEqual(plan.inbound, { mode: 'ports', ports: [8080, 9080] });
  t.true(plan.neverCaptureInboundPorts.includes(22));
});

test('SSH or an agent port in the inbound list is refused with the reason', (t) => {
  const ssh = t.throws(() => createRedirectPlan({ agentUid: 1, inboundPorts: [80, 22] }), { instanceOf: RedirectPlanError });
  t.is(ssh?.field, 'inboundPorts');
  t.regex(ssh?.message ?? '', /port 22 is never captured \(SSH\)/);
  t.throws(() => createRedirectPlan({ agentUid: 1, inboundPorts: [15008] }), { message: /served by the agent itself/ });
  t.throws(() => createRedirectPlan({ agentUid: 1, inboundPorts: [] }), { message: /inboundPorts: is empty/ });
});

test('invalid values name the field and the index', (t) => {
  t.throws(() => createRedirectPlan({ agentUid: -1 }), { message: /^agentUid: must be a uid/ });
  t.throws(() => createRedirectPlan({ agentUid: 1.5 }), { message: /^agentUid/ });
  t.throws(() => createRedirectPlan({ agentUid: 1, outboundPort: 0 }), { message: /^outboundPort: must be a TCP port/ });
  t.throws(() => createRedirectPlan({ agentUid: 1, inboundPort: 70000 }), { message: /^inboundPort: must be a TCP port.*70000/ });
  t.throws(() => createRedirectPlan({ agentUid: 1, inboundPort: 15001 }), { message: /^inboundPort: must differ from outboundPort/ });
  t.throws(() => createRedirectPlan({ agentUid: 1, excludeOutboundPorts: [80, 0] }), {
    message: /^excludeOutboundPorts\[1\]: must be a TCP port/,
  });
  t.throws(() => createRedirectPlan({ agentUid: 1, excludeOutboundCidrs: ['10.0.0.0/8', 'nope'] }), {
    message: /^excludeOutboundCidrs\[1\]: "nope" is not an IPv4 or IPv6/,
  });
  t.throws(() => createRedirectPlan({ agentUid: 1, ipv4: false, ipv6: false }), { message: /both disabled/ });
});

test('the description names every setting an operator checks', (t) => {
  const text = describeRedirectPlan(
    createRedirectPlan({ agentUid: 1337, excludeOutboundPorts: [53], excludeOutboundCidrs: ['10.0.0.0/8'], ipv6: false }),
  );
  t.is(
    text,
    [
      'families: IPv4',
      'outbound: TCP -> :15001, except uid 1337, loopback, ports 53, destinations 10.0.0.0/8',
      'inbound: all TCP ports except 22, 15008, 15020, 15021 -> :15006',
    ].join('\n'),
  );
});
