import { describe, expect, it } from "vitest";
import { allow, check, getMeters, record, setCustomerPlan, type DecisionResult, type MeterView } from "../../src/engine/index.js";
import { isLimitrError } from "../../src/errors/index.js";
import { loadPolicy, type CompiledPolicy } from "../../src/policy/index.js";
import { buildPolicy, createHarness, credit, n, snapshot, T0, usd } from "./harness.js";

const token = credit("token", { price: usd(0.00002), overheadCost: usd(0.000008) });
const seat = credit("seat");
const policy = buildPolicy({
  free: {
    isDefault: true,
    entitlements: {
      hard: { limit: { credit: token, value: 10 } },
      soft: { limit: { credit: token, mode: "soft", value: 10 } },
      observe: { limit: { credit: token, mode: "observe", value: 10 } },
      trailing: { limit: { credit: token, value: 10, hardTrailing: true } },
      trailingTenth: { limit: { credit: seat, value: 0.3, hardTrailing: true } },
      floored: { limit: { credit: seat, value: 10, minimum: 0 } },
      byFive: { limit: { credit: seat, value: 10, increment: 5 } },
      tenth: { limit: { credit: seat, value: 0.3 } },
      flag: {},
      orgSeats: { scope: "org", limit: { credit: seat, value: 3 } },
    },
  },
  pro: { entitlements: { proOnly: {} } },
});

function meter(r: DecisionResult, i = 0): MeterView {
  const v = r.items[i];
  if (v?.kind !== "metered") throw new Error(`item ${i} is not metered`);
  return v;
}

function sequence(ent: string, amounts: readonly number[], op = allow) {
  const h = createHarness(policy);
  return amounts.map((amount) => h.run(op, { customerId: "u", items: [{ entitlement: ent, amount }] }).result);
}

