// Encodes a resource into an Any exactly once and fingerprints the bytes, so that equal content
// hashes equal and the ADS server can skip pushes of unchanged resources without decoding.
// Verification against Envoy's protos is for tests (and MESH_XDS_VERIFY=1): it costs more than
// the encoding itself and the translator's output does not depend on input it could catch.
import { createHash } from 'node:crypto';
import * as protobuf from 'protobufjs';
import { TYPE_URL_PREFIX, packAny, packAnyUnverified, resourceTypes, type ResourceTypeUrl } from '../../lib/xds/protos';
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

let verifying = process.env.MESH_XDS_VERIFY === '1';

/** Turns strict encoding on (tests) or off: every resource verified first, a misfit thrown. */
export function verifyEncodedResources(on: boolean): void {
  verifying = on;
}

/**
 * The resource as an Any plus its content hash. Verified, it goes through packAny (which needs
 * numeric enums); unverified, straight through fromObject, which reads enum names itself. Both
 * give the same bytes for every object the verified path accepts (see encoding.test.ts).
 */
export function encodeResource(typeUrl: ResourceTypeUrl, name: string, message: object): EncodedResource {
  let any;
  if (verifying) {
    const type = resourceTypes().lookupType(typeUrl.slice(TYPE_URL_PREFIX.length));
    any = packAny(typeUrl, numericEnums(type, message) as object);
  } else {
    any = packAnyUnverified(typeUrl, message);
  }
  return { name, any, hash: contentHash(any.value) };
}
