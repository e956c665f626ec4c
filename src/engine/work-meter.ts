/**
 * A meter being worked on during one operation: loaded from state, moved into the current
 * period (lazy reset), changed in memory, and turned back into a stored `Meter` only if the
 * operation's outcome is committed. Mutable on purpose: it lives for one call and saves the
 * hot path from copying a meter per item.
 */
import { TOLERANCE, currentPeriodStart, initialPeriodStart, nextResetAfter, type CompiledLimit, type Nanos } from "../policy/index.js";
import type { Hold, Meter, MeterView, StateReader } from "./types.js";
import { carriedPeriod, type ResetRuleChanges } from "./reset-rule-changes.js";

const NO_HOLDS: readonly Hold[] = [];
const NO_THRESHOLDS: readonly number[] = [];

export interface WorkMeter {
  readonly owner: string;
  readonly entitlement: string;
  readonly limit: CompiledLimit;
  /** The meter as stored before this call; undefined for a meter never used. */
  readonly stored: Meter | undefined;
  /** True when the stored period had ended: the meter starts this call at zero. */
  readonly rolled: boolean;
  readonly periodStart: number;
  /** End of the current period when already known (saves recomputing a calendar boundary). */
  readonly nextReset: number | undefined;
  /** Value at the start of this call, after any reset. */
  readonly base: Nanos;
  value: Nanos;
  overhead: Nanos;
  holds: readonly Hold[];
  /** Non-expired holds (of other reservations) at `now`; what counts against hard limits. */
  held: Nanos;
  thresholdsReached: readonly number[];
  /** Something beyond the reset must be written (value, overhead, holds or thresholds). */
  changed: boolean;
}

/**
 * Loads a meter in its current period (SPEC §4: lazy, exact resets; reads never write).
 * `resetRuleChanges` (from policy swaps) keeps a reset-period change from zeroing or reviving it.
 */
export function loadWorkMeter(
  state: StateReader,
  owner: string,
  entitlement: string,
  limit: CompiledLimit,
  now: number,
  resetRuleChanges?: ResetRuleChanges,
): WorkMeter {
  const stored = state.getMeter(owner, entitlement);
  // Only limits whose reset rule changed in a policy swap need the longer judgement.
  const carried = stored !== undefined && resetRuleChanges?.get(limit) !== undefined ? carriedPeriod(resetRuleChanges, limit, stored.periodStart) : undefined;
  if (stored === undefined || carried?.expired === true) {
    // Never used, or its period ended under the reset rule it was written under: a fresh period.
    const expired = stored !== undefined;
    return {
      owner,
      entitlement,
      limit,
      stored,
      rolled: expired,
      periodStart: initialPeriodStart(limit.reset, now),
      nextReset: undefined,
      base: 0n,
      value: 0n,
      overhead: 0n,
      holds: stored?.holds ?? NO_HOLDS,
      held: stored === undefined ? 0n : heldAt(stored.holds, now),
      thresholdsReached: NO_THRESHOLDS,
      changed: false,
    };
  }
  // The common case (period still running) needs only its end, which the view reuses.
  const reset = limit.reset;
  const from = carried?.start ?? stored.periodStart;
  const end = reset === undefined ? undefined : nextResetAfter(reset, from);
  const rolled = end !== undefined && now >= end;
  const start = rolled ? currentPeriodStart(reset, from, now) : from;
  // Open holds survive a reset: the reservation is still outstanding in the new period.
  return {
    owner,
    entitlement,
    limit,
    stored,
    rolled,
    periodStart: start,
    nextReset: rolled || reset === undefined ? undefined : end,
    base: rolled ? 0n : stored.value,
    value: rolled ? 0n : stored.value,
    overhead: rolled ? 0n : stored.overhead,
    holds: stored.holds,
    held: heldAt(stored.holds, now),
    thresholdsReached: rolled ? NO_THRESHOLDS : stored.thresholdsReached,
    changed: false,
  };
}

/** The sum of holds still counting at `now` (a hold at or past its expiry no longer counts). */
export function heldAt(holds: readonly Hold[], now: number): Nanos {
  let sum = 0n;
  for (const h of holds) if (h.expiresAt > now) sum += h.amount;
  return sum;
}

/** Drops the holds of one reservation; returns whether there was one. */
export function dropHold(work: WorkMeter, reservationId: string, now: number): boolean {
  if (!work.holds.some((h) => h.reservationId === reservationId)) return false;
  work.holds = work.holds.filter((h) => h.reservationId !== reservationId);
  work.held = heldAt(work.holds, now);
  work.changed = true;
  return true;
}

/** The stored form, with expired holds pruned (they never count again). */
export function toStoredMeter(work: WorkMeter, now: number): Meter {
  let holds = work.holds;
  if (holds.length > 0 && holds.some((h) => h.expiresAt <= now)) holds = holds.filter((h) => h.expiresAt > now);
  return {
    owner: work.owner,
    entitlement: work.entitlement,
    credit: work.limit.credit.name,
    periodStart: work.periodStart,
    value: work.value,
    overhead: work.overhead,
    holds,
    thresholdsReached: work.thresholdsReached,
  };
}

/** The part of `value` past the limit; within the 1e-9 tolerance counts as not past. */
export function overageOf(value: Nanos, limit: Nanos): Nanos {
  return value > limit + TOLERANCE ? value - limit : 0n;
}

/** The meter as reported (SPEC §4), from its live limit. */
export function meterView(work: WorkMeter, now: number): MeterView {
  const limit = work.limit;
  const held = heldAt(work.holds, now);
  return {
    kind: "metered",
    entitlement: work.entitlement,
    owner: work.owner,
    credit: limit.credit.name,
    unit: limit.credit.stofUnits ?? limit.credit.unit,
    mode: limit.mode,
    value: work.value,
    limit: limit.value,
    remaining: limit.value - work.value - held,
    held,
    // SPEC §4: observe is "never an overage"; its limit is only a reference line.
    overage: limit.mode === "observe" ? 0n : overageOf(work.value, limit.value),
    periodStart: work.periodStart,
    nextReset: limit.reset === undefined ? undefined : (work.nextReset ?? nextResetAfter(limit.reset, work.periodStart)),
  };
}

/** Finds the work meter of (owner, entitlement) among the first `count` of `works`. */
export function findWork(works: readonly WorkMeter[], count: number, owner: string, entitlement: string): WorkMeter | undefined {
  for (let i = 0; i < count; i++) {
    const w = works[i] as WorkMeter;
    if (w.owner === owner && w.entitlement === entitlement) return w;
  }
  return undefined;
}
