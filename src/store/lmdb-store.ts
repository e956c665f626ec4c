/**
 * The LMDB store: the engine's `StatePort` and `EventLog` on one embedded LMDB environment.
 *
 * Group commit. `commit(writes, events)` applies the writes to an in-memory overlay at once (the
 * very next read sees them), gives the events their sequence numbers at once, and queues the
 * commit. All commits queued in one event-loop turn (and, with `fsync`, all that arrive while the
 * previous batch is being flushed) are written in ONE LMDB write transaction on a later turn
 * (`setImmediate`); each commit's promise settles only after that transaction committed (and, with
 * `fsync`, was flushed). Batches settle strictly in order, and subscribers get each batch's events
 * after it settled, in sequence order. A key written several times in one batch (a hot meter) is
 * encoded and put once, with its last value. `transactionSync` was measured faster than lmdb-js's
 * asynchronous batched writes for this shape of load (see bench/store-commit.ts): a small
 * transaction costs ~15 µs of main-thread time, while a hand-off to the write thread costs ~100 µs
 * of latency for a sequential caller.
 *
 * Durability (what an acknowledged commit survives):
 * - default (`fsync: false`): LMDB runs with `noSync`. A commit is acknowledged once its
 *   transaction is in the OS page cache, so it survives a crash or `kill -9` of this process. An
 *   OS crash or power loss may lose recent commits and, as LMDB's noSync mode does not order
 *   writes, may leave the file needing a restore from backup.
 * - `fsync: true`: LMDB's (overlapping) sync mode. A commit is acknowledged only once its
 *   transaction has been flushed to the storage device, so it also survives power loss, and the
 *   file is never corrupted by one. Costs one device flush per batch (not per commit).
 *
 * Failure. A batch whose transaction fails (storage full, data budget exceeded, I/O error) applies
 * none of its writes; every commit in it is rejected, and so is every commit queued after it
 * (they were decided on state that will never exist); the overlay returns to committed state.
 */
import type { Key } from "lmdb";
import type {
  CommitReceipt,
  EngineEvent,
  EventLog,
  StatePort,
  StoredEvent,
  Write,
} from "../engine/index.js";
import { LimitrError } from "../errors/index.js";
import { EVENTS_PRUNED_THROUGH, HISTORY_KEPT_BY, assertWriter, keptHistory, claimWriter, markOf, openLayout, type Layout, type Tables } from "./lmdb-layout.js";
import { createDataPages } from "./data-pages.js";
import { createLmdbReader } from "./lmdb-reader.js";
import {
  createMaintenance,
  type EventPage,
  type EventQuery,
  type PruneEventsOptions,
  type StoreMaintenance,
  type StoreStats,
} from "./lmdb-maintenance.js";
import { createOverlay } from "./overlay.js";
import { createRecentEvents } from "./recent-events.js";
import { createRowCache } from "./row-cache.js";
import { decodeEvent, encodeEvent } from "./row-codecs.js";
import { closedError, storeError } from "./store-error.js";
import { applyWrites, rowOf, validateWrites, type Op } from "./write-ops.js";

export interface LmdbStoreOptions {
  /** The data dir; created if missing. The environment lives in `<path>/limitr.mdb`. */
  readonly path: string;
  /** Acknowledge a commit only once flushed to the device (power-loss safe). Default false. */
  readonly fsync?: boolean;
  /** Initial size of the memory map. lmdb-js grows the map on demand, so this is not a limit. */
  readonly mapSizeBytes?: number;
  /** How many decoded customers, alt ids and meters to keep in memory (default 10,000). */
  readonly rowCacheEntries?: number;
  /** How many of the newest events to keep in memory for event-log readers (default 4,096). */
  readonly recentEvents?: number;
  /**
   * The most bytes of live data (B-tree pages of all tables) the store may hold. A batch that
   * would go past it is aborted with RESOURCE_EXHAUSTED; deletes and pruning free room again.
   * Default: no limit beyond the disk.
   */
  readonly maxDataBytes?: number;
  /**
   * Open to read only (an export next to a running sidecar): the dir is not claimed, so the
   * process writing it carries on, and every commit is refused. Default false: this process
   * becomes the dir's one writer, and a writer that opened it earlier stops committing.
   */
  readonly readOnly?: boolean;
  /**
   * Open without claiming the dir: nothing is read or written (calls are UNAVAILABLE) until
   * `claim()`. The sidecar claims only once it can serve, so a start that fails (a bad policy, a
   * busy port) leaves the sidecar already writing this dir undisturbed. Default false.
   */
  readonly deferClaim?: boolean;
  /**
   * Called once when a commit finds that another process claimed the dir since (the newest
   * opener wins): every later commit of this store is refused.
   */
  readonly onWriterLost?: (message: string) => void;
  /**
   * Told when the claim sets the stored reset-rule history aside because the dir's last writer
   * (named) did not keep it: a build that keeps none ran on the dir (a rollback). The engine
   * starts a new one. For logs; must not throw.
   */
  readonly onResetRuleHistorySetAside?: (lastWriter: string) => void;
}

