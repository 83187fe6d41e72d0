// The 64-bit hash behind ring hash, maglev and route hash policies: MurmurHash3 x86_32 run under
// two seeds and concatenated, computed with 32-bit integer math so that hashing never allocates.

/** Ring and table positions are the top 53 bits of the 64-bit hash, so that they fit a double exactly. */
export const POSITION_SPACE = 2 ** 53;
const LOW_BITS_KEPT = 2 ** 21;

const SEED_HIGH = 0x9747b28c;
const SEED_LOW = 0x5bd1e995;

/**
 * MurmurHash3 x86_32 over the string's UTF-16LE bytes, read two code units per 32-bit block so
 * that no byte buffer is built. Envoy hashes UTF-8 bytes with xxHash; our keys only have to agree
 * between our own agents.
 */
export function murmur3(text: string, seed: number): number {
  let h = seed >>> 0;
  const units = text.length;
  const blocks = units >>> 1;
  for (let i = 0; i < blocks; i++) {
    let k = text.charCodeAt(2 * i) | (text.charCodeAt(2 * i + 1) << 16);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (units & 1) {
    let k = text.charCodeAt(units - 1);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= units * 2;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Upper 32 bits of the 64-bit hash of `text`. */
export function hashHigh(text: string): number {
  return murmur3(text, SEED_HIGH);
}

/** Lower 32 bits of the 64-bit hash of `text`. */
export function hashLow(text: string): number {
  return murmur3(text, SEED_LOW);
}

/** The 53-bit position of a 64-bit hash given as its two halves. */
export function position(high: number, low: number): number {
  return (high >>> 0) * LOW_BITS_KEPT + ((low >>> 0) >>> 11);
}

/** The 53-bit position of `text`'s 64-bit hash. */
export function hashPosition(text: string): number {
  return position(hashHigh(text), hashLow(text));
}

/**
 * A caller's hash as a position: numbers are taken as positions already (what hash-policy.ts
 * produces); a bigint is read as a full 64-bit hash and keeps its top 53 bits.
 */
export function toPosition(hash: bigint | number): number {
  if (typeof hash === 'number') return hash >= 0 && hash < POSITION_SPACE ? Math.floor(hash) : Math.abs(Math.floor(hash)) % POSITION_SPACE;
  return Number(BigInt.asUintN(64, hash) >> 11n);
}
