// A cache that outlives one model but not two: entries used while translating the latest model
// survive into the next one, entries the latest model never asked for are dropped.

export class GenerationCache<V> {
  private current = new Map<string, V>();
  private previous = new Map<string, V>();

  /** The cached value for `key`, or `build()`'s, remembered for this generation and the next. */
  get(key: string, build: () => V): V {
    if (this.current.has(key)) return this.current.get(key) as V;
    const value = this.previous.has(key) ? (this.previous.get(key) as V) : build();
    this.current.set(key, value);
    return value;
  }

  /** A new model: what the last one used stays available once more, the rest goes. */
  advance(): void {
    this.previous = this.current;
    this.current = new Map();
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }
}
