/**
 * Test helpers: a small CompiledPolicy builder (so engine tests do not depend on the YAML
 * compiler), a fixed clock, and a harness that runs pure operations against a memory store and
 * commits their outcomes.
 */
import type { EngineContext, Outcome } from "../../src/engine/index.js";
import { DEFAULT_ENGINE_OPTIONS, type EngineOptions } from "../../src/engine/index.js";
import type { Attos, CompiledCredit, CompiledEntitlement, CompiledLimit, CompiledPlan, CompiledPolicy, LimitMode, Nanos, ResetRule } from "../../src/policy/index.js";
import { ATTOS_PER_UNIT, NANOS_PER_UNIT, toNanos } from "../../src/policy/index.js";
import { createMemoryStore, type MemoryStore } from "../../src/store/memory-store.js";

export const n = (x: number): Nanos => toNanos(x);
/** USD per unit, as a credit's price and cost are kept (attos). */
export const usd = (x: number): Attos => toNanos(x) * (ATTOS_PER_UNIT / NANOS_PER_UNIT);

export const T0 = Date.UTC(2026, 0, 15, 12, 0, 0); // 2026-01-15T12:00Z
export const DAY = 86_400_000;

export function credit(name: string, extra: Partial<CompiledCredit> = {}): CompiledCredit {
  return { name, label: name, unit: name, stofUnits: undefined, unitKind: "count", price: undefined, overheadCost: 0n, ...extra };
}

export interface LimitSpec {
  readonly credit: CompiledCredit;
  readonly mode?: LimitMode;
  readonly value: number;
  readonly increment?: number;
  readonly minimum?: number;
  readonly hardTrailing?: boolean;
  readonly reset?: ResetRule;
  readonly thresholds?: readonly number[];
}

export interface EntitlementSpec {
  readonly scope?: string;
  readonly limit?: LimitSpec;
}

export interface PlanSpec {
  readonly isDefault?: boolean;
  readonly entitlements: Readonly<Record<string, EntitlementSpec>>;
}

export function limit(spec: LimitSpec): CompiledLimit {
  return {
    credit: spec.credit,
    mode: spec.mode ?? "hard",
    value: n(spec.value),
    increment: n(spec.increment ?? 1),
    minimum: spec.minimum === undefined ? undefined : n(spec.minimum),
    hardTrailing: spec.hardTrailing ?? false,
    reset: spec.reset,
    thresholds: spec.thresholds ?? [],
  };
}

export function buildPolicy(plans: Readonly<Record<string, PlanSpec>>, version = "v1"): CompiledPolicy {
  const credits = new Map<string, CompiledCredit>();
  const compiled = new Map<string, CompiledPlan>();
  const names = new Set<string>();
  let defaultPlan: string | undefined;
  for (const [planName, p] of Object.entries(plans)) {
    const entitlements = new Map<string, CompiledEntitlement>();
    for (const [name, e] of Object.entries(p.entitlements)) {
      names.add(name);
      if (e.limit !== undefined) credits.set(e.limit.credit.name, e.limit.credit);
      entitlements.set(name, { name, description: "", scope: e.scope, limit: e.limit === undefined ? undefined : limit(e.limit) });
    }
    if (p.isDefault === true && defaultPlan === undefined) defaultPlan = planName;
    compiled.set(planName, { name: planName, label: planName, isDefault: p.isDefault === true, entitlements });
  }
  return { version, credits, plans: compiled, defaultPlan, entitlementNames: names };
}

export const rolling = (everyMs: number): ResetRule => ({ kind: "rolling", everyMs, text: `${everyMs}ms` });
export const monthly1: ResetRule = { kind: "calendar", schedule: { kind: "monthly", day: 1 }, text: "monthly:1" };
export const daily: ResetRule = { kind: "calendar", schedule: { kind: "daily" }, text: "daily" };

export interface Harness {
  readonly store: MemoryStore;
  policy: CompiledPolicy;
  now: number;
  ctx(): EngineContext;
  /** Runs a pure operation and commits its outcome, returning the outcome. */
  run<A, T>(op: (ctx: EngineContext, arg: A) => Outcome<T>, arg: A): Outcome<T>;
}

export function createHarness(policy: CompiledPolicy, now = T0, options: Partial<EngineOptions> = {}): Harness {
  const store = createMemoryStore();
  let next = 0;
  const h: Harness = {
    store,
    policy,
    now,
    ctx: () => ({ policy: h.policy, state: store, now: h.now, newId: () => `r${++next}`, options: { ...DEFAULT_ENGINE_OPTIONS, ...options } }),
    run(op, arg) {
      const out = op(h.ctx(), arg);
      void store.commit(out.writes, out.events);
      return out;
    },
  };
  return h;
}

/** Everything stored, as comparable plain data. */
export function snapshot(store: MemoryStore): unknown[] {
  return [...store.exportState()];
}
