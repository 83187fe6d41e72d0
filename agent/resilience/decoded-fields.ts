// Reading the protobuf wrapper, Percent and Duration fields of a decoded Cluster (unpackAny's
// snake_case form) into plain numbers, with errors that name the cluster and the field.

/** A decoded google.protobuf.*Value or envoy.type.v3.Percent: `{}` when the value is the proto3 zero. */
export type Wrapped = { value?: number | string } | undefined;
/** A decoded google.protobuf.Duration: int64 seconds arrive as strings. */
export type DecodedDuration = { seconds?: number | string; nanos?: number } | undefined;

/** The wrapped number, `fallback` when the field is absent; present without a value is 0 (proto3). */
export function wrappedValue(value: Wrapped, fallback: number, where: string): number {
  if (value === undefined || value === null) return fallback;
  const n = Number(value.value ?? 0);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${where} must be a non-negative number, got ${String(value.value)}`);
  return n;
}

/** Like wrappedValue, for integer counts. */
export function wrappedCount(value: Wrapped, fallback: number, where: string): number {
  const n = wrappedValue(value, fallback, where);
  if (!Number.isInteger(n)) throw new Error(`${where} must be a whole number, got ${n}`);
  return n;
}

/** A Percent field in [0, 100]. */
export function wrappedPercent(value: Wrapped, fallback: number, where: string): number {
  const n = wrappedValue(value, fallback, where);
  if (n > 100) throw new Error(`${where} must be at most 100 (percent), got ${n}`);
  return n;
}

/** The duration in milliseconds, `fallback` when absent; negative durations are refused as Envoy does. */
export function durationMs(value: DecodedDuration, fallback: number, where: string): number {
  if (value === undefined || value === null) return fallback;
  const seconds = Number(value.seconds ?? 0);
  const nanos = Number(value.nanos ?? 0);
  if (!Number.isFinite(seconds) || !Number.isFinite(nanos)) throw new Error(`${where} is not a valid duration`);
  const ms = seconds * 1000 + nanos / 1e6;
  if (ms < 0) throw new Error(`${where} must not be negative, got ${ms} ms`);
  return ms;
}
