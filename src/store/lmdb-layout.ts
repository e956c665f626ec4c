/**
 * The on-disk layout: one LMDB environment file in the data dir, with named sub-databases, and the
 * format-version check that runs before anything is written.
 *
 *   meta            "format" → FORMAT_VERSION
 *                   "writer" → the token of the process that last opened the dir to write it
 *                   "events-pruned-through" → the highest sequence pruning deleted, or an
 *                   import's log position if higher (so the next sequence is known when the
 *                   events table holds none at or past it)
 *                   "reset-rule-history" → the engine's record of policy swaps that changed a
 *                   reset rule (written with the commits, like a row; an older version of
 *                   this format ignores it)
 *                   "reset-rule-history-kept-by" → the token of the latest writer that kept
 *                   that history (each claim passes it on; see `HISTORY_KEPT_BY`)
 *   customers       id → customer row
 *   alt-ids         alt id → primary id
 *   meters          [owner, entitlement] → meter row (ordered keys: metersOf(owner) is a range)
 *   holds           [owner, entitlement, expiresAt, reservationId] → one hold (its amount)
 *   reservations    id → reservation row
 *   idempotency     key → idempotency row
 *   idempotency-exp [expiresAt, key] → null (so pruning visits only expired keys)
 *   events          seq → event row
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { open, type Database, type Key, type RootDatabase } from "lmdb";
import { summarizeHolds, type Hold, type Meter } from "../engine/index.js";
import { LimitrError } from "../errors/index.js";
import { decodeFormat3Holds, decodeMeter, encodeHold, encodeMeter, splitLegacyMeterRow, summaryCountsHolds } from "./row-codecs.js";
import { assertRoomToCreate, storeError } from "./store-error.js";
import { holdId, holdKey } from "./write-ops.js";

/**
 * The format this code writes. Bump it (and add a migration) when a stored layout changes.
 * - 1: the first format.
 * - 2: meter events may be stored as tuple rows (event row v2). Rows of format 1 are all still
 *   readable, so a format-1 dir is upgraded in place by recording the new number; the number is
 *   what makes an older limitr-sidecar refuse the dir instead of failing on its first v2 row.
 * - 3: a meter's holds live in the `holds` table and its row keeps only their summary (meter row
 *   v2), so a decision on a meter with many open reservations no longer reads and rewrites all
 *   of them. A format 1 or 2 dir is upgraded when opened to write, in the writer's claim: every
 *   meter row that carries holds is split in two (`upgradeFormat`), and the new number recorded.
 *   A read-only open refuses it (its writer may be an older version, still running).
 * - 4: each hold is a row of its own, keyed by its meter, expiry and reservation, so that placing
 *   or removing one writes one row however many are open, and a meter's expired holds are a
 *   range. A format 1, 2 or 3 dir is upgraded the same way: in the writer's claim, every meter's
 *   holds become rows of their own.
 * - 5: a meter row may name the reset rule its period start was computed under (an eleventh
 *   element), with its billed-overage slot saying `false` (not known) before it: rows format 4's
 *   code fails on. Every format 4 row is readable, so a format 4 dir is upgraded by recording the
 *   number (no row is rewritten, however many meters it holds), and a read-only open reads it as
 *   it is.
 */
export const FORMAT_VERSION = 5;

/** Formats this code upgrades when it opens them to write (`upgradeFormat`). */
const UPGRADABLE_FORMATS: ReadonlySet<number> = new Set([1, 2, 3, 4]);
/** Older formats whose rows this code reads as they are: an upgrade only records the number. */
const ROWS_AS_THEY_ARE: ReadonlySet<number> = new Set([4]);
/** The oldest format this code opens, for the refusal message. */
const OLDEST_READABLE = Math.min(FORMAT_VERSION, ...UPGRADABLE_FORMATS);

/** File name of the environment inside the data dir. */
export const DATA_FILE = "limitr.mdb";
/** LMDB's lock file, next to the environment (also made by a read-only open). */
const LOCK_FILE = `${DATA_FILE}-lock`;

export type Table = Database<unknown, Key>;

export interface Tables {
  readonly customers: Table;
  readonly altIds: Table;
  readonly meters: Table;
  readonly holds: Table;
  readonly reservations: Table;
  readonly idempotency: Table;
  readonly idempotencyExpiry: Table;
  readonly events: Table;
}