describe("limit modes", () => {
  it.each([
    // [entitlement, amounts, allowed per call, final value, last reason]
    ["hard", [6, 4, 1], [true, true, false], 10, "HARD_LIMIT"],
    ["hard", [11], [false], 0, "HARD_LIMIT"],
    ["hard", [10, -3, 3], [true, true, true], 10, "OK"],
    ["soft", [6, 6, 1], [true, true, true], 13, "SOFT_LIMIT_EXCEEDED"],
    ["observe", [6, 6, 100], [true, true, true], 112, "OK"],
    ["trailing", [9, 5, 1], [true, true, false], 14, "HARD_LIMIT"],
    ["trailing", [10, 1], [true, false], 10, "HARD_LIMIT"],
    ["trailing", [9, 1], [true, true], 10, "OK"],
    // Within 1e-9 of the limit is at the limit (SPEC §4's tolerance), so nothing more goes through.
    ["trailingTenth", [0.299999999, 1], [true, false], 0.299999999, "HARD_LIMIT"],
    ["trailingTenth", [0.299999998, 1], [true, true], 1.299999998, "SOFT_LIMIT_EXCEEDED"],
    ["floored", [2, -5, 1], [true, true, true], 1, "OK"],
    ["tenth", [0.1, 0.2, 0.000000001, 0.1], [true, true, true, false], 0.300000001, "HARD_LIMIT"],
  ] as const)("%s %j", (ent, amounts, allowed, finalValue, lastReason) => {
    const results = sequence(ent, amounts);
    expect(results.map((r) => r.allowed)).toEqual(allowed);
    expect(results.at(-1)?.reason).toBe(lastReason);
    expect(meter(results.at(-1) as DecisionResult).value).toBe(n(finalValue));
  });

  it("hard_trailing: the crossing call's part past the limit is an overage, billed like a soft one", () => {
    const h = createHarness(policy);
    const first = h.run(allow, { customerId: "u", items: [{ entitlement: "trailing", amount: 9 }] });
    expect(first.result.reason).toBe("OK");
    expect(first.events.map((e) => e.type)).toEqual(["customer-set", "meter-changed"]);
    const crossing = h.run(allow, { customerId: "u", items: [{ entitlement: "trailing", amount: 5 }] });
    expect(crossing.result).toMatchObject({ allowed: true, reason: "SOFT_LIMIT_EXCEEDED" });
    expect(meter(crossing.result)).toMatchObject({ value: n(14), overage: n(4) });
    expect(crossing.events).toEqual([expect.objectContaining({ type: "meter-overage", oldValue: n(9), newValue: n(14), overage: n(4), overagePrice: n(4 * 0.00002) })]);
  });

  it("observe: the reported meter never shows an overage, in the answer or in getMeters", () => {
    const h = createHarness(policy);
    const r = h.run(allow, { customerId: "u", items: [{ entitlement: "observe", amount: 30 }] }).result;
    expect(r.reason).toBe("OK");
    expect(meter(r)).toMatchObject({ value: n(30), overage: 0n });
    const [view] = getMeters(h.ctx(), "u", ["observe"]).result;
    expect(view).toMatchObject({ kind: "metered", value: n(30), overage: 0n });
  });

  it("a decrease is allowed even on a meter above its hard limit", () => {
    const h = createHarness(policy);
    h.run(record, { customerId: "u", items: [{ entitlement: "hard", amount: 15 }] });
    const r = h.run(allow, { customerId: "u", items: [{ entitlement: "hard", amount: -2 }] }).result;
    expect(r.allowed).toBe(true);
    expect(meter(r).value).toBe(n(13));
    expect(meter(r).remaining).toBe(n(-3));
  });

  it("an omitted amount uses the limit's increment; feature flags meter nothing", () => {
    const h = createHarness(policy);
    const r = h.run(allow, { customerId: "u", items: [{ entitlement: "byFive" }, { entitlement: "flag", amount: 99 }] });
    expect(meter(r.result).value).toBe(n(5));
    expect(r.result.items[1]).toEqual({ kind: "feature", entitlement: "flag", granted: true });
    expect(r.writes.filter((w) => w.kind === "meter-put")).toHaveLength(1);
  });

  it("reports the meter after the call with every field", () => {
    const r = sequence("hard", [4])[0] as DecisionResult;
    expect(meter(r)).toEqual({
      kind: "metered",
      entitlement: "hard",
      owner: "u",
      credit: "token",
      unit: "token",
      mode: "hard",
      value: n(4),
      limit: n(10),
      remaining: n(6),
      held: 0n,
      overage: 0n,
      periodStart: T0,
      nextReset: undefined,
    });
  });
});

describe("entitlement resolution", () => {
  it.each([
    ["proOnly", "NOT_ENTITLED"],
    ["nope", "UNKNOWN_ENTITLEMENT"],
  ] as const)("%s → %s, and nothing is written but the customer", (ent, reason) => {
    const h = createHarness(policy);
    const out = h.run(allow, { customerId: "u", items: [{ entitlement: "hard", amount: 1 }, { entitlement: ent }] });
    expect(out.result).toMatchObject({ allowed: false, reason, deniedItem: 1 });
    expect(out.result.items[1]).toEqual({ kind: "feature", entitlement: ent, granted: false });
    expect(out.writes.map((w) => w.kind)).toEqual(["customer-put"]);
    expect(out.events.map((e) => e.type)).toEqual(["customer-set"]);
  });
});

