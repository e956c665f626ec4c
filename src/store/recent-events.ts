/**
 * The newest committed events, kept in memory for event-log readers. A WatchEvents subscriber that
 * fell behind (its buffer overflowed) or is replaying from a recent sequence reads the log; served
 * from LMDB, every such subscriber decoded its own copy of every event and encoded its own
 * response, so ten lagging subscribers cost ten decodes and ten encodings per event. Served from
 * here they get the objects every live subscriber got, whose encoding is shared.
 *
 * Holds the contiguous range of sequences `[first, next)`, at most `capacity` of them. The store
 * appends each batch once it committed and tells it when pruning removed sequences, so nothing
 * read from here is outside the durable log. It appends only while a reader that fell behind
 * needs them (`EventLog.keepRecent`) and clears the tail when the last one is done: an event kept here
 * outlives a few thousand decisions, so V8 moves it to the old generation, and under load that
 * copying and the old-space collections cost every Allow about 8 µs of CPU (bench A/B).
 */
import type { StoredEvent } from "../engine/index.js";

export interface RecentEvents {
  /** Adds committed events, in sequence order (a jump in sequence starts the range anew). */
  append(events: readonly StoredEvent[]): void;
  /**
   * Up to `limit` events from `fromSeq` on, or undefined when `fromSeq` is older than what is
   * held (the caller reads LMDB). Empty when `fromSeq` is past the newest.
   */
  read(fromSeq: number, limit: number): StoredEvent[] | undefined;
  /** Forgets every sequence up to `seq` (pruned from the log). */
  forgetThrough(seq: number): void;
  /** Forgets everything and lets go of the events; the next append starts a new range. */
  clear(): void;
}

/** A ring of `capacity` events (0 holds nothing), empty until the first append. */
export function createRecentEvents(capacity: number): RecentEvents {
  const ring: (StoredEvent | undefined)[] = new Array<StoredEvent | undefined>(capacity);
  // Holding nothing is `first = next = Infinity`: every read misses, and any append is a jump.
  let first = Infinity;
  let next = Infinity;
  return {
    append(events) {
      if (capacity === 0) return;
      for (const e of events) {
        if (e.seq !== next) first = e.seq;
        ring[e.seq % capacity] = e;
        next = e.seq + 1;
        if (next - first > capacity) first = next - capacity;
      }
    },
    read(fromSeq, limit) {
      if (fromSeq < first || capacity === 0) return undefined;
      const out: StoredEvent[] = [];
      const to = Math.min(next, fromSeq + Math.max(0, limit));
      for (let s = fromSeq; s < to; s++) out.push(ring[s % capacity] as StoredEvent);
      return out;
    },
    forgetThrough(seq) {
      if (seq >= first) first = Math.min(seq + 1, next);
    },
    clear() {
      ring.fill(undefined);
      first = next = Infinity;
    },
  };
}
