/**
 * A meter being worked on during one operation: loaded from state, moved into the current
 * period (lazy reset), changed in memory, and turned back into a stored `Meter` only if the
 * operation's outcome is committed. Mutable on purpose: it lives for one call and saves the
 * hot path from copying a meter per item.
 */
import { TOLERANCE, currentPeriodStart, initialPeriodStart, nextResetAfter, resetRuleKey, resetRuleOfKey, type CompiledLimit, type CompiledPolicy, type Nanos } from "../policy/index.js";
import type { Hold, HoldSummary, Meter, MeterView, StateReader, Write } from "./types.js";
import { judgedPeriod, type ResetRuleChanges } from "./reset-rule-changes.js";

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
  /** The overage billed this period before the step being applied (`Meter.billedOverage`). */
  billed: Nanos;
  /**
   * For a meter stored before the billed overage was kept: what `billed` was taken to be, from
   * the limit in force now. Stored as still unknown while nothing is billed: written down, a guess
   * made under a raised limit or observe mode (0) would have the overage its events billed billed
   * again once the limit came back.
   */
  readonly billedGuess: Nanos | undefined;
  /**
   * What the meter's holds add up to as this call leaves them (expired ones dropped, its own added
   * or removed). Holds are rows of their own, read one at a time: a decision on a meter with
   * thousands of open reservations costs what it costs on one with none.
   */
  holdSummary: HoldSummary;
  /** The hold rows this call adds and removes, in order; undefined while there are none. */
  holdWrites: Write[] | undefined;
  /** The summary changed in this call: the meter must be written. */
  holdsChanged: boolean;
  /** Non-expired holds (of other reservations) at `now`; what counts against hard limits. */
  held: Nanos;
  thresholdsReached: readonly number[];
  /** Something beyond the reset must be written (value, overhead, holds or thresholds). */
  changed: boolean;
  /** Where the holds are read from. */
  readonly state: StateReader;
  /** The time of the operation: when the meter is judged (`Meter.judgedAt`). */
  readonly at: number;
  /**
   * A count carried across a rule change whose moment is not known: the row's rule, start and
   * judgement time are written back as they are (`judgedPeriod`), and `nextReset` is when it ends.
   */
  readonly keepsRow: boolean;
}

/**
 * Loads a meter in its current period (SPEC §4: lazy, exact resets; reads never write). A meter
 * written under another reset rule than `limit`'s is carried across (`judgedPeriod`), so the
 * change neither zeroes nor revives it; `resetRuleChanges` (from policy swaps) dates the change
 * where it is known.
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
  // Only a meter written under another rule needs the longer judgement.
  const carried = stored === undefined ? undefined : judgedPeriod(resetRuleChanges, limit, stored, now);
  if (stored === undefined || carried?.expired === true) {
    // Never used, or its period ended under the reset rule it was written under: a fresh period.
    const expired = stored !== undefined;
    const work: WorkMeter = {
      owner,
      entitlement,
      limit,
      stored,
      rolled: expired,
      // A carried count that ended starts the new period no earlier than it ended: the answers
      // before said so (`nextReset`), and its reset event must not fall inside their period.
      periodStart: carried?.until === undefined ? initialPeriodStart(limit.reset, now) : Math.max(initialPeriodStart(limit.reset, now), carried.until),
      nextReset: undefined,
      base: 0n,
      value: 0n,
      overhead: 0n,
      billed: 0n,
      billedGuess: undefined,
      holdSummary: stored === undefined ? NO_HOLD_SUMMARY : stored.holdSummary,
      holdWrites: undefined,
      holdsChanged: false,
      held: 0n,
      thresholdsReached: NO_THRESHOLDS,
      changed: false,
      state,
      at: now,
      keepsRow: false,
    };
    if (stored !== undefined) work.held = storedHeld(work, now);
    return work;
  }
  // The common case (period still running) needs only its end, which the view reuses.
  const reset = limit.reset;
  const from = carried?.start ?? stored.periodStart;
  const until = carried?.until;
  // A carried count ends after `now` (judgedPeriod says expired otherwise): its end is the period's.
  const end = until !== undefined ? until : reset === undefined ? undefined : nextResetAfter(reset, from);
  const rolled = end !== undefined && now >= end;
  const start = rolled ? currentPeriodStart(reset, from, now) : from;
  const billedGuess = rolled || stored.billedOverage !== undefined ? undefined : limit.mode === "observe" ? 0n : overageOf(stored.value, limit.value);
  // Open holds survive a reset: the reservation is still outstanding in the new period.
  const work: WorkMeter = {
    owner,
    entitlement,
    limit,
    stored,
    rolled,
    periodStart: start,
    nextReset: rolled || end === undefined ? undefined : end,
    base: rolled ? 0n : stored.value,
    value: rolled ? 0n : stored.value,
    overhead: rolled ? 0n : stored.overhead,
    billed: rolled ? 0n : (stored.billedOverage ?? billedGuess ?? 0n),
    billedGuess,
    holdSummary: stored.holdSummary,
    holdWrites: undefined,
    holdsChanged: false,
    held: 0n,
    thresholdsReached: rolled ? NO_THRESHOLDS : stored.thresholdsReached,
    // Carried by the swaps the engine saw: written with the live rule by any decision but a Check,
    // so that the carry outlives the memory of the swap.
    changed: carried !== undefined && until === undefined,
    state,
    at: now,
    keepsRow: until !== undefined,
  };
  work.held = storedHeld(work, now);
  return work;
}

/**
 * What the stored holds hold at `now`: the summary's sum while none can have expired; otherwise
 * the expired ones are read and dropped (they never count again; any decision but a Check writes
 * their removal, see `meterWrites` in decide.ts).
 */
