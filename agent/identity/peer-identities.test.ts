// The index of peer identities follows what mesh-server sends: the endpoint's service account
// within its cluster's SANs, nothing for endpoints without an agent.
import test from 'ava';
import { jsonToStruct } from '../../lib/xds/struct';
import { buildPeerIdentityIndex } from './peer-identities';

const DB = 'spiffe://cluster.local/ns/shop/sa/db';
const DB_ADMIN = 'spiffe://cluster.local/ns/shop/sa/db-admin';

function endpoint(address: string, mesh: Record<string, unknown>) {
  return { endpoint: { address: { socket_address: { address, port_value: 5432 } } }, metadata: { filter_metadata: { mesh: jsonToStruct(mesh) } } };
}

test('an endpoint maps to the SANs of its service account, endpoints without a node to nothing', (t) => {
  const clusters = new Map<string, Record<string, unknown>>([
    ['outbound|5432||db.shop', { metadata: { filter_metadata: { mesh: jsonToStruct({ tls: { mode: 'AUTO', subjectAltNames: [DB, DB_ADMIN] } }) } } }],
  ]);
  const endpoints = new Map<string, Record<string, unknown>>([
    ['outbound|5432||db.shop', { endpoints: [{ lb_endpoints: [
      endpoint('10.0.0.1', { node: 'host-b', serviceAccount: 'db' }),
      endpoint('10.0.0.2', { node: 'host-c' }),
      endpoint('10.0.0.3', { serviceAccount: 'db' }),
    ] }] }],
  ]);
  const index = buildPeerIdentityIndex(clusters, endpoints);
  t.deepEqual(index.get('10.0.0.1:5432'), [DB]);
  t.deepEqual(index.get('10.0.0.2:5432'), [DB, DB_ADMIN], 'no service account: any identity of the service');
  t.is(index.get('10.0.0.3:5432'), undefined, 'not meshed');
});
