/**
 * Meter events (SPEC §5, issue 5): one builder so every event carries every field the same way.
 * `overage` on an event is what an increase takes the meter's overage past the overage already
 * billed this period (what billing sums: usage given back and used again is billed once);
 * `diff` is always `newValue − oldValue`.
 */
import { mulDiv, priceNanos, toNanos, NANOS_PER_UNIT, type Nanos } from "../policy/index.js";
import type { EngineEvent, MeterEventFields } from "./types.js";
import { overageOf, type WorkMeter } from "./work-meter.js";

/** Per-call fields shared by every meter event of one operation. */
export interface EventScope {
  readonly time: number;
  readonly customerId: string;
  readonly plan: string;
  readonly attributes: Readonly<Record<string, string>>;
  readonly policyVersion: string;
  readonly idempotencyKey: string;
}

type MeterEventType = "meter-changed" | "meter-overage" | "meter-limit" | "meter-reset";

export function meterFields(scope: EventScope, work: WorkMeter, oldValue: Nanos, newValue: Nanos, billed: Nanos = work.billed): MeterEventFields {
  return meterEvent("meter-changed", scope, work, oldValue, newValue, billed);
}

/**
 * Built as one object literal (no spread): this runs on every counted call. `billed` is the
 * overage already billed this period before this change: an increase's overage is what takes the
 * meter's overage past it (a decrease, or observe mode, has none).
 */
export function meterEvent(
  type: MeterEventType,
  scope: EventScope,
  work: WorkMeter,
  oldValue: Nanos,
  newValue: Nanos,
  billed: Nanos = work.billed,
): EngineEvent & MeterEventFields {
  const limit = work.limit;
  const over = newValue > oldValue && limit.mode !== "observe" ? overageOf(newValue, limit.value) : 0n;
  const overage = over > billed ? over - billed : 0n;
  const price = limit.credit.price;
  return {
    type,
    time: scope.time,
    customerId: scope.customerId,
    owner: work.owner,
    entitlement: work.entitlement,
    plan: scope.plan,
    credit: limit.credit.name,
    unit: limit.credit.stofUnits ?? limit.credit.unit,
    mode: limit.mode,
    oldValue,
    newValue,
    limit: limit.value,
    diff: newValue - oldValue,
    remaining: limit.value - newValue - work.held,
    overage,
    // The difference of the costs of the overage billed before and after, each rounded to nano-USD,
    // so that the roundings cancel over a period: pricing each event's overage alone would round 2.5
    // nano-USD up on every one-token overage, and billing would sum 20% too much.
    overagePrice: price === undefined ? undefined : overage === 0n ? 0n : priceNanos(over, price) - priceNanos(billed, price),
    periodStart: work.periodStart,
    attributes: scope.attributes,
    policyVersion: scope.policyVersion,
    idempotencyKey: scope.idempotencyKey,
  };
}

/** The meter-reset event of a meter that rolled into a new period, plus thresholds it clears. */
export function pushResetEvents(events: EngineEvent[], scope: EventScope, work: WorkMeter, lastValue: Nanos, lastReached: readonly number[]): void {
  events.push(meterEvent("meter-reset", scope, work, lastValue, 0n));
  for (const t of lastReached) {
    events.push({ ...meterFields(scope, work, lastValue, 0n), type: "meter-threshold-cleared", threshold: t });
  }
}

/** The value at which threshold `percent` of `limit` is reached. */
export function thresholdLevel(limit: Nanos, percent: number): Nanos {
  return mulDiv(limit, toNanos(percent), 100n * NANOS_PER_UNIT);
}

/**
 * Updates `work.thresholdsReached` for a change old → new and emits `meter-threshold` for each
 * threshold first reached and `meter-threshold-cleared` for each reached one fallen below.
 * A limit of 0 has no meaningful percentages: skipped.
 */
export function applyThresholds(events: EngineEvent[], scope: EventScope, work: WorkMeter, oldValue: Nanos, newValue: Nanos, billed: Nanos = work.billed): void {
  const limit = work.limit;
  if (limit.thresholds.length === 0 || limit.value <= 0n) return;
  let reached = work.thresholdsReached;
  for (const t of limit.thresholds) {
    const level = thresholdLevel(limit.value, t);
    const was = reached.includes(t);
    if (!was && newValue >= level) {
      reached = [...reached, t].sort((a, b) => a - b);
      events.push({ ...meterFields(scope, work, oldValue, newValue, billed), type: "meter-threshold", threshold: t });
    } else if (was && newValue < level) {
      reached = reached.filter((r) => r !== t);
      events.push({ ...meterFields(scope, work, oldValue, newValue, billed), type: "meter-threshold-cleared", threshold: t });
    }
  }
  if (reached !== work.thresholdsReached) {
    work.thresholdsReached = reached;
    work.changed = true;
  }
}
