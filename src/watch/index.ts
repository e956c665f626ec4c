/**
 * Watch: the mounted policy file → compile → apply or reject. Knows nothing of gRPC or storage;
 * the composition root passes `loadPolicy` as `compile` and swaps its policy reference in
 * `onApplied`.
 */

/** Creates a watcher for one policy file; see `PolicyWatcherOptions` for triggers and defaults. */
export { createPolicyWatcher, DEFAULT_DEBOUNCE_MS, DEFAULT_POLL_INTERVAL_MS } from "./create-policy-watcher.js";
/** Compiles policy documents on a worker thread, off the event loop that answers decisions. */
export { compileWorkerBuilt, createWorkerCompiler, DEFAULT_COMPILE_TIMEOUT_MS, DEFAULT_COMPILER_IDLE_MS, type WorkerCompiler, type WorkerCompilerOptions } from "./create-worker-compiler.js";
/** The version of a policy document: 16 hex digits of the sha256 of its bytes. */
export { contentVersion, VERSION_HEX_DIGITS } from "./content-version.js";
export type {
  AppliedInfo,
  PolicyError,
  PolicyStatus,
  PolicyWatcher,
  PolicyWatcherOptions,
  RejectedInfo,
  ReloadOutcome,
  RestoredInfo,
  ReloadReason,
  WatchLogger,
} from "./types.js";
