// Loads Envoy's xDS v3 protos (shipped in @grpc/grpc-js-xds's deps/) once per process.
// The ADS service goes through @grpc/proto-loader for grpc-js; resource messages go into one
// protobufjs Root so that resources can be encoded into google.protobuf.Any exactly once.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import * as grpc from '@grpc/grpc-js';

const depsDir = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const protobufjsDir = path.dirname(require.resolve('protobufjs/package.json'));

export const PROTO_INCLUDE_DIRS = [
  path.join(depsDir, 'envoy-api'),
  path.join(depsDir, 'xds'),
  path.join(depsDir, 'googleapis'),
  path.join(depsDir, 'protoc-gen-validate'),
  protobufjsDir,
];

/** Proto files whose messages appear inside Any fields of the resources we serve or read. */
const RESOURCE_PROTO_FILES = [
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/jwt_authn/v3/config.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config.proto',
  'envoy/service/discovery/v3/discovery.proto',
];

export const TYPE_URL_PREFIX = 'type.googleapis.com/';

/** The four resource types the mesh serves, by their xDS type URL. */
export const TypeUrl = {
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
} as const;
export type ResourceTypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];
export const RESOURCE_TYPE_URLS: readonly ResourceTypeUrl[] = Object.values(TypeUrl);

/** Short names used in logs, metrics and the admin API (the ones istioctl prints). */
export const TYPE_SHORT_NAME: Record<ResourceTypeUrl, 'LDS' | 'RDS' | 'CDS' | 'EDS'> = {
  [TypeUrl.Listener]: 'LDS',
  [TypeUrl.RouteConfiguration]: 'RDS',
  [TypeUrl.Cluster]: 'CDS',
  [TypeUrl.ClusterLoadAssignment]: 'EDS',
};

/** Options shared by every decode so objects look the same wherever they come from. */
export const CONVERSION_OPTIONS: protobuf.IConversionOptions = {
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: false,
  oneofs: true,
};

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
  includeDirs: PROTO_INCLUDE_DIRS,
};

let resourceRoot: protobuf.Root | undefined;

/** The protobufjs Root holding every message that we encode into or decode from an Any. */
export function resourceTypes(): protobuf.Root {
  if (resourceRoot) return resourceRoot;
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of PROTO_INCLUDE_DIRS) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    return target;
  };
  root.loadSync(RESOURCE_PROTO_FILES, { keepCase: true });
  root.resolveAll();
  resourceRoot = root;
  return root;
}

function typeFor(typeUrl: string): protobuf.Type {
  if (!typeUrl.startsWith(TYPE_URL_PREFIX)) throw new Error(`unsupported type URL ${typeUrl}`);
  return resourceTypes().lookupType(typeUrl.slice(TYPE_URL_PREFIX.length));
}

export interface PackedAny {
  type_url: string;
  value: Buffer;
}

/**
 * Encodes a plain object (proto field names, nested Any values given as `{'@type': url, ...}`)
 * into an Any. Throws with the message's own complaint when the object does not fit the type.
 */
export function packAny(typeUrl: string, message: object): PackedAny {
  const type = typeFor(typeUrl);
  const invalid = type.verify(message);
  if (invalid) throw new Error(`${typeUrl.slice(TYPE_URL_PREFIX.length)}: ${invalid}`);
  assertNestedTypesKnown(message, type.name);
  const value = type.encode(type.fromObject(message)).finish();
  return { type_url: typeUrl, value: Buffer.from(value.buffer, value.byteOffset, value.byteLength) };
}

/**
 * packAny without the verification pass, for callers that verify elsewhere (the translator does
 * in its tests): fromObject takes enum names or numbers and the bytes are the same as packAny's
 * for any object packAny accepts. An object that does not fit is NOT rejected here.
 */
export function packAnyUnverified(typeUrl: string, message: object): PackedAny {
  const type = typeFor(typeUrl);
  const value = type.encode(type.fromObject(message)).finish();
  return { type_url: typeUrl, value: Buffer.from(value.buffer, value.byteOffset, value.byteLength) };
}

/**
 * protobufjs encodes a nested `{'@type': url}` whose type is not loaded as an EMPTY Any, which a
 * client would reject or misread; refuse it here, naming the path, instead.
 */
function assertNestedTypesKnown(value: unknown, path: string): void {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) assertNestedTypesKnown(value[i], `${path}[${i}]`);
    return;
  }
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value) || value instanceof Uint8Array) return;
  const typeUrl = (value as Record<string, unknown>)['@type'];
  if (typeof typeUrl === 'string') {
    const name = typeUrl.startsWith(TYPE_URL_PREFIX) ? typeUrl.slice(TYPE_URL_PREFIX.length) : typeUrl;
    if (!resourceTypes().lookup(name)) throw new Error(`${path}: type ${typeUrl} is not among the loaded protos`);
  }
  for (const [key, nested] of Object.entries(value)) {
    if (key !== '@type') assertNestedTypesKnown(nested, `${path}.${key}`);
  }
}

/** Decodes an Any into a plain object; nested Any fields come back as `{'@type': url, ...}`. */
export function unpackAny<T = Record<string, unknown>>(any: { type_url: string; value: Uint8Array }): T {
  const type = typeFor(any.type_url);
  return type.toObject(type.decode(any.value), { ...CONVERSION_OPTIONS, json: true }) as T;
}

/** Shorthand for a nested Any inside an object handed to packAny. */
export function typed(typeName: string, fields: object): Record<string, unknown> {
  return { '@type': TYPE_URL_PREFIX + typeName, ...fields };
}

let adsDefinition: grpc.GrpcObject | undefined;

/** grpc-js package object holding envoy.service.discovery.v3.AggregatedDiscoveryService. */
export function adsPackage(): grpc.GrpcObject {
  if (adsDefinition) return adsDefinition;
  const definition = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', LOADER_OPTIONS);
  adsDefinition = grpc.loadPackageDefinition(definition);
  return adsDefinition;
}

/** The ADS service definition, for grpc.Server#addService and for test clients. */
export function adsService(): grpc.ServiceClientConstructor {
  const pkg = adsPackage() as unknown as {
    envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: grpc.ServiceClientConstructor } } } };
  };
  return pkg.envoy.service.discovery.v3.AggregatedDiscoveryService;
}
