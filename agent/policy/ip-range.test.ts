// CIDR matching for RBAC: IPv4, IPv6 (compressed forms, zones), IPv4-mapped addresses, bad input.
import test from 'ava';
import { IpRange, IpRangeError } from './ip-range';

const cases: Array<[string, number, string, boolean]> = [
  ['10.0.0.0', 8, '10.2.3.4', true],
  ['10.0.0.0', 8, '11.0.0.1', false],
  ['10.1.2.3', 32, '10.1.2.3', true],
  ['10.1.2.3', 32, '10.1.2.4', false],
  ['0.0.0.0', 0, '203.0.113.9', true],
  ['10.0.0.0', 8, '::ffff:10.9.9.9', true],
  ['fd00::', 8, 'fd12::1', true],
  ['fd00::', 16, 'fd01::1', false],
  ['2001:db8::1', 128, '2001:db8:0:0:0:0:0:1', true],
  ['2001:db8::1', 128, '2001:db8::2', false],
  ['::1', 128, '::1', true],
  ['2001:db8::', 32, '2001:db8:ffff::', true],
  ['fe80::', 10, 'fe80::1%eth0', true],
  ['::', 0, '1:2:3:4:5:6:7:8', true],
  ['1:2:3:4:5:6:7:8', 128, '1:2:3:4:5:6:7:9', false],
  ['10.0.0.0', 8, 'fd00::1', false],
  ['fd00::', 8, '10.0.0.1', false],
  ['10.0.0.0', 8, 'garbage', false],
  ['10.0.0.0', 8, '10.0.0.256', false],
  ['10.0.0.0', 8, '1:2:3', false],
  ['::', 0, '1::2::3', false],
];

for (const [address, prefix, candidate, expected] of cases) {
  test(`${address}/${prefix} ${expected ? 'contains' : 'does not contain'} ${candidate}`, (t) => {
    t.is(IpRange.of(address, prefix).contains(candidate), expected);
  });
}

test('a range that is not an address or has a bad prefix is refused with what is wrong', (t) => {
  t.throws(() => IpRange.of('example.com', 8), { instanceOf: IpRangeError, message: /"example.com" is not an IP address/ });
  t.throws(() => IpRange.of('10.0.0.0', 33), { message: /prefix length 33 is out of range 0..32/ });
});
