// Just enough of the protobuf wire format to build the xDS envelope messages (DiscoveryRequest,
// DiscoveryResponse) by hand around parts that are encoded once and reused, and strict readers.
//
// Why by hand: the parts that dominate these messages (the resources of a response, the resource
// names of a request) rarely change, and generic encoders would rebuild them for every message.

/** Wire type 2 (length-delimited) tag of a field. */
export function lengthDelimitedTag(field: number): number {
  return (field << 3) | 2;
}

export function varintSize(value: number): number {
  if (value < 0x80) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x200000) return 3;
  if (value < 0x10000000) return 4;
  return 5;
}

/** Writes a non-negative 32-bit varint; returns the offset after it. */
export function writeVarint(buffer: Buffer, offset: number, value: number): number {
  let rest = value >>> 0;
  while (rest > 0x7f) {
    buffer[offset++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  buffer[offset++] = rest;
  return offset;
}

/** One field of a message being assembled, or bytes that are already complete fields. */
export type WirePart =
  | { field: number; text: string }
  | { field: number; bytes: Uint8Array }
  | { field: number; varint: number }
  | { raw: Uint8Array };

function partSize(part: WirePart): number {
  if ('raw' in part) return part.raw.length;
  const tagSize = varintSize(part.field << 3);
  if ('varint' in part) return tagSize + varintSize(part.varint);
  const length = 'text' in part ? Buffer.byteLength(part.text, 'utf8') : part.bytes.length;
  return tagSize + varintSize(length) + length;
}

/**
 * Concatenates the parts into one message. Empty strings and zero varints are left out, as proto3
 * encoders do for scalar defaults; `bytes` parts (embedded messages) are always written, because
 * for a message field presence itself means something.
 */
export function encodeMessage(parts: readonly WirePart[]): Buffer {
  let total = 0;
  for (const part of parts) if (!isDefault(part)) total += partSize(part);
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (const part of parts) {
    if (isDefault(part)) continue;
    if ('raw' in part) {
      out.set(part.raw, offset);
      offset += part.raw.length;
    } else if ('varint' in part) {
      offset = writeVarint(out, offset, part.field << 3);
      offset = writeVarint(out, offset, part.varint);
    } else if ('text' in part) {
      const length = Buffer.byteLength(part.text, 'utf8');
      offset = writeVarint(out, offset, lengthDelimitedTag(part.field));
      offset = writeVarint(out, offset, length);
      offset += out.write(part.text, offset, length, 'utf8');
    } else {
      offset = writeVarint(out, offset, lengthDelimitedTag(part.field));
      offset = writeVarint(out, offset, part.bytes.length);
      out.set(part.bytes, offset);
      offset += part.bytes.length;
    }
  }
  return out;
}

function isDefault(part: WirePart): boolean {
  if ('text' in part) return part.text === '';
  if ('varint' in part) return part.varint === 0;
  return false;
}

/** A repeated string field as complete entries (empty strings included), ready to be a raw part. */
export function encodeRepeatedString(field: number, values: readonly string[]): Buffer {
  return encodeMessage(values.map((text) => ({ field, bytes: Buffer.from(text, 'utf8') })));
}

/**
 * A strict forward-only reader over one message. Unlike protobufjs's BufferReader, a length that
 * runs past the end throws instead of being clamped, and skipping a field is a few array reads:
 * the xDS envelopes repeat one small field (a name, an Any) a thousand times.
 */
export class WireReader {
  pos: number;

  constructor(readonly buffer: Buffer, start = 0, readonly end = buffer.length) {
    this.pos = start;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /** A varint of up to 32 bits (tags, lengths, int32/uint32/enum values). */
  uint32(): number {
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) throw new Error(`truncated varint at byte ${this.pos}`);
      const byte = this.buffer[this.pos++]!;
      value |= (byte & 0x7f) << shift;
      if (byte < 0x80) return value >>> 0;
    }
    // Longer varints (negative int32 are sent as 10 bytes): keep the low 32 bits, skip the rest.
    while (this.pos < this.end && this.buffer[this.pos++]! >= 0x80);
    return value >>> 0;
  }

  /** The length of a length-delimited field, checked against the end of the message. */
  length(): number {
    const length = this.uint32();
    if (this.pos + length > this.end) throw new Error(`field of ${length} bytes at byte ${this.pos} runs past the end (${this.end})`);
    return length;
  }

  /** A length-delimited field as a view (no copy). */
  bytes(): Buffer {
    const length = this.length();
    const start = this.pos;
    this.pos += length;
    return this.buffer.subarray(start, this.pos);
  }

  string(): string {
    const length = this.length();
    const start = this.pos;
    this.pos += length;
    return this.buffer.toString('utf8', start, this.pos);
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0: this.uint32(); break;
      case 1: this.advance(8); break;
      case 2: {
        // Not `this.pos += this.length()`: that would add to the position read before the length.
        const length = this.length();
        this.pos += length;
        break;
      }
      case 5: this.advance(4); break;
      default: throw new Error(`unsupported wire type ${wireType} at byte ${this.pos}`);
    }
  }

  private advance(count: number): void {
    if (this.pos + count > this.end) throw new Error(`truncated field at byte ${this.pos}`);
    this.pos += count;
  }
}
