// One Subscription object per distinct list of names, shared by every stream that asks for it.
//
// Why: a fleet of agents without Sidecars names the same thousand EDS clusters, and each stream
// would otherwise hold its own Set of them plus the request buffer its names key points into.
// Shared objects also let the generator cache its result per subscription (a WeakMap key), so
// identical streams get the identical result and the ADS server hashes and encodes it once.
import * as crypto from 'node:crypto';
import type { Subscription } from './generator';

/** Past this many distinct name lists the table starts over; streams keep the objects they hold. */
const MAX_ENTRIES = 4096;

export interface InternedNames {
  /** A copy of the encoded names, detached from the request buffer it came in. */
  namesKey: Buffer;
  subscription: Subscription;
}

export class SubscriptionInterner {
  private entries = new Map<string, InternedNames>();

  /**
   * The shared entry for a non-empty list of names (without `*`, which the caller maps to a
   * wildcard itself). `names` is only called when the list was not seen before.
   */
  intern(namesKey: Buffer, names: () => readonly string[]): InternedNames {
    const key = crypto.hash('sha1', namesKey, 'base64url');
    let entry = this.entries.get(key);
    if (entry && entry.namesKey.equals(namesKey)) return entry;
    if (this.entries.size >= MAX_ENTRIES) this.entries = new Map();
    entry = { namesKey: Buffer.from(namesKey), subscription: { wildcard: false, names: new Set(names()) } };
    this.entries.set(key, entry);
    return entry;
  }
}
