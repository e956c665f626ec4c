/**
 * Units: quantities with units (`'2GB'`, `'10MiB'`, `'30s'`, `'100_000'`) converted into a
 * credit's `stof_units`.
 *
 * Every unit is an integer multiple of its kind's base (bytes for sizes, milliseconds for
 * durations), so a conversion is one exact rational step, `nanos × from / to`, done with
 * `mulDiv` (rounded half away from zero at the ninth fraction digit). No doubles are involved:
 * `1MiB` in MB is exactly 1.048576.
 */
import { mulDiv, parseDecimalNanos, parseDecimalScaled, toNanos, type Nanos } from "./fixed.js";
import type { CompiledCredit, UnitKind } from "./types.js";

/** A conversion result: the value in the target units, or a sentence saying what is wrong. */
export type Conversion = { readonly ok: true; readonly value: Nanos } | { readonly ok: false; readonly message: string };

/** A physical unit: its kind and how many base units (bytes or ms) one of it is. */
export interface UnitDef {
  readonly kind: Exclude<UnitKind, "count">;
  readonly base: bigint;
}

const KB = 1000n;
const KIB = 1024n;
const SECOND = 1000n;

/** Units are case-sensitive on purpose: `Mb` (megabit) is not `MB` and must not pass silently. */
const UNITS: ReadonlyMap<string, UnitDef> = new Map<string, UnitDef>([
  ["B", { kind: "size", base: 1n }],
  ["byte", { kind: "size", base: 1n }],
  ["bytes", { kind: "size", base: 1n }],
  ["KB", { kind: "size", base: KB }],
  ["MB", { kind: "size", base: KB ** 2n }],
  ["GB", { kind: "size", base: KB ** 3n }],
  ["TB", { kind: "size", base: KB ** 4n }],
  ["PB", { kind: "size", base: KB ** 5n }],
  ["KiB", { kind: "size", base: KIB }],
  ["MiB", { kind: "size", base: KIB ** 2n }],
  ["GiB", { kind: "size", base: KIB ** 3n }],
  ["TiB", { kind: "size", base: KIB ** 4n }],
  ["PiB", { kind: "size", base: KIB ** 5n }],
  ["ms", { kind: "duration", base: 1n }],
  ["s", { kind: "duration", base: SECOND }],
  ["sec", { kind: "duration", base: SECOND }],
  ["min", { kind: "duration", base: 60n * SECOND }],
  ["h", { kind: "duration", base: 3600n * SECOND }],
  ["hr", { kind: "duration", base: 3600n * SECOND }],
  ["hour", { kind: "duration", base: 3600n * SECOND }],
  ["hours", { kind: "duration", base: 3600n * SECOND }],
  ["day", { kind: "duration", base: 86_400n * SECOND }],
  ["days", { kind: "duration", base: 86_400n * SECOND }],
]);

/** Every unit name accepted, in a readable order (used in "unknown unit" messages). */
export const KNOWN_UNITS: readonly string[] = [...UNITS.keys()];

/** Limitr's `stof_units` value meaning "plain number, no conversion". */
export const FLOAT_UNITS = "float";

/** The definition of a unit name, or undefined when it is not a known unit. */
export function lookupUnit(name: string): UnitDef | undefined {
  return UNITS.get(name);
}

/** The sentence for an unknown unit, listing the known ones. */
export function unknownUnitMessage(unit: string): string {
  return `unknown unit "${unit}"; known units: ${KNOWN_UNITS.join(", ")}`;
}

/**
 * Why `unit` names no unit anywhere in a policy, or undefined when it does: a known unit, or the
 * display or stof unit of one of `credits`. For request items no single credit applies to (a
 * feature flag, an entitlement the plan lacks), where only an unknown unit can be judged.
 */
export function unknownUnitIn(unit: string, credits: Iterable<CompiledCredit>): string | undefined {
  if (UNITS.has(unit)) return undefined;
  for (const c of credits) if (c.unit === unit || c.stofUnits === unit) return undefined;
  return unknownUnitMessage(unit);
}

/** A parsed quantity literal: a number of nanos, with the unit it was written in (if any). */
export interface Quantity {
  readonly nanos: Nanos;
  readonly unit: string | undefined;
}

