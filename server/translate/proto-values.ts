// Builders for protobuf well-known values (Duration, wrappers, Struct, percentages, addresses) in
// the plain-object form packAny expects, and a checked Any so that an unloaded type cannot slip by.
import { resourceTypes, typed } from '../../lib/xds/protos';
import { isIp, parseDurationMs } from '../kinds/common';

/** A protobuf message as a plain object with proto field names (what packAny takes). */
export type ProtoObject = Record<string, unknown>;

export interface ProtoDuration {
  seconds: number;
  nanos?: number;
}

export function durationFromMs(ms: number): ProtoDuration {
  const clamped = Math.max(0, ms);
  const seconds = Math.floor(clamped / 1000);
  const nanos = Math.round((clamped - seconds * 1000) * 1e6);
  return nanos === 0 ? { seconds } : { seconds, nanos };
}

/** A Go-style duration (`10s`, `1.5s`, `100ms`) as a proto Duration; undefined when absent or unreadable. */
export function durationFromText(text: string | undefined): ProtoDuration | undefined {
  if (text === undefined) return undefined;
  const ms = parseDurationMs(text);
  return ms === undefined ? undefined : durationFromMs(ms);
}

export function durationSeconds(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDurationMs(text);
  return ms === undefined ? undefined : Math.floor(ms / 1000);
}

export const ZERO_DURATION: ProtoDuration = { seconds: 0 };

/** google.protobuf.UInt32Value / BoolValue / DoubleValue: all wrap a `value`. */
export function wrap<T extends number | boolean | string>(value: T): { value: T } {
  return { value };
}

export const MAX_UINT32 = 4_294_967_295;

/**
 * Istio's Percent (0..100, fractional) as Envoy's FractionalPercent with a MILLION denominator,
 * which keeps four decimal places (`0.1%` is 1000/1000000).
 */
export function fractionalPercentFromPercent(percent: number): ProtoObject {
  return { numerator: Math.round(percent * 10000), denominator: 'MILLION' };
}

/** The deprecated integer percentages Istio maps with a HUNDRED denominator. */
export function fractionalPercentFromInteger(percent: number): ProtoObject {
  return { numerator: percent, denominator: 'HUNDRED' };
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json | undefined } | undefined;

// protobufjs predefines google.protobuf.Value with camelCase field names (its common.js), unlike
// the Envoy messages loaded with keepCase; snake_case keys here would be dropped without an error.
function toValue(json: Json): ProtoObject {
  if (json === null || json === undefined) return { nullValue: 'NULL_VALUE' };
  if (typeof json === 'string') return { stringValue: json };
  if (typeof json === 'number') return { numberValue: json };
  if (typeof json === 'boolean') return { boolValue: json };
  if (Array.isArray(json)) return { listValue: { values: json.map(toValue) } };
  return { structValue: toStruct(json) };
}

/** Plain JSON as google.protobuf.Struct (protobufjs has no JSON mapping for Struct); undefined keys are dropped. */
export function toStruct(json: { [key: string]: Json | undefined }): ProtoObject {
  const fields: Record<string, ProtoObject> = {};
  for (const key of Object.keys(json).sort()) {
    const value = json[key];
    if (value !== undefined) fields[key] = toValue(value);
  }
  return { fields };
}

export type { Json };

/** The inverse of toStruct, for a Struct decoded by unpackAny (readers of metadata, and tests). */
export function fromStruct(struct: unknown): { [key: string]: Json } {
  const out: { [key: string]: Json } = {};
  const fields = (struct as { fields?: Record<string, unknown> } | undefined)?.fields ?? {};
  for (const [key, value] of Object.entries(fields)) out[key] = fromValue(value);
  return out;
}

function fromValue(value: unknown): Json {
  const v = value as Record<string, unknown>;
  if ('stringValue' in v) return v.stringValue as string;
  if ('numberValue' in v) return v.numberValue as number;
  if ('boolValue' in v) return v.boolValue as boolean;
  if ('structValue' in v) return fromStruct(v.structValue);
  if ('listValue' in v) return ((v.listValue as { values?: unknown[] }).values ?? []).map(fromValue);
  return null;
}

const loadedTypes = new Set<string>();

/**
 * A nested Any for packAny. protobufjs encodes an object whose `@type` it does not know as an
 * empty Any without complaint, and Envoy would reject that; this throws instead.
 */
export function anyOf(typeName: string, fields: ProtoObject = {}): ProtoObject {
  if (!loadedTypes.has(typeName)) {
    resourceTypes().lookupType(typeName);
    loadedTypes.add(typeName);
  }
  return typed(typeName, fields);
}

export function socketAddress(address: string, port: number): ProtoObject {
  return { socket_address: { address, port_value: port } };
}

/** An IP or CIDR (`10.0.0.0/16`, `10.1.2.3`) as Envoy's CidrRange; undefined for hostnames. */
export function cidrRange(text: string): ProtoObject | undefined {
  const slash = text.indexOf('/');
  const ip = slash >= 0 ? text.slice(0, slash) : text;
  if (!isIp(ip)) return undefined;
  const full = ip.includes(':') ? 128 : 32;
  const bits = slash >= 0 ? Number(text.slice(slash + 1)) : full;
  if (!Number.isInteger(bits) || bits < 0 || bits > full) return undefined;
  return { address_prefix: ip, prefix_len: wrap(bits) };
}

export const ADS_CONFIG_SOURCE: ProtoObject = { ads: {}, resource_api_version: 'V3' };
