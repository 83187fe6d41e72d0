import test from 'ava';
import { packAny, unpackAny, typed, TypeUrl, adsService } from './protos';
import { ADS_STREAM_METHOD_PATH } from './ads-client';

test('a listener with a typed HTTP connection manager survives encode and decode', (t) => {
  const listener = {
    name: '0.0.0.0_9080',
    address: { socket_address: { address: '0.0.0.0', port_value: 9080 } },
    filter_chains: [{
      filters: [{
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: typed('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
          stat_prefix: 'outbound_0.0.0.0_9080',
          rds: { route_config_name: '9080', config_source: { ads: {}, resource_api_version: 'V3' } },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: typed('envoy.extensions.filters.http.router.v3.Router', {}) }],
        }),
      }],
    }],
  };
  const any = packAny(TypeUrl.Listener, listener);
  t.true(any.value.length > 50);
  const back = unpackAny<any>(any);
  t.is(back.name, '0.0.0.0_9080');
  t.is(back.address.socket_address.port_value, 9080);
  const hcm = back.filter_chains[0].filters[0].typed_config;
  t.is(hcm['@type'], 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
  t.is(hcm.rds.route_config_name, '9080');
});

test('packing an object that does not fit the message type throws with the field', (t) => {
  const error = t.throws(() => packAny(TypeUrl.Cluster, { name: 'x', connect_timeout: 'soon' }));
  t.regex(error!.message, /connect_timeout/);
});

test('the ADS service definition has the streaming method', (t) => {
  t.truthy((adsService() as any).service.StreamAggregatedResources);
});

test('a nested Any of a type that is not loaded is refused, not encoded empty', (t) => {
  const error = t.throws(() => packAny(TypeUrl.Listener, {
    name: 'x',
    filter_chains: [{ filters: [{ name: 'f', typed_config: typed('envoy.extensions.filters.network.no_such_filter.v3.Nope', {}) }] }],
  }));
  t.regex(error!.message, /filter_chains\[0\]\.filters\[0\]\.typed_config: type type\.googleapis\.com\/envoy\.extensions\.filters\.network\.no_such_filter\.v3\.Nope is not among the loaded protos/);
});

test('the ADS method path the client spells out is the one the service definition declares', (t) => {
  t.is(ADS_STREAM_METHOD_PATH, adsService().service.StreamAggregatedResources!.path);
});
