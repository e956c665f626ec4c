/**
 * The WatchEvents feed: replay the stored log from a sequence number, then follow it live, with
 * no gap and no duplicate at the hand-over and bounded memory per subscriber.
 *
 * How: subscribe first (so nothing committed from now on can be missed), then read the log from
 * the cursor until it has nothing more; from then on deliver what the subscription buffered,
 * skipping anything below the cursor (already read from the log). The cursor only moves forward,
 * so no event is delivered twice. The subscription listener only appends to a bounded array: when
 * a slow reader lets it fill up, the buffer is dropped and the reader goes back to reading the
 * log (catch-up), so a slow consumer costs the decision path nothing and misses nothing that is
 * still retained. When retention has pruned events the reader still needed, it is told (a `lost`
 * item), never left with a silent gap.
 */
import type { EventLog, StoredEvent } from "../engine/index.js";

/** What the feed yields: a matching event, or a marker that retention pruned events. */
export type FeedItem =
  | { readonly kind: "event"; readonly stored: StoredEvent }
  | { readonly kind: "lost"; readonly requested: number; readonly firstAvailable: number };

export interface FollowOptions {
  /** First sequence to deliver; undefined = only events committed after the call. */
  readonly fromSequence: number | undefined;
  /** Which events to yield; all sequences are still read so the cursor stays exact. */
  readonly matches: (stored: StoredEvent) => boolean;
  /** Most events buffered in memory before switching to catch-up from the log. */
  readonly maxBuffered: number;
  /** Ends the feed (client gone, server shutting down). */
  readonly signal: AbortSignal;
  /** Events read from the log per batch. Default 256. */
  readonly batchSize?: number;
  /**
   * Registers the feed while it runs (metrics: subscriber count and lag). Given a function that
   * returns the last sequence the feed got past; returns the unregistration.
   */
  readonly track?: (position: () => number) => () => void;
}

/** Follows `log` as described above until `signal` aborts. */
export async function* followEventLog(log: EventLog, options: FollowOptions): AsyncGenerator<FeedItem> {
  const { matches, maxBuffered, signal } = options;
  const batchSize = options.batchSize ?? 256;
  let buffer: StoredEvent[] = [];
  let overflowed = false;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  // Runs on the commit path: constant work per event, never waits for the reader.
  const unsubscribe = log.subscribe((events) => {
    if (overflowed) return;
    if (buffer.length + events.length > maxBuffered) {
      overflowed = true;
      buffer = [];
    } else {
      for (const e of events) buffer.push(e);
    }
    notify();
  });
  signal.addEventListener("abort", notify);
  let untrack: (() => void) | undefined;
  try {
    let cursor = options.fromSequence === undefined ? log.lastSequence() + 1 : Math.max(1, options.fromSequence);
    untrack = options.track?.(() => cursor - 1);
    let fromLog = true;
    let head = 0; // index of the next buffered event (avoids O(n) shifts)
    while (!signal.aborted) {
      if (fromLog) {
        const first = log.firstSequence();
        if (cursor < first) {
          yield { kind: "lost", requested: cursor, firstAvailable: first };
          cursor = first;
        }
        const batch = log.readEvents(cursor, batchSize);
        if (batch.length === 0) {
          fromLog = false;
          continue;
        }
        for (const stored of batch) {
          if (stored.seq < cursor) continue;
          cursor = stored.seq + 1;
          if (matches(stored)) yield { kind: "event", stored };
          if (signal.aborted) return;
        }
        continue;
      }
      if (overflowed) {
        // The reader fell behind: forget the buffer and read the log from the cursor again.
        overflowed = false;
        buffer = [];
        head = 0;
        fromLog = true;
        continue;
      }
      if (head >= buffer.length) {
        buffer = [];
        head = 0;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        continue;
      }
      const stored = buffer[head] as StoredEvent;
      if (stored.seq < cursor) {
        head += 1;
        continue;
      }
      if (stored.seq > cursor) {
        // Something between the cursor and this event is not in the buffer: let the log say
        // what (it returns this event too, so the order stays exact).
        fromLog = true;
        continue;
      }
      head += 1;
      cursor = stored.seq + 1;
      if (matches(stored)) yield { kind: "event", stored };
    }
  } finally {
    untrack?.();
    unsubscribe();
    signal.removeEventListener("abort", notify);
  }
}
