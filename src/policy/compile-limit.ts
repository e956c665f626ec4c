/**
 * One entitlement's `limit` → a `CompiledLimit`, or errors. All quantities are converted into
 * the credit's `stof_units` here, once, so the engine compares nanos with nanos.
 */
import { formatNanos, NANOS_PER_UNIT, type Nanos } from "./fixed.js";
import type { CreditEntry } from "./compile-credit.js";
import { parseResetSchedule } from "./parse-reset-schedule.js";
import { checkWith, describeValue, isRawObject, joinPath, type IssueSink, type RawObject } from "./policy-issues.js";
import { creditRefSchema, flagSchema, modeSchema, thresholdsSchema, warnUnknownFields } from "./policy-schema.js";
import type { CompiledLimit, ResetRule } from "./types.js";
import { convertQuantity, parseDurationMs, parseQuantity, roundedInUnits } from "./units.js";

/**
 * The longest rolling period. A meter's next reset is reported as a protobuf Timestamp, which
 * ends at year 9999: a longer period let a call count and then fail to encode its answer. A
 * century is far beyond any billing period; longer is a unit mistake.
 */
const MAX_RESET_INC_DAYS = 36_500;

/** `resets: true` with neither `reset_inc` nor `reset_sch` (Limitr's default period). */
const DEFAULT_RESET: ResetRule = { kind: "rolling", everyMs: 30 * 86_400_000, text: "30days" };

/** Compiles a limit; reports every problem under `path` (`…entitlements.chat.limit`). */
export function compileLimit(raw: unknown, path: string, credits: ReadonlyMap<string, CreditEntry>, sink: IssueSink): CompiledLimit | undefined {
  if (!isRawObject(raw)) {
    sink.error(path, `limit must be a mapping with at least a credit and a value, got ${describeValue(raw)}; remove it to make a feature flag`);
    return undefined;
  }
  warnUnknownFields(raw, "limit", path, sink);
  const at = (field: string): string => joinPath(path, field);
  let ok = true;

  const creditName = checkWith(creditRefSchema, raw["credit"], at("credit"), sink);
  const entry = creditName === undefined ? undefined : credits.get(creditName);
  if (creditName !== undefined && entry === undefined) sink.error(at("credit"), `credit "${creditName}" does not exist`);
  if (entry?.compiled === undefined) ok = false;

  const mode = checkWith(modeSchema, raw["mode"], at("mode"), sink);
  if (raw["mode"] !== undefined && mode === undefined) ok = false;
  const effectiveMode = mode ?? "hard";

  const quantity = (field: string, required: boolean): Nanos | undefined | "invalid" => {
    const value = raw[field];
    if (value === undefined || value === null) {
      if (!required) return undefined;
      sink.error(at(field), `${field} is required`);
      return "invalid";
    }
    const q = typeof value === "number" || typeof value === "string" ? parseQuantity(value) : undefined;
    if (q === undefined) {
      sink.error(at(field), `${field} ${describeValue(value)} is not a number or a quantity with units (e.g. 1000, "2GB", "100_000")`);
      return "invalid";
    }
    // With an unusable credit the unit cannot be checked; the credit's own error says why.
    if (entry?.units === undefined || creditName === undefined) return q.unit === undefined ? q.nanos : "invalid";
    const names = entry.compiled ? [entry.compiled.unit] : [];
    const converted = convertQuantity(q.nanos, q.unit, entry.units, creditName, names);
    if (!converted.ok) {
      sink.error(at(field), `${field} ${describeValue(value)}: ${converted.message}`);
      return "invalid";
    }
    // parseQuantity read it, so it is a number or text.
    if (roundedInUnits(value as number | string, entry.units, creditName, names, converted.value)) {
      // Meters keep nine decimal places of the credit's unit; say what the limit became.
      const inUnits = entry.units.kind === "count" ? "" : ` ${entry.units.unit}`;
      if (converted.value === 0n && (field === "value" || field === "increment")) {
        sink.error(at(field), `${field} ${describeValue(value)} rounds to 0${inUnits} at nine decimal places, the precision meters keep${inUnits === "" ? "" : `; keep credit "${creditName}" in a smaller stof_units`}`);
        return "invalid";
      }
      sink.warning(at(field), `${field} ${describeValue(value)} is rounded to ${formatNanos(converted.value)}${inUnits}: meters keep nine decimal places of the credit's unit`);
    }
    return converted.value;
  };

  // An observe limit only counts, so it may leave out its value (then 0, and everything is over).
  const value = quantity("value", effectiveMode !== "observe");
  if (value === "invalid") ok = false;
  else if (value !== undefined && value < 0n) {
    sink.error(at("value"), `value must not be negative, got ${describeValue(raw["value"])}`);
    ok = false;
  }

  const increment = quantity("increment", false);
  if (increment === "invalid") ok = false;
  else if (increment !== undefined && increment <= 0n) {
    sink.error(at("increment"), `increment must be greater than zero, got ${describeValue(raw["increment"])}`);
    ok = false;
  }

  const minimum = quantity("minimum", false);
  if (minimum === "invalid") ok = false;
  else if (minimum !== undefined && typeof value === "bigint" && minimum > value && effectiveMode !== "observe") {
    // Almost certainly swapped or mistyped: removing seats or storage would never lower the meter.
    sink.warning(at("minimum"), `minimum ${describeValue(raw["minimum"])} is above value ${describeValue(raw["value"])}: a decrease never takes a meter below its minimum, so within the limit no usage is ever given back`);
  }

  const hardTrailing = checkWith(flagSchema("hard_trailing"), raw["hard_trailing"], at("hard_trailing"), sink);
  if (raw["hard_trailing"] !== undefined && hardTrailing === undefined) ok = false;
  if (hardTrailing === true && mode !== undefined && mode !== "hard") {
    sink.error(at("hard_trailing"), `hard_trailing applies only to hard limits; this limit is ${mode}`);
    ok = false;
  }

  const reset = compileReset(raw, path, sink);
  if (reset === "invalid") ok = false;

  const thresholds = checkWith(thresholdsSchema, raw["thresholds"], at("thresholds"), sink);
  if (raw["thresholds"] !== undefined && thresholds === undefined) ok = false;
  if (thresholds !== undefined && thresholds.length > 0 && (value === undefined || value === 0n)) {
    // Percents of nothing: the engine never fires them, and an alert that never comes reads as "all is well".
    sink.warning(at("thresholds"), "thresholds are percents of value, which is 0 here: they never fire");
  }

  if (!ok || entry?.compiled === undefined || value === "invalid" || increment === "invalid" || minimum === "invalid" || reset === "invalid") return undefined;
  return {
    credit: entry.compiled,
    mode: effectiveMode,
    value: value ?? 0n,
    increment: increment ?? NANOS_PER_UNIT,
    minimum,
    hardTrailing: hardTrailing ?? false,
    reset,
    thresholds: [...new Set(thresholds ?? [])].sort((a, b) => a - b),
  };
}

