// Conversion between plain JSON and google.protobuf.Struct as protobufjs/proto-loader represent it,
// for node metadata (the ADS client encodes it, the ADS server decodes it for translation).
//
// protobufjs ships its own definition of struct.proto whose Value fields are camelCase
// (`stringValue`), even when the rest of the protos are loaded with keepCase; both spellings are
// accepted when reading so that a change there does not silently drop metadata.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** google.protobuf.Value in the object form that protobufjs encodes. */
export interface StructValueObject {
  nullValue?: number;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: StructObject;
  listValue?: { values: StructValueObject[] };
}

export interface StructObject {
  fields: Record<string, StructValueObject>;
}

function toValue(value: unknown): StructValueObject {
  if (value === null || value === undefined) return { nullValue: 0 };
  switch (typeof value) {
    case 'boolean': return { boolValue: value };
    case 'number': return { numberValue: value };
    case 'string': return { stringValue: value };
    case 'object':
      if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
      return { structValue: jsonToStruct(value as Record<string, unknown>) };
    default:
      // bigint, symbol, function: not JSON; the string form keeps the information visible.
      return { stringValue: String(value) };
  }
}

/** Plain JSON object to a Struct ready for protobufjs encoding. */
export function jsonToStruct(object: Record<string, unknown>): StructObject {
  const fields: Record<string, StructValueObject> = {};
  for (const [key, value] of Object.entries(object)) fields[key] = toValue(value);
  return { fields };
}

type LooseValue = Record<string, unknown>;

function pick(value: LooseValue, camel: string, snake: string): unknown {
  return value[camel] !== undefined ? value[camel] : value[snake];
}

function fromValue(raw: unknown): JsonValue {
  if (raw === null || typeof raw !== 'object') return null;
  const value = raw as LooseValue;
  const stringValue = pick(value, 'stringValue', 'string_value');
  if (typeof stringValue === 'string') return stringValue;
  const numberValue = pick(value, 'numberValue', 'number_value');
  if (typeof numberValue === 'number') return numberValue;
  const boolValue = pick(value, 'boolValue', 'bool_value');
  if (typeof boolValue === 'boolean') return boolValue;
  const structValue = pick(value, 'structValue', 'struct_value');
  if (structValue && typeof structValue === 'object') return structToJson(structValue);
  const listValue = pick(value, 'listValue', 'list_value') as { values?: unknown[] } | undefined;
  if (listValue && typeof listValue === 'object') return (listValue.values ?? []).map(fromValue);
  return null;
}

/** A decoded Struct (either field spelling) to plain JSON; anything unrecognisable becomes `{}`. */
export function structToJson(struct: unknown): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  if (!struct || typeof struct !== 'object') return out;
  const fields = (struct as { fields?: unknown }).fields;
  if (!fields || typeof fields !== 'object') return out;
  for (const [key, value] of Object.entries(fields as Record<string, unknown>)) out[key] = fromValue(value);
  return out;
}
