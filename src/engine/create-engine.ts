/**
 * `createEngine`: the async engine the transports call. Each operation reads the live policy and
 * the clock once, runs the pure rule, hands the outcome to `store.commit` and answers only after
 * the commit settles. The pure rule and the commit call run in one synchronous stretch, so no
 * other decision can interleave between reading state and writing it (no check-then-act race).
 */
import { LimitrError, isLimitrError } from "../errors/index.js";
import { allow, check, record, reserve } from "./decision-ops.js";
import type { EngineContext } from "./context.js";
import { deleteCustomer, getCustomer, listCustomers, setCustomerPlan, upsertCustomer } from "./customer-ops.js";
import { DEFAULT_ENGINE_OPTIONS, type Engine, type EngineDeps, type EngineOptions } from "./engine.js";
import { getMeters } from "./get-meters.js";
import { release, settle } from "./reservation-ops.js";
import { createResetRuleTracker, type KnownRuleHistory, type ResetRuleTracker } from "./reset-rule-changes.js";
import { parseRuleHistory, storedRuleHistory } from "./reset-rule-history.js";
import { NO_EVENTS } from "./context.js";
import type { AltIdConflict, Outcome } from "./types.js";

export function createEngine(deps: EngineDeps): Engine {
  const options: EngineOptions = { ...DEFAULT_ENGINE_OPTIONS, ...deps.options };
  const { store } = deps;

  /**
   * Made at the first operation, not here: the store may not be the dir's writer yet (a sidecar
   * still running hands it over only at the claim), and until then its history may still change.
   * Before the claim a store refuses the read, and the operation with it.
   */
  let resetRules: ResetRuleTracker | undefined;
  /**
   * The history's commit while it is in flight: reads made under its swap wait for it. It never
   * rejects; it settles with the error a read must fail with, if any.
   */
  let savingHistory: Promise<LimitrError | undefined> | undefined;

  function context(): EngineContext {
    const policy = deps.policy();
    const now = deps.clock();
    const tracker = (resetRules ??= createResetRuleTracker(knownRuleHistory(deps)));
    tracker.observe(policy, now);
    if (tracker.unsaved !== undefined) saveRuleHistory(tracker, tracker.unsaved);
    return { policy, state: store, now, newId: deps.newId, options, resetRuleChanges: tracker.changes };
  }

  /**
   * Keeps the reset-rule history a swap changed. Committed ahead of the operation that saw the swap:
   * a failed commit fails every commit queued after it, so no decision made under the swap is
   * durable without it; reads made under it wait for it (`read`). If it fails, the next operation
   * commits it again. Reads fail with it, except when storage is full (a full disk or data budget:
   * the commits it shares a batch with fail it too): reads keep working then.
   */
  function saveRuleHistory(tracker: ResetRuleTracker, history: KnownRuleHistory): void {
    tracker.taken();
    let committed: Promise<unknown>;
    try {
      committed = store.commit([{ kind: "reset-rule-history", history: storedRuleHistory(history) }], NO_EVENTS);
    } catch (e) {
      tracker.lost(history);
      throw e;
    }
    const saving: Promise<LimitrError | undefined> = committed.then(
      () => {
        if (savingHistory === saving) savingHistory = undefined;
        return undefined;
      },
      (e: unknown) => {
        tracker.lost(history);
        if (savingHistory === saving) savingHistory = undefined;
        return isLimitrError(e, "RESOURCE_EXHAUSTED") ? undefined : isLimitrError(e) ? e : new LimitrError("INTERNAL", `keeping the reset-rule history: ${String(e)}`);
      },
    );
    savingHistory = saving;
  }

  /**
   * Mutating operations always commit, even with nothing to write: an empty commit is a barrier,
   * so e.g. an idempotent replay never answers before the original decision is durable.
   */
  function mutate<A, T>(op: (ctx: EngineContext, arg: A) => Outcome<T>, arg: A): Promise<T> {
    // A `then` rather than an async function: no suspended frame per decision. Whatever throws
    // is still a rejection, as from an async function.
    let outcome: Outcome<T>;
    let committed: Promise<unknown>;
    try {
      outcome = op(context(), arg);
      committed = store.commit(outcome.writes, outcome.events);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    return committed.then(() => {
      if (outcome.replayed !== undefined) deps.onIdempotentReplay?.(outcome.replayed);
      if (outcome.altIdConflicts !== undefined) reportConflicts(outcome.altIdConflicts);
      return outcome.result;
    });
  }

  /**
   * Reads never commit (but for the reset-rule history, above), and answer at once, unless a
   * history their answer relies on is still being committed: then once it is, so that no answer a
   * restart would give differently is given while it can be kept, and they fail with it unless
   * storage is full (`saveRuleHistory`). An async function turns a thrown LimitrError into a
   * rejection.
   */
  async function read<A, T>(op: (ctx: EngineContext, arg: A) => Outcome<T>, arg: A): Promise<T> {
    const outcome = op(context(), arg);
    // A Check's hint is the same application bug as an Allow's, though nothing is written.
    if (outcome.altIdConflicts !== undefined) reportConflicts(outcome.altIdConflicts);
    if (savingHistory !== undefined) {
      const failed = await savingHistory;
      if (failed !== undefined) throw failed;
    }
    return outcome.result;
  }

  /** A read that judges no meter (customers): it need not wait for the history. */
  async function readCustomers<A, T>(op: (ctx: EngineContext, arg: A) => Outcome<T>, arg: A): Promise<T> {
    return op(context(), arg).result;
  }

  function reportConflicts(conflicts: readonly AltIdConflict[]): void {
    const told = deps.onHintAltIdConflict;
    if (told !== undefined) for (const c of conflicts) told(c);
  }

  // The operation and its argument are passed separately: a closure per call adds up on the
  // decision path.
  return {
    allow: (req) => mutate(allow, req),
    check: (req) => read(check, req),
    record: (req) => mutate(record, req),
    reserve: (req) => mutate(reserve, req),
    settle: (req) => mutate(settle, req),
    release: (req) => mutate(release, req),
    getMeters: (customerId, entitlements) => read((ctx) => getMeters(ctx, customerId, entitlements), undefined),
    upsertCustomer: (input) => mutate(upsertCustomer, input),
    getCustomer: (id) => readCustomers(getCustomer, id),
    deleteCustomer: (id) => mutate(deleteCustomer, id),
    setCustomerPlan: (input) => mutate(setCustomerPlan, input),
    listCustomers: (afterId, limit) => readCustomers((ctx) => listCustomers(ctx, afterId, limit), undefined),
  };
}

/** The history the store kept, if it is one; a damaged one is reported and a new one started. */
function knownRuleHistory(deps: EngineDeps): KnownRuleHistory | undefined {
  let stored: unknown;
  try {
    stored = deps.store.resetRuleHistory();
  } catch (e) {
    // Undecodable: reported and replaced as a damaged one is. Any other failure (a store not yet
    // the dir's writer, or closed) fails the operation, and the next one reads it again.
    if (!isLimitrError(e, "INTERNAL")) throw e;
    deps.onResetRuleHistoryIgnored?.(e.message);
    return undefined;
  }
  if (stored === undefined) return undefined;
  const parsed = parseRuleHistory(stored);
  if (parsed.ok) return parsed.history;
  deps.onResetRuleHistoryIgnored?.(parsed.message);
  return undefined;
}
