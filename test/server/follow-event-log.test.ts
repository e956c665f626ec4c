/**
 * The WatchEvents feed against a controllable event log: replay then live with no gap and no
 * duplicate at the hand-over, catch-up from the log when the buffer overflows, lost markers.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { EngineEvent, EventLog, StoredEvent } from "../../src/engine/index.js";
import { followEventLog } from "../../src/server/follow-event-log.js";
import type { FeedItem } from "../../src/server/follow-event-log.js";

function ev(customerId: string): EngineEvent {
  return { type: "customer-plan-changed", time: 0, customerId, previousPlan: "", newPlan: "pro", metersReset: false };
}

/** An in-memory log whose commits and pruning the test drives; counts listener calls. */
function fakeLog() {
  const events: StoredEvent[] = [];
  const listeners = new Set<(e: readonly StoredEvent[]) => void>();
  let keeping = 0;
  let first = 1;
  let onRead: ((fromSeq: number) => void) | undefined;
  const log: EventLog & {
    append(...ids: string[]): void;
    prune(upTo: number): void;
    listenerCount(): number;
    /** Open `keepRecent` requests (a feed that fell behind). */
    kept(): number;
    beforeRead(f: (fromSeq: number) => void): void;
  } = {
    readEvents(fromSeq, limit) {
      onRead?.(fromSeq);
      const from = Math.max(fromSeq, first, 1) - 1; // sequence n is events[n - 1]
      return events.slice(from, from + limit);
    },
    lastSequence: () => events.length,
    firstSequence: () => first,
    subscribe(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    keepRecent() {
      keeping++;
      let kept = true;
      return () => {
        if (kept) keeping--;
        kept = false;
      };
    },
    append(...ids) {
      const group = ids.map((id, i) => ({ seq: events.length + 1 + i, event: ev(id) }));
      for (const g of group) events.push(g);
      for (const l of listeners) l(group);
    },
    prune(upTo) {
      first = upTo + 1;
    },
    listenerCount: () => listeners.size,
    kept: () => keeping,
    beforeRead(f) {
      onRead = f;
    },
  };
  return log;
}

const seqs = (items: FeedItem[]): (number | string)[] =>
  items.flatMap((i): (number | string)[] =>
    i.kind === "events" ? i.events.map((e) => e.seq) : i.kind === "lost" ? [`lost:${i.requested}->${i.firstAvailable}`] : [`at:${i.next}`],
  );

/** Takes `n` items from the feed. */
async function take(feed: AsyncGenerator<FeedItem>, n: number): Promise<FeedItem[]> {
  const out: FeedItem[] = [];
  while (out.length < n) {
    const r = await feed.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

const all = () => true;

/** Busy for `ms`: work the event loop does meanwhile (a slow read, a turn of decisions). */
function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** Captures the position function a feed registers through `track`. */
function tracker(): { track: (p: () => number) => () => void; position: () => number } {
  let registered: () => number = () => -1;
  return {
    track: (p) => {
      registered = p;
      return () => {};
    },
    position: () => registered(),
  };
}

describe("followEventLog", () => {
  it("replays from a sequence, then delivers live events, in order", async () => {
    const log = fakeLog();
    log.append("a", "b", "c");
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: 2, matches: all, maxBuffered: 10, signal: ctl.signal });
    expect(seqs(await take(feed, 2))).toEqual([2, 3]);
    const next = take(feed, 2);
    log.append("d");
    log.append("e");
    expect(seqs(await next)).toEqual([4, 5]);
    ctl.abort();
    expect((await feed.next()).done).toBe(true);
    expect(log.listenerCount()).toBe(0);
  });

  it("no gap and no duplicate when events commit while the replay is reading", async () => {
    const log = fakeLog();
    log.append("a", "b");
    let injected = false;
    // A commit lands between subscribing and the replay's read: it is both in the log and in
    // the subscription buffer, and must be delivered exactly once.
    log.beforeRead(() => {
      if (!injected) {
        injected = true;
        log.append("c", "d");
      }
    });
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: 1, matches: all, maxBuffered: 10, signal: ctl.signal });
    const got = take(feed, 5);
    await new Promise((r) => setImmediate(r));
    log.append("e");
    expect(seqs(await got)).toEqual([1, 2, 3, 4, 5]);
    ctl.abort();
  });

  it("without from_sequence delivers only events committed after it started", async () => {
    const log = fakeLog();
    log.append("old");
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: undefined, matches: all, maxBuffered: 10, signal: ctl.signal });
    const got = take(feed, 1);
    await new Promise((r) => setImmediate(r));
    log.append("new");
    expect(seqs(await got)).toEqual([2]);
    ctl.abort();
  });

  it("a reader that falls behind overflows its buffer, catches up from the log and misses nothing", async () => {
    const log = fakeLog();
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: 1, matches: all, maxBuffered: 3, batchSize: 2, signal: ctl.signal });
    const first = take(feed, 1);
    await new Promise((r) => setImmediate(r));
    log.append("e1");
    expect(seqs(await first)).toEqual([1]);
    // Live and keeping up: the log need not keep anything for this feed.
    expect(log.kept()).toBe(0);
    const reads: number[] = [];
    log.beforeRead((from) => reads.push(from));
    // The reader is not pulling: 20 commits arrive, far more than the buffer holds.
    for (let i = 2; i <= 21; i++) log.append(`e${i}`);
    // Behind: the log keeps what commits from now on for it, until it caught up.
    expect(log.kept()).toBe(1);
    expect(seqs(await take(feed, 20))).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
    // The three buffered came from the buffer, the rest from the stored log (catch-up from the
    // cursor), not from an unbounded buffer.
    expect(reads[0]).toBe(5);
    const live = take(feed, 1);
    log.append("after");
    expect(seqs(await live)).toEqual([22]);
    expect(log.kept()).toBe(0);
    ctl.abort();
  });

  it("a feed that ends while behind lets the log stop keeping events for it", async () => {
    const log = fakeLog();
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: undefined, matches: all, maxBuffered: 2, signal: ctl.signal });
    const first = take(feed, 1);
    await new Promise((r) => setImmediate(r));
    log.append("a", "b", "c", "d");
    expect(log.kept()).toBe(1);
    expect(seqs(await first)).toEqual([1]);
    ctl.abort();
    expect((await feed.next()).done).toBe(true);
    expect(log.kept()).toBe(0);
  });

  it("says events were lost when from_sequence is older than the oldest retained", async () => {
    const log = fakeLog();
    log.append("a", "b", "c", "d");
    log.prune(2);
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: 1, matches: all, maxBuffered: 10, signal: ctl.signal });
    expect(seqs(await take(feed, 3))).toEqual(["lost:1->3", 3, 4]);
    ctl.abort();
  });

  it("0 and 1 mean the oldest retained when nothing was pruned (no lost marker)", async () => {
    const log = fakeLog();
    log.append("a");
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: 0, matches: all, maxBuffered: 10, signal: ctl.signal });
    expect(seqs(await take(feed, 1))).toEqual([1]);
    ctl.abort();
  });

  it("says events were lost when retention overtakes a slow reader mid-stream", async () => {
    const log = fakeLog();
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: 1, matches: all, maxBuffered: 2, signal: ctl.signal });
    log.append("a");
    expect(seqs(await take(feed, 1))).toEqual([1]);
    for (let i = 0; i < 5; i++) log.append("x"); // overflows: the reader must go back to the log
    log.prune(4); // … which no longer has 2..4
    expect(seqs(await take(feed, 3))).toEqual(["lost:2->5", 5, 6]);
    ctl.abort();
  });

  it("filters without losing its place", async () => {
    const log = fakeLog();
    log.append("a", "b", "a", "b");
    const ctl = new AbortController();
    const matches = (s: StoredEvent) => s.event.type === "customer-plan-changed" && s.event.customerId === "b";
    const feed = followEventLog(log, { fromSequence: 1, matches, maxBuffered: 10, signal: ctl.signal });
    expect(seqs(await take(feed, 2))).toEqual([2, 4]);
    const live = take(feed, 1);
    log.append("a");
    log.append("b");
    expect(seqs(await live)).toEqual([6]);
    ctl.abort();
  });

  it("with positionEveryMs, a filtered feed says where it stands once it went quietly past others' events", async () => {
    const log = fakeLog();
    log.append("x");
    const ctl = new AbortController();
    const mine = (e: StoredEvent): boolean => e.event.type === "customer-plan-changed" && e.event.customerId === "mine";
    const feed = followEventLog(log, { fromSequence: undefined, matches: mine, maxBuffered: 10, positionEveryMs: 30, signal: ctl.signal });
    const first = feed.next();
    log.append("other", "other");
    expect(seqs([(await first).value as FeedItem])).toEqual(["at:4"]);
    // Nothing moved since: no second position, however long it waits.
    const second = feed.next();
    const quiet = await Promise.race([second.then(() => "item"), new Promise((r) => setTimeout(() => r("quiet"), 100))]);
    expect(quiet).toBe("quiet");
    log.append("mine", "other");
    expect(seqs([(await second).value as FeedItem])).toEqual([4]);
    expect(seqs([(await feed.next()).value as FeedItem])).toEqual(["at:6"]);
    ctl.abort();
  });

  it("with positionEveryMs, a long filtered replay reports progress, never past an event it has not delivered", async () => {
    const log = fakeLog();
    for (let i = 0; i < 4; i++) log.append(...Array.from({ length: 64 }, () => "other"));
    log.append("mine");
    log.beforeRead(() => busy(2)); // a read as slow as a long log's
    const ctl = new AbortController();
    const mine = (e: StoredEvent): boolean => e.event.type === "customer-plan-changed" && e.event.customerId === "mine";
    const feed = followEventLog(log, { fromSequence: 1, matches: mine, maxBuffered: 10, batchSize: 64, positionEveryMs: 1, signal: ctl.signal });
    const items = await take(feed, 5);
    expect(seqs(items)).toEqual(["at:65", "at:129", "at:193", "at:257", 257]);
    ctl.abort();
  });

  it("a filtered replay over a long log lets the event loop run between reads (decisions are not held up)", async () => {
    const log = fakeLog();
    for (let i = 0; i < 10; i++) log.append(...Array.from({ length: 256 }, () => "other"));
    let reads = 0;
    log.beforeRead(() => {
      reads++;
      busy(0.4); // a read as slow as a long log's
    });
    const ctl = new AbortController();
    const mine = (e: StoredEvent): boolean => e.event.type === "customer-plan-changed" && e.event.customerId === "mine";
    const feed = followEventLog(log, { fromSequence: 1, matches: mine, maxBuffered: 10, batchSize: 256, signal: ctl.signal });
    const next = feed.next();
    // Nothing in the log matches: without a turn between reads, the whole scan would run
    // inside next(), before any other callback (an incoming call, a commit) could.
    await new Promise((r) => setImmediate(r));
    expect(reads).toBeGreaterThan(0);
    expect(reads).toBeLessThan(10);
    while (reads < 11) await new Promise((r) => setImmediate(r)); // the last read finds nothing
    log.append("mine");
    expect(seqs([(await next).value as FeedItem])).toEqual([2561]);
    ctl.abort();
  });

  /**
   * A feed resuming 2,000 events back, as the bundled client asks (batches of 256) with the
   * sidecar's default buffer, while every turn commits `perTurn` events and takes `turnMs`:
   * how far behind it is after `turns` turns.
   */
  async function lagAfter(log: ReturnType<typeof fakeLog>, turns: number, perTurn: number, turnMs: number): Promise<number> {
    log.append(...Array.from({ length: 2000 }, () => "c"));
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: 1, matches: all, maxBuffered: 1024, maxBatch: 256, signal: ctl.signal });
    let delivered = 0;
    const consumer = (async () => {
      for await (const item of feed) if (item.kind === "events") delivered = (item.events[item.events.length - 1] as StoredEvent).seq;
    })();
    for (let turn = 0; turn < turns; turn++) {
      log.append(...Array.from({ length: perTurn }, () => "c")); // one store batch per turn
      busy(turnMs);
      await new Promise((r) => setImmediate(r));
    }
    const lag = log.lastSequence() - delivered;
    ctl.abort();
    await consumer;
    return lag;
  }

  it("a feed that is behind catches up while commits add more events per turn than one read holds", async () => {
    const log = fakeLog();
    expect(await lagAfter(log, 300, 100, 0)).toBeLessThan(1000);
    expect(log.kept()).toBe(0);
  });

  it("a feed that is behind reads more per turn when turns are long (large commits), and catches up", async () => {
    const log = fakeLog();
    log.beforeRead(() => busy(0.2)); // 64 events read from LMDB and decoded
    // A loaded sidecar: each turn decides and commits 280 events, taking 4 ms. A fixed half
    // millisecond of reading per turn (4 reads, 256 events) would fall further behind.
    expect(await lagAfter(log, 100, 280, 4)).toBeLessThan(1000);
  });

  it("buffers only what matches: other customers' events neither wake nor overflow a filtered reader", async () => {
    const log = fakeLog();
    const ctl = new AbortController();
    const matches = (s: StoredEvent) => s.event.type === "customer-plan-changed" && s.event.customerId === "me";
    const tracked = tracker();
    const feed = followEventLog(log, { fromSequence: undefined, matches, maxBuffered: 2, signal: ctl.signal, track: tracked.track });
    const position = (): number => tracked.position();
    const got = take(feed, 2);
    await new Promise((r) => setImmediate(r));
    const reads: number[] = [];
    log.beforeRead((from) => reads.push(from));
    // Far more events than the buffer holds, none of them this reader's…
    for (let i = 0; i < 50; i++) log.append("other", "other");
    // … so it is caught up with all of them without reading the log or buffering them.
    expect(position()).toBe(100);
    log.append("other", "me", "other", "me");
    expect(seqs(await got)).toEqual([102, 104]);
    expect(reads).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(position()).toBe(104);
    ctl.abort();
  });

  it("reports its position behind events it has not delivered yet", async () => {
    const log = fakeLog();
    const ctl = new AbortController();
    const tracked = tracker();
    const feed = followEventLog(log, { fromSequence: undefined, matches: all, maxBuffered: 10, signal: ctl.signal, track: tracked.track });
    const position = (): number => tracked.position();
    const first = take(feed, 1);
    await new Promise((r) => setImmediate(r));
    log.append("a", "b", "c");
    expect(seqs(await first)).toEqual([1]);
    expect(position()).toBe(1);
    expect(seqs(await take(feed, 2))).toEqual([2, 3]);
    expect(position()).toBe(3);
    ctl.abort();
  });

  it("a reader that keeps up but never quite drains its buffer stays live and misses nothing", async () => {
    const log = fakeLog();
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: undefined, matches: all, maxBuffered: 4, batchSize: 3, signal: ctl.signal });
    const start = take(feed, 1);
    await new Promise((r) => setImmediate(r));
    log.append("e1");
    const got = seqs(await start);
    const reads: number[] = [];
    log.beforeRead((from) => reads.push(from));
    // One commit per delivered event: the buffer always holds one, and is never empty.
    for (let i = 2; i <= 40; i++) {
      log.append(`e${i}`);
      got.push(...seqs(await take(feed, 1)));
    }
    log.append("last");
    got.push(...seqs(await take(feed, 1)));
    expect(got).toEqual(Array.from({ length: 41 }, (_, i) => i + 1));
    // Delivered events are dropped from the buffer's front when it fills, so it never overflowed.
    expect(reads).toEqual([]);
    ctl.abort();
  });

  it("with maxBatch, hands over what is ready together, in order, at most maxBatch at a time", async () => {
    const log = fakeLog();
    log.append("a", "b", "a", "a", "b", "a");
    const ctl = new AbortController();
    const matches = (s: StoredEvent) => s.event.type === "customer-plan-changed" && s.event.customerId === "a";
    const feed = followEventLog(log, { fromSequence: 1, matches, maxBuffered: 10, maxBatch: 3, signal: ctl.signal });
    // Replay: the four matching stored events, in batches of at most 3.
    const replay = await take(feed, 2);
    expect(replay.map((i) => (i.kind === "events" ? i.events.map((e) => e.seq) : i.kind))).toEqual([[1, 3, 4], [6]]);
    // Live: two commits before the reader pulls again arrive as one item.
    const live = take(feed, 1);
    await new Promise((r) => setImmediate(r));
    log.append("a");
    log.append("b", "a");
    expect((await live).map((i) => (i.kind === "events" ? i.events.map((e) => e.seq) : i.kind))).toEqual([[7, 9]]);
    log.append("a", "a", "a", "a");
    const more = await take(feed, 2);
    expect(more.map((i) => (i.kind === "events" ? i.events.map((e) => e.seq) : i.kind))).toEqual([[10, 11, 12], [13]]);
    ctl.abort();
  });

  it("with maxBatch, events read before a gap are handed over before the lost marker", async () => {
    // A log whose oldest events vanish between two reads (retention at the worst moment).
    const stored = [1, 2, 3, 4].map((seq) => ({ seq, event: ev("a") }));
    let firstCalls = 0;
    const log: EventLog = {
      readEvents: (from, limit) => stored.filter((e) => e.seq >= from).slice(0, limit),
      lastSequence: () => 4,
      firstSequence: () => (++firstCalls === 1 ? 1 : 5),
      subscribe: () => () => {},
      keepRecent: () => () => {},
    };
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: 1, matches: all, maxBuffered: 10, maxBatch: 10, batchSize: 2, signal: ctl.signal });
    const items = await take(feed, 2);
    expect(items.map((i) => (i.kind === "events" ? i.events.map((e) => e.seq) : i.kind === "lost" ? `lost:${i.requested}->${i.firstAvailable}` : i))).toEqual([
      [1, 2],
      "lost:3->5",
    ]);
    ctl.abort();
  });

  it("with maxDelayMs, live events of several commits wait for each other and go as one batch", async () => {
    const log = fakeLog();
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: undefined, matches: all, maxBuffered: 100, maxBatch: 10, maxDelayMs: 200, signal: ctl.signal });
    const first = take(feed, 1);
    await new Promise((r) => setImmediate(r));
    // Three commits on three event-loop turns: without the delay the first would go alone.
    log.append("a");
    await new Promise((r) => setImmediate(r));
    log.append("b", "c");
    await new Promise((r) => setImmediate(r));
    log.append("d");
    expect(seqs(await first)).toEqual([1, 2, 3, 4]);
    ctl.abort();
  });

  it("with maxDelayMs, a partial batch goes once the delay is over", async () => {
    const log = fakeLog();
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: undefined, matches: all, maxBuffered: 100, maxBatch: 10, maxDelayMs: 30, signal: ctl.signal });
    const first = take(feed, 1);
    await new Promise((r) => setImmediate(r));
    log.append("a");
    // Nothing else commits: the one event is delivered after ~30 ms (the test times out otherwise).
    expect(seqs(await first)).toEqual([1]);
    ctl.abort();
  });

  it("with maxDelayMs, a full batch goes at once, and so does what fills the buffer", async () => {
    const log = fakeLog();
    const ctl = new AbortController();
    // A day-long delay: anything delivered here was delivered because it was full.
    const feed = followEventLog(log, { fromSequence: undefined, matches: all, maxBuffered: 100, maxBatch: 3, maxDelayMs: 86_400_000, signal: ctl.signal });
    const first = take(feed, 1);
    await new Promise((r) => setImmediate(r));
    log.append("a");
    await new Promise((r) => setImmediate(r));
    log.append("b");
    await new Promise((r) => setImmediate(r));
    log.append("c", "d");
    expect(seqs(await first)).toEqual([1, 2, 3]);
    // A buffer smaller than maxBatch: the reader is woken once the buffer is full, before it
    // would overflow into a catch-up from the log.
    const small = fakeLog();
    const reads: number[] = [];
    const feed2 = followEventLog(small, { fromSequence: undefined, matches: all, maxBuffered: 2, maxBatch: 10, maxDelayMs: 86_400_000, signal: ctl.signal });
    const got = take(feed2, 1);
    await new Promise((r) => setImmediate(r));
    small.beforeRead((from) => reads.push(from));
    small.append("a");
    await new Promise((r) => setImmediate(r));
    small.append("b");
    expect(seqs(await got)).toEqual([1, 2]);
    expect(reads).toEqual([]);
    ctl.abort();
  });

  it("with maxDelayMs, aborting ends a feed that is waiting for a fuller batch", async () => {
    const log = fakeLog();
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: undefined, matches: all, maxBuffered: 100, maxBatch: 10, maxDelayMs: 86_400_000, signal: ctl.signal });
    const pending = feed.next();
    await new Promise((r) => setImmediate(r));
    log.append("a");
    await new Promise((r) => setImmediate(r));
    ctl.abort();
    // Ends without delivering: the subscriber resumes from its last delivered sequence.
    expect((await pending).done).toBe(true);
    expect(log.listenerCount()).toBe(0);
  });

  it("maxDelayMs is ignored without batching: one event per item, at once", async () => {
    const log = fakeLog();
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: undefined, matches: all, maxBuffered: 100, maxDelayMs: 86_400_000, signal: ctl.signal });
    const first = take(feed, 1);
    await new Promise((r) => setImmediate(r));
    log.append("a", "b");
    expect(seqs(await first)).toEqual([1]);
    ctl.abort();
  });

  it("property: whatever the batch size, buffer, delay and timing, every matching event arrives once, in order, and no position skips one", async () => {
    const pause = fc.constantFrom("none", "turn", "timer");
    const step = fc.oneof(
      fc.record({ kind: fc.constant("commit" as const), ids: fc.array(fc.constantFrom("a", "b"), { minLength: 1, maxLength: 5 }) }),
      fc.record({ kind: fc.constant("pause" as const), how: pause }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          stored: fc.array(fc.constantFrom("a", "b"), { maxLength: 6 }),
          steps: fc.array(step, { maxLength: 30 }),
          reader: fc.array(pause, { minLength: 1, maxLength: 8 }),
          maxBatch: fc.integer({ min: 1, max: 5 }),
          maxBuffered: fc.integer({ min: 1, max: 6 }),
          maxDelayMs: fc.constantFrom(0, 1, 3),
          positionEveryMs: fc.constantFrom(0, 1),
          replay: fc.boolean(),
        }),
        async ({ stored, steps, reader, maxBatch, maxBuffered, maxDelayMs, positionEveryMs, replay }) => {
          const wait = (how: string): Promise<void> | undefined =>
            how === "turn" ? new Promise((r) => setImmediate(r)) : how === "timer" ? new Promise((r) => setTimeout(r, 1)) : undefined;
          const log = fakeLog();
          if (stored.length > 0) log.append(...stored);
          const ctl = new AbortController();
          const matches = (e: StoredEvent) => e.event.type === "customer-plan-changed" && e.event.customerId === "a";
          const feed = followEventLog(log, { fromSequence: replay ? 1 : undefined, matches, maxBuffered, maxBatch, maxDelayMs, positionEveryMs, batchSize: 2, signal: ctl.signal });
          const expected: number[] = replay ? stored.flatMap((id, i) => (id === "a" ? [i + 1] : [])) : [];
          let seq = stored.length;
          for (const st of steps) {
            if (st.kind !== "commit") continue;
            for (const id of st.ids) {
              seq++;
              if (id === "a") expected.push(seq);
            }
          }
          const got: number[] = [];
          /** The resume point the feed last gave: an event's sequence + 1, or a position. */
          let resumeAt = 0;
          let pulls = 0;
          const consumer = (async () => {
            if (expected.length === 0) return;
            for await (const item of feed) {
              if (item.kind === "position") {
                // Moves forward only, and never past a matching event not yet delivered.
                expect(item.next).toBeGreaterThan(resumeAt);
                expect(expected.filter((s) => s < item.next)).toEqual(got);
                resumeAt = item.next;
                continue;
              }
              if (item.kind !== "events") throw new Error("no events are pruned here");
              expect(item.events[0]?.seq).toBeGreaterThanOrEqual(resumeAt);
              resumeAt = (item.events[item.events.length - 1]?.seq ?? 0) + 1;
              expect(item.events.length).toBeLessThanOrEqual(maxBatch);
              got.push(...item.events.map((e) => e.seq));
              if (got.length >= expected.length) return;
              await wait(reader[pulls++ % reader.length] as string);
            }
          })();
          // The consumer's first pull has subscribed (synchronously); commits may now land while
          // the replay is still reading the log, or while a partial batch waits.
          for (const st of steps) {
            if (st.kind === "commit") log.append(...st.ids);
            else await wait(st.how);
          }
          await Promise.race([consumer, new Promise((_, no) => setTimeout(() => no(new Error(`stuck: got ${got.join(",")}, expected ${expected.join(",")}`)), 2000))]);
          ctl.abort();
          expect(got).toEqual(expected);
          expect(log.listenerCount()).toBe(0);
          expect(log.kept()).toBe(0);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("aborting a waiting feed ends it and unsubscribes", async () => {
    const log = fakeLog();
    const ctl = new AbortController();
    const feed = followEventLog(log, { fromSequence: undefined, matches: all, maxBuffered: 10, signal: ctl.signal });
    const pending = feed.next();
    await new Promise((r) => setImmediate(r));
    expect(log.listenerCount()).toBe(1);
    ctl.abort();
    expect((await pending).done).toBe(true);
    expect(log.listenerCount()).toBe(0);
  });
});
