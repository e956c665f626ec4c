/**
 * Types of the policy watcher: what it is given, what it reports, and how callers see its state.
 */
import type { CompileResult, CompiledPolicy, PolicyIssue } from "../policy/index.js";

/**
 * The logging the watcher needs. Structural, so the CLI's JSON logger fits without this module
 * importing the composition root (imports point inward).
 */
export interface WatchLogger {
  debug(msg: string, fields?: Readonly<Record<string, unknown>>): void;
  info(msg: string, fields?: Readonly<Record<string, unknown>>): void;
  warn(msg: string, fields?: Readonly<Record<string, unknown>>): void;
  error(msg: string, fields?: Readonly<Record<string, unknown>>): void;
}

/** Why a re-read happened: `initial`, `fs-event`, `poll`, or the caller's reason (e.g. `SIGHUP`). */
export type ReloadReason = string;

/** Passed to `onApplied` with the new policy. */
export interface AppliedInfo {
  /** Content hash of the applied document (see `contentVersion`). */
  readonly version: string;
  /** The version it replaces; undefined for the first policy. */
  readonly previousVersion: string | undefined;
  readonly source: string;
  readonly reason: ReloadReason;
  readonly appliedAt: Date;
  /** Non-fatal findings of the compiler (unknown fields …). */
  readonly warnings: readonly PolicyIssue[];
}

/** Passed to `onRejected` with every issue of the rejected document. */
export interface RejectedInfo {
  /** Content hash of the rejected document. */
  readonly version: string;
  /** The version that keeps serving; undefined when none was ever applied. */
  readonly keptVersion: string | undefined;
  readonly source: string;
  readonly reason: ReloadReason;
  readonly rejectedAt: Date;
  /** Rejections since the last successful apply, this one included. */
  readonly rejectedSinceLastSuccess: number;
}

/** Passed to `onRestored` when the file is back to the live policy's bytes after rejections. */
export interface RestoredInfo {
  /** Content hash of the document: the live policy's version. */
  readonly version: string;
  readonly source: string;
  readonly reason: ReloadReason;
  readonly restoredAt: Date;
  /** The rejections this ends (at least 1). */
  readonly rejectedSinceLastSuccess: number;
}

/**
 * Why the file on disk is not the live policy. `rejected`: it failed validation; `missing`: the
 * file is gone; `unreadable`: another I/O error; `compile-failed`: the compiler threw or rejected
 * (not a verdict on the document); `apply-failed`: `onApplied` threw.
 */
export interface PolicyError {
  readonly kind: "rejected" | "missing" | "unreadable" | "compile-failed" | "apply-failed";
  readonly at: Date;
  /** Content hash of the offending document, when it could be read. */
  readonly version: string | undefined;
  /** One line for humans, e.g. `2 errors; first: policy.plans.pro…: credit "x" does not exist`. */
  readonly message: string;
  /** Every issue with its path (`rejected` only; empty otherwise). */
  readonly issues: readonly PolicyIssue[];
}

/** What `GetPolicyStatus` reports: which policy is live, from where, and whether the file agrees. */
export interface PolicyStatus {
  /** The policy path as configured (e.g. `/etc/limitr/policy.yaml`). */
  readonly source: string;
  /** Version of the live policy; undefined until one was applied. */
  readonly version: string | undefined;
  readonly appliedAt: Date | undefined;
  /** Set while the file differs from the live policy for a reason; cleared once they agree again. */
  readonly lastError: PolicyError | undefined;
  /** Rejected documents since the last apply (or since the file matched the live policy again). */
  readonly rejectedSinceLastSuccess: number;
  /** When a document last failed validation since start-up; kept after later applies. */
  readonly lastRejectedAt: Date | undefined;
  /** When the file was last read, whatever the outcome. */
  readonly lastCheckedAt: Date | undefined;
  /** True while the file does not exist; the last good policy keeps serving. */
  readonly sourceMissing: boolean;
}

/** The result of one re-read. */
export type ReloadOutcome =
  | { readonly kind: "applied"; readonly version: string; readonly policy: CompiledPolicy; readonly warnings: readonly PolicyIssue[] }
  /** The bytes hash to the live version: nothing to do. */
  | { readonly kind: "unchanged"; readonly version: string }
  | { readonly kind: "rejected"; readonly version: string; readonly issues: readonly PolicyIssue[] }
  | { readonly kind: "missing"; readonly message: string }
  | { readonly kind: "unreadable"; readonly message: string }
  /** The compiler failed (not the document); the previous policy is still live and the next re-read tries again. */
  | { readonly kind: "compile-failed"; readonly version: string; readonly message: string }
  /** `onApplied` threw; the previous policy is still live and the next re-read tries again. */
  | { readonly kind: "apply-failed"; readonly version: string; readonly message: string }
  /** The watcher was closed before or during the re-read. */
  | { readonly kind: "closed" };

export interface PolicyWatcherOptions {
  /** The policy file as mounted, e.g. `/etc/limitr/policy.yaml`; its directory is watched. */
  readonly path: string;
  /**
   * Validates and compiles a document; `version` is the content hash to stamp on the policy. May
   * answer later (compiling on a worker thread); a rejection is reported like a compiler crash.
   */
  readonly compile: (text: string, version: string) => CompileResult | Promise<CompileResult>;
  /** Called with each new valid policy, whole; the caller swaps one reference. */
  readonly onApplied: (policy: CompiledPolicy, info: AppliedInfo) => void;
  /** Called with every issue of a rejected document; the last good policy stays live. */
  readonly onRejected: (issues: readonly PolicyIssue[], info: RejectedInfo) => void;
  /**
   * Called when, after `onRejected`, the file holds the live policy's bytes again (the bad edit
   * rolled back): the rejections no longer stand, though nothing is applied. Not called when no
   * rejection came between (a deleted file restored as it was).
   */
  readonly onRestored?: (info: RestoredInfo) => void;
  /** Quiet time after the last file event before re-reading (default 150 ms). */
  readonly debounceMs?: number;
  /** Periodic re-read, the fallback for missed notifications (default 30 000 ms; 0 = off). */
  readonly pollIntervalMs?: number;
  /**
   * Use file-system notifications (default true). False relies on the periodic re-read only:
   * for file systems without inotify (some network and FUSE mounts).
   */
  readonly fsEvents?: boolean;
  readonly logger: WatchLogger;
  /** Clock, for tests (default `() => new Date()`). */
  readonly now?: () => Date;
}

/** Watches one policy file and applies or rejects each new content of it. */
export interface PolicyWatcher {
  /**
   * Initial load, then starts watching. Resolves with the outcome; the caller decides whether a
   * non-`applied` outcome is fatal (the sidecar's `serve` refuses to start without a policy).
   */
  start(): Promise<ReloadOutcome>;
  /** Forces a re-read now, bypassing the debounce (SIGHUP, admin call). */
  reload(reason: ReloadReason): Promise<ReloadOutcome>;
  /** A snapshot of the current state. */
  status(): PolicyStatus;
  /** Stops watching and polling; waits for a re-read in progress. Idempotent. */
  close(): Promise<void>;
}