describe("all-or-nothing", () => {
  it("a denied item leaves every item uncounted and emits one meter-limit", () => {
    const h = createHarness(policy);
    h.run(allow, { customerId: "u", items: [{ entitlement: "hard", amount: 8 }] });
    const before = snapshot(h.store);
    const out = h.run(allow, {
      customerId: "u",
      items: [
        { entitlement: "soft", amount: 5 },
        { entitlement: "hard", amount: 1 },
        { entitlement: "hard", amount: 2 },
      ],
    });
    expect(out.result).toMatchObject({ allowed: false, reason: "HARD_LIMIT", deniedItem: 2 });
    expect(out.writes).toEqual([]);
    expect(out.events).toHaveLength(1);
    // The meter is at 8: the request's 1 + 2 on it would have taken it to 11 (it was never at 9).
    expect(out.events[0]).toMatchObject({ type: "meter-limit", entitlement: "hard", oldValue: n(8), newValue: n(11), diff: n(3), overage: n(1) });
    expect(out.result.items.map((v) => (v.kind === "metered" ? v.value : -1n))).toEqual([0n, n(8), n(8)]);
    expect(snapshot(h.store)).toEqual(before);
  });

  it("the answer shows every item after the call, also those after the denied one (read, not counted)", () => {
    const h = createHarness(policy);
    h.run(allow, { customerId: "u", items: [{ entitlement: "soft", amount: 3 }] });
    const before = snapshot(h.store);
    const out = h.run(allow, {
      customerId: "u",
      items: [
        { entitlement: "hard", amount: 11 },
        { entitlement: "soft", amount: 1 },
        { entitlement: "flag" },
        { entitlement: "proOnly" },
        { entitlement: "orgSeats", amount: 1 },
      ],
    });
    expect(out.result).toMatchObject({ allowed: false, reason: "HARD_LIMIT", deniedItem: 0 });
    expect(out.result.items).toEqual([
      expect.objectContaining({ kind: "metered", entitlement: "hard", value: 0n }),
      expect.objectContaining({ kind: "metered", entitlement: "soft", value: n(3) }),
      { kind: "feature", entitlement: "flag", granted: true },
      { kind: "feature", entitlement: "proOnly", granted: false },
      { kind: "feature", entitlement: "orgSeats", granted: false },
    ]);
    expect(out.writes).toEqual([]);
    expect(snapshot(h.store)).toEqual(before);
    // After an entitlement denial too.
    const later = h.run(allow, { customerId: "u", items: [{ entitlement: "proOnly" }, { entitlement: "soft", amount: 1 }] }).result;
    expect(later.items.map((v) => v.entitlement)).toEqual(["proOnly", "soft"]);
  });

  it("items on one meter accumulate in order", () => {
    const h = createHarness(policy);
    const out = h.run(allow, { customerId: "u", items: [{ entitlement: "soft", amount: 7 }, { entitlement: "soft", amount: 7 }] });
    expect(out.events.map((e) => e.type)).toEqual(["customer-set", "meter-changed", "meter-overage"]);
    expect(out.events[2]).toMatchObject({ oldValue: n(7), newValue: n(14), overage: n(4), overagePrice: n(0.00008) });
    expect(out.writes.filter((w) => w.kind === "meter-put")).toHaveLength(1);
  });
});

