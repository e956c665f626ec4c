/**
 * Input validation (SPEC §6): bad input is a `LimitrError` INVALID_ARGUMENT naming the proto
 * field, thrown before any outcome exists, so it changes nothing.
 */
import { invalidArgument, type LimitrError } from "../errors/index.js";
import { NANOS_PER_UNIT, convertAmount, toNanos, unknownUnitIn, type CompiledLimit, type CompiledPolicy, type Nanos } from "../policy/index.js";
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
 * The most one item may count, either way, in the credit's own units. Finite doubles go up to
 * 1.8e308, and two such Records made a meter read Infinity on the wire (remaining -Infinity) and
 * its overage price absurd. 1e15 is beyond any real single usage (a quadrillion tokens, a petabyte
 * on a credit kept in bytes, 31,000 years in ms) and keeps meter values whole-unit exact as
 * doubles on the wire (2^53 ≈ 9e15) for the first nine of them; a larger item is a unit mistake
 * or garbage.
 */
const MAX_ITEM_AMOUNT = 1e15;
const MAX_ITEM_NANOS: Nanos = BigInt(MAX_ITEM_AMOUNT) * NANOS_PER_UNIT;

/**
 * The item's amount in the credit's units: the limit's increment when none is given, a plain
 * number when no unit is given, else converted (unknown or incompatible unit = INVALID_ARGUMENT);
 * beyond `MAX_ITEM_AMOUNT` either way, INVALID_ARGUMENT.
 */
export function itemAmount(item: UsageItem, i: number, limit: CompiledLimit, field = "items"): Nanos {
  const amount = item.amount;
  const unit = item.unit;
  if (unit === undefined || unit === "") {
    if (amount === undefined) return limit.increment;
    // Before the conversion: a 1e308 is not worth a 300-digit bigint.
    if (Math.abs(amount) > MAX_ITEM_AMOUNT) throw tooLarge(field, i, amount, "", limit);
    return toNanos(amount);
  }
  // Checked even when the amount is omitted (the increment is already in the credit's units):
  // SPEC §6 makes an unknown unit an error, never something silently ignored.
  const converted = convertAmount(amount ?? 0, unit, limit.credit);
  if (!converted.ok) throw invalidArgument(`${field}[${i}].unit`, converted.message);
  if (amount === undefined) return limit.increment;
  const v = converted.value;
  if (v > MAX_ITEM_NANOS || v < -MAX_ITEM_NANOS) throw tooLarge(field, i, amount, unit, limit);
  return v;
}

function tooLarge(field: string, i: number, amount: number, unit: string, limit: CompiledLimit): LimitrError {
  const credit = limit.credit;
  const units = credit.stofUnits ?? credit.unit;
  const given = unit === "" ? `${amount}` : `${amount} ${unit.trim()}`;
  return invalidArgument(`${field}[${i}].amount`, `must be within ±${MAX_ITEM_AMOUNT.toExponential().replace("e+", "e")} in the units of credit "${credit.name}"${units === "" ? "" : ` (${units})`}, got ${given}`);
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