/** The tables read through the row cache (every decision reads them). */
const CACHED_TABLES: ReadonlySet<Op["table"]> = new Set(["customers", "altIds", "meters"]);

/** Enough for the hot customers of a busy pod; a few MB of heap at most. */
export const DEFAULT_ROW_CACHE_ENTRIES = 10_000;

/**
 * Four times a WatchEvents subscriber's default buffer: a subscriber that overflowed it catches up
 * from memory. About 2 MB of heap when full; held only while a reader that fell behind asks.
 */
export const DEFAULT_RECENT_EVENTS = 4096;

/** The LMDB store: state port, event log, and the admin/maintenance operations. */
export interface LmdbStore extends StatePort, EventLog, StoreMaintenance {
  /** With `deferClaim`: makes this process the dir's writer and opens the store for use. Idempotent. */
  claim(): void;
  /** Waits for every pending commit to settle, then closes the environment. Idempotent. */
  close(): Promise<void>;
}

export type { EventPage, EventQuery, PruneEventsOptions, StoreStats };

interface PendingCommit {
  readonly ops: readonly Op[];
  readonly events: readonly StoredEvent[];
  readonly resolve: (r: CommitReceipt) => void;
  readonly reject: (e: LimitrError) => void;
}

interface Batch {
  readonly gen: number;
  readonly commits: PendingCommit[];
  /** A sequence the log's numbering is raised to in this batch's transaction (`raiseSequence`). */
  raiseTo?: number;
}

function receiptOf(events: readonly StoredEvent[]): CommitReceipt {
  const sequences = new Array<number>(events.length);
  for (let i = 0; i < events.length; i++) sequences[i] = (events[i] as StoredEvent).seq;
  return { sequences };
}

/**
 * Opens the store synchronously (LMDB opens in microseconds and reads only the last event
 * sequence number, and how far pruning went). Throws FAILED_PRECONDITION for a data dir of another format, UNAVAILABLE or
 * RESOURCE_EXHAUSTED when the dir cannot be opened.
 */
