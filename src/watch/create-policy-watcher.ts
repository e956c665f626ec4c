import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { decodePolicyBytes, type CompileResult, type PolicyIssue } from "../policy/index.js";
import { contentVersion } from "./content-version.js";
import { createDebouncer } from "./create-debouncer.js";
import { createDirectoryWatch, nearestRealDirectory, type DirectoryWatch } from "./create-directory-watch.js";
import type { PolicyError, PolicyStatus, PolicyWatcher, PolicyWatcherOptions, ReloadOutcome, ReloadReason } from "./types.js";

export const DEFAULT_DEBOUNCE_MS = 150;
export const DEFAULT_POLL_INTERVAL_MS = 30_000;
/** A burst of events never delays a re-read by more than this (or 5 × the debounce if larger). */
const MIN_MAX_WAIT_MS = 1_000;

/**
 * Watches the policy file and hands each new valid content to `onApplied`, whole. Triggers: file
 * events in the file's directory and, when that is a symlink, in the real directory above it
 * (debounced), the periodic re-read, and `reload()`. Re-reads run one at a time; each reads the
 * bytes, hashes them, and compiles only when the hash differs from the live version. Nothing
 * here throws into the caller's event loop: every failure becomes a log line and a `lastError`
 * in `status()`.
 */
export function createPolicyWatcher(options: PolicyWatcherOptions): PolicyWatcher {
  const source = options.path;
  const file = resolve(options.path);
  const logger = options.logger;
  const now = options.now ?? (() => new Date());
  const debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  const pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;

  // Live state. `appliedVersion` is what the caller is serving.
  let appliedVersion: string | undefined;
  let appliedAt: Date | undefined;
  let lastError: PolicyError | undefined;
  let rejectedSinceLastSuccess = 0;
  // Only a document that failed validation sets this, and nothing clears it: the status answers
  // "when was a document last refused", which a missing file or a compiler crash does not.
  let lastRejectedAt: Date | undefined;
  let lastCheckedAt: Date | undefined;
  let sourceMissing = false;
  // The last rejected content, so the periodic re-read does not re-report an unchanged bad file.
  let rejected: { readonly version: string; readonly issues: readonly PolicyIssue[] } | undefined;

  let started = false;
  let closed = false;
  let pollTimer: NodeJS.Timeout | undefined;
  // Re-reads are serialized on this chain; `queuedBackground` coalesces event/poll triggers that
  // arrive while one is already waiting (it will read the newest bytes anyway).
  let chain: Promise<unknown> = Promise.resolve();
  let queuedBackground: Promise<ReloadOutcome> | undefined;

  const dir = dirname(file);
  const onEvent = (): void => debouncer.trigger();
  const dirWatch = createDirectoryWatch({ dir, logger, onEvent });
  // Set at start when `dir` is a symlink (a ConfigMap sub-path): see `nearestRealDirectory`.
  let volumeWatch: DirectoryWatch | undefined;
  const ensureWatches = async (): Promise<void> => {
    await Promise.all([dirWatch.ensure(), volumeWatch?.ensure()]);
  };
  const debouncer = createDebouncer({
    waitMs: debounceMs,
    maxWaitMs: Math.max(MIN_MAX_WAIT_MS, debounceMs * 5),
    // Re-armed first, then read: a swap may have deleted the directory the watch is on (a policy
    // under a ConfigMap sub-path resolves into kubelet's timestamped directory), and arming before
    // the read means a change after it is seen by the new watch, one before it by the read.
    run: () => void ensureWatches().then(() => background("fs-event")),
  });

  function enqueue(reason: ReloadReason, force: boolean): Promise<ReloadOutcome> {
    const run = chain.then(() => check(reason, force));
    chain = run.catch(() => undefined);
    return run;
  }

  function background(reason: ReloadReason): Promise<ReloadOutcome> {
    if (queuedBackground) return queuedBackground;
    const queued = chain.then(() => {
      // From here on a new trigger must queue another read: this one may already be too old.
      queuedBackground = undefined;
      return check(reason, false);
    });
    queuedBackground = queued;
    chain = queued.catch(() => undefined);
    return queued;
  }

  async function check(reason: ReloadReason, force: boolean): Promise<ReloadOutcome> {
    if (closed) return { kind: "closed" };
    try {
      return await checkOnce(reason, force);
    } catch (err) {
      // Only a bug gets here (every expected failure is handled below); keep serving regardless.
      const message = `policy re-read failed unexpectedly: ${String(err)}`;
      logger.error(message, { source, reason, err });
      setError({ kind: "unreadable", at: now(), version: undefined, message, issues: [] });
      return { kind: "unreadable", message };
    }
  }

  async function checkOnce(reason: ReloadReason, force: boolean): Promise<ReloadOutcome> {
    const at = now();
    let bytes: Uint8Array;
    try {
      bytes = await readFile(file);
    } catch (err) {
      lastCheckedAt = at;
      return readFailed(err, at, reason);
    }
    if (closed) return { kind: "closed" };
    lastCheckedAt = at;
    if (sourceMissing) {
      sourceMissing = false;
      logger.info("policy source is back", { source, reason });
      // Judge the returning file afresh: even the same bad bytes as before must be reported
      // again, or the status would keep saying "missing" about a file that exists.
      if (lastError?.kind === "missing") lastError = undefined;
      rejected = undefined;
    }

    const version = contentVersion(bytes);
    if (version === appliedVersion) {
      // Rejections are counted on even when the file was missing in between: the missing file's
      // return clears its own error, not theirs.
      if (lastError || rejectedSinceLastSuccess > 0) {
        // The file agrees with the live policy again (a bad edit rolled back, a deleted file
        // restored): nothing is wrong any more, so the status must stop saying so.
        logger.info("policy source matches the live policy again", { source, version, reason });
        const rejections = rejectedSinceLastSuccess;
        lastError = undefined;
        rejectedSinceLastSuccess = 0;
        rejected = undefined;
        if (rejections > 0) restored(version, rejections, at, reason);
      }
      return { kind: "unchanged", version };
    }
    if (!force && rejected?.version === version) return { kind: "rejected", version, issues: rejected.issues };

    let result: CompileResult;
    const decoded = decodePolicyBytes(bytes);
    if (!decoded.ok) {
      result = { ok: false, issues: decoded.issues };
    } else {
      try {
        result = await options.compile(decoded.text, version);
      } catch (err) {
        // Not the document's fault (a worker that crashed or did not answer, a compiler bug): the
        // last good policy stays, nothing is reported as rejected, and the bytes are not
        // remembered as bad, so the next re-read (event, poll) compiles them again.
        if (closed) return { kind: "closed" };
        const message = `the compiler failed on policy ${version}: ${String(err)}`;
        logger.error(message, { source, version, reason, err });
        setError({ kind: "compile-failed", at, version, message, issues: [] });
        return { kind: "compile-failed", version, message };
      }
    }
    if (closed) return { kind: "closed" };
    return result.ok ? apply(result, version, at, reason) : reject(result.issues, version, at, reason);
  }

  function apply(result: Extract<CompileResult, { ok: true }>, version: string, at: Date, reason: ReloadReason): ReloadOutcome {
    const previousVersion = appliedVersion;
    try {
      options.onApplied(result.policy, { version, previousVersion, source, reason, appliedAt: at, warnings: result.warnings });
    } catch (err) {
      // Not marked applied, so the next re-read tries again.
      const message = `applying policy ${version} failed: ${String(err)}`;
      logger.error(message, { source, version, reason, err });
      setError({ kind: "apply-failed", at, version, message, issues: [] });
      return { kind: "apply-failed", version, message };
    }
    appliedVersion = version;
    appliedAt = at;
    lastError = undefined;
    rejectedSinceLastSuccess = 0;
    rejected = undefined;
    logger.info("policy applied", { source, version, previousVersion, reason, warnings: result.warnings.length });
    for (const w of result.warnings) logger.warn("policy warning", { source, version, path: w.path, message: w.message });
    return { kind: "applied", version, policy: result.policy, warnings: result.warnings };
  }

  function reject(issues: readonly PolicyIssue[], version: string, at: Date, reason: ReloadReason): ReloadOutcome {
    rejectedSinceLastSuccess += 1;
    lastRejectedAt = at;
    rejected = { version, issues };
    const errors = issues.filter((i) => i.kind === "error");
    const first = errors[0] ?? issues[0];
    const message = `policy ${version} rejected: ${errors.length} error(s)` + (first ? `; first: ${first.path}: ${first.message}` : "");
    setError({ kind: "rejected", at, version, message, issues });
    // At start-up there is none to keep: the caller stops instead.
    logger.error(appliedVersion === undefined ? "policy rejected" : "policy rejected; keeping the last good policy", {
      source,
      version,
      keptVersion: appliedVersion,
      reason,
      rejectedSinceLastSuccess,
      issues: issues.map((i) => ({ kind: i.kind, path: i.path, message: i.message })),
    });
    try {
      options.onRejected(issues, { version, keptVersion: appliedVersion, source, reason, rejectedAt: at, rejectedSinceLastSuccess });
    } catch (err) {
      logger.error("onRejected handler failed", { source, version, err });
    }
    return { kind: "rejected", version, issues };
  }

  /** Tells the caller, who reported the rejections, that they no longer stand. */
  function restored(version: string, rejections: number, at: Date, reason: ReloadReason): void {
    try {
      options.onRestored?.({ version, source, reason, restoredAt: at, rejectedSinceLastSuccess: rejections });
    } catch (err) {
      logger.error("onRestored handler failed", { source, version, err });
    }
  }

  function readFailed(err: unknown, at: Date, reason: ReloadReason): ReloadOutcome {
    const code = (err as { code?: unknown } | null)?.code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      const message = `policy file ${source} does not exist` + (appliedVersion ? `; keeping policy ${appliedVersion}` : "");
      if (!sourceMissing) {
        sourceMissing = true;
        setError({ kind: "missing", at, version: undefined, message, issues: [] });
        logger.warn(appliedVersion === undefined ? "policy source missing" : "policy source missing; keeping the last good policy", { source, keptVersion: appliedVersion, reason });
      }
      return { kind: "missing", message };
    }
    const message = `cannot read policy file ${source}: ${String(err)}`;
    if (lastError?.kind !== "unreadable" || lastError.message !== message) logger.error(message, { source, reason, err });
    setError({ kind: "unreadable", at, version: undefined, message, issues: [] });
    return { kind: "unreadable", message };
  }

  function setError(error: PolicyError): void {
    lastError = error;
  }

  return {
    async start() {
      if (started) throw new Error("policy watcher already started");
      started = true;
      const outcome = await enqueue("initial", true);
      if (closed) return outcome;
      if (options.fsEvents ?? true) {
        const volume = await nearestRealDirectory(dir);
        if (closed) return outcome;
        if (volume !== dir) volumeWatch = createDirectoryWatch({ dir: volume, logger, onEvent });
        await ensureWatches();
      }
      if (pollIntervalMs > 0) {
        pollTimer = setInterval(() => {
          if (options.fsEvents ?? true) void ensureWatches();
          void background("poll");
        }, pollIntervalMs);
        pollTimer.unref();
      }
      // A change between the initial read and arming the watch would otherwise wait for the poll.
      if (options.fsEvents ?? true) debouncer.trigger();
      return outcome;
    },
    reload(reason) {
      return enqueue(reason, true);
    },
    status(): PolicyStatus {
      return { source, version: appliedVersion, appliedAt, lastError, rejectedSinceLastSuccess, lastRejectedAt, lastCheckedAt, sourceMissing };
    },
    async close() {
      closed = true;
      debouncer.cancel();
      if (pollTimer) clearInterval(pollTimer);
      pollTimer = undefined;
      dirWatch.close();
      volumeWatch?.close();
      await chain;
    },
  };
}
