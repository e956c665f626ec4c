/**
 * Exact quantities.
 *
 * Every quantity the product stores or compares (meter values, limits, amounts, overage prices,
 * costs) is a `bigint` count of nano-units (1 unit = 10^9 nanos), i.e. a decimal with nine
 * fraction digits. Prices and costs per unit are finer: attos (10^-18 USD), see `Attos`.
 * Why not `number`: doubles drift (a million additions of 0.1 do not read back as 100000) and
 * lose integers past 2^53. Why not a smaller scale in a `number`: tokens up to 1e15 times 10^9
 * overflows both doubles and int64. A bigint is exact at any magnitude, and nine fraction digits
 * make the SPEC's 1e-9 comparison tolerance exactly one nano.
 */

/** Nano-units of a credit (or of USD for overage prices and accumulated costs). */
export type Nanos = bigint;

/** 10^9: nanos per unit. */
export const NANOS_PER_UNIT = 1_000_000_000n;

/** The comparison tolerance of SPEC §4 (1e-9), in nanos. */
export const TOLERANCE: Nanos = 1n;

const DECIMAL = /^([+-])?(\d[\d_]*)?(?:\.(\d[\d_]*)?)?(?:[eE]([+-]?\d+))?$/;

/**
 * Parses a decimal literal (`'100_000'`, `'0.25'`, `'1e9'`, `'-3.5E-2'`) into nanos, rounding
 * half away from zero at the ninth fraction digit. Returns `undefined` for anything else.
 */
export function parseDecimalNanos(text: string): Nanos | undefined {
  return parseDecimalScaled(text, 9);
}

/**
 * Parses a decimal literal into an integer count of 10^-`digits` (nanos: 9, attos: 18), rounding
 * half away from zero at the last digit. Returns `undefined` for anything that is no decimal.
 */
export function parseDecimalScaled(text: string, digits: number): bigint | undefined {
  const m = DECIMAL.exec(text.trim());
  if (!m) return undefined;
  const [, sign, intRaw = "", fracRaw = "", expRaw = "0"] = m;
  const intDigits = intRaw.replaceAll("_", "");
  const fracDigits = fracRaw.replaceAll("_", "");
  if (intDigits === "" && fracDigits === "") return undefined;
  const exp = Number(expRaw);
  if (!Number.isSafeInteger(exp) || Math.abs(exp) > 400) return undefined;
  // value = mantissa × 10^(exp − fracLen); result = value × 10^digits.
  const mantissa = BigInt((intDigits || "0") + fracDigits);
  const shift = exp - fracDigits.length + digits;
  let scaled: bigint;
  if (shift >= 0) {
    scaled = mantissa * 10n ** BigInt(shift);
  } else {
    const div = 10n ** BigInt(-shift);
    scaled = mantissa / div;
    if ((mantissa % div) * 2n >= div) scaled += 1n;
  }
  return sign === "-" ? -scaled : scaled;
}

/**
 * Converts a finite double to nanos exactly as it prints (`0.1` is 100000000 nanos, not the
 * binary approximation). Throws on NaN or ±Infinity: callers validate and name the field first.
 */
export function toNanos(value: number): Nanos {
  if (!Number.isFinite(value)) throw new RangeError(`not a finite number: ${value}`);
  if (Number.isSafeInteger(value)) return BigInt(value) * NANOS_PER_UNIT;
  const n = parseDecimalNanos(String(value));
  if (n === undefined) throw new RangeError(`cannot convert ${value}`);
  return n;
}

/** The decimal text of a nano quantity, without trailing zeros (`100000`, `0.3`, `-1.25`). */
export function formatNanos(n: Nanos): string {
  const neg = n < 0n;
  const abs = neg ? -n : n;
  const int = abs / NANOS_PER_UNIT;
  const frac = abs % NANOS_PER_UNIT;
  const fracText = frac === 0n ? "" : "." + frac.toString().padStart(9, "0").replace(/0+$/, "");
  return (neg ? "-" : "") + int.toString() + fracText;
}

/**
 * `n` as a double when it is within ±(2^53 − 1), where the double is exact; undefined beyond.
 * Number() rounds to nearest and 2^53 is a double, so the double is within that range exactly
 * when `n` is: one conversion instead of two bigint comparisons (hot path: wire and rows).
 */
export function exactNumber(n: bigint): number | undefined {
  const x = Number(n);
  return x <= Number.MAX_SAFE_INTEGER && x >= -Number.MAX_SAFE_INTEGER ? x : undefined;
}

/** The nearest double to a nano quantity (for the wire and for display). */
export function nanosToNumber(n: Nanos): number {
  // Within ±(2^53 − 1) both n and 1e9 are exact doubles, and IEEE division rounds the exact
  // quotient to nearest: the same double as parsing the decimal, without building the text.
  const x = exactNumber(n);
  if (x !== undefined) return x / 1e9;
  if (n % NANOS_PER_UNIT === 0n) return Number(n / NANOS_PER_UNIT);
  return Number(formatNanos(n));
}

/** `a × num / den`, rounded half away from zero. Used for unit conversion and pricing. */
export function mulDiv(a: Nanos, num: bigint, den: bigint): Nanos {
  const p = a * num;
  const q = p / den;
  const r = p % den;
  if (r === 0n) return q;
  const twice = (r < 0n ? -r : r) * 2n;
  const absDen = den < 0n ? -den : den;
  if (twice >= absDen) return (p < 0n) !== (den < 0n) ? q - 1n : q + 1n;
  return q;
}

/** The product of two nano quantities, in nanos. */
export function mulNanos(a: Nanos, b: Nanos): Nanos {
  return mulDiv(a, b, NANOS_PER_UNIT);
}

/**
 * Atto-USD (10^-18 USD): a credit's price and provider cost per unit. Nano-USD is too coarse
 * for them: a cached token at $0.0025 per million is 0.0000000025 USD, which nanos would keep as
 * 0.000000003 and so bill 20% more on every overage.
 */
export type Attos = bigint;

/** 10^18: attos per unit (of USD). */
export const ATTOS_PER_UNIT = 1_000_000_000_000_000_000n;

/** A quantity (nanos of a credit) × a per-unit amount (attos of USD) = nano-USD, rounded half away from zero. */
export function priceNanos(quantity: Nanos, perUnit: Attos): Nanos {
  return mulDiv(quantity, perUnit, ATTOS_PER_UNIT);
}

/** The decimal text of an atto amount, without trailing zeros (`0.0000000025`). */
export function formatAttos(a: Attos): string {
  const neg = a < 0n;
  const abs = neg ? -a : a;
  const frac = abs % ATTOS_PER_UNIT;
  const fracText = frac === 0n ? "" : "." + frac.toString().padStart(18, "0").replace(/0+$/, "");
  return (neg ? "-" : "") + (abs / ATTOS_PER_UNIT).toString() + fracText;
}
