/**
 * Admin and housekeeping operations of the LMDB store: export/import of state, the audit query
 * over the event log, retention pruning, and statistics. Deletions run in small transactions with
 * an event-loop turn between them, so decisions are never stuck behind a long write lock.
 */
import { statSync } from "node:fs";
import type { Key } from "lmdb";
import {
  type CommitReceipt,
  type EngineEvent,
  type EventLog,
  type EventType,
  type StateReader,
  type StateRecord,
  type StoredEvent,
  type Write,
} from "../engine/index.js";
import { LimitrError } from "../errors/index.js";
import { pagesOf, type PageStat } from "./data-pages.js";
import { EVENTS_PRUNED_THROUGH, markOf, type Layout } from "./lmdb-layout.js";
import { holdRowsOf } from "./lmdb-reader.js";
import { decodeCustomer, decodeEvent, decodeIdempotency, decodeMeter, decodeReservation } from "./row-codecs.js";
import { storeError } from "./store-error.js";
import { createImportChecker, DEFAULT_RECORD_FIELD, type RecordField } from "./import-records.js";

/** An audit query over the event log (SPEC §5, issue 5 `ListEvents`). All filters are ANDed. */
export interface EventQuery {
  /** Events of this customer (primary or alt id): as caller, meter owner, or customer record. */
  readonly customerId?: string;
  /** Events of any of these entitlements (empty or absent: all). */
  readonly entitlements?: readonly string[];
  readonly types?: readonly EventType[];
  /** Epoch ms, inclusive. */
  readonly fromTime?: number;
  /** Epoch ms, exclusive. */
  readonly toTime?: number;
  /** Start after this sequence number (a cursor from `nextAfterSeq`). */
  readonly afterSeq?: number;
  /** Most events returned. */
  readonly limit: number;
  /** Most events examined in one call, so a rare filter cannot scan the whole log. Default 100k. */
  readonly scanLimit?: number;
}

/** One page of `listEvents`. */
export interface EventPage {
  readonly events: readonly StoredEvent[];
  /** Pass as `afterSeq` for the next page; undefined when the log has been read to its end. */
  readonly nextAfterSeq: number | undefined;
}

export interface PruneEventsOptions {
  /** Delete events older than this (by event time). */
  readonly maxAgeMs?: number;
  /** Keep at most this many (newest) events. */
  readonly maxCount?: number;
  /** Epoch ms. */
  readonly now: number;
}

/** What `stats()` reports, for metrics and the admin API. */
export interface StoreStats {
  /** Size of the data file on disk. */
  readonly fileSizeBytes: number;
  /** Current memory-map size (grows on demand). */
  readonly mapSizeBytes: number;
  /** Bytes of the map in use up to its highest page (including free pages LMDB will reuse). */
  readonly mapUsedBytes: number;
  /** mapUsedBytes / mapSizeBytes. */
  readonly mapUsage: number;
  /** Bytes of live B-tree pages over all tables (what `maxDataBytes` limits). */
  readonly dataBytes: number;
  /** `dataBytes` table by table, so an operator sees what grows (events, idempotency keys, …). */
  readonly dataBytesByTable: Readonly<Record<keyof Layout["tables"], number>>;
  readonly eventCount: number;
  readonly firstSequence: number;
  readonly lastSequence: number;
  readonly pendingCommits: number;
  readonly batchesCommitted: number;
  /** Subscriber callbacks that threw (and were skipped). */
  readonly listenerErrors: number;
}

export interface StoreMaintenance {
  /**
   * The event log's position (when it numbered any event), then every customer, meter,
   * reservation and idempotency key as committed now (one consistent snapshot).
   */
  exportState(): Iterable<StateRecord>;
  /**
   * Applies each record as it arrives (customers keep their alt-id index): a call decided after
   * it sees it, one decided before it is what it is checked against. Written to disk by the
   * store's group commit, so records that arrive together share transactions. If the stream
   * fails or a record is refused, the records before it are imported and none after it. Errors
   * name the record's field as `fieldOf(index)` does (default `records[7]`).
   */
  importState(records: Iterable<StateRecord> | AsyncIterable<StateRecord>, fieldOf?: RecordField): Promise<{ readonly count: number }>;
  listEvents(query: EventQuery): EventPage;
  pruneEvents(options: PruneEventsOptions): Promise<{ readonly deleted: number }>;
  /** Deletes idempotency records that expired at or before `now`. */
  pruneIdempotency(now: number): Promise<{ readonly deleted: number }>;
  /**
   * Deletes reservations that expired at least `graceMs` before `now`. The engine already ignores
   * expired holds (and drops them from a meter when it next writes it), but the reservation rows
   * would otherwise stay forever. The grace keeps a late `Settle` of a just-expired reservation
   * working; after it, that Settle is NOT_FOUND.
   */
  pruneReservations(now: number, graceMs: number): Promise<{ readonly deleted: number }>;
  stats(): StoreStats;
}

