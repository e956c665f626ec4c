/**
 * Input validation (SPEC §6): bad input is a `LimitrError` INVALID_ARGUMENT naming the proto
 * field, thrown before any outcome exists, so it changes nothing.
 */
import { invalidArgument } from "../errors/index.js";
import { convertAmount, toNanos, unknownUnitIn, type CompiledLimit, type CompiledPolicy, type Nanos } from "../policy/index.js";
import type { EngineOptions } from "./engine.js";
import type { DecisionRequest, UsageItem } from "./types.js";

/** Checks the shape of a decision request; units are checked against each item's credit later. */
export function validateDecisionRequest(req: DecisionRequest, options: EngineOptions, nonNegative: boolean): void {
  if (typeof req.customerId !== "string" || req.customerId === "") throw invalidArgument("customer_id", "must not be empty");
  validateItems(req.items, "items", options, nonNegative);
}

export function validateItems(items: readonly UsageItem[], field: string, options: EngineOptions, nonNegative: boolean): void {
  if (items.length === 0) throw invalidArgument(field, "at least one item is required");
  if (items.length > options.maxItems) throw invalidArgument(field, `at most ${options.maxItems} items are allowed, got ${items.length}`);
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as UsageItem;
    if (typeof item.entitlement !== "string" || item.entitlement === "") {
      throw invalidArgument(`${field}[${i}].entitlement`, "must not be empty");
    }
    const amount = item.amount;
    if (amount !== undefined) {
      if (typeof amount !== "number" || !Number.isFinite(amount)) throw invalidArgument(`${field}[${i}].amount`, `must be a finite number, got ${String(amount)}`);
      if (nonNegative && amount < 0) throw invalidArgument(`${field}[${i}].amount`, `must not be negative, got ${amount}`);
    }
  }
}

/**
 * The item's amount in the credit's units: the limit's increment when none is given, a plain
 * number when no unit is given, else converted (unknown or incompatible unit = INVALID_ARGUMENT).
 */
export function itemAmount(item: UsageItem, i: number, limit: CompiledLimit, field = "items"): Nanos {
  const amount = item.amount;
  const unit = item.unit;
  if (unit === undefined || unit === "") return amount === undefined ? limit.increment : toNanos(amount);
  // Checked even when the amount is omitted (the increment is already in the credit's units):
  // SPEC §6 makes an unknown unit an error, never something silently ignored.
  const converted = convertAmount(amount ?? 0, unit, limit.credit);
  if (!converted.ok) throw invalidArgument(`${field}[${i}].unit`, converted.message);
  return amount === undefined ? limit.increment : converted.value;
}

/**
 * An item no credit applies to (a feature flag, an entitlement the plan lacks or that does not
 * exist): its unit converts nothing, but an unknown one is still INVALID_ARGUMENT (SPEC §6).
 */
export function checkItemUnit(item: UsageItem, i: number, policy: CompiledPolicy, field = "items"): void {
  const unit = item.unit?.trim();
  if (unit === undefined || unit === "") return;
  const problem = unknownUnitIn(unit, policy.credits.values());
  if (problem !== undefined) throw invalidArgument(`${field}[${i}].unit`, problem);
}
