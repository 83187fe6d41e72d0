// Field numbers of the few xDS envelope messages that the ADS server and client encode by hand
// (for speed), read from the loaded Envoy protos so that nothing restates a .proto file.
import { resourceTypes } from './protos';

function fieldNumbers<const Name extends string>(typeName: string, names: readonly Name[]): Readonly<Record<Name, number>> {
  const type = resourceTypes().lookupType(typeName);
  const numbers = {} as Record<Name, number>;
  for (const name of names) {
    const field = type.fields[name];
    if (!field) throw new Error(`${typeName} has no field ${name}`);
    numbers[name] = field.id;
  }
  return numbers;
}

export const DiscoveryRequestField = fieldNumbers('envoy.service.discovery.v3.DiscoveryRequest',
  ['version_info', 'node', 'resource_names', 'type_url', 'response_nonce', 'error_detail']);
export const DiscoveryResponseField = fieldNumbers('envoy.service.discovery.v3.DiscoveryResponse',
  ['version_info', 'resources', 'type_url', 'nonce']);
export const AnyField = fieldNumbers('google.protobuf.Any', ['type_url', 'value']);
export const StatusField = fieldNumbers('google.rpc.Status', ['code', 'message']);
