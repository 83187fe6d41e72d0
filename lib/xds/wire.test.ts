// The hand-rolled wire helpers against protobufjs, the reference for the format.
import test from 'ava';
import { resourceTypes } from './protos';
import { encodeMessage, encodeRepeatedString, WireReader } from './wire';

const requestType = () => resourceTypes().lookupType('envoy.service.discovery.v3.DiscoveryRequest');

test('encodeMessage output decodes with protobufjs; default scalars are left out, embedded messages kept', (t) => {
  const status = encodeMessage([{ field: 1, varint: 3 }, { field: 2, text: 'bad ü' }]);
  const bytes = encodeMessage([
    { field: 1, text: '' },
    { raw: encodeRepeatedString(3, ['a', '', 'x'.repeat(300)]) },
    { field: 4, text: 'type' },
    { field: 6, bytes: status },
  ]);
  const decoded = requestType().toObject(requestType().decode(bytes)) as Record<string, unknown>;
  t.deepEqual(decoded, { resource_names: ['a', '', 'x'.repeat(300)], type_url: 'type', error_detail: { code: 3, message: 'bad ü' } });
  t.false(bytes.includes(Buffer.from([0x0a, 0x00])), 'no empty version_info field');
});

test('WireReader reads what protobufjs wrote and skips every wire type', (t) => {
  const type = requestType();
  const bytes = Buffer.from(type.encode(type.fromObject({ version_info: 'v', node: { id: 'n', locality: { region: 'r' } }, type_url: 'u', error_detail: { code: -1 } })).finish());
  const reader = new WireReader(bytes);
  const seen: number[] = [];
  while (!reader.done()) {
    const tag = reader.uint32();
    seen.push(tag >>> 3);
    if (tag >>> 3 === 1) t.is(reader.string(), 'v');
    else reader.skip(tag & 7);
  }
  t.deepEqual(seen, [1, 2, 4, 6]);
});

test('WireReader refuses lengths and varints that run past the end', (t) => {
  // Tag of field 1, then a length of 5 with one byte left.
  const skipping = new WireReader(Buffer.from([0x0a, 0x05, 0x61]));
  skipping.uint32();
  t.throws(() => skipping.skip(2), { message: /runs past the end/ });
  const reading = new WireReader(Buffer.from([0x0a, 0x05, 0x61]));
  reading.uint32();
  t.throws(() => reading.string(), { message: /runs past the end/ });
  t.throws(() => new WireReader(Buffer.from([0x0d, 0x01])).skip(5), { message: /truncated field/ });
  t.throws(() => new WireReader(Buffer.from([0xff, 0xff])).uint32(), { message: /truncated varint/ });
});
