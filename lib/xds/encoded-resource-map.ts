// xDS resources held as the Any bytes the server sent and decoded when read: the agent compiles a
// config once, and keeping every decoded object afterwards (tens of objects per endpoint) cost more
// memory than anything it compiled from them. Reads outside a compile (admin config_dump) decode again.
import { unpackAny, type PackedAny } from './protos';

export type DecodedResource = Record<string, unknown>;

/**
 * A read-only map of resource name to decoded resource over encoded ones. While decoded objects are
 * held (`holdDecoded`, until `releaseDecoded`), each resource is decoded once and every read returns
 * the same object, so one compile pass over several tables decodes each resource only once.
 */
export class EncodedResourceMap implements ReadonlyMap<string, DecodedResource> {
  private decoded: Map<string, DecodedResource> | undefined;

  /** `decoded` seeds the held objects (resources already decoded, e.g. for validation). */
  constructor(readonly encoded: ReadonlyMap<string, PackedAny>, decoded?: ReadonlyMap<string, DecodedResource>) {
    if (decoded) this.decoded = new Map(decoded);
  }

  /** Keeps decoded objects from now on, until releaseDecoded. */
  holdDecoded(): void {
    this.decoded ??= new Map();
  }

  /** Drops the decoded objects: later reads decode again. */
  releaseDecoded(): void {
    this.decoded = undefined;
  }

  get size(): number {
    return this.encoded.size;
  }

  has(name: string): boolean {
    return this.encoded.has(name);
  }

  get(name: string): DecodedResource | undefined {
    const held = this.decoded?.get(name);
    if (held) return held;
    const any = this.encoded.get(name);
    if (!any) return undefined;
    // Accepted resources decoded once already; a failure here would be a bug, not bad input.
    const resource = unpackAny<DecodedResource>(any);
    this.decoded?.set(name, resource);
    return resource;
  }

  keys(): MapIterator<string> {
    return this.encoded.keys();
  }

  *values(): MapIterator<DecodedResource> {
    for (const name of this.encoded.keys()) yield this.get(name)!;
  }

  *entries(): MapIterator<[string, DecodedResource]> {
    for (const name of this.encoded.keys()) yield [name, this.get(name)!];
  }

  [Symbol.iterator](): MapIterator<[string, DecodedResource]> {
    return this.entries();
  }

  forEach(callback: (value: DecodedResource, key: string, map: ReadonlyMap<string, DecodedResource>) => void, thisArg?: unknown): void {
    for (const [name, resource] of this.entries()) callback.call(thisArg, resource, name, this);
  }
}