export interface Layout {
  readonly env: RootDatabase<unknown, Key>;
  readonly tables: Tables;
  /** Facts about the environment itself, not rows of the data (see the table list above). */
  readonly meta: Table;
  readonly file: string;
  /** The older format the dir is of, which `claimWriter` upgrades; undefined when it is current. */
  readonly upgradeFrom: number | undefined;
}

/**
 * The meta key of a sequence the log has numbered through though it may hold no event at or past
 * it: the highest pruning deleted, or an import's (the log position of the dir it came from).
 */
export const EVENTS_PRUNED_THROUGH = "events-pruned-through";

/** The stored `EVENTS_PRUNED_THROUGH` mark; 0 when there is none. */
export function markOf(stored: unknown): number {
  return typeof stored === "number" ? stored : 0;
}

/** The meta key of the engine's reset-rule history (`StatePort.resetRuleHistory`). */
export const RESET_RULE_HISTORY = "reset-rule-history";

/**
 * The meta key of the token of the latest writer that kept the reset-rule history. A claim passes
 * the history on (writes its own token here) only when the last writer kept it too: an older
 * version, which keeps none and ignores these keys, that wrote the dir in between may have counted
 * under rules the history does not know of, so the history it left behind is stale and not read
 * (`keptHistory`). A token, not the history, is what a claim writes: a few bytes, so that a
 * restart on a full disk still claims the dir (rewriting a history of many lineages would not fit).
 */
export const HISTORY_KEPT_BY = "reset-rule-history-kept-by";

/** The stored history if `writer` keeps it; undefined when there is none, or it is stale. */
export function keptHistory(meta: Table, writer: string | undefined): unknown {
  return writer !== undefined && meta.get(HISTORY_KEPT_BY) === writer ? meta.get(RESET_RULE_HISTORY) : undefined;
}

/** The meta key holding the token of the process that opened the dir last to write it. */
const WRITER = "writer";

/**
 * Makes this process the dir's writer: LMDB lets several processes write one environment, and
 * nothing at the file level keeps a second sidecar out (Node has no flock). Two writers would
 * number events from the same counter and answer from stale caches, so the newest opener wins
 * and every write transaction first checks it is still the writer (`assertWriter`). Returns the
 * token; read the last sequence only after this, so no earlier writer's commit is missed.
 */
export function claimWriter(layout: Layout, onHistorySetAside?: (lastWriter: string) => void): string {
  const token = `pid ${process.pid}, ${randomUUID()}`;
  let setAsideFrom: string | undefined;
  try {
    // An upgrade goes in the same transaction: a batch of an earlier writer (an older version,
    // still running) that commits after it fails its writer check instead of writing old rows.
    layout.env.transactionSync(() => {
      const lastWriter = layout.meta.get(WRITER) as string | undefined;
      // Only the token is compared: the history itself is not decoded here (a damaged one must
      // not keep the dir from being claimed; the engine reports and replaces it).
      if (layout.meta.doesExist(RESET_RULE_HISTORY)) {
        if (lastWriter !== undefined && layout.meta.get(HISTORY_KEPT_BY) === lastWriter) layout.meta.putSync(HISTORY_KEPT_BY, token);
        else setAsideFrom = String(lastWriter);
      }
      layout.meta.putSync(WRITER, token);
      if (layout.upgradeFrom !== undefined) upgradeFormat(layout.tables, layout.meta, layout.upgradeFrom);
    });
  } catch (e) {
    throw storeError(e, `claiming the data dir ${layout.file}`, layout.file);
  }
  if (setAsideFrom !== undefined) onHistorySetAside?.(setAsideFrom);
  return token;
}

/** Throws FAILED_PRECONDITION when another process claimed the dir after `token`; call inside a write transaction. */
export function assertWriter(layout: Layout, token: string): void {
  const current = layout.meta.get(WRITER);
  if (current === token) return;
  throw new LimitrError(
    "FAILED_PRECONDITION",
    `another process (${String(current)}) opened the data dir ${layout.file} to write it, so this one (${token.split(",")[0]}) ` +
      `no longer writes: run one sidecar per data dir, and restart this one once the other is gone`,
  );
}

const TABLE_NAMES: Readonly<Record<keyof Tables, string>> = {
  customers: "customers",
  altIds: "alt-ids",
  meters: "meters",
  holds: "holds",
  reservations: "reservations",
  idempotency: "idempotency",
  idempotencyExpiry: "idempotency-exp",
  events: "events",
};

/**
 * The smallest an LMDB environment file is once created: its two meta pages, of at least 4 KiB
 * each. A shorter, non-empty one is a creation cut short (a full disk, a kill) and holds no data;
 * LMDB opening it reads past its end and the process dies (SIGSEGV) with no message.
 */
