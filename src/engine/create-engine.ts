/**
 * `createEngine`: the async engine the transports call. Each operation reads the live policy and
 * the clock once, runs the pure rule, hands the outcome to `store.commit` and answers only after
 * the commit settles. The pure rule and the commit call run in one synchronous stretch, so no
 * other decision can interleave between reading state and writing it (no check-then-act race).
 */
import { allow, check, record, reserve } from "./decision-ops.js";
import type { EngineContext } from "./context.js";
import { deleteCustomer, getCustomer, listCustomers, setCustomerPlan, upsertCustomer } from "./customer-ops.js";
import { DEFAULT_ENGINE_OPTIONS, type Engine, type EngineDeps, type EngineOptions } from "./engine.js";
import { getMeters } from "./get-meters.js";
import { release, settle } from "./reservation-ops.js";
import { createResetRuleTracker } from "./reset-rule-changes.js";
import type { Outcome } from "./types.js";

export function createEngine(deps: EngineDeps): Engine {
  const options: EngineOptions = { ...DEFAULT_ENGINE_OPTIONS, ...deps.options };
  const { store } = deps;

  const resetRules = createResetRuleTracker();

  function context(): EngineContext {
    const policy = deps.policy();
    const now = deps.clock();
    resetRules.observe(policy, now);
    return { policy, state: store, now, newId: deps.newId, options, resetRuleChanges: resetRules.changes };
  }

  /**
   * Mutating operations always commit, even with nothing to write: an empty commit is a barrier,
   * so e.g. an idempotent replay never answers before the original decision is durable.
   */
  async function mutate<T>(op: (ctx: EngineContext) => Outcome<T>): Promise<T> {
    const outcome = op(context());
    await store.commit(outcome.writes, outcome.events);
    if (outcome.replayed !== undefined) deps.onIdempotentReplay?.(outcome.replayed);
    return outcome.result;
  }

  /** Reads never commit; an async function turns a thrown LimitrError into a rejection. */
  async function read<T>(op: (ctx: EngineContext) => Outcome<T>): Promise<T> {
    return op(context()).result;
  }

  return {
    allow: (req) => mutate((ctx) => allow(ctx, req)),
    check: (req) => read((ctx) => check(ctx, req)),
    record: (req) => mutate((ctx) => record(ctx, req)),
    reserve: (req) => mutate((ctx) => reserve(ctx, req)),
    settle: (req) => mutate((ctx) => settle(ctx, req)),
    release: (req) => mutate((ctx) => release(ctx, req)),
    getMeters: (customerId, entitlements) => read((ctx) => getMeters(ctx, customerId, entitlements)),
    upsertCustomer: (input) => mutate((ctx) => upsertCustomer(ctx, input)),
    getCustomer: (id) => read((ctx) => getCustomer(ctx, id)),
    deleteCustomer: (id) => mutate((ctx) => deleteCustomer(ctx, id)),
    setCustomerPlan: (input) => mutate((ctx) => setCustomerPlan(ctx, input)),
    listCustomers: (afterId, limit) => read((ctx) => listCustomers(ctx, afterId, limit)),
  };
}
