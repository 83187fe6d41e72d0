// Tests of the strict DER reader and writer: encodings match the standard's, and BER leniencies or
// lengths that lie about their content are refused.
import test from 'ava';
import { children, DerError, oid, readTlv, TAG, time, tlv } from './der';

test('OIDs, lengths and times encode as DER', (t) => {
  t.is(oid('1.2.840.10045.4.3.2').toString('hex'), '06082a8648ce3d040302');
  t.is(oid('2.5.29.17').toString('hex'), '0603551d11');
  t.is(tlv(TAG.octetString, Buffer.alloc(200)).subarray(0, 3).toString('hex'), '0481c8');
  t.is(tlv(TAG.octetString, Buffer.alloc(300)).subarray(0, 4).toString('hex'), '0482012c');
  t.is(tlv(TAG.octetString, Buffer.alloc(70_000)).subarray(0, 5).toString('hex'), '0483011170');
  t.is(tlv(TAG.sequence, Buffer.from([1]), Buffer.from([2, 3])).toString('hex'), '3003010203');
  t.is(time(new Date('2026-06-01T12:00:05.900Z')).toString('ascii', 2), '260601120005Z');
  t.is(time(new Date('2026-06-01T12:00:05Z'))[0], TAG.utcTime);
  t.is(time(new Date('2050-01-01T00:00:00Z')).toString('ascii', 2), '20500101000000Z');
  t.is(time(new Date('2050-01-01T00:00:00Z'))[0], TAG.generalizedTime);
  t.is(time(new Date('1999-12-31T23:59:59.999Z')).toString('hex'), `170d${Buffer.from('991231235959Z').toString('hex')}`);
  t.is(time(new Date('2049-12-31T23:59:59Z')).toString('ascii', 2), '491231235959Z');
});

test('what is written reads back', (t) => {
  const encoded = tlv(TAG.sequence, tlv(TAG.integer, Buffer.from([5])), tlv(TAG.octetString, Buffer.alloc(300, 7)));
  const outer = readTlv(encoded, 0, encoded.length);
  t.is(outer.end, encoded.length);
  t.deepEqual(children(encoded, outer).map((c) => [c.tag, c.end - c.contentStart]), [[TAG.integer, 1], [TAG.octetString, 300]]);
});

for (const [name, hex] of [
  ['indefinite length (BER)', '3080020100 0000'],
  ['a long-form length for a short content', '30810100'],
  ['a length with a leading zero byte', '3082008000'],
  ['a length running past the input', '3005020100'],
  ['a high tag number', '1f2a0100'],
  ['a lone tag byte', '30'],
] as const) {
  test(`${name} is refused`, (t) => {
    const bytes = Buffer.from(hex.replace(/ /g, ''), 'hex');
    t.throws(() => children(bytes, readTlv(bytes, 0, bytes.length)), { instanceOf: DerError });
  });
}