describe("events", () => {
  it("soft overage: every call past the limit, with this call's overage and price", () => {
    const h = createHarness(policy);
    const calls = [8, 4, 3, -5, 2].map(
      (amount) => h.run(allow, { customerId: "u", items: [{ entitlement: "soft", amount }], attributes: { model: "gpt" }, idempotencyKey: `k${amount}` }).events,
    );
    const last = calls.map((evs) => evs.at(-1));
    expect(last.map((e) => e?.type)).toEqual(["meter-changed", "meter-overage", "meter-overage", "meter-changed", "meter-overage"]);
    // 8, 12, 15, 10, 12: the last call goes past the limit again, but only up to 15, billed already.
    expect(last.map((e) => (e !== undefined && "overage" in e ? e.overage : -1n))).toEqual([0n, n(2), n(3), 0n, 0n]);
    expect(last[1]).toEqual({
      type: "meter-overage",
      time: T0,
      customerId: "u",
      owner: "u",
      entitlement: "soft",
      plan: "free",
      credit: "token",
      unit: "token",
      mode: "soft",
      oldValue: n(8),
      newValue: n(12),
      limit: n(10),
      diff: n(4),
      remaining: n(-2),
      overage: n(2),
      overagePrice: n(0.00004),
      periodStart: T0,
      attributes: { model: "gpt" },
      policyVersion: "v1",
      idempotencyKey: "k4",
    });
  });

  it("a price finer than a nano-USD per unit bills exactly: a cached token at $0.0025 per million", () => {
    const r = loadPolicy(
      "policy:\n  credits:\n    cached_token: { unit: token, price: { amount: 0.0000000025 }, overhead_cost: 0.0000000014 }\n  plans:\n    p: { default: true, entitlements: { cached: { limit: { credit: cached_token, mode: soft, value: 0 } } } }\n",
      { version: "v" },
    );
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const h = createHarness(r.policy);
    const out = h.run(allow, { customerId: "u", items: [{ entitlement: "cached", amount: 1_000_000 }] });
    expect(out.events.at(-1)).toMatchObject({ type: "meter-overage", overage: n(1_000_000), overagePrice: n(0.0025) });
    expect(h.store.getMeter("u", "cached")?.overhead).toBe(n(0.0014));
  });

  it("overage prices finer than a nano-USD per event add up exactly over many small overages", () => {
    const r = loadPolicy(
      "policy:\n  credits:\n    cached_token: { unit: token, price: { amount: 0.0000000025 } }\n  plans:\n    p: { default: true, entitlements: { cached: { limit: { credit: cached_token, mode: soft, value: 0 } } } }\n",
      { version: "v" },
    );
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const h = createHarness(r.policy);
    let billed = 0n;
    // 2.5 nano-USD an event: each event's price alone would round to 3, and 400 events to 1,200.
    for (let i = 0; i < 400; i++) {
      for (const e of h.run(allow, { customerId: "u", items: [{ entitlement: "cached", amount: 1 }] }).events) {
        if (e.type === "meter-overage") billed += e.overagePrice ?? 0n;
      }
    }
    expect(billed).toBe(n(0.000001));
  });

  it("a provider cost finer than a nano-USD per unit adds up exactly over many small calls", () => {
    const r = loadPolicy(
      "policy:\n  credits:\n    cached_token: { unit: token, overhead_cost: 0.0000000014 }\n  plans:\n    p: { default: true, entitlements: { cached: { limit: { credit: cached_token, value: 1_000_000 } } } }\n",
      { version: "v" },
    );
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    const h = createHarness(r.policy);
    // 1.4 nano-USD a call: each call's cost alone would round to 1, and 1,000 calls to 1,000.
    for (let i = 0; i < 1000; i++) h.run(allow, { customerId: "u", items: [{ entitlement: "cached", amount: 1 }] });
    expect(h.store.getMeter("u", "cached")?.overhead).toBe(n(0.0000014));
    for (let i = 0; i < 500; i++) h.run(allow, { customerId: "u", items: [{ entitlement: "cached", amount: -1 }] });
    expect(h.store.getMeter("u", "cached")?.overhead).toBe(n(0.0000007));
  });

  describe("overage is billed once per period: only what passes the overage already billed", () => {
    const load = (text: string): CompiledPolicy => {
      const r = loadPolicy(text, { version: text.length.toString() });
      if (!r.ok) throw new Error(JSON.stringify(r.issues));
      return r.policy;
    };
    const chat = (mode: string, value: number): string =>
      `{ chat: { limit: { credit: token, mode: ${mode}, value: ${value}, resets: true, reset_inc: 1day } } }`;
    const soft100 = load(`policy:\n  credits:\n    token: { price: { amount: 0.01 } }\n  plans:\n    p: { default: true, entitlements: ${chat("soft", 100)} }\n    small: { entitlements: ${chat("soft", 10)} }\n`);
    /** The overage and price that one Allow's meter-overage events bill. */
    const billedBy = (h: ReturnType<typeof createHarness>, amounts: number[], customerId = "u"): [bigint, bigint] => {
      let overage = 0n;
      let price = 0n;
      for (const e of h.run(allow, { customerId, items: amounts.map((amount) => ({ entitlement: "chat", amount })) }).events) {
        if (e.type === "meter-overage") [overage, price] = [overage + e.overage, price + (e.overagePrice ?? 0n)];
      }
      return [overage, price];
    };

    it("usage given back and used again is billed once, within a request too; a new period bills afresh", () => {
      const h = createHarness(soft100);
      expect(billedBy(h, [120])).toEqual([n(20), n(0.2)]);
      expect(billedBy(h, [-30])).toEqual([0n, 0n]);
      expect(billedBy(h, [30])).toEqual([0n, 0n]);
      expect(billedBy(h, [10])).toEqual([n(10), n(0.1)]);
      expect(billedBy(h, [-50, 55])).toEqual([n(5), n(0.05)]);
      expect(h.store.getMeter("u", "chat")).toMatchObject({ value: n(135), billedOverage: n(35) });
      billedBy(h, [-35]);
      expect(h.store.getMeter("u", "chat")).toMatchObject({ value: n(100), billedOverage: n(35) });
      h.now += 86_400_000;
      expect(billedBy(h, [101])).toEqual([n(1), n(0.01)]);
      expect(h.store.getMeter("u", "chat")).toMatchObject({ value: n(101), billedOverage: n(1) });
    });

    it("a lower limit (a plan changed down) bills the overage it makes at the next call, not 0", () => {
      const h = createHarness(soft100);
      billedBy(h, [50]);
      billedBy(h, [-45]);
      h.run(setCustomerPlan, { customerId: "u", plan: "small", resetMeters: false });
      // 5 → 20 against 10: 10 over, none billed before.
      expect(billedBy(h, [15])).toEqual([n(10), n(0.1)]);
    });

    it("observe bills nothing, and a switch to soft bills the overage from then", () => {
      const h = createHarness(load(`policy:\n  credits:\n    token: { price: { amount: 0.01 } }\n  plans:\n    p: { default: true, entitlements: ${chat("observe", 10)} }\n`));
      expect(billedBy(h, [50])).toEqual([0n, 0n]);
      billedBy(h, [-45]);
      h.policy = load(`policy:\n  credits:\n    token: { price: { amount: 0.01 } }\n  plans:\n    p: { default: true, entitlements: ${chat("soft", 10)} }\n`);
      expect(billedBy(h, [15])).toEqual([n(10), n(0.1)]);
    });

    it("a higher limit bills only overage past what was already billed", () => {
      const h = createHarness(soft100);
      billedBy(h, [120]);
      h.policy = load(`policy:\n  credits:\n    token: { price: { amount: 0.01 } }\n  plans:\n    p: { default: true, entitlements: ${chat("soft", 150)} }\n`);
      expect(billedBy(h, [40])).toEqual([0n, 0n]); // 10 over 150, 20 already billed
      expect(billedBy(h, [15])).toEqual([n(5), n(0.05)]); // 25 over
    });

    it("a meter stored before the billed overage was kept counts as billed as far as it is over", () => {
      const h = createHarness(soft100);
      billedBy(h, [120]);
      const m = h.store.getMeter("u", "chat");
      if (m === undefined) throw new Error("no meter");
      void h.store.commit([{ kind: "meter-put", meter: { ...m, billedOverage: undefined } }], []);
      expect(billedBy(h, [5])).toEqual([n(5), n(0.05)]);
    });

    it("such a meter stays unknown until it bills: a call under a raised limit does not write its guess of 0", () => {
      const h = createHarness(soft100);
      billedBy(h, [120]);
      const m = h.store.getMeter("u", "chat");
      if (m === undefined) throw new Error("no meter");
      void h.store.commit([{ kind: "meter-put", meter: { ...m, billedOverage: undefined } }], []);
      h.policy = load(`policy:\n  credits:\n    token: { price: { amount: 0.01 } }\n  plans:\n    p: { default: true, entitlements: ${chat("soft", 1000)} }\n`);
      billedBy(h, [-1]);
      expect(h.store.getMeter("u", "chat")?.billedOverage).toBeUndefined();
      h.policy = soft100;
      // 119 → 120: guessed from the value now (19 over), as before the billed overage was kept, it
      // bills 1; with the guess of 0 written down it billed all 20 again.
      expect(billedBy(h, [1])).toEqual([n(1), n(0.01)]);
      expect(h.store.getMeter("u", "chat")?.billedOverage).toBe(n(20));
      expect(billedBy(h, [1])).toEqual([n(1), n(0.01)]);
    });
  });

  it("no price → overagePrice undefined; observe never reports overage", () => {
    const h = createHarness(policy);
    expect(h.run(allow, { customerId: "u", items: [{ entitlement: "floored", amount: 3 }] }).events.at(-1)).toMatchObject({ overagePrice: undefined });
    const obs = h.run(allow, { customerId: "u", items: [{ entitlement: "observe", amount: 30 }] });
    expect(obs.events.at(-1)).toMatchObject({ type: "meter-changed", overage: 0n });
    expect(obs.result.reason).toBe("OK");
  });

  it("provider cost accumulates in the meter's overhead", () => {
    const h = createHarness(policy);
    h.run(allow, { customerId: "u", items: [{ entitlement: "soft", amount: 1000 }] });
    const out = h.run(allow, { customerId: "u", items: [{ entitlement: "soft", amount: 500 }] });
    const put = out.writes.find((w) => w.kind === "meter-put");
    expect(put?.kind === "meter-put" && put.meter.overhead).toBe(n(0.012));
  });
});

