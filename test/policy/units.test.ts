import { describe, expect, it } from "vitest";
import { formatNanos, toNanos } from "../../src/policy/fixed.js";
import type { CompiledCredit } from "../../src/policy/types.js";
import { convertAmount, parseDurationMs, parseQuantity } from "../../src/policy/units.js";

const credit = (stofUnits: string | undefined, unit = stofUnits ?? "credit"): CompiledCredit => ({
  name: "c",
  label: "C",
  unit,
  stofUnits,
  unitKind: stofUnits === undefined ? "count" : ["ms", "s", "min", "hr", "day"].includes(stofUnits) ? "duration" : "size",
  price: undefined,
  overheadCost: 0n,
});

/** [amount, unit, credit's stof_units, expected value in the credit's units (exact decimal text)] */
const conversions: readonly [number, string | undefined, string | undefined, string][] = [
  [1, "MiB", "MB", "1.048576"],
  [2_000_000, "bytes", "MB", "2"],
  [1, "GB", "MB", "1000"],
  [250, "MB", "MB", "250"],
  [10, "MiB", "MB", "10.48576"],
  [1, "GiB", "MB", "1073.741824"],
  [1, "TiB", "GB", "1099.511627776"],
  [1, "KiB", "B", "1024"],
  [1, "KB", "B", "1000"],
  [1, "PB", "TB", "1000"],
  [1, "B", "KB", "0.001"],
  [1, "B", "GB", "0.000000001"],
  // Below a nano: rounds half away from zero at the ninth fraction digit.
  [1, "B", "TB", "0"],
  [500, "B", "TB", "0.000000001"],
  [499, "B", "TB", "0"],
  [-500, "B", "TB", "-0.000000001"],
  [1e9, undefined, "MB", "1000000000"],
  [0.1, undefined, undefined, "0.1"],
  [30, "s", "ms", "30000"],
  [5, "min", "s", "300"],
  [1, "hr", "min", "60"],
  [1, "h", "s", "3600"],
  [1, "day", "hr", "24"],
  [7, "days", "day", "7"],
  [1500, "ms", "s", "1.5"],
  [1, "s", "day", "0.000011574"],
  [-3, "GB", "MB", "-3000"],
  // The credit's own display unit (or stof_units) means "no conversion".
  [42, "MB", "MB", "42"],
  [42, "token", undefined, "42"],
];

describe("convertAmount", () => {
  it.each(conversions)("%s %s into %s = %s", (amount, unit, stof, expected) => {
    const credit_ = credit(stof, stof === undefined ? "token" : stof);
    const r = convertAmount(amount, unit, credit_);
    expect(r).toEqual({ ok: true, value: expect.any(BigInt) as unknown });
    if (r.ok) expect(formatNanos(r.value)).toBe(expected);
  });

  it("is exact where doubles are not: 1MiB in MB is 1048576000 nanos, not 1048575999", () => {
    expect(convertAmount(1, "MiB", credit("MB"))).toEqual({ ok: true, value: 1_048_576_000n });
    expect(convertAmount(0.1, "GB", credit("MB"))).toEqual({ ok: true, value: 100n * 1_000_000_000n });
  });

  it("converts physical units by their factor even when one is also the display unit", () => {
    expect(convertAmount(5, "s", credit("ms", "s"))).toEqual({ ok: true, value: 5000n * 1_000_000_000n });
  });

  it("accepts a plain credit's display unit even if it spells a physical unit", () => {
    expect(convertAmount(5, "bytes", credit(undefined, "bytes"))).toEqual({ ok: true, value: 5n * 1_000_000_000n });
  });

  it("treats an empty unit as the credit's own units", () => {
    expect(convertAmount(3, "", credit("MB"))).toEqual({ ok: true, value: toNanos(3) });
  });

  it.each([
    [1, "MB", "s", 'unit "MB" is a size but credit "c" is kept in s (a duration)'],
    [1, "s", "MB", 'unit "s" is a duration but credit "c" is kept in MB (a size)'],
    [1, "GB", undefined, 'unit "GB" (size) cannot be used with credit "c", which counts plain numbers (no stof_units)'],
  ])("refuses %s %s into %s", (amount, unit, stof, message) => {
    expect(convertAmount(amount, unit, credit(stof))).toEqual({ ok: false, message });
  });

  it("lists the known units when the unit is unknown, and is case-sensitive (Mb is not MB)", () => {
    const r = convertAmount(1, "Mb", credit("MB"));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.message).toMatch(/^unknown unit "Mb"; known units: B, byte, bytes, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB, ms, s, /);
    }
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])("refuses a non-finite amount (%s)", (amount) => {
    expect(convertAmount(amount, undefined, credit(undefined)).ok).toBe(false);
  });
});

describe("parseQuantity", () => {
  it.each([
    ["2GB", "2", "GB"],
    ["250MB", "250", "MB"],
    ["10MiB", "10", "MiB"],
    ["2000000bytes", "2000000", "bytes"],
    ["100_000", "100000", undefined],
    ["1e9", "1000000000", undefined],
    ["1.5e3", "1500", undefined],
    ["30s", "30", "s"],
    ["5min", "5", "min"],
    [" 10 GiB ", "10", "GiB"],
    ["-2.5MB", "-2.5", "MB"],
    [".5s", "0.5", "s"],
  ] as const)("%j → %s %s", (text, nanos, unit) => {
    const q = parseQuantity(text);
    expect(q && { value: formatNanos(q.nanos), unit: q.unit }).toEqual({ value: nanos, unit });
  });

  it("reads numbers exactly as they print", () => {
    expect(parseQuantity(1e9)).toEqual({ nanos: 1_000_000_000n * 1_000_000_000n, unit: undefined });
    expect(parseQuantity(0.3)).toEqual({ nanos: 300_000_000n, unit: undefined });
  });

  it.each(["", "GB", "lots", "1.2.3", "1 G B", "1,000", "--1"])("rejects %j", (text) => {
    expect(parseQuantity(text)).toBeUndefined();
  });

  it("rejects non-finite numbers", () => {
    expect(parseQuantity(Number.NaN)).toBeUndefined();
  });
});

describe("parseDurationMs", () => {
  it.each([
    ["1s", 1000],
    ["5min", 300_000],
    ["1hr", 3_600_000],
    ["1day", 86_400_000],
    ["7days", 604_800_000],
    ["30days", 2_592_000_000],
    ["1.5s", 1500],
    [60_000, 60_000],
    ["250", 250],
  ] as const)("%j = %d ms", (input, ms) => {
    expect(parseDurationMs(input)).toEqual({ ok: true, ms });
  });

  it.each([
    ["0s", "must be greater than zero, got 0s"],
    [-5, "must be greater than zero, got -5"],
    ["0.5ms", "must be a whole number of milliseconds, got 0.5ms"],
    ["monthly", '"monthly" is not a duration; write e.g. "30s", "5min", "1hr", "7days" or a number of milliseconds'],
    ["5MB", 'unit "MB" is not a duration unit; use one of: ms, s, sec, min, h, hr, hour, hours, day, days'],
    [true, 'must be a duration such as "30s", "5min", "1hr", "7days" or a number of milliseconds'],
  ] as const)("rejects %j", (input, message) => {
    expect(parseDurationMs(input)).toEqual({ ok: false, message });
  });
});