const MIN_ENVIRONMENT_BYTES = 2 * 4096;

/** Refuses a data file too short to be an environment, naming it, before LMDB maps it. */
function assertWholeEnvironment(file: string): void {
  const size = existsSync(file) ? statSync(file).size : 0;
  if (size === 0 || size >= MIN_ENVIRONMENT_BYTES) return;
  throw new LimitrError(
    "FAILED_PRECONDITION",
    `the data file ${file} is ${size} bytes, shorter than an LMDB environment's two meta pages: its creation was cut short ` +
      `(a full disk, or a kill) and it holds no data; remove it (and ${LOCK_FILE} beside it) and start again`,
  );
}

export interface LayoutOptions {
  readonly dir: string;
  readonly fsync: boolean;
  readonly mapSizeBytes: number | undefined;
  /** Never writes: a dir of an older format is refused rather than upgraded. */
  readonly readOnly?: boolean;
}

/**
 * Opens the environment, refusing a format it cannot read. A writer creates the dir and the
 * environment if needed; a read-only open refuses a dir that holds none.
 */
export function openLayout(options: LayoutOptions): Layout {
  const file = join(options.dir, DATA_FILE);
  // Opening a missing environment creates it: an export of a mistyped dir would leave files there
  // and write an empty backup that looks like a good one.
  if (options.readOnly === true && !existsSync(file)) throw noData(options.dir);
  // An empty data file is what an open killed while creating it leaves.
  if (!existsSync(join(options.dir, LOCK_FILE)) || !existsSync(file) || statSync(file).size === 0) assertRoomToCreate(options.dir);
  assertWholeEnvironment(file);
  let env: RootDatabase<unknown, Key>;
  try {
    if (options.readOnly !== true) mkdirSync(options.dir, { recursive: true });
    env = open<unknown, Key>({
      path: file,
      maxDbs: 16,
      // See lmdb-store.ts for what each durability setting guarantees.
      noSync: !options.fsync,
      overlappingSync: options.fsync,
      ...(options.mapSizeBytes === undefined ? {} : { mapSize: options.mapSizeBytes }),
      compression: false,
      cache: false,
    });
  } catch (e) {
    throw storeError(e, `opening the data dir ${options.dir}`, options.dir);
  }
  try {
    const { meta, upgrade } = checkFormat(env, options.dir, options.readOnly === true);
    const tables = Object.fromEntries(
      Object.entries(TABLE_NAMES).map(([k, name]) => [k, env.openDB<unknown, Key>({ name, encoding: "msgpack" })]),
    ) as unknown as Tables;
    return { env, tables, meta, file, upgradeFrom: upgrade };
  } catch (e) {
    // Nothing was written for a refused dir; release the lock file handle before reporting.
    void env.close();
    throw storeError(e, `opening the data dir ${options.dir}`, options.dir);
  }
}

/**
 * Reads the format version before any table is opened (opening a table that does not exist
 * creates it, which is a write). A fresh environment gets the current version, an older one whose
 * rows this code reads is upgraded, and a newer or unknown one is refused so this code never
 * corrupts data it does not understand. Returns the meta table.
 */
function checkFormat(env: RootDatabase<unknown, Key>, dir: string, readOnly: boolean): { readonly meta: Table; readonly upgrade: number | undefined } {
  // Named databases are keys of the root database; an empty root means a fresh environment.
  const names = [...env.getKeys({ limit: 64 })].map(String);
  if (names.length === 0) {
    if (readOnly) throw noData(dir);
    const meta = env.openDB<unknown, Key>({ name: "meta", encoding: "msgpack" });
    meta.transactionSync(() => meta.putSync("format", FORMAT_VERSION));
    return { meta, upgrade: undefined };
  }
  if (!names.includes("meta")) {
    throw new LimitrError(
      "FAILED_PRECONDITION",
      `data dir ${dir} holds an LMDB environment that was not written by limitr-sidecar (no format version); refusing to use it`,
    );
  }
  const meta = env.openDB<unknown, Key>({ name: "meta", encoding: "msgpack" });
  const version = meta.get("format");
  if (version === FORMAT_VERSION) return { meta, upgrade: undefined };
  // A first open cut short (killed, or the disk full) between creating the meta table and writing
  // the number into it: a fresh environment with nothing in it, not one of an unknown format.
  if (version === undefined && names.length === 1 && [...meta.getKeys({ limit: 1 })].length === 0) {
    if (readOnly) throw noData(dir);
    meta.transactionSync(() => meta.putSync("format", FORMAT_VERSION));
    return { meta, upgrade: undefined };
  }
  if (typeof version === "number" && UPGRADABLE_FORMATS.has(version)) {
    if (!readOnly) return { meta, upgrade: version };
    if (ROWS_AS_THEY_ARE.has(version)) return { meta, upgrade: undefined };
    // Its writer may still be running (an older version): rewriting rows under it would break it.
    throw new LimitrError(
      "FAILED_PRECONDITION",
      `data dir ${dir} has storage format ${version}, which this limitr-sidecar upgrades to format ${FORMAT_VERSION} only when it opens the dir ` +
        `to write it (serve, import), never when reading it: read it with the version that wrote it, or after this one served it. Nothing was changed.`,
    );
  }
  throw new LimitrError(
    "FAILED_PRECONDITION",
    `data dir ${dir} has storage format ${String(version)}, but this limitr-sidecar reads formats ${OLDEST_READABLE} to ${FORMAT_VERSION}; ` +
      `it was written by a different version: run that version (or a newer one), or restore a backup. Nothing was changed.`,
  );
}

