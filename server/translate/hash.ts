// Encodes a resource into an Any exactly once and fingerprints the bytes, so that equal content
// hashes equal and the ADS server can skip pushes of unchanged resources without decoding.
import { createHash } from 'node:crypto';
import * as protobuf from 'protobufjs';
import { TYPE_URL_PREFIX, packAny, resourceTypes, type ResourceTypeUrl } from '../../lib/xds/protos';
import type { EncodedResource } from '../xds/generator';

/** SHA-1 of the encoded message, base64url: collisions are not a concern for change detection. */
export function contentHash(bytes: Uint8Array): string {
  return createHash('sha1').update(bytes).digest('base64url');
}

function convertField(field: protobuf.Field, value: unknown): unknown {
  const type = field.resolve().resolvedType;
  if (type instanceof protobuf.Enum) return typeof value === 'string' && value in type.values ? type.values[value] : value;
  // Inside an Any, protobufjs's fromObject reads enum names itself; verify never looks there.
  if (type instanceof protobuf.Type && type.fullName !== '.google.protobuf.Any') return numericEnums(type, value);
  return value;
}

/**
 * packAny's verify step accepts enums only as numbers, while fromObject and unpackAny use their
 * names; the translator writes names (readable, as Envoy's docs spell them) and converts here.
 */
export function numericEnums(type: protobuf.Type, message: unknown): unknown {
  if (!message || typeof message !== 'object' || Array.isArray(message) || Buffer.isBuffer(message)) return message;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(message as Record<string, unknown>)) {
    const field = type.fields[key];
    if (!field || value === undefined || value === null) {
      out[key] = value;
    } else if (field.map) {
      out[key] = Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, convertField(field, v)]));
    } else if (field.repeated && Array.isArray(value)) {
      out[key] = value.map((v) => convertField(field, v));
    } else {
      out[key] = convertField(field, value);
    }
  }
  return out;
}

/** packAny (which verifies the object against Envoy's protos) plus the content hash. */
export function encodeResource(typeUrl: ResourceTypeUrl, name: string, message: object): EncodedResource {
  const type = resourceTypes().lookupType(typeUrl.slice(TYPE_URL_PREFIX.length));
  const any = packAny(typeUrl, numericEnums(type, message) as object);
  return { name, any, hash: contentHash(any.value) };
}
