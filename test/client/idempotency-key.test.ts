import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createKeyGenerator } from "../../src/client/idempotency-key.js";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const msOf = (key: string): number => parseInt(key.slice(0, 8) + key.slice(9, 13), 16);

describe("idempotency keys", () => {
  it("are version 7 UUIDs carrying the millisecond they were made", () => {
    const now = Date.UTC(2026, 11, 7, 1, 2, 3, 456);
    const key = createKeyGenerator()(now);
    expect(key).toMatch(UUID_V7);
    expect(msOf(key)).toBe(now);
  });

  it("increase strictly, as strings, whatever the clock does", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1_700_000_000_000, max: 1_700_000_000_050 }), { minLength: 2, maxLength: 300 }), (clock) => {
        const next = createKeyGenerator();
        const keys = clock.map((t) => next(t));
        for (const k of keys) expect(k).toMatch(UUID_V7);
        for (let i = 1; i < keys.length; i++) expect((keys[i - 1] as string) < (keys[i] as string)).toBe(true);
        // A key never claims a time earlier than its clock said (the clock may only be overtaken).
        keys.forEach((k, i) => expect(msOf(k)).toBeGreaterThanOrEqual(clock[i] as number));
      }),
    );
  });

  it("take the next millisecond after 4,096 in one, and never repeat", () => {
    const next = createKeyGenerator();
    const keys = Array.from({ length: 10_000 }, () => next(1_800_000_000_000));
    expect(new Set(keys).size).toBe(10_000);
    expect(msOf(keys[0] as string)).toBe(1_800_000_000_000);
    expect(msOf(keys[9_999] as string)).toBeGreaterThan(1_800_000_000_000);
    expect(msOf(keys[9_999] as string)).toBeLessThanOrEqual(1_800_000_000_003);
  });
});
