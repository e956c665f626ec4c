/**
 * A watcher under test: records every callback and log line, and waits for conditions.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CompiledPolicy, PolicyIssue } from "../../src/policy/index.js";
import { createPolicyWatcher, type AppliedInfo, type PolicyWatcher, type PolicyWatcherOptions, type RejectedInfo, type RestoredInfo } from "../../src/watch/index.js";
import { compile } from "./fixtures.js";

export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

export interface Harness {
  readonly watcher: PolicyWatcher;
  readonly applied: { policy: CompiledPolicy; info: AppliedInfo }[];
  readonly rejected: { issues: readonly PolicyIssue[]; info: RejectedInfo }[];
  readonly restored: RestoredInfo[];
  readonly logs: LogLine[];
  /** The version of the live policy, as the caller (the one who swaps the reference) sees it. */
  live(): string | undefined;
}

export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "limitr-watch-"));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export function createHarness(options: Partial<PolicyWatcherOptions> & { readonly path: string }): Harness {
  const applied: Harness["applied"] = [];
  const rejected: Harness["rejected"] = [];
  const restored: RestoredInfo[] = [];
  const logs: LogLine[] = [];
  let live: string | undefined;
  const log = (level: string) => (msg: string, fields: Readonly<Record<string, unknown>> = {}) => void logs.push({ level, msg, fields });
  const watcher = createPolicyWatcher({
    compile,
    onApplied: (policy, info) => {
      applied.push({ policy, info });
      live = policy.version;
    },
    onRejected: (issues, info) => void rejected.push({ issues, info }),
    onRestored: (info) => void restored.push(info),
    logger: { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
    ...options,
  });
  return { watcher, applied, rejected, restored, logs, live: () => live };
}

/** Polls `condition` every 20 ms until it holds or `withinMs` passes (then throws `what`). */
export async function waitFor(what: string, condition: () => boolean, withinMs = 2_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}`);
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
