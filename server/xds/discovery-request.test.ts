// parseDiscoveryRequest must agree with proto-loader on every field the server reads, and its
// names key must change exactly when the list of names changes.
import test from 'ava';
import { adsService, TypeUrl } from '../../lib/xds/protos';
import { encodeMessage, encodeRepeatedString } from '../../lib/xds/wire';
import { decodeNames, parseDiscoveryRequest } from './discovery-request';

const serialize = adsService().service.StreamAggregatedResources!.requestSerialize as (request: object) => Buffer;

test('every field the server reads comes out as proto-loader wrote it', (t) => {
  const bytes = serialize({
    version_info: 'v1',
    node: { id: 'agent-1', cluster: 'web', metadata: { fields: { zone: { stringValue: 'a' } } } },
    resource_names: ['a', 'ü', ''],
    type_url: TypeUrl.ClusterLoadAssignment,
    response_nonce: 'n1',
    error_detail: { code: 3, message: 'bad endpoint' },
  });
  const view = parseDiscoveryRequest(bytes);
  t.like(view, { versionInfo: 'v1', typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: 'n1', errorDetail: { code: 3, message: 'bad endpoint' } });
  t.like(view.node, { id: 'agent-1', cluster: 'web' });
  t.deepEqual(view.node?.metadata, { fields: { zone: { stringValue: 'a', kind: 'stringValue' } } });
  t.deepEqual(decodeNames(view.namesKey), ['a', 'ü', '']);
});

test('the names key is equal for the same list and differs for another order or another list', (t) => {
  const key = (names: string[], nonce: string) => parseDiscoveryRequest(serialize({ type_url: TypeUrl.Listener, resource_names: names, response_nonce: nonce })).namesKey;
  t.true(key(['a', 'b'], 'n1').equals(key(['a', 'b'], 'n2')));
  t.false(key(['a', 'b'], 'n1').equals(key(['b', 'a'], 'n1')));
  t.false(key(['a', 'b'], 'n1').equals(key(['a'], 'n1')));
  t.is(key([], 'n1').length, 0);
});

test('names split by other fields are still read in order', (t) => {
  const bytes = encodeMessage([
    { raw: encodeRepeatedString(3, ['a']) },
    { field: 4, text: TypeUrl.Cluster },
    { raw: encodeRepeatedString(3, ['b', 'c']) },
  ]);
  const view = parseDiscoveryRequest(bytes);
  t.is(view.typeUrl, TypeUrl.Cluster);
  t.deepEqual(decodeNames(view.namesKey), ['a', 'b', 'c']);
});

test('bytes that are not a DiscoveryRequest throw', (t) => {
  t.throws(() => parseDiscoveryRequest(Buffer.from([0x0a, 0xff, 0xff, 0x01])));
});