describe("minimum clamp", () => {
  const seatWithCost = credit("seat", { overheadCost: usd(2) });
  const clamped = buildPolicy({ free: { isDefault: true, entitlements: { seats: { limit: { credit: seatWithCost, value: 3, minimum: 0 } } } } });

  it.each([
    // [amounts, final value, final overhead]: overhead follows what the meter actually moved
    [[-5], 0, 0],
    [[3, -5], 0, 0],
    [[3, -5, 2], 2, 4],
  ] as const)("%j → value %d, provider cost %d", (amounts, value, overhead) => {
    const h = createHarness(clamped);
    let last: DecisionResult | undefined;
    for (const amount of amounts) last = h.run(allow, { customerId: "u", items: [{ entitlement: "seats", amount }] }).result;
    expect(meter(last as DecisionResult).value).toBe(n(value));
    expect(h.store.getMeter("u", "seats")?.overhead ?? 0n).toBe(n(overhead));
  });

  // A fresh (or reset) meter starts at 0, below a positive minimum: the floor must not lift it.
  const floorOf2 = buildPolicy({
    free: {
      isDefault: true,
      entitlements: {
        seats: { limit: { credit: seatWithCost, value: 10, minimum: 2 } },
        soft: { limit: { credit: credit("gb", { price: usd(1) }), mode: "soft", value: 1, minimum: 2 } },
      },
    },
  });
  it.each([
    // [amounts, final value]
    [[0], 0],
    [[-1], 0],
    [[1], 1],
    [[5, -1], 4],
    [[5, -4], 2],
    [[1, -1], 1],
  ] as const)("minimum 2: %j → value %d, never raised by the floor", (amounts, value) => {
    const h = createHarness(floorOf2);
    let last: DecisionResult | undefined;
    for (const amount of amounts) last = h.run(allow, { customerId: "u", items: [{ entitlement: "seats", amount }] }).result;
    expect(meter(last as DecisionResult).value).toBe(n(value));
  });

  it("a decrease on a soft limit below its minimum bills no overage and emits no event", () => {
    const h = createHarness(floorOf2);
    const out = h.run(record, { customerId: "u", items: [{ entitlement: "soft", amount: -1 }] });
    expect(out.result.reason).toBe("OK");
    expect(meter(out.result).value).toBe(0n);
    expect(meter(out.result).overage).toBe(0n);
    expect(out.events.filter((e) => e.type.startsWith("meter-"))).toEqual([]);
  });
});

