// Unit tests of the nftables backend without a kernel: the chains a plan turns into, the atomic
// `nft -f` script, and parsing of `nft list table` output (both priority spellings).
import test from 'ava';
import { nftablesChains, nftablesScript, parseNftTable } from './nftables-backend';
import { createRedirectPlan } from './redirect-plan';

const plan = createRedirectPlan({
  agentUid: 1337,
  excludeOutboundPorts: [53],
  excludeOutboundCidrs: ['10.0.0.0/8', '2001:db8::1'],
  inboundPorts: [8080],
});

test('a plan becomes one inet table with two hook chains and two regular chains', (t) => {
  t.deepEqual(nftablesChains(plan), [
    {
      name: 'output',
      header: 'type nat hook output priority -100; policy accept;',
      rules: ['tcp flags syn / fin,syn,rst,ack jump outbound'],
    },
    {
      name: 'prerouting',
      header: 'type nat hook prerouting priority -100; policy accept;',
      rules: ['fib daddr type local tcp flags syn / fin,syn,rst,ack jump inbound'],
    },
    {
      name: 'outbound',
      rules: [
        'meta skuid 1337 return',
        'oifname "lo" return',
        'ip daddr 10.0.0.0/8 return',
        'ip6 daddr 2001:db8::1 return',
        'tcp dport 53 return',
        'meta l4proto tcp redirect to :15001',
      ],
    },
    {
      name: 'inbound',
      rules: [
        'tcp dport 22 return',
        'tcp dport 15008 return',
        'tcp dport 15020 return',
        'tcp dport 15021 return',
        'tcp dport 8080 redirect to :15006',
      ],
    },
  ]);
});

test('with one family disabled the hook chains match only the other, and its CIDRs are dropped', (t) => {
  const v4only = nftablesChains(createRedirectPlan({ agentUid: 1, ipv6: false, excludeOutboundCidrs: ['fd00::/8'] }));
  t.deepEqual(v4only[0]?.rules, ['meta nfproto ipv4 tcp flags syn / fin,syn,rst,ack jump outbound']);
  t.deepEqual(v4only[1]?.rules, ['meta nfproto ipv4 fib daddr type local tcp flags syn / fin,syn,rst,ack jump inbound']);
  t.false(v4only[2]?.rules.some((rule) => rule.includes('fd00')));
  const v6only = nftablesChains(createRedirectPlan({ agentUid: 1, ipv4: false }));
  t.deepEqual(v6only[0]?.rules, ['meta nfproto ipv6 tcp flags syn / fin,syn,rst,ack jump outbound']);
});

test('the script replaces the table in one transaction, whether or not it existed', (t) => {
  const lines = nftablesScript(plan).split('\n');
  t.deepEqual(lines.slice(0, 4), ['table inet mesh', 'delete table inet mesh', 'table inet mesh {', '\tchain output {']);
  t.true(lines.includes('\t\ttype nat hook output priority -100; policy accept;'));
  t.true(lines.includes('\t\toifname "lo" return'));
  t.is(lines.filter((line) => line === '\t}').length, 4);
});

test('parsing reads chains, hook headers (named or numeric priority) and rules, and flags foreign objects', (t) => {
  const listing = `table inet mesh {
	set blocked {
		type ipv4_addr
	}

	chain output {
		type nat hook output priority -100; policy accept;
		tcp flags syn / fin,syn,rst,ack jump outbound
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local tcp flags syn / fin,syn,rst,ack jump inbound
	}

	chain outbound {
		oifname "lo" return
	}
}
`;
  const parsed = parseNftTable(listing);
  t.deepEqual(parsed.otherObjects, ['set blocked']);
  t.deepEqual(parsed.chains.map((chain) => chain.name), ['output', 'prerouting', 'outbound']);
  t.is(parsed.chains[1]?.header, 'type nat hook prerouting priority -100; policy accept;');
  t.deepEqual(parsed.chains[2], { name: 'outbound', rules: ['oifname "lo" return'] });
  const offset = parseNftTable('table inet mesh {\n\tchain x {\n\t\ttype nat hook output priority srcnat - 5; policy accept;\n\t}\n}');
  t.is(offset.chains[0]?.header, 'type nat hook output priority 95; policy accept;');
});
