import test from 'ava';
import { parseListenAddress } from './listen-address';

test('listen addresses: an empty host is every IPv4 interface, brackets hold IPv6, a bad one names itself', (t) => {
  t.deepEqual(parseListenAddress(':15021'), { host: '0.0.0.0', port: 15021 });
  t.deepEqual(parseListenAddress('[::1]:16021'), { host: '::1', port: 16021 });
  t.deepEqual(parseListenAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
  t.throws(() => parseListenAddress('localhost'), { message: /listen address "localhost": expected host:port/ });
});

test('the error names what the address is for', (t) => {
  t.throws(() => parseListenAddress('15010', 'xDS address'), { message: 'xDS address "15010": expected host:port, [v6]:port or :port' });
});
