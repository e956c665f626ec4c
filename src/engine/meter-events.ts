/**
 * Meter events (SPEC §5, issue 5): one builder so every event carries every field the same way.
 * `overage` on an event is the overage that event's change added (what billing sums);
 * `diff` is always `newValue − oldValue`.
 */
import { mulDiv, mulNanos, toNanos, NANOS_PER_UNIT, type Nanos } from "../policy/index.js";
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

export function meterFields(scope: EventScope, work: WorkMeter, oldValue: Nanos, newValue: Nanos): MeterEventFields {
  const limit = work.limit;
  const added = overageOf(newValue, limit.value) - overageOf(oldValue, limit.value);
  const overage = added > 0n ? added : 0n;
  const price = limit.credit.price;
  return {
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
    overage: limit.mode === "observe" ? 0n : overage,
    overagePrice: price === undefined ? undefined : mulNanos(limit.mode === "observe" ? 0n : overage, price),
    periodStart: work.periodStart,
    attributes: scope.attributes,
    policyVersion: scope.policyVersion,
    idempotencyKey: scope.idempotencyKey,
  };
}

export function meterEvent(
  type: MeterEventType,
  scope: EventScope,
  work: WorkMeter,
  oldValue: Nanos,
  newValue: Nanos,
): EngineEvent {
  return { type, ...meterFields(scope, work, oldValue, newValue) };
}

/** The meter-reset event of a meter that rolled into a new period, plus thresholds it clears. */
export function pushResetEvents(events: EngineEvent[], scope: EventScope, work: WorkMeter, lastValue: Nanos, lastReached: readonly number[]): void {
  events.push(meterEvent("meter-reset", scope, work, lastValue, 0n));
  for (const t of lastReached) {
    events.push({ type: "meter-threshold-cleared", threshold: t, ...meterFields(scope, work, lastValue, 0n) });
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
export function applyThresholds(events: EngineEvent[], scope: EventScope, work: WorkMeter, oldValue: Nanos, newValue: Nanos): void {
  const limit = work.limit;
  if (limit.thresholds.length === 0 || limit.value <= 0n) return;
  let reached = work.thresholdsReached;
  for (const t of limit.thresholds) {
    const level = thresholdLevel(limit.value, t);
    const was = reached.includes(t);
    if (!was && newValue >= level) {
      reached = [...reached, t].sort((a, b) => a - b);
      events.push({ type: "meter-threshold", threshold: t, ...meterFields(scope, work, oldValue, newValue) });
    } else if (was && newValue < level) {
      reached = reached.filter((r) => r !== t);
      events.push({ type: "meter-threshold-cleared", threshold: t, ...meterFields(scope, work, oldValue, newValue) });
    }
  }
  if (reached !== work.thresholdsReached) {
    work.thresholdsReached = reached;
    work.changed = true;
  }
}
