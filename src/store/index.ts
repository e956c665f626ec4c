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
/** The store's checks of one import record, for a state file validated before it is imported. */
export { checkStateRecord } from "./lmdb-maintenance.js";
/** The in-memory store: same port and event log, no persistence (engine and server tests). */
export { createMemoryStore, type MemoryStore } from "./memory-store.js";
