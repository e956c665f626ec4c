/**
 * The row cache against a model: a get answers MISS or the value last set for that key (never an
 * older one), the cache stays within its bound, and a key in use survives any stream of others.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createRowCache, MISS } from "../../src/store/row-cache.js";

describe("row cache", () => {
  it("answers a miss or the newest value of a key, within its bound", () => {
    const key = fc.constantFrom("a", "b", "c", "d");
    const step = fc.oneof(
      { arbitrary: fc.record({ kind: fc.constant("set" as const), key, value: fc.option(fc.nat(99), { nil: undefined }) }), weight: 5 },
      { arbitrary: fc.record({ kind: fc.constant("get" as const), key }), weight: 4 },
      { arbitrary: fc.record({ kind: fc.constant("clear" as const) }), weight: 1 },
    );
    fc.assert(
      fc.property(fc.nat(5), fc.array(step, { maxLength: 60 }), (capacity, steps) => {
        const cache = createRowCache(capacity);
        const model = new Map<string, number | undefined>();
        for (const st of steps) {
          if (st.kind === "set") {
            cache.set(st.key, st.value);
            model.set(st.key, st.value);
          } else if (st.kind === "clear") {
            cache.clear();
            model.clear();
          } else {
            const got = cache.get(st.key);
            if (got !== MISS) {
              expect(model.has(st.key)).toBe(true);
              expect(got).toBe(model.get(st.key));
            }
          }
          expect(cache.size).toBeLessThanOrEqual(capacity + (capacity % 2));
        }
      }),
      { numRuns: 3000 },
    );
  });

  it("remembers that a key has no row, apart from not knowing the key", () => {
    const cache = createRowCache(4);
    expect(cache.get("k")).toBe(MISS);
    cache.set("k", undefined);
    expect(cache.get("k")).toBeUndefined();
    cache.set("k", { plan: "pro" });
    expect(cache.get("k")).toEqual({ plan: "pro" });
  });

  it("keeps a key that is read while thousands of others stream through", () => {
    const cache = createRowCache(100);
    cache.set("hot", 1);
    for (let i = 0; i < 10_000; i++) {
      cache.set(`other_${i}`, i);
      if (i % 20 === 0) expect(cache.get("hot")).toBe(1);
    }
    expect(cache.get("hot")).toBe(1);
    expect(cache.size).toBeLessThanOrEqual(100);
    // Keys not read since two generations ago are gone.
    expect(cache.get("other_0")).toBe(MISS);
  });

  it("caches nothing at capacity 0", () => {
    const cache = createRowCache(0);
    cache.set("k", 1);
    expect(cache.get("k")).toBe(MISS);
    expect(cache.size).toBe(0);
  });
});
