// Unit tests for the HBONE `:authority` format: what the pool writes, the server must read back,
// and anything that is not a literal ip:port must be refused rather than guessed at.
import test from 'ava';
import { formatAuthority, parseAuthority } from './hbone-authority';

test('IPv4 and bracketed IPv6 authorities parse into address and port', (t) => {
  t.deepEqual(parseAuthority('10.0.0.7:8080'), { address: '10.0.0.7', port: 8080 });
  t.deepEqual(parseAuthority('[fd00::7]:443'), { address: 'fd00::7', port: 443 });
  t.deepEqual(parseAuthority('[::ffff:10.0.0.1]:1'), { address: '::ffff:10.0.0.1', port: 1 });
  t.deepEqual(parseAuthority('127.0.0.1:65535'), { address: '127.0.0.1', port: 65535 });
});

test('hostnames, missing or out-of-range ports and unbracketed IPv6 are refused', (t) => {
  for (const bad of [
    undefined,
    '',
    'reviews.default:9080',
    '10.0.0.7',
    '10.0.0.7:',
    '10.0.0.7:0',
    '10.0.0.7:65536',
    '10.0.0.7:+80',
    '10.0.0.7:80 ',
    '256.0.0.1:80',
    'fd00::7:80',
    '[fd00::7]',
    '[fd00::7]:',
    '[10.0.0.7]:80',
    '[fd00::zz]:80',
  ]) {
    t.is(parseAuthority(bad), undefined, String(bad));
  }
});

test('formatAuthority brackets IPv6 and round-trips through parseAuthority', (t) => {
  t.is(formatAuthority({ address: '10.1.2.3', port: 80 }), '10.1.2.3:80');
  t.is(formatAuthority({ address: 'fd00::1', port: 15008 }), '[fd00::1]:15008');
  for (const destination of [{ address: '192.168.0.1', port: 9 }, { address: '2001:db8::42', port: 65000 }]) {
    t.deepEqual(parseAuthority(formatAuthority(destination)), destination);
  }
});
