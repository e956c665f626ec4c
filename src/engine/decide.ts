/**
 * The decision core shared by allow, check, record, reserve and settle (SPEC §4): decides every
 * item against its meter, all-or-nothing, and produces the meter writes and events. Pure: reads
 * state, returns what should change. Written as plain loops over a few mutable work meters
 * because this is the hot path (one `allow` is budgeted at a few microseconds).
 */
import { TOLERANCE, priceNanos, type CompiledLimit, type Nanos } from "../policy/index.js";
import type { EngineContext } from "./context.js";
import { resolveScopeOwner, type ResolvedPlan } from "./customer-graph.js";
import { currentItemView } from "./get-meters.js";
import { applyThresholds, meterEvent, pushResetEvents, type EventScope } from "./meter-events.js";
import { checkItemUnit, itemAmount } from "./validate-request.js";
import type { Customer, DeniedReason, EngineEvent, ItemView, UsageItem, Write } from "./types.js";
import { addHold, dropHold, findWork, loadWorkMeter, meterView, meterWriteCount, putMeterWrites, type WorkMeter } from "./work-meter.js";

/** allow and reserve decide; check decides without effects; record counts without denying. */
export type DecideOp = "allow" | "check" | "record" | "reserve";

export interface DecideInput {
  readonly op: DecideOp;
  readonly caller: Customer;
  readonly plan: ResolvedPlan;
  readonly items: readonly UsageItem[];
  readonly scope: EventScope;
  /**
   * Settle: per item, the meter owner and amount fixed by the reservation, and the limit to count
   * under when the plan no longer meters the entitlement (the meter's own credit, enforcing nothing).
   */
  readonly fixed?: readonly { readonly owner: string; readonly amount: Nanos; readonly keptLimit?: CompiledLimit | undefined }[];
  /** Settle: the reservation whose holds are removed from every meter touched. */
  readonly dropReservation?: { readonly id: string; readonly expiresAt: number };
  /** Reserve: the hold to place on every metered item once the decision passes. */
  readonly hold?: { readonly reservationId: string; readonly expiresAt: number };
}

export interface Decided {
  readonly allowed: boolean;
  readonly reason: "OK" | "SOFT_LIMIT_EXCEEDED" | DeniedReason;
  readonly deniedItem: number;
  readonly views: ItemView[];
  readonly writes: Write[];
  readonly events: EngineEvent[];
  readonly works: WorkMeter[];
  /** Per item: its work meter (undefined for feature flags and items never reached). */
  readonly itemWorks: (WorkMeter | undefined)[];
}

/** One counted item: the meter and its value before and after this item. */
interface Step {
  readonly work: WorkMeter;
  readonly oldValue: Nanos;
  readonly newValue: Nanos;
  readonly pastLimit: boolean;
}

