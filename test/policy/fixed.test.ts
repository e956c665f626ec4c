import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatAttos, formatNanos, mulDiv, mulNanos, nanosToNumber, parseDecimalNanos, parseDecimalScaled, priceNanos, toNanos, NANOS_PER_UNIT } from "../../src/policy/fixed.js";

const nanosArb = fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n });

describe("fixed-point nanos", () => {
  it("parse(format(x)) is x for any nano quantity", () => {
    fc.assert(fc.property(nanosArb, (n) => {
        expect(parseDecimalNanos(formatNanos(n))).toBe(n);
      }));
  });

  it("format(parse(text)) is the canonical text of a decimal with up to nine fraction digits", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 20n }), fc.integer({ min: 0, max: 999_999_999 }), fc.boolean(), (int, frac, neg) => {
        const text = `${neg ? "-" : ""}${int}.${String(frac).padStart(9, "0")}`;
        const n = parseDecimalNanos(text);
        expect(n).toBe((neg ? -1n : 1n) * (int * NANOS_PER_UNIT + BigInt(frac)));
        expect(parseDecimalNanos(formatNanos(n ?? 0n))).toBe(n);
      }),
    );
  });

  it("attos (prices per unit) keep 18 decimals: parse(format(x)) is x, and a price times a quantity rounds once, to nanos", () => {
    fc.assert(fc.property(nanosArb, (a) => {
        expect(parseDecimalScaled(formatAttos(a), 18)).toBe(a);
      }));
    expect(formatAttos(2_500_000_000n)).toBe("0.0000000025");
    expect(parseDecimalScaled("0.0000000025", 18)).toBe(2_500_000_000n);
    // 1,000,000 tokens at 0.0000000025 USD: 0.0025 USD, where a nano price (0.000000003) made 0.003.
    expect(priceNanos(toNanos(1_000_000), 2_500_000_000n)).toBe(toNanos(0.0025));
    expect(priceNanos(toNanos(1), 2_500_000_000n)).toBe(3n); // 2.5 nano-USD, half away from zero
  });

  it("toNanos reads doubles as they print, so 0.1 + 0.2 is exactly 0.3 in nanos", () => {
    expect(toNanos(0.1) + toNanos(0.2)).toBe(toNanos(0.3));
    expect(nanosToNumber(toNanos(0.1) + toNanos(0.2))).toBe(0.3);
    fc.assert(fc.property(fc.double({ min: -1e12, max: 1e12, noNaN: true }), (x) => {
        expect(Math.abs(nanosToNumber(toNanos(x)) - x)).toBeLessThanOrEqual(5e-10 + Math.abs(x) * 1e-15);
      }));
  });

  it("nanosToNumber is the double nearest to the exact decimal, at any magnitude", () => {
    const safe = BigInt(Number.MAX_SAFE_INTEGER);
    const nanos = fc.oneof(
      fc.bigInt({ min: -safe, max: safe }),
      fc.bigInt({ min: -1_000_000n, max: 1_000_000n }),
      fc.constantFrom(safe, -safe, safe + 1n, -safe - 1n, 0n, 1n, -1n, 999_999_999n, 10n ** 30n + 1n),
      fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }),
    );
    fc.assert(
      fc.property(nanos, (n) => {
        expect(Object.is(nanosToNumber(n), Number(formatNanos(n)))).toBe(true);
      }),
      { numRuns: 20_000 },
    );
  });

  it("a million increments of 0.1 read back as exactly 100000", () => {
    let sum = 0n;
    const step = toNanos(0.1);
    for (let i = 0; i < 1_000_000; i++) sum += step;
    expect(formatNanos(sum)).toBe("100000");
  });

  it("keeps 1e15 tokens exact", () => {
    expect(formatNanos(toNanos(1e15) + toNanos(1))).toBe("1000000000000001");
  });

  it("mulDiv rounds half away from zero and is symmetric in sign", () => {
    expect(mulDiv(5n, 1n, 10n)).toBe(1n);
    expect(mulDiv(4n, 1n, 10n)).toBe(0n);
    expect(mulDiv(-5n, 1n, 10n)).toBe(-1n);
    expect(mulDiv(5n, 1n, -10n)).toBe(-1n);
    fc.assert(
      fc.property(nanosArb, fc.bigInt({ min: 1n, max: 10n ** 15n }), fc.bigInt({ min: 1n, max: 10n ** 15n }), (a, num, den) => {
        const q = mulDiv(a, num, den);
        expect(mulDiv(-a, num, den)).toBe(-q);
        // |a·num − q·den| ≤ den/2: q is a nearest integer.
        const err = a * num - q * den;
        expect((err < 0n ? -err : err) * 2n <= den).toBe(true);
      }),
    );
  });

  it("prices an overage exactly: 1500 tokens × 0.00002 USD = 0.03 USD", () => {
    expect(formatNanos(mulNanos(toNanos(1500), toNanos(0.00002)))).toBe("0.03");
  });

  it.each(["", ".", "e5", "1..2", "abc", "1e", "+"])("parseDecimalNanos rejects %j", (text) => {
    expect(parseDecimalNanos(text)).toBeUndefined();
  });
});
