/**
 * The WatchEvents feed: replay the stored log from a sequence number, then follow it live, with
 * no gap and no duplicate at the hand-over and bounded memory per subscriber.
 *
 * How: subscribe first (so nothing committed from now on can be missed), then read the log from
 * the cursor until it has nothing more; from then on deliver what the subscription buffered,
 * skipping anything below the cursor (already read from the log). The cursor only moves forward,
 * so no event is delivered twice. The subscription listener filters and appends the matching
 * events to a bounded array, and wakes the reader only when something matched: when a slow reader
 * lets the array fill up, buffering stops, the reader gets what the array holds and goes back to
 * reading the log (catch-up), so a slow consumer costs the decision path nothing and misses nothing
 * that is still retained. While behind, it asks the log to keep new events in memory
 * (`keepRecent`), so that catching up reads the objects every live subscriber got, not LMDB.
 * When retention has pruned events the reader still needed, it is told (a `lost` item), never
 * left with a silent gap. Events ready together are handed over together, up to `maxBatch`; with
 * `maxDelayMs`, live events wait that long for more before a batch that is not full goes, and the
 * listener wakes the reader only once a batch is full, so a subscriber costs the commit path
 * about one wake-up per delay instead of one per commit. Reading the log takes turns with the
 * rest of the event loop (a slice of time per turn, shared by every feed), so a replay over a
 * long log never holds up decisions for long. With `positionEveryMs`, a feed that went quietly
 * past events that did not match says where it stands, so its consumer can resume from there.
 */
import type { EventLog, StoredEvent } from "../engine/index.js";

/**
 * What the feed yields: matching events in sequence order (at most `maxBatch`, as many as were
 * ready together), or a marker that retention pruned events.
 */
export type FeedItem =
  | { readonly kind: "events"; readonly events: readonly StoredEvent[] }
  | { readonly kind: "lost"; readonly requested: number; readonly firstAvailable: number }
  /** Every matching event below `next` was delivered: where a resume misses nothing and rereads nothing. */
  | { readonly kind: "position"; readonly next: number };

