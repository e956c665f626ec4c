/**
 * Store: every byte on disk. The LMDB implementation of the engine's storage port and event log
 * (group commit, versioned rows, format check, retention), plus an in-memory store for tests.
 */
export {
  createLmdbStore,
  type EventPage,
  type EventQuery,
  type LmdbStore,
  type LmdbStoreOptions,
  type PruneEventsOptions,
  type StoreStats,
} from "./lmdb-store.js";
/** The storage format this build writes; an older data dir is upgraded on open, a newer one refused. */
export { FORMAT_VERSION } from "./lmdb-layout.js";
/** The environment's file in a data dir: a dir without it holds no data yet. */
export { DATA_FILE } from "./lmdb-layout.js";
/** A storage-full message without the running sidecar's advice, for an offline import's own. */
export { withoutStoreAdvice } from "./store-error.js";
/** The checks of an import, for a state file validated whole before it is imported. */
export { checkStateRecords, type RecordField } from "./import-records.js";
/** The in-memory store: same port and event log, no persistence (engine and server tests). */
export { createMemoryStore, type MemoryStore } from "./memory-store.js";