/** `resets` + `reset_inc` / `reset_sch` → a rule (undefined = never resets), with Limitr's semantics. */
function compileReset(raw: RawObject, path: string, sink: IssueSink): ResetRule | undefined | "invalid" {
  const at = (field: string): string => joinPath(path, field);
  let ok = true;
  const resets = checkWith(flagSchema("resets"), raw["resets"], at("resets"), sink);
  if (raw["resets"] !== undefined && resets === undefined) ok = false;

  let rolling: ResetRule | undefined;
  const inc = raw["reset_inc"];
  if (inc !== undefined && inc !== null) {
    const d = parseDurationMs(inc);
    if (d.ok && d.ms > MAX_RESET_INC_DAYS * 86_400_000) {
      sink.error(at("reset_inc"), `reset_inc must be at most ${MAX_RESET_INC_DAYS}days (100 years), got ${describeValue(inc)}`);
      ok = false;
    } else if (d.ok) rolling = { kind: "rolling", everyMs: d.ms, text: typeof inc === "string" ? inc.trim() : `${d.ms}ms` };
    else {
      sink.error(at("reset_inc"), `reset_inc ${d.message}`);
      ok = false;
    }
  }
  let calendar: ResetRule | undefined;
  const sch = raw["reset_sch"];
  if (sch !== undefined && sch !== null) {
    const s = parseResetSchedule(sch);
    if (s.ok) calendar = { kind: "calendar", schedule: s.schedule, text: s.text };
    else {
      sink.error(at("reset_sch"), s.message);
      ok = false;
    }
  }
  const hasInc = inc !== undefined && inc !== null;
  const hasSch = sch !== undefined && sch !== null;
  if (hasInc && hasSch) {
    sink.error(path, "reset_inc and reset_sch are mutually exclusive; keep one of them");
    ok = false;
  }
  if (!ok) return "invalid";
  if (resets !== true) {
    // Limitr ignores the period unless `resets: true`; say so rather than silently never resetting.
    for (const field of ["reset_inc", "reset_sch"] as const) {
      if (raw[field] !== undefined && raw[field] !== null) {
        sink.warning(at(field), `${field} has no effect without resets: true; this meter never resets`);
      }
    }
    return undefined;
  }
  return rolling ?? calendar ?? DEFAULT_RESET;
}