export interface MaintenanceContext {
  readonly layout: Layout;
  readonly reader: StateReader;
  readonly eventLog: EventLog;
  /** Told the highest sequence pruning removed (after its transaction committed). */
  readonly onEventsPruned: (throughSeq: number) => void;
  readonly guard: (action: string) => void;
  /** Throws unless this process is still the dir's writer; called inside each write transaction. */
  readonly assertWriter: () => void;
  readonly commit: (writes: readonly Write[], events: readonly EngineEvent[]) => Promise<CommitReceipt>;
  /** Numbers the next event after `last` unless it already would; settles as a commit does. */
  readonly raiseSequence: (last: number) => Promise<CommitReceipt>;
  readonly counters: () => { listenerErrors: number; batchesCommitted: number; pendingCommits: number };
}

/** Rows deleted per transaction when pruning: short write locks, a turn between them. */
const PRUNE_CHUNK = 500;
/** Records (and writes) an import hands the store before it waits for them to be on disk. */
const IMPORT_CHUNK = 500;
const IMPORT_CHUNK_WRITES = 5_000;
const DEFAULT_SCAN_LIMIT = 100_000;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function eventMatches(e: EngineEvent, q: EventQuery, customerId: string | undefined): boolean {
  // An empty list means "any", as for entitlements (the server always passes a list).
  if (q.types !== undefined && q.types.length > 0 && !q.types.includes(e.type)) return false;
  if (q.fromTime !== undefined && e.time < q.fromTime) return false;
  if (q.toTime !== undefined && e.time >= q.toTime) return false;
  if (q.entitlements !== undefined && q.entitlements.length > 0 && !("entitlement" in e && q.entitlements.includes(e.entitlement))) return false;
  if (customerId !== undefined) {
    const ids = [
      "customerId" in e ? e.customerId : undefined,
      "owner" in e ? e.owner : undefined,
      "customer" in e ? e.customer.id : undefined,
    ];
    if (!ids.includes(customerId)) return false;
  }
  return true;
}

/**
 * A commit of an import failed (storage full, I/O): says how far the import got, so that the
 * caller knows what is stored and where to resume.
 */
function cutShort(failure: unknown, imported: number, fieldOf: RecordField): LimitrError {
  const error = storeError(failure, "importing state");
  const how = imported === 0 ? "no record imported" : `${imported} record(s) imported (through ${fieldOf(imported - 1)}), none after`;
  return new LimitrError(error.code, `${error.message}; ${how}`, { cause: error });
}

