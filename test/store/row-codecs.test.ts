/**
 * The nanos form on disk: a msgpack number while the value is a safe integer, its decimal text
 * beyond (msgpack's int64 would overflow), and either reads back as the exact bigint.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { NO_HOLD_SUMMARY, summarizeHolds } from "../../src/engine/index.js";
import { decodeFormat3Holds, decodeHold, decodeMeter, decodeNanos, encodeHold, encodeMeter, encodeNanos, splitLegacyMeterRow } from "../../src/store/row-codecs.js";
import { holdKey } from "../../src/store/write-ops.js";
import { meter } from "./fixtures.js";

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

describe("encodeNanos", () => {
  it("is a number up to ±(2^53 − 1) and text from ±2^53, on both sides of the boundary", () => {
    expect(encodeNanos(SAFE)).toBe(Number.MAX_SAFE_INTEGER);
    expect(encodeNanos(-SAFE)).toBe(-Number.MAX_SAFE_INTEGER);
    expect(encodeNanos(SAFE + 1n)).toBe("9007199254740992");
    expect(encodeNanos(-SAFE - 1n)).toBe("-9007199254740992");
    expect(encodeNanos(SAFE + 2n)).toBe("9007199254740993");
    expect(encodeNanos(0n)).toBe(0);
  });

  it("round-trips any bigint exactly, in the form its magnitude calls for", () => {
    const nanos = fc.oneof(fc.bigInt({ min: -SAFE, max: SAFE }), fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }), fc.bigInt({ min: SAFE - 3n, max: SAFE + 3n }).map((n) => (n % 2n === 0n ? n : -n)));
    fc.assert(
      fc.property(nanos, (n) => {
        const row = encodeNanos(n);
        expect(typeof row).toBe(n <= SAFE && n >= -SAFE ? "number" : "string");
        expect(decodeNanos(row)).toBe(n);
      }),
      { numRuns: 5_000 },
    );
  });
});

describe("meter rows", () => {
  const holds = [
    { reservationId: "r1", amount: 5n, expiresAt: 9_000 },
    { reservationId: "r2", amount: 123456789012345678901n, expiresAt: 8_000 },
  ];
  /** A row as storage formats 1 and 2 wrote it, holds inside. */
  const v1 = (inline: unknown[]): unknown[] => [1, "c1", "chat", "tokens", 1_700_000_000_000, 7, 0, inline, [50]];

  it("round-trip with the hold summary (v2), and without holds store none", () => {
    const m = meter("c1", "chat", 7n, { holdSummary: summarizeHolds(holds), thresholdsReached: [50] });
    expect(encodeMeter(m)[0]).toBe(2);
    expect(decodeMeter(encodeMeter(m))).toEqual(m);
    const bare = meter("c1", "chat", 7n);
    expect(encodeMeter(bare)[7]).toBeNull();
    expect(decodeMeter(encodeMeter(bare))).toEqual(bare);
  });

  it("keeps the overage billed this period: none as null, and a row from before it was kept reads as not known", () => {
    const billed = meter("c1", "chat", 7n, { billedOverage: 2n });
    expect(encodeMeter(billed)[9]).toBe(encodeNanos(2n));
    expect(decodeMeter(encodeMeter(billed))).toEqual(billed);
    const none = meter("c1", "chat", 7n, { billedOverage: 0n });
    expect(encodeMeter(none)[9]).toBeNull();
    expect(decodeMeter(encodeMeter(none))).toEqual(none);
    const before = encodeMeter(billed).slice(0, 9);
    expect(decodeMeter(before).billedOverage).toBeUndefined();
  });

  it("keeps the reset rule the period was computed under; a row from before it was kept names none", () => {
    const ruled = meter("c1", "chat", 7n, { billedOverage: 2n, resetRule: "monthly:1" });
    expect(encodeMeter(ruled).slice(9)).toEqual([encodeNanos(2n), "monthly:1"]);
    expect(decodeMeter(encodeMeter(ruled))).toEqual(ruled);
    // The billed overage not known (a meter stored before it was kept): its slot says so.
    const unknown = meter("c1", "chat", 7n, { billedOverage: undefined, resetRule: "86400000ms" });
    expect(encodeMeter(unknown)[9]).toBe(false);
    expect(decodeMeter(encodeMeter(unknown))).toEqual(unknown);
    expect(decodeMeter(encodeMeter(ruled).slice(0, 10))).toEqual({ ...ruled, resetRule: undefined });
    const judged = meter("c1", "chat", 7n, { resetRule: "daily", judgedAt: 1_700_000_123_456 });
    expect(encodeMeter(judged)[11]).toBe(1_700_000_123_456);
    expect(decodeMeter(encodeMeter(judged))).toEqual(judged);
    expect(decodeMeter(encodeMeter(judged).slice(0, 11))).toEqual({ ...judged, judgedAt: undefined });
    expect(encodeMeter(meter("c1", "chat", 7n, { billedOverage: undefined }))).toHaveLength(9);
  });

  it("a v1 row without holds reads as a meter with none; one with holds, or an unknown version, is refused", () => {
    expect(decodeMeter(v1([]))).toEqual(meter("c1", "chat", 7n, { holdSummary: NO_HOLD_SUMMARY, thresholdsReached: [50] }));
    expect(() => decodeMeter(v1([["r1", 5, 9_000]]))).toThrow(/still carries its holds/);
    expect(() => decodeMeter([3, "c1", "chat"])).toThrow(/meter row version 3 is not supported/);
    expect(() => decodeMeter("x")).toThrow(/meter is not a row/);
  });

  it("splits a v1 row with holds into the meter with their summary and the holds; leaves one without", () => {
    const split = splitLegacyMeterRow(v1([["r1", 5, 9_000], ["r2", "123456789012345678901", 8_000]]));
    expect(split).toEqual({ meter: meter("c1", "chat", 7n, { holdSummary: summarizeHolds(holds), thresholdsReached: [50] }), holds });
    expect(splitLegacyMeterRow(v1([]))).toBeUndefined();
    expect(splitLegacyMeterRow(encodeMeter(meter("c1", "chat", 7n, { holdSummary: summarizeHolds(holds) })))).toBeUndefined();
  });
});

describe("hold rows", () => {
  const hold = { reservationId: "r2", amount: 123456789012345678901n, expiresAt: 8_000.5 };

  it("round-trip through key and row, the row holding only the amount", () => {
    const key = holdKey("c1", "chat", hold.expiresAt, hold.reservationId);
    expect(key).toEqual(["c1", "chat", 8_000.5, "r2"]);
    expect(encodeHold(hold)).toEqual([1, "123456789012345678901"]);
    expect(decodeHold(key, encodeHold(hold))).toEqual(hold);
  });

  it("refuse a key that is not a hold's, a row of another version, and read a format-3 list", () => {
    expect(() => decodeHold(["c1", "chat"], [1, 5])).toThrow(/hold key \["c1","chat"\] is not \[owner, entitlement, expiresAt, reservationId\]/);
    expect(() => decodeHold(["c1", "chat", "8000", "r2"], [1, 5])).toThrow(/is not \[owner/);
    expect(() => decodeHold(["c1", "chat", 8_000, "r2"], [2, 5])).toThrow(/hold row version 2 is not supported/);
    expect(decodeFormat3Holds([1, [["r2", "123456789012345678901", 8_000.5]]])).toEqual([hold]);
    expect(() => decodeFormat3Holds([2, []])).toThrow(/holds row version 2/);
  });
});
