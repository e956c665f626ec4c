/**
 * The nanos form on disk: a msgpack number while the value is a safe integer, its decimal text
 * beyond (msgpack's int64 would overflow), and either reads back as the exact bigint.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { NO_HOLD_SUMMARY, summarizeHolds } from "../../src/engine/index.js";
import { decodeHolds, decodeMeter, decodeNanos, encodeHolds, encodeMeter, encodeNanos, splitLegacyMeterRow } from "../../src/store/row-codecs.js";
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
    expect(decodeHolds(encodeHolds(holds))).toEqual(holds);
  });

  it("a v1 row without holds reads as a meter with none; one with holds, or an unknown version, is refused", () => {
    expect(decodeMeter(v1([]))).toEqual(meter("c1", "chat", 7n, { holdSummary: NO_HOLD_SUMMARY, thresholdsReached: [50] }));
    expect(() => decodeMeter(v1([["r1", 5, 9_000]]))).toThrow(/still carries its holds/);
    expect(() => decodeMeter([3, "c1", "chat"])).toThrow(/meter row version 3 is not supported/);
    expect(() => decodeMeter("x")).toThrow(/meter is not a row/);
  });

  it("splits a v1 row with holds into a v2 row with their summary and a holds row; leaves one without", () => {
    const split = splitLegacyMeterRow(v1([["r1", 5, 9_000], ["r2", "123456789012345678901", 8_000]]));
    expect(split).toBeDefined();
    expect(decodeMeter(split?.meter)).toEqual(meter("c1", "chat", 7n, { holdSummary: summarizeHolds(holds), thresholdsReached: [50] }));
    expect(decodeHolds(split?.holds)).toEqual(holds);
    expect(splitLegacyMeterRow(v1([]))).toBeUndefined();
    expect(splitLegacyMeterRow(encodeMeter(meter("c1", "chat", 7n, { holdSummary: summarizeHolds(holds) })))).toBeUndefined();
  });
});