export function createLmdbStore(options: LmdbStoreOptions): LmdbStore {
  const fsync = options.fsync ?? false;
  const layout: Layout = openLayout({ dir: options.path, fsync, mapSizeBytes: options.mapSizeBytes, readOnly: options.readOnly === true });
  const { env, tables } = layout;
  const overlay = createOverlay();

  let closed = false;
  let closing: Promise<void> | undefined;
  let claimPending = options.deferClaim === true && options.readOnly !== true;
  const guard = (action: string): void => {
    if (closed) throw closedError(action);
    if (claimPending) throw notClaimedError(action);
  };
  const cache = createRowCache(options.rowCacheEntries ?? DEFAULT_ROW_CACHE_ENTRIES);
  const reader = createLmdbReader(tables, overlay, cache, guard);

  let writer: string | undefined;
  let writerLost = false;
  /** Inside every write transaction: only the dir's current writer may write. */
  const assertStillWriter = (): void => {
    if (writer === undefined) throw new LimitrError("FAILED_PRECONDITION", `the data dir ${layout.file} was opened read-only`);
    try {
      assertWriter(layout, writer);
    } catch (e) {
      if (!writerLost) {
        writerLost = true;
        options.onWriterLost?.((e as Error).message);
      }
      throw e;
    }
  };
  /** Highest sequence acknowledged (and visible to event readers). */
  let durableSeq = 0;
  /**
   * Highest sequence in a committed transaction: above durableSeq only while that batch waits for
   * its flush (`--fsync`), when its events are in LMDB but not yet acknowledged.
   */
  let writtenSeq = 0;
  /** Next sequence to give out; rolls back to writtenSeq + 1 when a batch fails. */
  let nextSeq = 1;
  // Claimed before the last sequence is read: a commit of an earlier writer lands before the
  // claim (and is read here) or is refused by its own writer check.
  const takeDir = (): void => {
    if (options.readOnly !== true) writer = claimWriter(layout, options.onResetRuleHistorySetAside);
    const lastStored = [...tables.events.getKeys({ reverse: true, limit: 1 })][0];
    durableSeq = Math.max(typeof lastStored === "number" ? lastStored : 0, markOf(layout.meta.get(EVENTS_PRUNED_THROUGH)));
    writtenSeq = durableSeq;
    nextSeq = durableSeq + 1;
  };
  if (!claimPending) takeDir();
  const recent = createRecentEvents(options.recentEvents ?? DEFAULT_RECENT_EVENTS);

  let gen = 0;
  let open: Batch | undefined;
  let scheduled = false;
  let busy = false;
  let idleWaiters: (() => void)[] = [];
  const listeners = new Set<(events: readonly StoredEvent[]) => void>();
  /** Readers that fell behind (`keepRecent`): the in-memory tail is filled only while there are any. */
  let keepers = 0;
  let listenerErrors = 0;
  let batchesCommitted = 0;
  /** The tables the batch being written changes (reused: one set per store, not per batch). */
  const written = new Set<keyof Tables>();
  const budget =
    options.maxDataBytes === undefined ? undefined : { limit: options.maxDataBytes, pages: createDataPages(tables) };

  function schedule(): void {
    if (scheduled || busy || !open) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      void runBatch();
    });
  }

  function settleIdle(): void {
    if (open || busy) return;
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Rejects `failed` and everything queued after it, and forgets their pending state. */
  function failPending(failed: Batch | undefined, error: LimitrError): void {
    const queued = open;
    open = undefined;
    overlay.clear();
    // Not durableSeq + 1: a batch being flushed has already written the sequences above it.
    nextSeq = writtenSeq + 1;
    for (const c of failed?.commits ?? []) c.reject(error);
    const onTop = new LimitrError(
      error.code,
      `not committed: an earlier commit it may depend on failed (${error.message})`,
      { cause: error },
    );
    for (const c of queued?.commits ?? []) c.reject(onTop);
  }

  // The batch's ops are walked commit by commit rather than flattened first: `flatMap` over a
  // batch is V8 runtime calls per element, ~1% of the main thread under Allow load (perf).
  function writeBatch(batch: Batch): void {
    // Only the last op on a key reaches LMDB: one transaction, so the earlier ones are invisible.
    const last = new Map<string, Op>();
    let count = 0;
    written.clear();
    for (const c of batch.commits) {
      count += c.ops.length;
      for (const op of c.ops) {
        if (op.slot !== undefined) last.set(op.slot, op);
        if (budget !== undefined && op.table !== "meta") written.add(op.table);
      }
    }
    const raiseTo = batch.raiseTo;
    if (count === 0 && raiseTo === undefined) return; // a barrier: nothing to write
    env.transactionSync(() => {
      assertStillWriter();
      // The mark an open reads the next sequence from (with the newest event): only ever raised.
      if (raiseTo !== undefined && raiseTo > markOf(layout.meta.get(EVENTS_PRUNED_THROUGH))) layout.meta.putSync(EVENTS_PRUNED_THROUGH, raiseTo);
      for (const c of batch.commits) {
        for (const op of c.ops) {
          if (op.slot !== undefined && last.get(op.slot) !== op) continue;
          if (op.table === "meta") {
            // The history, and that this writer keeps it (a set-aside one is replaced by it).
            layout.meta.putSync(op.key, op.value);
            layout.meta.putSync(HISTORY_KEPT_BY, writer as string);
          }
          else if (op.value === undefined) tables[op.table].removeSync(op.key);
          else tables[op.table].putSync(op.key, rowOf(op));
        }
      }
      // A batch that writes no data table (the reset-rule history alone) adds nothing to count.
      if (budget !== undefined && written.size > 0) {
        const used = budget.pages.bytesWith(written);
        if (used > budget.limit) {
          // Throwing aborts the transaction: none of the batch is written.
          throw new LimitrError(
            "RESOURCE_EXHAUSTED",
            `storage full: the data would take ${used} bytes, over the limit of ${budget.limit} ` +
              `(prune events or raise the limit)`,
          );
        }
      }
    });
    budget?.pages.committed();
  }

  async function runBatch(): Promise<void> {
    const batch = open;
    if (!batch || busy) return;
    open = undefined;
    busy = true;
    const count = batch.commits.length;
    try {
      writeBatch(batch);
    } catch (e) {
      busy = false;
      failPending(batch, storeError(e, `committing a batch of ${count} commit(s)`, layout.file));
      settleIdle();
      return;
    }
    batchesCommitted++;
    // What the batch wrote is now the committed state: the cache answers the next read of those
    // keys (a later pending write still shadows it through the overlay until that one settles).
    for (const c of batch.commits) for (const op of c.ops) if (CACHED_TABLES.has(op.table)) cache.set(op.slot as string, op.value);
    overlay.committed(batch.gen);
    for (let i = batch.commits.length - 1; i >= 0; i--) {
      const events = (batch.commits[i] as PendingCommit).events;
      if (events.length === 0) continue;
      writtenSeq = (events[events.length - 1] as StoredEvent).seq;
      break;
    }
    if (batch.raiseTo !== undefined) writtenSeq = Math.max(writtenSeq, batch.raiseTo);
    let flushError: LimitrError | undefined;
    if (fsync) {
      try {
        await env.flushed;
      } catch (e) {
        flushError = storeError(e, `flushing a batch of ${count} commit(s) to disk`, layout.file);
      }
    }
    const events: StoredEvent[] = [];
    for (const c of batch.commits) for (const e of c.events) events.push(e);
    const last = events[events.length - 1];
    // Even when a flush fails the transaction is committed and readable, so the event log must not
    // show a gap; the callers still learn that durability was not confirmed.
    if (last) durableSeq = last.seq;
    if (batch.raiseTo !== undefined) durableSeq = Math.max(durableSeq, batch.raiseTo);
    if (keepers > 0) recent.append(events);
    for (const c of batch.commits) {
      if (flushError) c.reject(flushError);
      else c.resolve(receiptOf(c.events));
    }
    busy = false;
    if (events.length > 0) notify(events);
    schedule();
    settleIdle();
  }

  function notify(events: readonly StoredEvent[]): void {
    for (const listener of listeners) {
      try {
        listener(events);
      } catch {
        // A faulty subscriber must not break commits or other subscribers; counted in stats().
        listenerErrors++;
      }
    }
  }

  function commit(writes: readonly Write[], events: readonly EngineEvent[]): Promise<CommitReceipt> {
    if (closed || closing) return Promise.reject(closedError("committing"));
    if (claimPending) return Promise.reject(notClaimedError("committing"));
    try {
      validateWrites(writes);
    } catch (e) {
      return Promise.reject(e instanceof LimitrError ? e : storeError(e, "validating writes"));
    }
    if (!open) open = { gen: ++gen, commits: [] };
    const batch = open;
    let ops: Op[];
    try {
      ops = applyWrites(writes, reader, overlay, batch.gen);
    } catch (e) {
      // Part of this commit may be in the overlay: fail it with everything pending.
      const error = storeError(e, "applying writes");
      failPending(undefined, error);
      return Promise.reject(error);
    }
    // The row cache keeps these keys' committed values (if it holds them) meanwhile: reads find
    // the pending ones in the overlay first, and a failed batch leaves LMDB at those values.
    const stored = new Array<StoredEvent>(events.length);
    for (let i = 0; i < events.length; i++) {
      const s: StoredEvent = { seq: nextSeq++, event: events[i] as EngineEvent };
      stored[i] = s;
      ops.push({ table: "events", key: s.seq, slot: undefined, value: s.event, encode: encodeEvent });
    }
    const promise = new Promise<CommitReceipt>((resolve, reject) => {
      batch.commits.push({ ops, events: stored, resolve, reject });
    });
    schedule();
    return promise;
  }

  /**
   * Numbers the log's next event after `last` (an import of another dir's log position), unless
   * it already would: later commits are numbered after it at once, and the mark is written with
   * the next batch, so a reopened store goes on from it too. Settles as a commit does.
   */
  function raiseSequence(last: number): Promise<CommitReceipt> {
    if (closed || closing) return Promise.reject(closedError("committing"));
    if (claimPending) return Promise.reject(notClaimedError("committing"));
    if (last < nextSeq) return commit([], []);
    nextSeq = last + 1;
    if (!open) open = { gen: ++gen, commits: [] };
    const batch = open;
    batch.raiseTo = Math.max(batch.raiseTo ?? 0, last);
    const promise = new Promise<CommitReceipt>((resolve, reject) => {
      batch.commits.push({ ops: [], events: [], resolve, reject });
    });
    schedule();
    return promise;
  }

  const eventLog: EventLog = {
    readEvents(fromSeq, limit) {
      guard("reading events");
      if (limit <= 0 || fromSeq > durableSeq) return [];
      const held = recent.read(Math.max(1, fromSeq), limit);
      if (held !== undefined) return held;
      try {
        const out: StoredEvent[] = [];
        const range = { start: Math.max(1, fromSeq) as Key, end: durableSeq as Key, inclusiveEnd: true, limit };
        for (const { key, value } of tables.events.getRange(range)) {
          out.push({ seq: Number(key), event: decodeEvent(value) });
        }
        return out;
      } catch (e) {
        throw storeError(e, "reading events");
      }
    },
    lastSequence: () => durableSeq,
    firstSequence() {
      guard("reading events");
      const first = [...tables.events.getKeys({ limit: 1 })][0];
      // Events the dir numbered before an import raised its numbering past them are not the
      // imported log's: a cursor from that log at or below the mark gets `events_lost` up to it
      // instead of the dir's own events under the old log's numbers.
      const after = markOf(layout.meta.get(EVENTS_PRUNED_THROUGH)) + 1;
      return Math.min(Math.max(typeof first === "number" ? first : 0, after), durableSeq + 1);
    },
    subscribe(listener) {
      // Wrapped so the same function can subscribe twice and unsubscribe each independently.
      const entry = (events: readonly StoredEvent[]): void => listener(events);
      listeners.add(entry);
      return () => listeners.delete(entry);
    },
    keepRecent() {
      keepers++;
      let kept = true;
      return () => {
        if (!kept) return;
        kept = false;
        if (--keepers === 0) recent.clear();
      };
    },
  };

  const maintenance = createMaintenance({
    layout,
    reader,
    eventLog,
    onEventsPruned: (seq) => recent.forgetThrough(seq),
    guard,
    assertWriter: assertStillWriter,
    commit,
    raiseSequence,
    counters: () => ({ listenerErrors, batchesCommitted, pendingCommits: open?.commits.length ?? 0 }),
  });

  async function close(): Promise<void> {
    if (closed) return;
    if (closing) return closing;
    closing = (async () => {
      // Settle everything queued before close; `commit` refuses new work from here on.
      while (open || busy) {
        schedule();
        await new Promise<void>((resolve) => idleWaiters.push(resolve));
      }
      closed = true;
      listeners.clear();
      cache.clear();
      await env.close();
    })();
    return closing;
  }

  return {
    ...reader,
    ...eventLog,
    ...maintenance,
    commit,
    close,
    resetRuleHistory() {
      guard("reading the reset-rule history");
      try {
        return keptHistory(layout.meta, writer);
      } catch (e) {
        // Bytes that do not decode: damaged, which the engine reports and replaces.
        throw new LimitrError("INTERNAL", `the stored reset-rule history cannot be read: ${(e as Error).message}`, { cause: e });
      }
    },
    claim() {
      if (!claimPending) return;
      if (closed || closing) throw closedError("claiming the data dir");
      takeDir();
      claimPending = false;
    },
  };
}

function notClaimedError(action: string): LimitrError {
  return new LimitrError("UNAVAILABLE", `${action}: the sidecar is still starting (its data dir is not open yet)`);
}