export function decide(ctx: EngineContext, input: DecideInput): Decided {
  const { op, caller, items, scope } = input;
  const plan = input.plan.plan;
  const now = ctx.now;
  const n = items.length;
  // Sized up front, filled by index and cut to what was used: an empty array's first push
  // reserves 16 slots, and this runs on every decision (most have one item).
  const works: WorkMeter[] = new Array<WorkMeter>(n);
  let workCount = 0;
  const itemWorks = new Array<WorkMeter | undefined>(n);
  const steps = new Array<Step | undefined>(n);
  let reached = 0;
  const resetEvents: EngineEvent[] = [];
  const emit = op !== "check";
  let denied = -1;
  let deniedReason: DeniedReason = "HARD_LIMIT";
  let soft = false;

  for (let i = 0; i < n; i++) {
    const item = items[i] as UsageItem;
    const name = item.entitlement;
    const ent = plan === undefined ? undefined : plan.entitlements.get(name);
    const fixed = input.fixed?.[i];
    if (ent === undefined && fixed?.keptLimit === undefined) {
      denied = i;
      deniedReason = ctx.policy.entitlementNames.has(name) ? "NOT_ENTITLED" : "UNKNOWN_ENTITLEMENT";
      break;
    }
    const limit = ent?.limit ?? fixed?.keptLimit;
    if (limit === undefined) {
      checkItemUnit(item, i, ctx.policy);
      itemWorks[reached++] = undefined;
      continue;
    }
    // Before the owner is resolved: bad input is an error, not a SCOPE_UNRESOLVED denial.
    const amount = fixed !== undefined ? fixed.amount : itemAmount(item, i, limit);
    let owner: string;
    if (fixed !== undefined) owner = fixed.owner;
    else if (ent?.scope === undefined) owner = caller.id;
    else {
      const found = resolveScopeOwner(ctx.state, caller, ent.scope);
      if (found === undefined) {
        denied = i;
        deniedReason = "SCOPE_UNRESOLVED";
        break;
      }
      owner = found.id;
    }
    let work = findWork(works, workCount, owner, name);
    if (work === undefined) {
      work = loadWorkMeter(ctx.state, owner, name, limit, now, ctx.resetRuleChanges);
      works[workCount++] = work;
      if (input.dropReservation !== undefined) dropHold(work, input.dropReservation, now);
      if (work.rolled && emit) {
        const stored = work.stored as NonNullable<WorkMeter["stored"]>;
        pushResetEvents(resetEvents, scope, work, stored.value, stored.thresholdsReached);
      }
    }
    itemWorks[reached++] = work;
    const oldValue = work.value;
    let newValue = oldValue + amount;
    // The floor stops a decrease there and never lifts a meter: a fresh or reset meter starts at 0,
    // below a positive minimum, and an increase, a zero or a decrease must not raise it to that.
    if (amount < 0n && limit.minimum !== undefined && newValue < limit.minimum) newValue = oldValue < limit.minimum ? oldValue : limit.minimum;
    const lim = limit.value;
    let allowed = true;
    let pastLimit = false;
    if (op === "record") {
      pastLimit = limit.mode !== "observe" && amount > 0n && newValue > lim + TOLERANCE;
    } else if (limit.mode === "hard") {
      if (amount >= 0n) {
        if (limit.hardTrailing) {
          // Below the limit, beyond the tolerance that makes 0.1 + 0.2 "at" 0.3, the call goes
          // through whole; the part of it past the limit is an overage, billed as a soft one.
          allowed = oldValue + work.held + TOLERANCE < lim;
          pastLimit = allowed && amount > 0n && newValue > lim + TOLERANCE;
        } else {
          allowed = newValue + work.held <= lim + TOLERANCE;
        }
      }
    } else if (limit.mode === "soft") {
      pastLimit = amount > 0n && newValue > lim + TOLERANCE;
    }
    if (!allowed) {
      denied = i;
      deniedReason = "HARD_LIMIT";
      // From the value the meter has (earlier items of this request on it are not counted either)
      // to the one the request would have left it at.
      if (emit) resetEvents.push(meterEvent("meter-limit", scope, work, work.base, newValue));
      break;
    }
    if (pastLimit) soft = true;
    work.value = newValue;
    steps[i] = { work, oldValue, newValue, pastLimit };
  }
  works.length = workCount;

  if (denied >= 0) {
    itemWorks.length = reached;
    // Remaining items (and an entitlement-denied one) are still validated: bad input is an error
    // whatever else is denied.
    for (let i = denied; i < items.length; i++) validateLater(ctx, items[i] as UsageItem, i, plan, input.fixed !== undefined);
    return deniedOutcome(ctx, input, denied, deniedReason, works, itemWorks, resetEvents);
  }

  const events = resetEvents;
  if (op === "reserve") placeHolds(works, input.hold);
  else if (emit) {
    for (const step of steps) {
      if (step === undefined) continue;
      const w = step.work;
      // Only overage beyond what this period already billed is billed: usage given back and used
      // again is billed once.
      const billed = w.billed;
      if (step.newValue !== step.oldValue) {
        w.changed = true;
        const e = meterEvent(step.pastLimit ? "meter-overage" : "meter-changed", scope, w, step.oldValue, step.newValue, billed);
        events.push(e);
        if (e.overage > 0n) w.billed = billed + e.overage;
      }
      const cost = w.limit.credit.overheadCost;
      // The change the meter actually made: a decrease clamped at `minimum` moved less (or
      // nothing), and the provider cost must not fall by usage that was never counted. Priced as
      // the difference of the two values' costs, each rounded to nano-USD, so that the roundings
      // cancel over a period: pricing each call's amount alone would round 1.4 nano-USD down to 1
      // on every one-token call, and the meter would under-report the cost by 29%.
      if (cost !== 0n && step.newValue !== step.oldValue) {
        w.overhead += priceNanos(step.newValue, cost) - priceNanos(step.oldValue, cost);
        w.changed = true;
      }
      applyThresholds(events, scope, w, step.oldValue, step.newValue, billed);
    }
  }
  const writes = emit ? meterWrites(works) : [];
  const views = new Array<ItemView>(n);
  for (let i = 0; i < n; i++) {
    const w = itemWorks[i];
    views[i] = w === undefined ? { kind: "feature", entitlement: (items[i] as UsageItem).entitlement, granted: true } : meterView(w);
  }
  return { allowed: true, reason: soft ? "SOFT_LIMIT_EXCEEDED" : "OK", deniedItem: -1, views, writes, events, works, itemWorks };
}

