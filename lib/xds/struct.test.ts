// Node metadata round trip: JSON -> Struct -> protobuf bytes -> proto-loader object -> JSON.
import test from 'ava';
import { adsService, resourceTypes } from './protos';
import { jsonToStruct, structToJson } from './struct';

test('metadata survives encoding by protobufjs and decoding by proto-loader', (t) => {
  const metadata = { ISTIO_VERSION: '1.22', port: 15001, sidecar: false, none: null, labels: { app: 'web', tier: 'front' }, list: ['a', 1, [true]] };
  const requestType = resourceTypes().lookupType('envoy.service.discovery.v3.DiscoveryRequest');
  const bytes = requestType.encode(requestType.fromObject({ node: { id: 'n', metadata: jsonToStruct(metadata) } })).finish();
  const decoded = adsService().service.StreamAggregatedResources!.requestDeserialize(Buffer.from(bytes)) as { node: { metadata: unknown } };
  t.deepEqual(structToJson(decoded.node.metadata), metadata);
});

test('snake_case Value fields are read too, and garbage becomes an empty object', (t) => {
  t.deepEqual(structToJson({ fields: { a: { string_value: 'x' }, b: { list_value: { values: [{ number_value: 2 }] } } } }), { a: 'x', b: [2] });
  t.deepEqual(structToJson(undefined), {});
  t.deepEqual(structToJson({ fields: 'nope' }), {});
});