describe("record", () => {
  it("counts past a hard limit and reports the overage as soft", () => {
    const h = createHarness(policy);
    const out = h.run(record, { customerId: "u", items: [{ entitlement: "hard", amount: 12 }] });
    expect(out.result).toMatchObject({ allowed: true, reason: "SOFT_LIMIT_EXCEEDED" });
    expect(meter(out.result)).toMatchObject({ value: n(12), overage: n(2) });
    expect(out.events.at(-1)).toMatchObject({ type: "meter-overage", overage: n(2), overagePrice: n(0.00004) });
  });

  it("still denies what the plan does not have", () => {
    const h = createHarness(policy);
    expect(h.run(record, { customerId: "u", items: [{ entitlement: "proOnly" }] }).result.reason).toBe("NOT_ENTITLED");
  });
});

describe("check", () => {
  it("decides like allow but writes and emits nothing, even for a new customer", () => {
    const h = createHarness(policy);
    const out = h.run(check, { customerId: "new", items: [{ entitlement: "hard", amount: 11 }], hint: { plan: "free" } });
    expect(out.result).toMatchObject({ allowed: false, reason: "HARD_LIMIT", customerId: "new", plan: "free" });
    expect(out.writes).toEqual([]);
    expect(out.events).toEqual([]);
    expect(snapshot(h.store)).toEqual([]);
  });
});

