// IPv4/IPv6 CIDR parsing into the canonical text iptables-save and nft print back.
// Verification compares rule text, so "10.1.2.3" must become "10.1.2.3/32" before it is installed.
import net from 'node:net';

export interface Cidr {
  readonly family: 4 | 6;
  /** Network address with host bits cleared, in the form inet_ntop prints (RFC 5952 for IPv6). */
  readonly address: string;
  readonly prefix: number;
}

export class CidrError extends Error {
  override readonly name = 'CidrError';
}

/** Parses "a.b.c.d[/n]" or "v6[/n]"; host bits are cleared so the result is the network itself. */
export function parseCidr(text: string): Cidr {
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addressText = slash === -1 ? trimmed : trimmed.slice(0, slash);
  const family = net.isIP(addressText);
  if (family !== 4 && family !== 6) {
    throw new CidrError(`"${text}" is not an IPv4 or IPv6 address or CIDR`);
  }
  const maxPrefix = family === 4 ? 32 : 128;
  let prefix = maxPrefix;
  if (slash !== -1) {
    const prefixText = trimmed.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > maxPrefix) {
      throw new CidrError(`"${text}": prefix length must be 0..${maxPrefix}`);
    }
    prefix = Number(prefixText);
  }
  const bytes = family === 4 ? ipv4Bytes(addressText) : ipv6Bytes(addressText);
  maskInPlace(bytes, prefix);
  const address = family === 4 ? bytes.join('.') : formatIpv6(bytes);
  return { family, address, prefix };
}

/** iptables-save spelling: always with the prefix length. */
export function iptablesCidrText(cidr: Cidr): string {
  return `${cidr.address}/${cidr.prefix}`;
}

/** nft list spelling: a host route is printed as the bare address. */
export function nftCidrText(cidr: Cidr): string {
  return cidr.prefix === (cidr.family === 4 ? 32 : 128) ? cidr.address : `${cidr.address}/${cidr.prefix}`;
}

function ipv4Bytes(text: string): number[] {
  return text.split('.').map(Number);
}

function ipv6Bytes(text: string): number[] {
  let head = text;
  let tail = '';
  const doubleColon = text.indexOf('::');
  if (doubleColon !== -1) {
    head = text.slice(0, doubleColon);
    tail = text.slice(doubleColon + 2);
  }
  const parseGroups = (part: string): number[] => {
    if (part === '') return [];
    const groups: number[] = [];
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        const [a, b, c, d] = ipv4Bytes(piece) as [number, number, number, number];
        groups.push((a << 8) | b, (c << 8) | d);
      } else {
        groups.push(parseInt(piece, 16));
      }
    }
    return groups;
  };
  const headGroups = parseGroups(head);
  const tailGroups = parseGroups(tail);
  const zeros = new Array<number>(8 - headGroups.length - tailGroups.length).fill(0);
  const groups = doubleColon === -1 ? headGroups : [...headGroups, ...zeros, ...tailGroups];
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

function maskInPlace(bytes: number[], prefix: number): void {
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
}

// Same choices as glibc's inet_ntop, which both iptables-save and nft use to print addresses:
// the longest run (first on ties) of two or more zero groups becomes "::", and the IPv4-mapped and
// IPv4-compatible forms keep a dotted tail.
function formatIpv6(bytes: number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestLength < 2) bestStart = -1;
  const dottedTail =
    bestStart === 0 && (bestLength === 6 || (bestLength === 5 && groups[5] === 0xffff));
  const parts: string[] = [];
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      parts.push(i === 0 ? ':' : '');
      i += bestLength - 1;
      if (i === 7) parts.push('');
      continue;
    }
    if (dottedTail && i === 6) {
      parts.push(bytes.slice(12, 16).join('.'));
      break;
    }
    parts.push((groups[i] ?? 0).toString(16));
  }
  return parts.join(':');
}