/** Nothing is counted; resets (and a settle's hold removal) are still written. */
function deniedOutcome(
  ctx: EngineContext,
  input: DecideInput,
  denied: number,
  reason: DeniedReason,
  works: WorkMeter[],
  itemWorks: (WorkMeter | undefined)[],
  events: EngineEvent[],
): Decided {
  for (const w of works) w.value = w.base;
  const writes = input.op === "check" ? [] : meterWrites(works);
  const views: ItemView[] = [];
  for (let i = 0; i < itemWorks.length; i++) {
    const w = itemWorks[i];
    views.push(w === undefined ? { kind: "feature", entitlement: (input.items[i] as UsageItem).entitlement, granted: true } : meterView(w));
  }
  // A limit denial already has the denied item's meter view; other denials report "not granted".
  if (reason !== "HARD_LIMIT") views.push({ kind: "feature", entitlement: (input.items[denied] as UsageItem).entitlement, granted: false });
  // SPEC §4: the answer shows every item's meter after the call, so the items after the denied
  // one are read as they stand (not counted, nothing written), as GetMeters would show them.
  const plan = input.plan.plan;
  for (let i = denied + 1; i < input.items.length; i++) {
    const name = (input.items[i] as UsageItem).entitlement;
    views.push(currentItemView(ctx, input.caller, name, plan?.entitlements.get(name)));
  }
  return { allowed: false, reason, deniedItem: denied, views, writes, events, works, itemWorks };
}

/**
 * The writes of every work meter that rolled, changed or dropped expired holds, in an array made
 * at its size. (A Check writes none: reads never write. Anything else that found expired holds
 * removes them, denied or not, so they are read once, not on every call.)
 */
function meterWrites(works: readonly WorkMeter[]): Write[] {
  let count = 0;
  for (const w of works) if (w.rolled || w.changed || w.holdsChanged) count += meterWriteCount(w);
  const writes = new Array<Write>(count);
  let i = 0;
  for (const w of works) if (w.rolled || w.changed || w.holdsChanged) i = putMeterWrites(writes, i, w);
  return writes;
}

function validateLater(ctx: EngineContext, item: UsageItem, i: number, plan: ResolvedPlan["plan"], fixed: boolean): void {
  if (fixed) return;
  const limit = plan?.entitlements.get(item.entitlement)?.limit;
  if (limit !== undefined) itemAmount(item, i, limit);
  else checkItemUnit(item, i, ctx.policy);
}

/** Reserve: what the items would have added becomes a hold; the values stay as they were. */
function placeHolds(works: readonly WorkMeter[], hold: DecideInput["hold"]): void {
  if (hold === undefined) return;
  for (const w of works) {
    const amount = w.value - w.base;
    w.value = w.base;
    if (amount === 0n) continue;
    addHold(w, { reservationId: hold.reservationId, amount, expiresAt: hold.expiresAt });
  }
}