describe("bad input throws INVALID_ARGUMENT naming the field and changes nothing", () => {
  const many = Array.from({ length: 65 }, () => ({ entitlement: "hard" }));
  it.each([
    [{ customerId: "", items: [{ entitlement: "hard" }] }, "customer_id"],
    [{ customerId: "u", items: [] }, "items"],
    [{ customerId: "u", items: many }, "items"],
    [{ customerId: "u", items: [{ entitlement: "hard" }, { entitlement: "" }] }, "items[1].entitlement"],
    [{ customerId: "u", items: [{ entitlement: "hard", amount: Number.NaN }] }, "items[0].amount"],
    [{ customerId: "u", items: [{ entitlement: "hard", amount: Number.POSITIVE_INFINITY }] }, "items[0].amount"],
    [{ customerId: "u", items: [{ entitlement: "hard", amount: 1, unit: "parsecs" }] }, "items[0].unit"],
    [{ customerId: "u", items: [{ entitlement: "proOnly" }, { entitlement: "hard", amount: 1, unit: "parsecs" }] }, "items[1].unit"],
    // An unknown unit is an error wherever it appears, even where no amount is converted by it.
    [{ customerId: "u", items: [{ entitlement: "hard", unit: "parsecs" }] }, "items[0].unit"],
    [{ customerId: "u", items: [{ entitlement: "flag", amount: 1, unit: "parsecs" }] }, "items[0].unit"],
    [{ customerId: "u", items: [{ entitlement: "proOnly", amount: 1, unit: "parsecs" }] }, "items[0].unit"],
    [{ customerId: "u", items: [{ entitlement: "nope", amount: 1, unit: "parsecs" }] }, "items[0].unit"],
    [{ customerId: "u", items: [{ entitlement: "orgSeats", amount: 1, unit: "parsecs" }] }, "items[0].unit"],
    [{ customerId: "u", items: [{ entitlement: "proOnly" }, { entitlement: "flag", unit: "parsecs" }] }, "items[1].unit"],
  ])("%j → %s", (req, field) => {
    for (const op of [allow, check, record]) {
      const h = createHarness(policy);
      let caught: unknown;
      try {
        h.run(op, req);
      } catch (e) {
        caught = e;
      }
      expect(isLimitrError(caught, "INVALID_ARGUMENT")).toBe(true);
      expect((caught as { field: string }).field).toBe(field);
      expect(snapshot(h.store)).toEqual([]);
    }
  });
});