const QUANTITY = /^\s*([+-]?(?:\d[\d_]*)?(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*$/;

/**
 * Parses a quantity as written in a policy: a finite number, or a string `'<decimal><unit?>'`
 * (`'2GB'`, `'10 MiB'`, `'100_000'`, `'1e9'`, `'5min'`). The unit is returned unchecked; returns
 * undefined when the text is not a decimal followed by letters.
 */
export function parseQuantity(input: number | string): Quantity | undefined {
  if (typeof input === "number") {
    return Number.isFinite(input) ? { nanos: toNanos(input), unit: undefined } : undefined;
  }
  const m = QUANTITY.exec(input);
  if (!m) return undefined;
  const [, numberText = "", unitText = ""] = m;
  const nanos = parseDecimalNanos(numberText);
  if (nanos === undefined) return undefined;
  return { nanos, unit: unitText === "" ? undefined : unitText };
}

/** Decimal places the exactness check reads a literal to: far past any unit factor. */
const FINE_DIGITS = 36;

/**
 * Whether a quantity literal, in the credit's units, has more than nine decimal places (so its
 * nanos were rounded): `0.1234567891`, or `'400B'` on a credit kept in TB. Reads the literal to
 * 36 places and converts it the same way as the nanos, then compares.
 */
export function roundedInUnits(input: number | string, target: CreditUnits, creditName: string, names: readonly string[], nanos: Nanos): boolean {
  const m = typeof input === "number" ? undefined : QUANTITY.exec(input);
  const numberText = typeof input === "number" ? String(input) : (m?.[1] ?? "");
  const unit = m?.[2] === "" ? undefined : m?.[2];
  const fine = parseDecimalScaled(numberText, FINE_DIGITS);
  if (fine === undefined) return false;
  const converted = convertQuantity(fine, unit, target, creditName, names);
  return converted.ok && converted.value !== nanos * 10n ** BigInt(FINE_DIGITS - 9);
}

/** What a credit's meters are kept in: a plain count, or a physical unit of a kind. */
export type CreditUnits =
  | { readonly kind: "count" }
  | { readonly kind: "size" | "duration"; readonly unit: string; readonly def: UnitDef };

/** Resolves a credit's `stof_units` (absent or `'float'` = plain count), or says why it cannot. */
export function resolveStofUnits(stofUnits: string | undefined): CreditUnits | { readonly kind: "error"; readonly message: string } {
  if (stofUnits === undefined || stofUnits === FLOAT_UNITS) return { kind: "count" };
  const def = UNITS.get(stofUnits);
  if (!def) return { kind: "error", message: `unknown stof_units "${stofUnits}"; use "${FLOAT_UNITS}" or one of: ${KNOWN_UNITS.join(", ")}` };
  return { kind: def.kind, unit: stofUnits, def };
}

/**
 * Converts `nanos` written in `unit` (undefined = already in the credit's units) into a credit's
 * units. `names` are unit spellings that mean "the credit's own unit" (its display unit), so
 * `'5 token'` on a token credit is accepted. Kinds must match: MB never becomes seconds.
 */
export function convertQuantity(nanos: Nanos, unit: string | undefined, target: CreditUnits, creditName: string, names: readonly string[] = []): Conversion {
  if (unit === undefined || unit === "") return { ok: true, value: nanos };
  const from = UNITS.get(unit);
  // A physical unit always converts by its factor, even when it is also the credit's display
  // unit: a credit shown in "s" but kept in ms must turn "5s" into 5000, not 5.
  if (from && target.kind !== "count") {
    if (from.kind !== target.kind) {
      return { ok: false, message: `unit "${unit}" is a ${from.kind} but credit "${creditName}" is kept in ${target.unit} (a ${target.kind})` };
    }
    return { ok: true, value: mulDiv(nanos, from.base, target.def.base) };
  }
  if (names.includes(unit)) return { ok: true, value: nanos };
  if (!from) return { ok: false, message: unknownUnitMessage(unit) };
  return { ok: false, message: `unit "${unit}" (${from.kind}) cannot be used with credit "${creditName}", which counts plain numbers (no stof_units)` };
}

/** The credit-units view of a compiled credit. */
export function creditUnits(credit: CompiledCredit): CreditUnits {
  const resolved = resolveStofUnits(credit.stofUnits);
  // A compiled credit's stof_units were validated at compile time; "error" cannot occur here.
  return resolved.kind === "error" ? { kind: "count" } : resolved;
}

/**
 * Converts a request amount given in `unit` (undefined or empty = already in the credit's units)
 * into the credit's units. Errors: unknown unit, a unit of another kind (MB into seconds).
 */
export function convertAmount(amount: number, unit: string | undefined, credit: CompiledCredit): Conversion {
  if (!Number.isFinite(amount)) return { ok: false, message: `amount must be a finite number, got ${amount}` };
  const names = [credit.unit, ...(credit.stofUnits === undefined ? [] : [credit.stofUnits])];
  return convertQuantity(toNanos(amount), unit?.trim(), creditUnits(credit), credit.name, names);
}

/** A duration in whole milliseconds, or a sentence saying why the input is not one. */
export type DurationResult = { readonly ok: true; readonly ms: number } | { readonly ok: false; readonly message: string };

/**
 * Parses a duration as written in `reset_inc`: a string with a duration unit (`'30s'`,
 * `'5min'`, `'1hr'`, `'7days'`) or a number of milliseconds. Must be a positive whole number of
 * milliseconds.
 */
export function parseDurationMs(input: unknown): DurationResult {
  if (typeof input !== "number" && typeof input !== "string") {
    return { ok: false, message: `must be a duration such as "30s", "5min", "1hr", "7days" or a number of milliseconds` };
  }
  const q = parseQuantity(input);
  if (!q) return { ok: false, message: `"${String(input)}" is not a duration; write e.g. "30s", "5min", "1hr", "7days" or a number of milliseconds` };
  let ms = q.nanos;
  if (q.unit !== undefined) {
    const def = UNITS.get(q.unit);
    if (!def || def.kind !== "duration") {
      const durationUnits = KNOWN_UNITS.filter((u) => UNITS.get(u)?.kind === "duration");
      return { ok: false, message: `unit "${q.unit}" is not a duration unit; use one of: ${durationUnits.join(", ")}` };
    }
    ms = q.nanos * def.base;
  }
  const NANOS = 1_000_000_000n;
  if (ms <= 0n) return { ok: false, message: `must be greater than zero, got ${String(input)}` };
  if (ms % NANOS !== 0n) return { ok: false, message: `must be a whole number of milliseconds, got ${String(input)}` };
  const whole = ms / NANOS;
  if (whole > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, message: `is too long: ${String(input)}` };
  return { ok: true, ms: Number(whole) };
}
