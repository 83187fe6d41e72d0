// Envoy's CidrRange as a predicate over address text, for RBAC's direct_remote_ip/remote_ip/
// destination_ip. Addresses are parsed per call into a shared scratch buffer: no allocation.

/** One address as four 32-bit words (IPv4 in the last word); written by parseInto. */
const scratch = new Uint32Array(4);
/** The IPv6 groups as written, before the "::" gap is expanded. */
const groupScratch = new Uint16Array(8);

function hexDigit(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  if (code >= 65 && code <= 70) return code - 55;
  return -1;
}

/** IPv4 dotted quad in text[start, end) as an unsigned 32-bit number, or -1. */
function parseV4(text: string, start: number, end: number): number {
  let value = 0;
  let octet = -1;
  let dots = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (octet < 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = -1;
      dots++;
    } else if (c >= 48 && c <= 57) {
      octet = octet < 0 ? c - 48 : octet * 10 + (c - 48);
      if (octet > 255) return -1;
    } else return -1;
  }
  if (octet < 0 || dots !== 3) return -1;
  return value * 256 + octet;
}

/**
 * Parses an IPv4 or IPv6 address (a zone `%eth0` ignored) into `scratch`; returns 4 or 6, or 0 when
 * it is not an address. IPv4-mapped IPv6 (`::ffff:a.b.c.d`) counts as IPv4, as the kernel gives
 * it to a dual-stack listener for IPv4 clients.
 */
function parseInto(text: string): 0 | 4 | 6 {
  let end = text.indexOf('%');
  if (end < 0) end = text.length;
  if (text.indexOf(':') < 0) {
    const v4 = parseV4(text, 0, end);
    if (v4 < 0) return 0;
    scratch[0] = 0;
    scratch[1] = 0;
    scratch[2] = 0;
    scratch[3] = v4;
    return 4;
  }
  // Groups before "::" fill from the front, those after it from the back.
  const groups = groupScratch;
  let count = 0;
  let gap = -1;
  let i = 0;
  if (text.startsWith('::')) {
    gap = 0;
    i = 2;
  }
  while (i < end) {
    if (text.charCodeAt(i) === 58) {
      if (gap >= 0 || text.charCodeAt(i + 1) !== 58) return 0;
      gap = count;
      i += 1;
      if (i + 1 >= end) {
        i = end;
        break;
      }
      i += 1;
      continue;
    }
    let j = i;
    let value = 0;
    while (j < end && text.charCodeAt(j) !== 58 && text.charCodeAt(j) !== 46) {
      const d = hexDigit(text.charCodeAt(j));
      if (d < 0 || j - i >= 4) return 0;
      value = value * 16 + d;
      j++;
    }
    if (j < end && text.charCodeAt(j) === 46) {
      const v4 = parseV4(text, i, end);
      if (v4 < 0 || count > 6) return 0;
      groups[count++] = v4 >>> 16;
      groups[count++] = v4 & 0xffff;
      i = end;
      break;
    }
    if (j === i || count >= 8) return 0;
    groups[count++] = value;
    i = j;
    if (i < end) {
      // A single ':' separates groups; "::" is handled at the top of the loop.
      if (text.charCodeAt(i + 1) === 58) continue;
      i += 1;
      if (i >= end) return 0;
    }
  }
  if (gap < 0 && count !== 8) return 0;
  if (gap >= 0 && count > 7) return 0;
  const shift = gap < 0 ? 0 : 8 - count;
  for (let g = 0; g < 8; g++) {
    const value = gap < 0 || g < gap ? groups[g]! : g < gap + shift ? 0 : groups[g - shift]!;
    const word = g >> 1;
    scratch[word] = g % 2 === 0 ? (value << 16) >>> 0 : (scratch[word]! | value) >>> 0;
  }
  if (scratch[0] === 0 && scratch[1] === 0 && scratch[2] === 0xffff) {
    scratch[2] = 0;
    return 4;
  }
  return 6;
}

export class IpRangeError extends Error {}

/** A compiled CIDR range. */
export class IpRange {
  private constructor(
    private readonly family: 4 | 6,
    private readonly words: Uint32Array,
    private readonly prefix: number,
  ) {}

  /** `address` and `prefixLen` as Envoy's CidrRange holds them. */
  static of(address: string, prefixLen: number): IpRange {
    const family = parseInto(address);
    if (family === 0) throw new IpRangeError(`${JSON.stringify(address)} is not an IP address`);
    const max = family === 4 ? 32 : 128;
    if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > max) throw new IpRangeError(`prefix length ${prefixLen} is out of range 0..${max} for ${address}`);
    // IPv4 ranges compare the last word only; prefix counts from its first bit.
    return new IpRange(family, Uint32Array.from(scratch), family === 4 ? prefixLen + 96 : prefixLen);
  }

  /** True when `address` (text) lies in the range; never for unparsable text or another family. */
  contains(address: string): boolean {
    if (parseInto(address) !== this.family) return false;
    let bits = this.prefix;
    for (let w = 0; w < 4 && bits > 0; w++) {
      const take = bits >= 32 ? 32 : bits;
      const mask = take === 32 ? 0xffffffff : (~(0xffffffff >>> take)) >>> 0;
      if (((scratch[w]! ^ this.words[w]!) & mask) >>> 0 !== 0) return false;
      bits -= take;
    }
    return true;
  }
}
