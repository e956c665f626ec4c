/**
 * A bounded cache of decoded committed rows (customers, alt ids, meters), between the overlay and
 * LMDB. Every decision reads its caller's customer and meters; without it each read is an LMDB
 * lookup plus a msgpack decode, and the first read after a quiet moment also renews LMDB's read
 * transaction.
 *
 * Coherence rests on two rules kept by the store: a commit evicts every key it writes before
 * the write becomes readable, and a batch puts what it wrote here only once its transaction
 * committed. Reads consult the overlay first, so a key with pending writes is never read from
 * here; a failed batch leaves the key absent (read from LMDB again) or at its committed value.
 * Only this process writes these tables (LMDB's lock file keeps others out), and no maintenance
 * task writes them outside a commit.
 *
 * Bounded so a million stored customers still cost the heap nothing much: when full, the entry
 * inserted first is evicted (a hot key that gets evicted is simply loaded again).
 */

/** What a read found: a decoded row, or that the key has no row. */
const ABSENT = Symbol("absent");

export interface RowCache {
  /** The cached value: a row, `undefined` for "known absent", or `MISS` when not cached. */
  get(slot: string): unknown;
  set(slot: string, value: unknown): void;
  delete(slot: string): void;
  clear(): void;
  readonly size: number;
}

/** Returned by `get` when the key is not cached. */
export const MISS: unique symbol = Symbol("miss");

export function createRowCache(capacity: number): RowCache {
  const entries = new Map<string, unknown>();
  return {
    get(slot) {
      const v = entries.get(slot);
      if (v === undefined) return MISS;
      return v === ABSENT ? undefined : v;
    },
    set(slot, value) {
      if (capacity <= 0) return;
      if (entries.size >= capacity && !entries.has(slot)) {
        const oldest = entries.keys().next();
        if (oldest.done !== true) entries.delete(oldest.value);
      }
      entries.set(slot, value === undefined ? ABSENT : value);
    },
    delete(slot) {
      entries.delete(slot);
    },
    clear() {
      entries.clear();
    },
    get size() {
      return entries.size;
    },
  };
}
