// Unit tests of CIDR canonicalization: the text must equal what iptables-save and nft print, or
// verify would report correct rules as missing.
import test from 'ava';
import { iptablesCidrText, nftCidrText, parseCidr } from './cidr';

test('IPv4 addresses get a /32 and host bits are cleared', (t) => {
  t.deepEqual(parseCidr('10.1.2.3'), { family: 4, address: '10.1.2.3', prefix: 32 });
  t.deepEqual(parseCidr(' 10.1.2.3/8 '), { family: 4, address: '10.0.0.0', prefix: 8 });
  t.deepEqual(parseCidr('192.168.77.255/20'), { family: 4, address: '192.168.64.0', prefix: 20 });
  t.deepEqual(parseCidr('0.0.0.0/0'), { family: 4, address: '0.0.0.0', prefix: 0 });
});

test('IPv6 is printed the way inet_ntop prints it', (t) => {
  t.is(parseCidr('FD00:0:0:0:0:0:0:1/8').address, 'fd00::');
  t.is(parseCidr('2001:0db8:0000:0000:0000:0000:0000:0001').address, '2001:db8::1');
  t.is(parseCidr('::1').address, '::1');
  t.is(parseCidr('::/0').address, '::');
  // A single zero group is not compressed; the longest (then the first) run is.
  t.is(parseCidr('2001:db8:0:1:1:1:1:1').address, '2001:db8:0:1:1:1:1:1');
  t.is(parseCidr('2001:0:0:1:0:0:0:1').address, '2001:0:0:1::1');
  t.is(parseCidr('2001:0:0:1:1:0:0:1').address, '2001::1:1:0:0:1');
  t.is(parseCidr('fe80::1:2:3:4/64').address, 'fe80::');
  t.is(parseCidr('::ffff:10.0.0.1').address, '::ffff:10.0.0.1');
  t.is(parseCidr('fd00::1:0/100').address, 'fd00::');
  t.is(parseCidr('fd00::f123:4567/100').address, 'fd00::f000:0');
});

test('iptables always writes the prefix, nft omits it for a single host', (t) => {
  t.is(iptablesCidrText(parseCidr('10.1.2.3')), '10.1.2.3/32');
  t.is(nftCidrText(parseCidr('10.1.2.3')), '10.1.2.3');
  t.is(nftCidrText(parseCidr('10.1.2.3/24')), '10.1.2.0/24');
  t.is(iptablesCidrText(parseCidr('2001:db8::1')), '2001:db8::1/128');
  t.is(nftCidrText(parseCidr('2001:db8::1')), '2001:db8::1');
});

test('bad input names the value and the problem', (t) => {
  t.throws(() => parseCidr('10.0.0.256'), { message: /"10.0.0.256" is not an IPv4 or IPv6 address/ });
  t.throws(() => parseCidr('example.com/8'), { message: /not an IPv4 or IPv6/ });
  t.throws(() => parseCidr('10.0.0.0/33'), { message: /prefix length must be 0..32/ });
  t.throws(() => parseCidr('fd00::/129'), { message: /prefix length must be 0..128/ });
  t.throws(() => parseCidr('10.0.0.0/'), { message: /prefix length/ });
});
