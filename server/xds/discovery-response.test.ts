// The hand-built DiscoveryResponse bytes must be what proto-loader (servers' peers) and the
// AdsClient's envelope reader decode; these tests compare all three on awkward inputs.
import test from 'ava';
import { parseDiscoveryResponse } from '../../lib/xds/ads-client';
import { adsService, packAny, TypeUrl, unpackAny } from '../../lib/xds/protos';
import { encodeDiscoveryResponse, encodeResourcesField, rawAdsServiceDefinition } from './discovery-response';
import type { EncodedResource } from './generator';

function cluster(name: string, padding = 0): EncodedResource {
  // A long alt_stat_name makes resources big enough for multi-byte length prefixes.
  const any = packAny(TypeUrl.Cluster, { name, alt_stat_name: 'x'.repeat(padding) });
  return { name, any, hash: name };
}

interface Decoded {
  version_info: string;
  resources?: { type_url: string; value: Buffer }[];
  type_url: string;
  nonce: string;
}

const deserialize = adsService().service.StreamAggregatedResources!.responseDeserialize as (bytes: Buffer) => Decoded;

test('proto-loader decodes the encoded response field for field, including big and non-ASCII values', (t) => {
  const resources = [cluster('outbound|80||ä.example'), cluster('big', 20_000), cluster('tiny')];
  const bytes = encodeDiscoveryResponse('vé-1', encodeResourcesField(resources), TypeUrl.Cluster, 'nonce-€');
  const decoded = deserialize(bytes);
  t.is(decoded.version_info, 'vé-1');
  t.is(decoded.type_url, TypeUrl.Cluster);
  t.is(decoded.nonce, 'nonce-€');
  t.is(decoded.resources!.length, 3);
  for (const [i, resource] of resources.entries()) {
    t.is(decoded.resources![i]!.type_url, TypeUrl.Cluster);
    t.true(Buffer.from(decoded.resources![i]!.value).equals(resource.any.value));
  }
  t.is(unpackAny<{ alt_stat_name: string }>(decoded.resources![1]!).alt_stat_name.length, 20_000);
});

test('an empty resource set encodes a response with no resources', (t) => {
  const decoded = deserialize(encodeDiscoveryResponse('v0', encodeResourcesField([]), TypeUrl.ClusterLoadAssignment, 'n'));
  t.is(decoded.version_info, 'v0');
  t.deepEqual(decoded.resources ?? [], []);
});

test('the client envelope reader sees the same fields, and only counts when not keeping resources', (t) => {
  const resources = [cluster('a'), cluster('b', 300)];
  const bytes = encodeDiscoveryResponse('v9', encodeResourcesField(resources), TypeUrl.Cluster, 'n9');
  const kept = parseDiscoveryResponse(bytes, true);
  t.like(kept, { version: 'v9', typeUrl: TypeUrl.Cluster, nonce: 'n9', count: 2 });
  t.true(kept.resources[1]!.value.equals(resources[1]!.any.value));
  const counted = parseDiscoveryResponse(bytes, false);
  t.like(counted, { version: 'v9', nonce: 'n9', count: 2 });
  t.is(counted.resources.length, 0);
});

test('the service definition passes bytes through both ways', (t) => {
  const definition = rawAdsServiceDefinition().StreamAggregatedResources!;
  const bytes = Buffer.from([1, 2, 3]);
  t.is(definition.responseSerialize(bytes), bytes);
  t.is(definition.requestDeserialize(bytes), bytes);
  t.is(definition.path, adsService().service.StreamAggregatedResources!.path);
});