export function createMaintenance(ctx: MaintenanceContext): StoreMaintenance {
  const { env, tables, meta, file } = ctx.layout;

  /** Deletes `keys` of the event log in one short transaction. */
  /** `keys` in ascending order. */
  function deleteEvents(keys: readonly Key[]): number {
    let deleted = 0;
    env.transactionSync(() => {
      ctx.assertWriter();
      for (const k of keys) if (tables.events.removeSync(k)) deleted++;
      // The next sequence is read from the newest event at open: once pruning may have deleted
      // it, the mark keeps a reopened store from giving the same sequences out again. Only
      // raised: an import may have set it past the events pruned here.
      const through = Number(keys[keys.length - 1]);
      if (through > markOf(meta.get(EVENTS_PRUNED_THROUGH))) meta.putSync(EVENTS_PRUNED_THROUGH, through);
    });
    return deleted;
  }

  return {
    *exportState() {
      ctx.guard("exporting state");
      // One read transaction for the whole export: a consistent snapshot even while commits go on.
      const txn = env.useReadTransaction();
      try {
        // First, so that the numbering is raised before any record of the import is applied; none
        // for a log that never numbered an event.
        const newest = [...tables.events.getKeys({ reverse: true, limit: 1, transaction: txn })][0];
        const lastSequence = Math.max(typeof newest === "number" ? newest : 0, markOf(meta.get(EVENTS_PRUNED_THROUGH, { transaction: txn })));
        if (lastSequence > 0) yield { kind: "event-log", lastSequence };
        for (const { value } of tables.customers.getRange({ transaction: txn })) {
          yield { kind: "customer", customer: decodeCustomer(value) };
        }
        for (const { value } of tables.meters.getRange({ transaction: txn })) {
          const meter = decodeMeter(value);
          const holds = meter.holdSummary.count === 0 ? [] : [...holdRowsOf(tables.holds, meter.owner, meter.entitlement, txn)];
          yield { kind: "meter", meter, holds };
        }
        for (const { value } of tables.reservations.getRange({ transaction: txn })) {
          yield { kind: "reservation", reservation: decodeReservation(value) };
        }
        // Expired keys too, until pruning removes them: a retry checks the expiry, not the row.
        for (const { value } of tables.idempotency.getRange({ transaction: txn })) {
          yield { kind: "idempotency", record: decodeIdempotency(value) };
        }
      } finally {
        txn.done();
      }
    },

    async importState(records, fieldOf = DEFAULT_RECORD_FIELD) {
      const checker = createImportChecker(ctx.reader, fieldOf);
      let count = 0;
      /** Records on disk: a prefix of those handed to the store, as batches settle in order. */
      let imported = 0;
      /** The first commit that failed: it and every commit queued after it were rejected. */
      let failure: unknown;
      let latest: Promise<void> | undefined;
      let inChunk = 0;
      let writesInChunk = 0;
      let refusal: { readonly error: unknown } | undefined;
      try {
        for await (const r of records) {
          // A later commit would land after the gap the failed batch left.
          if (failure !== undefined) break;
          // Checked and handed to the store in one synchronous step, as a decision is: the record
          // is checked against what the calls before it left, every call after it reads it (the
          // store's group commit writes it to disk on a later turn), and nothing decided in
          // between can make the check stale. Held back for a chunk instead, a record was
          // applied later, over what calls made meanwhile had acknowledged.
          const writes = checker.writes(r, count, (id) => ctx.reader.getCustomer(id));
          checker.committed();
          const committed = r.kind === "event-log" ? ctx.raiseSequence(r.lastSequence) : ctx.commit(writes, []);
          latest = committed.then(
            () => void imported++,
            (e: unknown) => void (failure ??= e),
          );
          count++;
          // Records, and writes (a meter brings one per hold): how much may wait unacknowledged.
          writesInChunk += writes.length;
          if (++inChunk >= IMPORT_CHUNK || writesInChunk >= IMPORT_CHUNK_WRITES) {
            inChunk = 0;
            writesInChunk = 0;
            await latest;
          }
        }
      } catch (e) {
        // A stream is applied in order, as it arrives: when a record is refused (or the stream
        // fails), every record before it is imported and none after, so the caller knows where
        // to resume.
        refusal = { error: e };
      }
      await latest;
      // A failed commit came before whatever the stream did after it.
      if (failure !== undefined) throw cutShort(failure, imported, fieldOf);
      if (refusal !== undefined) throw refusal.error;
      return { count };
    },

    listEvents(q) {
      ctx.guard("listing events");
      const customerId =
        q.customerId === undefined ? undefined : (ctx.reader.resolveAltId(q.customerId) ?? q.customerId);
      const last = ctx.eventLog.lastSequence();
      const scanLimit = q.scanLimit ?? DEFAULT_SCAN_LIMIT;
      const events: StoredEvent[] = [];
      let scanned = 0;
      let cursor = q.afterSeq ?? 0;
      if (q.limit <= 0) return { events, nextAfterSeq: cursor < last ? cursor : undefined };
      try {
        // Not below the log's first available sequence: events under an import's mark are the
        // dir's own from before it, not the imported log's (see firstSequence).
        const range = { start: Math.max(cursor + 1, ctx.eventLog.firstSequence()) as Key, end: last as Key, inclusiveEnd: true };
        for (const { key, value } of tables.events.getRange(range)) {
          const seq = Number(key);
          const event = decodeEvent(value);
          cursor = seq;
          scanned++;
          if (eventMatches(event, q, customerId)) events.push({ seq, event });
          if (events.length >= q.limit || scanned >= scanLimit) break;
        }
      } catch (e) {
        throw storeError(e, "listing events");
      }
      return { events, nextAfterSeq: cursor < last ? cursor : undefined };
    },

    async pruneEvents({ maxAgeMs, maxCount, now }) {
      let deleted = 0;
      for (;;) {
        ctx.guard("pruning events");
        const count = (tables.events.getStats() as { entryCount: number }).entryCount;
        const last = ctx.eventLog.lastSequence();
        const overCount = maxCount === undefined ? 0 : Math.max(0, count - maxCount);
        const cutoff = maxAgeMs === undefined ? -Infinity : now - maxAgeMs;
        const keys: Key[] = [];
        for (const { key, value } of tables.events.getRange({ limit: PRUNE_CHUNK })) {
          // Only acknowledged events: a batch still being flushed is not the log's to prune yet.
          if (Number(key) > last) break;
          if (keys.length >= overCount && decodeEvent(value).time >= cutoff) break;
          keys.push(key);
        }
        if (keys.length === 0) return { deleted };
        try {
          deleted += deleteEvents(keys);
        } catch (e) {
          throw storeError(e, "pruning events", file);
        }
        ctx.onEventsPruned(Number(keys[keys.length - 1]));
        await nextTurn();
      }
    },

    async pruneIdempotency(now) {
      let deleted = 0;
      // Index keys that read back other than they were stored (an id the key encoding cannot
      // escape, written before such ids were refused: see write-ops.ts) cannot be removed by what
      // they read back as. Past a chunk of only those, the scan starts after their expiry time.
      let start: Key | undefined;
      for (;;) {
        ctx.guard("pruning idempotency keys");
        const expired: [number, string][] = [];
        for (const key of tables.idempotencyExpiry.getKeys(start === undefined ? { limit: PRUNE_CHUNK } : { start, limit: PRUNE_CHUNK })) {
          if (!Array.isArray(key) || typeof key[0] !== "number" || key[0] > now) break;
          expired.push([key[0], String(key[1])]);
        }
        if (expired.length === 0) return { deleted };
        let removed = 0;
        try {
          env.transactionSync(() => {
            ctx.assertWriter();
            for (const [expiresAt, k] of expired) {
              if (tables.idempotencyExpiry.removeSync([expiresAt, k])) removed++;
              // Re-checked inside the transaction: the key may have been decided again since.
              const row = tables.idempotency.get(k);
              if (row !== undefined && decodeIdempotency(row).expiresAt <= now) {
                tables.idempotency.removeSync(k);
                deleted++;
              }
            }
          });
        } catch (e) {
          throw storeError(e, "pruning idempotency keys", file);
        }
        if (removed === 0) {
          const last = (expired[expired.length - 1] as [number, string])[0];
          start = [last + Math.max(Math.abs(last) * Number.EPSILON, Number.MIN_VALUE)];
        }
        await nextTurn();
      }
    },

    async pruneReservations(now, graceMs) {
      // No expiry index (reservations are few and short-lived): scan the table by id in chunks,
      // resuming after the last id seen, so each read and each delete stays small.
      const cutoff = now - graceMs;
      let deleted = 0;
      let after: Key | undefined;
      for (;;) {
        ctx.guard("pruning reservations");
        const expired: Key[] = [];
        let last: Key | undefined;
        let seen = 0;
        const range = after === undefined ? { limit: PRUNE_CHUNK } : { start: after, exclusiveStart: true, limit: PRUNE_CHUNK };
        try {
          for (const { key, value } of tables.reservations.getRange(range)) {
            seen++;
            last = key;
            if (decodeReservation(value).expiresAt <= cutoff) expired.push(key);
          }
        } catch (e) {
          throw storeError(e, "pruning reservations"); // a read: an I/O error here is not a full disk
        }
        if (expired.length > 0) {
          try {
            env.transactionSync(() => {
              ctx.assertWriter();
              for (const k of expired) {
                // Re-checked inside the transaction: the id may have been written again since.
                const row = tables.reservations.get(k);
                if (row !== undefined && decodeReservation(row).expiresAt <= cutoff) {
                  tables.reservations.removeSync(k);
                  deleted++;
                }
              }
            });
          } catch (e) {
            throw storeError(e, "pruning reservations", file);
          }
        }
        if (seen < PRUNE_CHUNK || last === undefined) return { deleted };
        after = last;
        await nextTurn();
      }
    },

    stats() {
      ctx.guard("reading stats");
      const envStats = env.getStats() as { mapSize: number; lastPageNumber: number; pageSize: number };
      // One page size for the whole environment.
      const pageSize = envStats.pageSize;
      const dataBytesByTable = Object.fromEntries(
        Object.entries(tables).map(([name, t]) => [name, pagesOf(t.getStats() as PageStat) * pageSize]),
      ) as Record<keyof typeof tables, number>;
      const dataBytes = Object.values(dataBytesByTable).reduce((sum, b) => sum + b, 0);
      const mapUsedBytes = (envStats.lastPageNumber + 1) * pageSize;
      const counters = ctx.counters();
      return {
        fileSizeBytes: statSync(file).size,
        mapSizeBytes: envStats.mapSize,
        mapUsedBytes,
        mapUsage: mapUsedBytes / envStats.mapSize,
        dataBytes,
        dataBytesByTable,
        eventCount: (tables.events.getStats() as { entryCount: number }).entryCount,
        firstSequence: ctx.eventLog.firstSequence(),
        lastSequence: ctx.eventLog.lastSequence(),
        ...counters,
      };
    },
  };
}
