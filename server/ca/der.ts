// Strict DER reading and writing for the CA's hot path: the few structures of a PKCS#10 request and
// an X.509 leaf, without the general-purpose ASN.1 library that made issuance ~30x slower.

export class DerError extends Error {
  override readonly name = 'DerError';
}

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
  context0: 0xa0,
  context3: 0xa3,
} as const;

/** One tag-length-value inside a buffer: `bytes.subarray(start, end)` is the whole element. */
export interface Tlv {
  tag: number;
  start: number;
  contentStart: number;
  end: number;
}

/** Reads the element at `offset`, which must end at or before `limit`. */
export function readTlv(bytes: Uint8Array, offset: number, limit: number): Tlv {
  if (offset + 2 > limit) throw new DerError('truncated element');
  const tag = bytes[offset]!;
  // Every structure the CA reads uses low tag numbers; the long form only appears in attacks or junk.
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not used here');
  const first = bytes[offset + 1]!;
  let length: number;
  let contentStart: number;
  if (first < 0x80) {
    length = first;
    contentStart = offset + 2;
  } else {
    const count = first & 0x7f;
    // 0x80 is BER's indefinite length; more than 3 length bytes cannot fit the size-capped input.
    if (count === 0 || count > 3) throw new DerError('unsupported length encoding');
    if (offset + 2 + count > limit) throw new DerError('truncated length');
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[offset + 2 + i]!;
    if (length < 0x80 || bytes[offset + 2] === 0) throw new DerError('length not minimally encoded');
    contentStart = offset + 2 + count;
  }
  const end = contentStart + length;
  if (end > limit) throw new DerError('element runs past its container');
  return { tag, start: offset, contentStart, end };
}

export function expect(bytes: Uint8Array, offset: number, limit: number, tag: number, what: string): Tlv {
  const tlv = readTlv(bytes, offset, limit);
  if (tlv.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  return tlv;
}

/** The elements directly inside a constructed element. */
export function children(bytes: Uint8Array, parent: Tlv): Tlv[] {
  const items: Tlv[] = [];
  for (let at = parent.contentStart; at < parent.end;) {
    const item = readTlv(bytes, at, parent.end);
    items.push(item);
    at = item.end;
  }
  return items;
}

export function content(bytes: Uint8Array, tlv: Tlv): Uint8Array {
  return bytes.subarray(tlv.contentStart, tlv.end);
}

export function whole(bytes: Uint8Array, tlv: Tlv): Uint8Array {
  return bytes.subarray(tlv.start, tlv.end);
}

/** Bytes of a DER header (tag and definite length) for content of `length` bytes. */
export function headerLength(length: number): number {
  if (length < 0x80) return 2;
  let count = 0;
  for (let n = length; n > 0; n = Math.floor(n / 256)) count++;
  return 2 + count;
}

/** Writes the tag and length of an element at `at`; returns where its content starts. */
export function writeHeader(out: Uint8Array, at: number, tag: number, length: number): number {
  out[at++] = tag;
  if (length < 0x80) {
    out[at++] = length;
    return at;
  }
  const count = headerLength(length) - 2;
  out[at++] = 0x80 | count;
  for (let i = count - 1; i >= 0; i--) out[at + i] = Math.floor(length / 256 ** (count - 1 - i)) & 0xff;
  return at + count;
}

/** Encodes one element from its already-encoded content parts, in one allocation (issuance's hot path). */
export function tlv(tag: number, ...parts: Uint8Array[]): Buffer {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = Buffer.allocUnsafe(headerLength(length) + length);
  let at = writeHeader(out, 0, tag, length);
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const body: number[] = [];
  const first = arcs[0]! * 40 + arcs[1]!;
  for (const arc of [first, ...arcs.slice(2)]) {
    const groups = [arc & 0x7f];
    for (let n = Math.floor(arc / 128); n > 0; n = Math.floor(n / 128)) groups.unshift(0x80 | (n & 0x7f));
    body.push(...groups);
  }
  return tlv(TAG.oid, Buffer.from(body));
}

function writeDigits(out: Buffer, at: number, value: number, digits: number): number {
  for (let i = digits - 1; i >= 0; i--) {
    out[at + i] = 0x30 + (value % 10);
    value = Math.floor(value / 10);
  }
  return at + digits;
}

/** X.509 times: UTCTime through 2049, GeneralizedTime after (RFC 5280 4.1.2.5), to the second. */
export function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  const utc = year >= 1950 && year < 2050;
  // YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ, written digit by digit: this runs twice per issued leaf.
  const length = utc ? 13 : 15;
  const out = Buffer.allocUnsafe(2 + length);
  out[0] = utc ? TAG.utcTime : TAG.generalizedTime;
  out[1] = length;
  let at = writeDigits(out, 2, utc ? year % 100 : year, utc ? 2 : 4);
  at = writeDigits(out, at, date.getUTCMonth() + 1, 2);
  at = writeDigits(out, at, date.getUTCDate(), 2);
  at = writeDigits(out, at, date.getUTCHours(), 2);
  at = writeDigits(out, at, date.getUTCMinutes(), 2);
  at = writeDigits(out, at, date.getUTCSeconds(), 2);
  out[at] = 0x5a; // 'Z'
  return out;
}
