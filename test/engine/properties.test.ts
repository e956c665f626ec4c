import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { allow, check, getMeters, record, type MeterView } from "../../src/engine/index.js";
import { buildPolicy, createHarness, credit, n, rolling, snapshot } from "./harness.js";

const PERIOD = 1000;
const token = credit("token");
const policy = buildPolicy({
  free: {
    isDefault: true,
    entitlements: {
      a: { limit: { credit: token, value: 50 } },
      b: { limit: { credit: token, value: 30, reset: rolling(PERIOD) } },
      c: { limit: { credit: token, mode: "soft", value: 20 } },
      o: { limit: { credit: token, mode: "observe", value: 0, reset: rolling(PERIOD) } },
      flag: {},
    },
  },
  pro: { entitlements: { x: {} } },
});
const ENTS = ["a", "b", "c", "o", "flag", "x", "nope"] as const;

const item = fc.record({ entitlement: fc.constantFrom(...ENTS), amount: fc.integer({ min: -20, max: 40 }) });
const request = fc.array(item, { minLength: 1, maxLength: 5 });
const step = fc.record({ dt: fc.integer({ min: 0, max: 1500 }), items: request });

const values = (h: ReturnType<typeof createHarness>): Record<string, bigint> =>
  Object.fromEntries(
    getMeters(h.ctx(), "u", []).result.flatMap((v) => (v.kind === "metered" ? [[v.entitlement, v.value] as const] : [])),
  );

describe("properties", () => {
  it("meter arithmetic across rolling period boundaries matches a model", () => {
    fc.assert(
      fc.property(fc.array(fc.record({ dt: fc.integer({ min: 0, max: 3500 }), amount: fc.integer({ min: 0, max: 100 }) }), { maxLength: 40 }), (steps) => {
        const h = createHarness(policy);
        let start: number | undefined;
        let value = 0;
        for (const s of steps) {
          h.now += s.dt;
          // A meter is anchored by its first actual change (a zero call stores nothing).
          if (start === undefined) {
            if (s.amount !== 0) start = h.now;
          } else if (h.now >= start + PERIOD) {
            start += Math.floor((h.now - start) / PERIOD) * PERIOD;
            value = 0;
          }
          value += s.amount;
          const v = h.run(record, { customerId: "u", items: [{ entitlement: "o", amount: s.amount }] }).result.items[0] as MeterView;
          expect(v.value).toBe(n(value));
          expect(v.periodStart).toBe(start ?? h.now);
          expect(v.nextReset).toBe((start ?? h.now) + PERIOD);
        }
      }),
    );
  });

  it("multi-item decisions are all-or-nothing; a denial changes nothing but resets", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 25 }), (steps) => {
        const h = createHarness(policy);
        for (const s of steps) {
          h.now += s.dt;
          const before = values(h); // read-only: already shows any new period
          const out = h.run(allow, { customerId: "u", items: s.items });
          const after = values(h);
          if (!out.result.allowed) {
            expect(after).toEqual(before);
            for (const w of out.writes) if (w.kind === "meter-put") expect(w.meter.value).toBe(0n);
          } else {
            const expected: Record<string, bigint> = { ...before };
            for (const it of s.items) if (it.entitlement !== "flag") expected[it.entitlement] = (expected[it.entitlement] ?? 0n) + n(it.amount);
            for (const k of Object.keys(after)) expect(after[k]).toBe(expected[k]);
            // and the hard limits held
            expect((after.a ?? 0n) <= n(50) || s.items.every((i) => i.entitlement !== "a" || i.amount <= 0)).toBe(true);
          }
        }
      }),
    );
  });

  it("an increment followed by the same decrement restores the meter", () => {
    fc.assert(
      fc.property(fc.constantFrom("a", "b", "c", "o"), fc.integer({ min: 0, max: 30 }), fc.double({ min: 0, max: 20, noNaN: true }), (ent, base, amt) => {
        const h = createHarness(policy);
        h.run(record, { customerId: "u", items: [{ entitlement: ent, amount: base }] });
        const before = values(h);
        const up = h.run(allow, { customerId: "u", items: [{ entitlement: ent, amount: amt }] });
        if (!up.result.allowed) return;
        expect(up.result.items[0]).toMatchObject({ value: (before[ent] ?? 0n) + n(amt) });
        const down = h.run(allow, { customerId: "u", items: [{ entitlement: ent, amount: -amt }] });
        expect(down.result.allowed).toBe(true);
        expect(values(h)).toEqual(before);
      }),
    );
  });

  it("check never writes or emits, and always agrees with allow", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 15 }), (steps) => {
        const h = createHarness(policy);
        for (const s of steps) {
          h.now += s.dt;
          const before = snapshot(h.store);
          const c = check(h.ctx(), { customerId: "u", items: s.items });
          expect(c.writes).toEqual([]);
          expect(c.events).toEqual([]);
          expect(snapshot(h.store)).toEqual(before);
          const a = h.run(allow, { customerId: "u", items: s.items });
          expect(a.result).toEqual(c.result);
        }
      }),
    );
  });

  it("a million increments of 0.1 read back as exactly 100000; 1e15 tokens stay exact", () => {
    const h = createHarness(policy);
    for (let i = 0; i < 1_000_000; i++) h.run(record, { customerId: "u", items: [{ entitlement: "o", amount: 0.1 }] });
    expect((getMeters(h.ctx(), "u", ["o"]).result[0] as MeterView).value).toBe(n(100_000));
    const big = createHarness(policy);
    big.run(record, { customerId: "u", items: [{ entitlement: "c", amount: 1e15 }] });
    const v = big.run(record, { customerId: "u", items: [{ entitlement: "c", amount: 1 }] }).result.items[0] as MeterView;
    expect(v.value).toBe(1_000_000_000_000_001n * 1_000_000_000n);
    expect(v.overage).toBe((1_000_000_000_000_001n - 20n) * 1_000_000_000n);
  });
});