export interface FollowOptions {
  /** First sequence to deliver; undefined = only events committed after the call. */
  readonly fromSequence: number | undefined;
  /** Which events to yield; all sequences are still read so the cursor stays exact. */
  readonly matches: (stored: StoredEvent) => boolean;
  /** Most events buffered in memory before switching to catch-up from the log. */
  readonly maxBuffered: number;
  /** Ends the feed (client gone, server shutting down). */
  readonly signal: AbortSignal;
  /** Events read from the log per batch. Default 64. */
  readonly batchSize?: number;
  /** Most events per yielded item. Default 1. */
  readonly maxBatch?: number;
  /**
   * With `maxBatch` above 1: how long live events may wait for more before a batch that is not
   * full is yielded, counted from when the first of them was buffered. Default 0 (at once).
   */
  readonly maxDelayMs?: number;
  /**
   * When above 0: after a stretch of at least this long in which the feed went past events that
   * did not match and yielded nothing, it yields a `position`. A filtered subscriber's resume
   * point then follows the log, not just its own last event, so a reconnect neither rescans
   * what it already went past nor reports as lost events it never wanted. Default 0 (never).
   */
  readonly positionEveryMs?: number;
  /**
   * Registers the feed while it runs (metrics: subscriber count and lag). Given a function that
   * returns the last sequence the feed got past; returns the unregistration.
   */
  readonly track?: (position: () => number) => () => void;
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * How long feeds may read the log per event-loop turn, all of them together: a quarter of the
 * last turn's length, within these bounds (milliseconds).
 */
const REPLAY_SLICE = { min: 0.5, share: 0.25, max: 5 };
let sliceEnds = 0;
let sliceOpen = false;
let sliceOpenedAt = 0;
let lastTurnMs = 0;

/**
 * Whether this event-loop turn has reading time left. One slice per turn shared by every feed,
 * not one per feed: ten subscribers replaying at once then cost a turn about what one does (each
 * still gets a read per turn). Time rather than a count of events, and a share of the turn: when
 * turns are long because commits are large, a feed that is behind reads more per turn too, and
 * catches up rather than falling further behind.
 */
function replayTimeLeft(): boolean {
  const now = performance.now();
  if (!sliceOpen) {
    sliceOpen = true;
    sliceOpenedAt = now;
    sliceEnds = now + Math.min(REPLAY_SLICE.max, Math.max(REPLAY_SLICE.min, lastTurnMs * REPLAY_SLICE.share));
    // Runs in the next turn, before the continuations of the feeds waiting for it (queued later).
    setImmediate(() => {
      sliceOpen = false;
      lastTurnMs = performance.now() - sliceOpenedAt;
    });
  }
  return now < sliceEnds;
}

/** Follows `log` as described above until `signal` aborts. */
export async function* followEventLog(log: EventLog, options: FollowOptions): AsyncGenerator<FeedItem> {
  const { matches, maxBuffered, signal } = options;
  const batchSize = options.batchSize ?? 64;
  const maxBatch = Math.max(1, options.maxBatch ?? 1);
  const maxDelayMs = maxBatch > 1 ? Math.max(0, options.maxDelayMs ?? 0) : 0;
  const positionEveryMs = Math.max(0, options.positionEveryMs ?? 0);
  /** Buffered events that make a batch worth sending before the delay is over (and before overflow). */
  const fullAt = Math.min(maxBatch, maxBuffered);
  /** Matching events committed since subscribing, not yet delivered (from `head` on). */
  let buffer: StoredEvent[] = [];
  let head = 0;
  let overflowed = false;
  /** Set while the feed is behind: the log keeps what commits meanwhile in memory for it. */
  let release: (() => void) | undefined;
  /** The newest sequence the subscription was given (matching or not). */
  let seen = 0;
  let fromLog = true;
  /** Matching events read from the log and not yet yielded (a batch may span log reads). */
  const read: StoredEvent[] = [];
  let wake: (() => void) | undefined;
  /** Set only while a partial batch waits (`maxDelayMs`): when it goes anyway, and its timer. */
  let sendBy: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  // Runs on the commit path for every subscriber: filters here, so a batch with nothing this
  // subscriber wants costs a loop over it and no wake-up; never waits for the reader.
  const unsubscribe = log.subscribe((events) => {
    const last = events[events.length - 1];
    if (last !== undefined) seen = last.seq;
    if (overflowed) return;
    let matched = false;
    for (const e of events) {
      if (!matches(e)) continue;
      if (buffer.length >= maxBuffered) {
        // Drop what was delivered before deciding the reader is too far behind.
        if (head > 0) {
          buffer = buffer.slice(head);
          head = 0;
        }
        if (buffer.length >= maxBuffered) {
          // Behind: stop buffering (what is buffered is still delivered) and read the rest from
          // the log, which keeps what commits from now on in memory until the feed caught up.
          overflowed = true;
          release ??= log.keepRecent();
          break;
        }
      }
      buffer.push(e);
      matched = true;
    }
    // A waiting partial batch is woken only once full: that is what keeps its cost per delay.
    if (overflowed || (matched && (sendBy === undefined || buffer.length - head >= fullAt))) notify();
  });
  signal.addEventListener("abort", notify);
  let cursor = options.fromSequence === undefined ? log.lastSequence() + 1 : Math.max(1, options.fromSequence);
  /** The resume point the consumer last learned (from an item), and when: for `positionEveryMs`. */
  let known = cursor;
  let knownAt = performance.now();
  /** A `position` when one is due: the cursor moved past what the consumer knows, long enough ago. */
  const positionDue = (): FeedItem | undefined => {
    if (positionEveryMs === 0 || cursor <= known || performance.now() - knownAt < positionEveryMs) return undefined;
    return told({ kind: "position", next: cursor });
  };
  /** Notes what the consumer learned from `item`, which the feed is about to yield. */
  const told = (item: FeedItem): FeedItem => {
    if (item.kind === "events") known = (item.events[item.events.length - 1] as StoredEvent).seq + 1;
    else known = item.kind === "lost" ? item.firstAvailable : item.next;
    knownAt = performance.now();
    return item;
  };
  // Live with nothing buffered, the feed is past everything the subscription was given: what did
  // not match was never buffered. Otherwise it is just before its cursor.
  const untrack = options.track?.(() =>
    !fromLog && !overflowed && head >= buffer.length ? Math.max(cursor - 1, seen) : cursor - 1,
  );
  try {
    while (!signal.aborted) {
      if (fromLog) {
        const first = log.firstSequence();
        if (cursor < first) {
          if (read.length > 0) yield told({ kind: "events", events: read.splice(0) });
          yield told({ kind: "lost", requested: cursor, firstAvailable: first });
          cursor = first;
        }
        const batch = log.readEvents(cursor, batchSize);
        if (batch.length === 0) {
          if (read.length > 0) yield told({ kind: "events", events: read.splice(0) });
          fromLog = false;
          // Caught up: live from here, nothing more to read back.
          release?.();
          release = undefined;
          continue;
        }
        for (const stored of batch) {
          if (stored.seq < cursor) continue;
          cursor = stored.seq + 1;
          if (!matches(stored)) continue;
          read.push(stored);
          if (read.length >= maxBatch) {
            yield told({ kind: "events", events: read.splice(0) });
            if (signal.aborted) return;
          }
        }
        if (read.length === 0) {
          const position = positionDue();
          if (position) yield position;
        }
        // A turn of the event loop once this turn's reading time is spent (and more follows): a
        // replay that matches little (a customer filter over a long log) would otherwise scan the
        // whole log inside one next(), holding up every decision meanwhile (200,000 events: a
        // 0.5–1 s stall, 4 s with ten such subscribers). Yielded items do not help, as a consumer
        // that takes them without waiting resumes the feed from a microtask. A short read is the
        // end of the log: go live without a turn.
        if (batch.length >= batchSize && !replayTimeLeft()) await nextTurn();
        continue;
      }
      if (overflowed && head >= buffer.length) {
        // The reader fell behind and got what was buffered: read the log from the cursor on.
        overflowed = false;
        buffer = [];
        head = 0;
        fromLog = true;
        continue;
      }
      if (head >= buffer.length) {
        // Every event up to `seen` was delivered or did not match. The log was read up to its
        // newest event before going live, and everything since came through the subscription
        // (which was made first), so nothing between the cursor and `seen` is missing.
        buffer = [];
        head = 0;
        if (seen >= cursor) cursor = seen + 1;
        const position = positionDue();
        if (position) {
          yield position;
          continue;
        }
        // With positions wanted, look again after a while: events that did not match move the
        // cursor without waking the reader. When it has moved already, look again when the
        // position falls due (a millisecond late: timers count from the loop's cached clock).
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (positionEveryMs > 0) {
            const due = cursor > known ? knownAt + positionEveryMs - performance.now() + 1 : positionEveryMs;
            timer = setTimeout(notify, Math.max(1, due));
          }
        });
        clearTimeout(timer);
        continue;
      }
      if (maxDelayMs > 0 && !overflowed && buffer.length - head < fullAt) {
        const now = performance.now();
        const until = (sendBy ??= now + maxDelayMs);
        if (now < until) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            timer = setTimeout(notify, until - now);
          });
          clearTimeout(timer);
          continue;
        }
      }
      sendBy = undefined;
      // What is buffered is ready now: up to maxBatch of it goes in one item. Anything below the
      // cursor was already delivered by the log read (committed while it was reading).
      const out: StoredEvent[] = [];
      while (head < buffer.length && out.length < maxBatch) {
        const stored = buffer[head++] as StoredEvent;
        if (stored.seq < cursor) continue;
        cursor = stored.seq + 1;
        out.push(stored);
      }
      if (out.length > 0) yield told({ kind: "events", events: out });
    }
  } finally {
    clearTimeout(timer);
    release?.();
    untrack?.();
    unsubscribe();
    signal.removeEventListener("abort", notify);
  }
}