function noData(dir: string): LimitrError {
  return new LimitrError("NOT_FOUND", `data dir ${dir} holds no limitr-sidecar data (no ${DATA_FILE} with a format version); nothing was read or written`);
}

/**
 * Brings an older dir to FORMAT_VERSION, inside the writer's claim (one transaction, so a crash
 * leaves it either upgraded or untouched). A format 4 dir only gets the new number. In a format
 * 1, 2 or 3 dir the holds of every meter, kept in its row (formats 1 and 2) or in one list row
 * under its key (format 3), become one row per hold, and the meter's summary is made from them.
 * Meter rows without holds read as they are.
 */
function upgradeFormat(tables: Tables, meta: Table, from: number): void {
  if (ROWS_AS_THEY_ARE.has(from)) {
    meta.putSync("format", FORMAT_VERSION);
    return;
  }
  // Collected first: rows are rewritten under the keys being iterated.
  const moves: { key: Key; meter: Meter | undefined; holds: readonly Hold[]; listRow: boolean }[] = [];
  for (const { key, value } of tables.meters.getRange()) {
    const split = unreadable(key, "meter", () => splitLegacyMeterRow(value));
    if (split !== undefined) moves.push({ key, ...split, listRow: false });
    else if (summaryCountsHolds(value) && tables.holds.get(key) === undefined) {
      // A format 3 meter whose summary counts holds that have no list: it counts none.
      moves.push({ key, meter: unreadable(key, "meter", () => decodeMeter(value)), holds: [], listRow: false });
    }
  }
  for (const { key, value } of tables.holds.getRange()) {
    if (!Array.isArray(key) || key.length !== 2) continue;
    const holds = unreadable(key, "holds", () => decodeFormat3Holds(value));
    const row = tables.meters.get(key);
    const meter = row === undefined ? undefined : unreadable(key, "meter", () => decodeMeter(row));
    // A list its meter does not count (deleted, or no holds) was never read: it goes.
    moves.push({ key, meter: meter !== undefined && meter.holdSummary.count > 0 ? meter : undefined, holds, listRow: true });
  }
  for (const m of moves) {
    if (m.listRow) tables.holds.removeSync(m.key);
    if (m.meter === undefined) continue;
    // One row per (expiry, reservation): two such holds (never placed by the engine) become one.
    const byId = new Map<string, Hold>();
    for (const h of m.holds) {
      const id = holdId(h.expiresAt, h.reservationId);
      const same = byId.get(id);
      byId.set(id, same === undefined ? h : { ...h, amount: same.amount + h.amount });
    }
    const holds = [...byId.values()];
    tables.meters.putSync(m.key, encodeMeter({ ...m.meter, holdSummary: summarizeHolds(holds) }));
    for (const h of holds) tables.holds.putSync(holdKey(m.meter.owner, m.meter.entitlement, h.expiresAt, h.reservationId), encodeHold(h));
  }
  meta.putSync("format", FORMAT_VERSION);
}

function unreadable<T>(key: Key, what: string, decode: () => T): T {
  try {
    return decode();
  } catch (e) {
    throw new LimitrError("INTERNAL", `upgrading to storage format ${FORMAT_VERSION}: the ${what} row ${JSON.stringify(key)} is unreadable: ${(e as Error).message}`);
  }
}