describe("an item counts at most 1e15 of its credit's units, either way", () => {
  const tb = credit("storage", { unit: "TB", stofUnits: "TB", unitKind: "size" });
  const big = buildPolicy({
    free: { isDefault: true, entitlements: { soft: { limit: { credit: token, mode: "soft", value: 10 } }, store: { limit: { credit: tb, mode: "soft", value: 1 } } } },
  });
  const ops = [allow, check, record];

  it.each([
    [{ entitlement: "soft", amount: 1e308 }, /^items\[1\]\.amount: must be within ±1e15 in the units of credit "token" \(token\), got 1e\+308$/],
    [{ entitlement: "soft", amount: Number.MAX_VALUE }, /got 1\.7976931348623157e\+308/],
    [{ entitlement: "soft", amount: -1e308 }, /got -1e\+308/],
    [{ entitlement: "soft", amount: 1e15 + 0.5 }, /got 1000000000000000\.5/],
    // Judged in the credit's units, after conversion: 2e27 B is 2e15 TB.
    [{ entitlement: "store", amount: 2e27, unit: "B" }, /\(TB\), got 2e\+27 B$/],
    [{ entitlement: "store", amount: 1e300, unit: "PB" }, /got 1e\+300 PB$/],
  ])("%j → INVALID_ARGUMENT items[1].amount, nothing changed", (item, message) => {
    for (const op of ops) {
      const h = createHarness(big);
      expect(() => h.run(op, { customerId: "u", items: [{ entitlement: "soft", amount: 1 }, item] })).toThrow(
        expect.objectContaining({ code: "INVALID_ARGUMENT", field: "items[1].amount", message: expect.stringMatching(message) }),
      );
      expect(snapshot(h.store)).toEqual([]);
    }
  });

  it("1e15 itself counts, and so does 1e27 B into TB", () => {
    const h = createHarness(big);
    const out = h.run(record, { customerId: "u", items: [{ entitlement: "soft", amount: 1e15 }, { entitlement: "store", amount: 1e27, unit: "B" }] });
    expect(out.result).toMatchObject({ allowed: true, items: [{ value: n(1e15) }, { value: n(1e15) }] });
    expect(h.run(record, { customerId: "u", items: [{ entitlement: "soft", amount: -1e15 }] }).result.items[0]).toMatchObject({ value: 0n });
  });
});

describe("units where no credit converts the amount", () => {
  it.each([
    // [item, expected reason]: the credit's own unit, a known unit, or any credit's unit name
    [{ entitlement: "hard", unit: "token" }, "OK"],
    [{ entitlement: "flag", amount: 1, unit: "MB" }, "OK"],
    [{ entitlement: "flag", amount: 1, unit: "seat" }, "OK"],
    [{ entitlement: "proOnly", amount: 1, unit: "token" }, "NOT_ENTITLED"],
    [{ entitlement: "orgSeats", amount: 1, unit: "seat" }, "SCOPE_UNRESOLVED"],
  ] as const)("%j is decided, not rejected (%s)", (item, reason) => {
    const h = createHarness(policy);
    expect(h.run(allow, { customerId: "u", items: [item] }).result.reason).toBe(reason);
  });

  it("an unknown customer (no default plan) is still INVALID_ARGUMENT for an unknown unit", () => {
    const h = createHarness(buildPolicy({ pro: { entitlements: { hard: { limit: { credit: token, value: 10 } } } } }));
    expect(h.run(allow, { customerId: "u", items: [{ entitlement: "hard", amount: 1, unit: "token" }] }).result.reason).toBe("UNKNOWN_CUSTOMER");
    expect(() => h.run(allow, { customerId: "u", items: [{ entitlement: "hard", amount: 1, unit: "parsecs" }], idempotencyKey: "k" })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT", field: "items[0].unit" }),
    );
    expect(snapshot(h.store)).toEqual([]);
  });

  it("an omitted amount with a unit still counts the limit's increment", () => {
    const h = createHarness(policy);
    const r = h.run(allow, { customerId: "u", items: [{ entitlement: "byFive", unit: "seat" }] }).result;
    expect(meter(r).value).toBe(n(5));
  });
});
