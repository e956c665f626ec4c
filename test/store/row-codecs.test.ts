/**
 * The nanos form on disk: a msgpack number while the value is a safe integer, its decimal text
 * beyond (msgpack's int64 would overflow), and either reads back as the exact bigint.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeNanos, encodeNanos } from "../../src/store/row-codecs.js";

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
