/**
 * A bounded cache of decoded committed rows (customers, alt ids, meters), between the overlay and
 * LMDB. Every decision reads its caller's customer and meters; without it each read is an LMDB
 * lookup plus a msgpack decode, and the first read after a quiet moment also renews LMDB's read
 * transaction.
 *
 * Coherence rests on two rules kept by the store: a batch puts what it wrote here only once its
 * transaction committed, and reads consult the overlay first, so a key with pending writes is
 * never read from here. Until its batch commits, a written key keeps its committed value here,
 * which is what a failed batch leaves in LMDB too. Only this process writes these tables (a
 * process that opens the dir later takes it over, and this one then refuses every write: see
 * `claimWriter`), and no maintenance task writes them outside a commit.
 *
 * Bounded so a million stored customers still cost the heap nothing much. Two generations of at
 * most half the capacity each: new entries go into the young one; when it is full it becomes the
 * old one and the previous old one is dropped whole; a hit in the old generation moves the entry
 * back into the young one, so a key read at least once per half a capacity of new entries stays.
 * No entry is ever deleted one by one: V8's Map keeps a deleted entry in its bucket chain until
 * the table is rebuilt, which in a map of 10,000 entries happens only every few thousand
 * deletions. Evicting the oldest entry one at a time (`keys().next()`, then `delete`) cost ~6 µs
 * per insert in a full map, and deleting a hot meter's key at every commit so it could be put back
 * after made each later miss walk a chain of thousands (~13 µs per delete):
 * `node build/bench/row-cache.js`.
 */

/** What a read found: a decoded row, or that the key has no row. */
const ABSENT = Symbol("absent");

export interface RowCache {
  /** The cached value: a row, `undefined` for "known absent", or `MISS` when not cached. */
  get(slot: string): unknown;
  /** Caches the committed value of `slot` (`undefined`: the key has no row). */
  set(slot: string, value: unknown): void;
  clear(): void;
  /** Entries held; at most `capacity` rounded up to an even number. */
  readonly size: number;
}

/** Returned by `get` when the key is not cached. */
export const MISS: unique symbol = Symbol("miss");

export function createRowCache(capacity: number): RowCache {
  const generation = Math.ceil(capacity / 2);
  let young = new Map<string, unknown>();
  let old = new Map<string, unknown>();

  /** Every write goes into the young generation, so a value there is the newest for its key. */
  function put(slot: string, stored: unknown): void {
    if (young.size >= generation && !young.has(slot)) {
      old = young;
      young = new Map();
    }
    young.set(slot, stored);
  }

  return {
    get(slot) {
      let v = young.get(slot);
      if (v === undefined) {
        v = old.get(slot);
        if (v === undefined) return MISS;
        put(slot, v);
      }
      return v === ABSENT ? undefined : v;
    },
    set(slot, value) {
      if (capacity <= 0) return;
      put(slot, value === undefined ? ABSENT : value);
    },
    clear() {
      young = new Map();
      old = new Map();
    },
    get size() {
      let n = young.size;
      for (const k of old.keys()) if (!young.has(k)) n++;
      return n;
    },
  };
}
