/**
 * One entry of `policy.credits` → a `CompiledCredit`, or errors.
 */
import { resolveStofUnits, type CreditUnits } from "./units.js";
import { ATTOS_PER_UNIT, parseDecimalScaled, type Attos } from "./fixed.js";
import { checkWith, describeValue, isRawObject, joinPath, type IssueSink } from "./policy-issues.js";
import { textSchema, warnUnknownFields } from "./policy-schema.js";
import type { CompiledCredit } from "./types.js";

/** Limitr's default display unit for a plain credit. */
const DEFAULT_UNIT = "credit";

/**
 * What limits need to know about a credit. `units` is undefined when the credit's own
 * `stof_units` is invalid: limits then skip unit checks rather than report follow-on errors.
 */
export interface CreditEntry {
  readonly compiled: CompiledCredit | undefined;
  readonly units: CreditUnits | undefined;
}

/** Compiles one credit; reports every problem under `path` (e.g. `policy.credits.token`). */
export function compileCredit(name: string, raw: unknown, path: string, sink: IssueSink): CreditEntry {
  // `token:` with nothing after it is a credit with every default.
  const fields = raw === null || raw === undefined ? {} : raw;
  if (!isRawObject(fields)) {
    sink.error(path, `credit "${name}" must be a mapping (label, unit, stof_units, price, overhead_cost), got ${describeValue(raw)}`);
    return { compiled: undefined, units: undefined };
  }
  warnUnknownFields(fields, "credit", path, sink);
  let ok = true;
  const label = checkWith(textSchema("label"), fields["label"], joinPath(path, "label"), sink);
  const unit = checkWith(textSchema("unit"), fields["unit"], joinPath(path, "unit"), sink);
  const stofRaw = checkWith(textSchema("stof_units"), fields["stof_units"], joinPath(path, "stof_units"), sink);
  if ("label" in fields && label === undefined) ok = false;
  if ("unit" in fields && unit === undefined) ok = false;

  let units: CreditUnits | undefined;
  if (fields["stof_units"] !== undefined && stofRaw === undefined) {
    ok = false;
  } else {
    const resolved = resolveStofUnits(stofRaw?.trim());
    if (resolved.kind === "error") {
      sink.error(joinPath(path, "stof_units"), resolved.message);
      ok = false;
    } else {
      units = resolved;
    }
  }

  let price: Attos | undefined;
  const rawPrice = fields["price"];
  const pricePath = joinPath(path, "price");
  if (rawPrice !== undefined && rawPrice !== null) {
    if (!isRawObject(rawPrice)) {
      sink.error(pricePath, `price must be a mapping such as { amount: 0.01 }, got ${describeValue(rawPrice)}`);
      ok = false;
    } else {
      warnUnknownFields(rawPrice, "price", pricePath, sink);
      price = money(rawPrice["amount"], "price.amount", joinPath(pricePath, "amount"), sink, true);
      if (price === undefined) ok = false;
    }
  }

  let overheadCost: Attos = 0n;
  if (fields["overhead_cost"] !== undefined && fields["overhead_cost"] !== null) {
    const cost = money(fields["overhead_cost"], "overhead_cost", joinPath(path, "overhead_cost"), sink, false);
    if (cost === undefined) ok = false;
    else overheadCost = cost;
  }

  if (!ok || units === undefined) return { compiled: undefined, units };
  const stofUnits = units.kind === "count" ? undefined : units.unit;
  return {
    units,
    compiled: {
      name,
      label: label ?? name,
      // A credit kept in MB displays as MB unless told otherwise; a plain credit as Limitr's "credit".
      unit: unit ?? stofUnits ?? DEFAULT_UNIT,
      stofUnits,
      unitKind: units.kind,
      price,
      overheadCost,
    },
  };
}

/** A USD amount per unit: a number or decimal text, never negative, in attos (exact to 18 decimals). */
function money(raw: unknown, field: string, path: string, sink: IssueSink, required: boolean): Attos | undefined {
  if (raw === undefined || raw === null) {
    if (required) sink.error(path, `${field} is required (USD per unit)`);
    return undefined;
  }
  // A double is read as it prints (0.0000000025, not its binary approximation).
  const text = typeof raw === "number" && Number.isFinite(raw) ? String(raw) : typeof raw === "string" ? raw : undefined;
  const attos = text === undefined ? undefined : parseDecimalScaled(text, 18);
  if (text === undefined || attos === undefined) {
    sink.error(path, `${field} must be a number of USD per unit, got ${describeValue(raw)}`);
    return undefined;
  }
  if (attos < 0n) {
    sink.error(path, `${field} must not be negative, got ${describeValue(raw)}`);
    return undefined;
  }
  // Rounding there would bill (or cost) every unit a little off, silently: refuse it instead.
  if (attos * ATTOS_PER_UNIT !== parseDecimalScaled(text, 36)) {
    sink.error(path, `${field} ${describeValue(raw)} has more than 18 decimal places; amounts per unit are kept to 0.000000000000000001 USD`);
    return undefined;
  }
  return attos;
}