function storedHeld(work: WorkMeter, now: number): Nanos {
  const s = work.holdSummary;
  if (s.count === 0 || s.nextExpiry > now) return s.held;
  const found = work.state.expiredHolds(work.owner, work.entitlement, now);
  let gone = 0n;
  for (const h of found.expired) {
    gone += h.amount;
    pushHoldWrite(work, { kind: "hold-delete", owner: work.owner, entitlement: work.entitlement, hold: h });
  }
  const count = s.count - found.expired.length;
  if (found.nextExpiry === Infinity) {
    // Nothing is left once these go, whatever the summary said.
    work.holdSummary = NO_HOLD_SUMMARY;
  } else if (count <= 0) {
    // Rows the summary does not count (no commit of this engine leaves any): count them again.
    const open = work.state.getHolds(work.owner, work.entitlement).filter((h) => h.expiresAt > now);
    work.holdSummary = summarizeHolds(open);
  } else {
    // The next expiry is stored even when nothing had expired yet (the earliest hold was
    // settled): it saves the next decisions from looking again.
    work.holdSummary = { held: s.held - gone, count, nextExpiry: found.nextExpiry };
  }
  work.holdsChanged = true;
  return work.holdSummary.held;
}

function pushHoldWrite(work: WorkMeter, write: Write): void {
  (work.holdWrites ??= []).push(write);
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

/**
 * What removing a reservation's hold from a meter whose holds add up to `summary` takes: the
 * stored hold (read by key: the reservation knows its expiry), the summary without it, and the
 * write; undefined when the meter holds nothing for it.
 */
export function takeHold(
  state: StateReader,
  owner: string,
  entitlement: string,
  summary: HoldSummary,
  reservation: { readonly id: string; readonly expiresAt: number },
): { readonly hold: Hold; readonly summary: HoldSummary; readonly write: Write } | undefined {
  if (summary.count === 0) return undefined;
  const hold = state.getHold(owner, entitlement, reservation.expiresAt, reservation.id);
  if (hold === undefined) return undefined;
  // nextExpiry stays: still no hold expires before it, and finding the next would mean a read.
  const rest = summary.count <= 1 ? NO_HOLD_SUMMARY : { held: summary.held - hold.amount, count: summary.count - 1, nextExpiry: summary.nextExpiry };
  return { hold, summary: rest, write: { kind: "hold-delete", owner, entitlement, hold } };
}

/** Adds a hold that counts from now on. */
export function addHold(work: WorkMeter, hold: Hold): void {
  const s = work.holdSummary;
  work.holdSummary = { held: s.held + hold.amount, count: s.count + 1, nextExpiry: Math.min(s.nextExpiry, hold.expiresAt) };
  work.held += hold.amount;
  pushHoldWrite(work, { kind: "hold-put", owner: work.owner, entitlement: work.entitlement, hold });
  work.holdsChanged = true;
  work.changed = true;
}

/** The hold this call placed for `reservationId`, if any. */
export function placedHold(work: WorkMeter, reservationId: string): Hold | undefined {
  for (const w of work.holdWrites ?? []) if (w.kind === "hold-put" && w.hold.reservationId === reservationId) return w.hold;
  return undefined;
}

/**
 * Drops the hold a reservation has on the meter, if it still counts. An expired one was already
 * dropped when the meter was loaded (`storedHeld`: no hold expires before the summary's bound).
 */
export function dropHold(work: WorkMeter, reservation: { readonly id: string; readonly expiresAt: number }, now: number): void {
  if (reservation.expiresAt <= now) return;
  const taken = takeHold(work.state, work.owner, work.entitlement, work.holdSummary, reservation);
  if (taken === undefined) return;
  work.holdSummary = taken.summary;
  work.held -= taken.hold.amount;
  pushHoldWrite(work, taken.write);
  work.holdsChanged = true;
  work.changed = true;
}

/**
 * Stores what writing `work` takes into `writes` from index `at` (its meter-put, then the hold
 * rows it added or removed); returns the index after them. `at === writes.length` appends.
 */
export function putMeterWrites(writes: Write[], at: number, work: WorkMeter): number {
  let i = at;
  writes[i++] = { kind: "meter-put", meter: toStoredMeter(work) };
  const holds = work.holdWrites;
  if (holds !== undefined) for (const w of holds) writes[i++] = w;
  return i;
}

/** How many writes `putMeterWrites` stores for `work`. */
export function meterWriteCount(work: WorkMeter): number {
  return 1 + (work.holdWrites?.length ?? 0);
}

/** The stored form. Expired holds were already dropped when the meter was loaded. */
function toStoredMeter(work: WorkMeter): Meter {
  return {
    owner: work.owner,
    entitlement: work.entitlement,
    credit: work.limit.credit.name,
    periodStart: work.keepsRow ? (work.stored as Meter).periodStart : work.periodStart,
    value: work.value,
    overhead: work.overhead,
    billedOverage: work.billedGuess !== undefined && work.billed === work.billedGuess ? undefined : work.billed,
    // A stand-in limit judges nothing: the meter keeps the rule its period was computed under, and
    // was last counted now. A carried count keeps the row's rule and time (`keepsRow`).
    resetRule: work.keepsRow || work.limit.unenforced === true ? work.stored?.resetRule : resetRuleKey(work.limit.reset),
    judgedAt: work.keepsRow ? work.stored?.judgedAt : work.at,
    holdSummary: work.holdSummary,
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
    nextReset: work.keepsRow ? work.nextReset : limit.reset === undefined ? undefined : (work.nextReset ?? nextResetAfter(limit.reset, work.periodStart)),
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

/**
 * The limit reported for a meter its plan no longer enforces: never denies (observe), limit 0, in
 * its remembered credit, with the reset rule its row names (none for a row from before rules were
 * kept). Its periods go on: usage settled after the period it was written in has ended counts in
 * a new one, so a plan metering it again judges a row whose start, rule and time agree.
 */
export function unenforcedLimit(policy: CompiledPolicy, meter: Meter): CompiledLimit {
  const creditName = meter.credit;
  const rule = meter.resetRule === undefined ? undefined : resetRuleOfKey(meter.resetRule);
  const credit = policy.credits.get(creditName) ?? {
    name: creditName,
    label: creditName,
    unit: "",
    stofUnits: undefined,
    unitKind: "count" as const,
    price: undefined,
    overheadCost: 0n,
  };
  const reset = rule?.ok === true ? rule.rule : undefined;
  return { credit, mode: "observe", value: 0n, increment: 0n, minimum: undefined, hardTrailing: false, reset, thresholds: [], unenforced: true };
}
