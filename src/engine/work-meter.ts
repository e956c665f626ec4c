/**
 * A meter being worked on during one operation: loaded from state, moved into the current
 * period (lazy reset), changed in memory, and turned back into a stored `Meter` only if the
 * operation's outcome is committed. Mutable on purpose: it lives for one call and saves the
 * hot path from copying a meter per item.
 */
import { TOLERANCE, currentPeriodStart, initialPeriodStart, nextResetAfter, type CompiledLimit, type Nanos } from "../policy/index.js";
import type { Hold, HoldSummary, Meter, MeterView, StateReader, Write } from "./types.js";
import { carriedPeriod, type ResetRuleChanges } from "./reset-rule-changes.js";

const NO_HOLDS: readonly Hold[] = [];
const NO_THRESHOLDS: readonly number[] = [];
export const NO_HOLD_SUMMARY: HoldSummary = { held: 0n, count: 0, nextExpiry: Infinity };

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
  /**
   * The meter's holds once read (`holdsOf`); undefined while the stored summary stands for them,
   * which is whenever none has expired and none was added or removed: a decision on a meter
   * with thousands of open reservations then costs what it costs on one with none.
   */
  holds: readonly Hold[] | undefined;
  /** The holds changed in this call (added, removed, expired ones dropped): write them. */
  holdsChanged: boolean;
  /** Non-expired holds (of other reservations) at `now`; what counts against hard limits. */
  held: Nanos;
  thresholdsReached: readonly number[];
  /** Something beyond the reset must be written (value, overhead, holds or thresholds). */
  changed: boolean;
  /** Where the holds are read from. */
  readonly state: StateReader;
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
    const work: WorkMeter = {
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
      holds: stored === undefined ? NO_HOLDS : undefined,
      holdsChanged: false,
      held: 0n,
      thresholdsReached: NO_THRESHOLDS,
      changed: false,
      state,
    };
    if (stored !== undefined) work.held = storedHeld(work, stored.holdSummary, now);
    return work;
  }
  // The common case (period still running) needs only its end, which the view reuses.
  const reset = limit.reset;
  const from = carried?.start ?? stored.periodStart;
  const end = reset === undefined ? undefined : nextResetAfter(reset, from);
  const rolled = end !== undefined && now >= end;
  const start = rolled ? currentPeriodStart(reset, from, now) : from;
  // Open holds survive a reset: the reservation is still outstanding in the new period.
  const work: WorkMeter = {
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
    holds: undefined,
    holdsChanged: false,
    held: 0n,
    thresholdsReached: rolled ? NO_THRESHOLDS : stored.thresholdsReached,
    changed: false,
    state,
  };
  work.held = storedHeld(work, stored.holdSummary, now);
  return work;
}

/**
 * What the stored holds hold at `now`: the summary's sum while none can have expired; otherwise
 * the holds are read, and the expired ones dropped (they never count again; any decision but a
 * Check writes the list without them, see `meterWrites` in decide.ts).
 */
function storedHeld(work: WorkMeter, summary: HoldSummary, now: number): Nanos {
  if (summary.nextExpiry > now) return summary.held;
  const holds = holdsOf(work);
  const open = holds.filter((h) => h.expiresAt > now);
  if (open.length !== holds.length) {
    work.holds = open;
    work.holdsChanged = true;
  }
  return summarizeHolds(open).held;
}

/**
 * The meter's holds, read on first use. A meter whose summary says it has none is not asked: the
 * summary is what its last write stored, so a stray list could only be stale.
 */
export function holdsOf(work: WorkMeter): readonly Hold[] {
  return (work.holds ??= (work.stored?.holdSummary.count ?? 0) === 0 ? NO_HOLDS : work.state.getHolds(work.owner, work.entitlement));
}

/** What a meter stores about `holds` (expired ones included: `nextExpiry` tells). */
export function summarizeHolds(holds: readonly Hold[]): HoldSummary {
  if (holds.length === 0) return NO_HOLD_SUMMARY;
  let held = 0n;
  let nextExpiry = Infinity;
  for (const h of holds) {
    held += h.amount;
    if (h.expiresAt < nextExpiry) nextExpiry = h.expiresAt;
  }
  return { held, count: holds.length, nextExpiry };
}

/** Adds a hold that counts from now on. */
export function addHold(work: WorkMeter, hold: Hold): void {
  work.holds = [...holdsOf(work), hold];
  work.held += hold.amount;
  work.holdsChanged = true;
  work.changed = true;
}

/**
 * `holds` without those of one reservation, and without expired ones (they never count again);
 * undefined when the reservation holds nothing there.
 */
export function withoutReservation(holds: readonly Hold[], reservationId: string, now: number): readonly Hold[] | undefined {
  if (!holds.some((h) => h.reservationId === reservationId)) return undefined;
  return holds.filter((h) => h.reservationId !== reservationId && h.expiresAt > now);
}

/** Drops the holds of one reservation; returns whether there was one. */
export function dropHold(work: WorkMeter, reservationId: string, now: number): boolean {
  const rest = withoutReservation(holdsOf(work), reservationId, now);
  if (rest === undefined) return false;
  work.holds = rest;
  work.held = summarizeHolds(work.holds).held;
  work.holdsChanged = true;
  work.changed = true;
  return true;
}

/** The meter-put that stores `work`: its holds too when they changed. */
export function meterPut(work: WorkMeter): Write {
  const meter = toStoredMeter(work);
  return work.holdsChanged ? { kind: "meter-put", meter, holds: work.holds ?? NO_HOLDS } : { kind: "meter-put", meter };
}

/** The stored form. Expired holds were already dropped when the meter was loaded. */
function toStoredMeter(work: WorkMeter): Meter {
  return {
    owner: work.owner,
    entitlement: work.entitlement,
    credit: work.limit.credit.name,
    periodStart: work.periodStart,
    value: work.value,
    overhead: work.overhead,
    holdSummary: work.holdsChanged ? summarizeHolds(work.holds ?? NO_HOLDS) : (work.stored?.holdSummary ?? NO_HOLD_SUMMARY),
    thresholdsReached: work.thresholdsReached,
  };
}

/** The part of `value` past the limit; within the 1e-9 tolerance counts as not past. */
export function overageOf(value: Nanos, limit: Nanos): Nanos {
  return value > limit + TOLERANCE ? value - limit : 0n;
}

/** The meter as reported (SPEC §4), from its live limit. */
export function meterView(work: WorkMeter): MeterView {
  const limit = work.limit;
  const held = work.held;
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
