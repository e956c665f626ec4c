import { describe, expect, it } from "vitest";
import { allow, deleteCustomer, release, reserve, setCustomerPlan, settle, upsertCustomer, type DecisionResult, type MeterView } from "../../src/engine/index.js";
import { isLimitrError } from "../../src/errors/index.js";
import { buildPolicy, createHarness, credit, n, snapshot, T0, usd } from "./harness.js";

const token = credit("token", { price: usd(0.01) });
const policy = buildPolicy({
  free: {
    isDefault: true,
    entitlements: {
      tokens: { limit: { credit: token, value: 100 } },
      soft: { limit: { credit: token, mode: "soft", value: 100 } },
      flag: {},
    },
  },
  // Without tokens, and with soft as a feature flag: a plan the customer may move to mid-reservation.
  lite: { entitlements: { soft: {}, flag: {} } },
});

const view = (r: DecisionResult, i = 0): MeterView => r.items[i] as MeterView;
const tokens = (amount: number) => [{ entitlement: "tokens", amount }];

describe("reserve", () => {
  it("holds room that counts against other calls until settled", () => {
    const h = createHarness(policy);
    const r = h.run(reserve, { customerId: "u", items: tokens(60), ttlMs: 60_000 }).result;
    expect(r).toMatchObject({ allowed: true, reservationId: "r1", reservationExpiresAt: T0 + 60_000 });
    expect(view(r)).toMatchObject({ value: 0n, held: n(60), remaining: n(40) });
    expect(h.run(allow, { customerId: "u", items: tokens(41) }).result.allowed).toBe(false);
    expect(h.run(allow, { customerId: "u", items: tokens(40) }).result.allowed).toBe(true);
    expect(h.run(reserve, { customerId: "u", items: tokens(1) }).result.allowed).toBe(false);
    expect(h.store.getReservation("r1")).toMatchObject({ customerId: "u", items: [{ entitlement: "tokens", owner: "u", amount: n(60) }] });
  });

  it("expired holds stop counting and are pruned when the meter is next written", () => {
    const h = createHarness(policy);
    h.run(reserve, { customerId: "u", items: tokens(90), ttlMs: 1000 });
    h.now += 1000;
    const r = h.run(allow, { customerId: "u", items: tokens(100) }).result;
    expect(r.allowed).toBe(true);
    expect(view(r).held).toBe(0n);
    expect(h.store.getHolds("u", "tokens")).toEqual([]);
    expect(h.store.getMeter("u", "tokens")?.holdSummary).toEqual({ held: 0n, count: 0, nextExpiry: Infinity });
  });

  it.each([
    [{ customerId: "u", items: tokens(-1) }, "items[0].amount"],
    [{ customerId: "u", items: tokens(1), ttlMs: 0 }, "ttl"],
    [{ customerId: "u", items: tokens(1), ttlMs: -5 }, "ttl"],
    [{ customerId: "u", items: tokens(1), ttlMs: Number.NaN }, "ttl"],
    [{ customerId: "u", items: tokens(1), ttlMs: 30 * 86_400_000 + 1 }, "ttl"],
    [{ customerId: "u", items: tokens(1), ttlMs: 315_576_000_000_000 }, "ttl"],
  ])("bad input %j → INVALID_ARGUMENT %s", (req, field) => {
    const h = createHarness(policy);
    expect(() => h.run(reserve, req)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT", field }));
    expect(snapshot(h.store)).toEqual([]);
  });

  it("a ttl of exactly 30 days is accepted", () => {
    const h = createHarness(policy);
    const out = h.run(reserve, { customerId: "u", items: tokens(1), ttlMs: 30 * 86_400_000 });
    expect(out.result.allowed).toBe(true);
    expect(h.store.getHolds("u", "tokens")[0]?.expiresAt).toBe(h.now + 30 * 86_400_000);
  });

  it("a denied reserve places no hold and no reservation", () => {
    const h = createHarness(policy);
    const out = h.run(reserve, { customerId: "u", items: [{ entitlement: "soft", amount: 5 }, { entitlement: "tokens", amount: 101 }] });
    expect(out.result).toMatchObject({ allowed: false, deniedItem: 1 });
    expect(out.result).not.toHaveProperty("reservationId");
    expect(out.writes.map((w) => w.kind)).toEqual(["customer-put"]);
  });
});

describe("settle", () => {
  it("removes the hold and records the actual amount (past a hard limit = soft overage)", () => {
    const h = createHarness(policy);
    h.run(allow, { customerId: "u", items: tokens(30) });
    h.run(reserve, { customerId: "u", items: [...tokens(50), { entitlement: "soft", amount: 10 }, { entitlement: "flag" }] });
    const out = h.run(settle, { reservationId: "r1", actual: [{ entitlement: "tokens", amount: 80 }] });
    expect(out.result).toMatchObject({ allowed: true, reason: "SOFT_LIMIT_EXCEEDED", customerId: "u" });
    expect(out.result.items.map((v) => v.kind === "metered" ? [v.entitlement, v.value, v.held] : [v.entitlement])).toEqual([
      ["tokens", n(110), 0n],
      ["soft", 0n, 0n],
      ["flag"],
    ]);
    expect(out.events.map((e) => e.type)).toEqual(["meter-overage"]);
    expect(out.events[0]).toMatchObject({ overage: n(10), overagePrice: n(0.1) });
    expect(h.store.getReservation("r1")).toBeUndefined();
    expect(h.store.getHolds("u", "soft")).toEqual([]);
    expect(h.store.getMeter("u", "soft")?.holdSummary.count).toBe(0);
  });

  it("refuses an entitlement on two lines when one has no amount, which would count the reservation twice", () => {
    const h = createHarness(policy);
    h.run(reserve, { customerId: "u", items: tokens(15) });
    for (const actual of [[{ entitlement: "tokens" }, { entitlement: "tokens" }], [{ entitlement: "tokens", amount: 3 }, { entitlement: "tokens" }]]) {
      expect(() => h.run(settle, { reservationId: "r1", actual })).toThrow(/^actual\[1\]\.entitlement: "tokens" is also in actual\[0\], and a line without an amount/);
    }
    expect(h.store.getHolds("u", "tokens")).toHaveLength(1);
    // Lines that all have amounts add up (input and output tokens of one call, say).
    const out = h.run(settle, { reservationId: "r1", actual: [...tokens(4), ...tokens(5)] });
    expect(view(out.result).value).toBe(n(9));
  });

  it("an actual line without an amount settles at what was reserved; expired reservations still record", () => {
    const h = createHarness(policy);
    h.run(reserve, { customerId: "u", items: tokens(7), ttlMs: 10 });
    h.now += 1_000_000;
    const out = h.run(settle, { reservationId: "r1", actual: [{ entitlement: "tokens" }] });
    expect(view(out.result).value).toBe(n(7));
  });

  it("unknown id → NOT_FOUND; an entitlement not reserved → INVALID_ARGUMENT", () => {
    const h = createHarness(policy);
    h.run(reserve, { customerId: "u", items: tokens(7) });
    const before = snapshot(h.store);
    let e: unknown;
    try {
      h.run(settle, { reservationId: "nope", actual: [] });
    } catch (err) {
      e = err;
    }
    expect(isLimitrError(e, "NOT_FOUND")).toBe(true);
    expect(() => h.run(settle, { reservationId: "r1", actual: [{ entitlement: "soft", amount: 1 }] })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT", field: "actual[0].entitlement" }),
    );
    expect(() => h.run(settle, { reservationId: "", actual: [] })).toThrow(expect.objectContaining({ field: "reservation_id" }));
    // A line without an amount converts nothing, yet an unknown unit on it is still bad input.
    expect(() => h.run(settle, { reservationId: "r1", actual: [{ entitlement: "tokens", unit: "parsecs" }] })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT", field: "actual[0].unit" }),
    );
    // Beyond what one item may count (1e15 of the credit's units).
    expect(() => h.run(settle, { reservationId: "r1", actual: [{ entitlement: "tokens", amount: 1e308 }] })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT", field: "actual[0].amount" }),
    );
    expect(snapshot(h.store)).toEqual(before);
    expect(view(h.run(settle, { reservationId: "r1", actual: [{ entitlement: "tokens", unit: "token" }] }).result).value).toBe(n(7));
  });
});

describe("settle after the plan changed", () => {
  it("counts the usage reserved under the old plan on its meter, as one the new plan does not enforce", () => {
    const h = createHarness(policy);
    h.run(allow, { customerId: "u", items: tokens(30) });
    h.run(reserve, { customerId: "u", items: [...tokens(50), { entitlement: "soft", amount: 10 }] });
    h.run(setCustomerPlan, { customerId: "u", plan: "lite", resetMeters: false });
    const out = h.run(settle, { reservationId: "r1", actual: [{ entitlement: "tokens", amount: 40 }, { entitlement: "soft", amount: 6 }] });
    expect(out.result).toMatchObject({ allowed: true, reason: "OK", plan: "lite" });
    expect(out.result.items.map((v) => (v.kind === "metered" ? [v.entitlement, v.mode, v.value, v.held] : [v.entitlement]))).toEqual([
      ["tokens", "observe", n(70), 0n],
      ["soft", "observe", n(6), 0n],
    ]);
    expect(out.events.map((e) => [e.type, "entitlement" in e ? e.entitlement : ""])).toEqual([
      ["meter-changed", "tokens"],
      ["meter-changed", "soft"],
    ]);
    expect(h.store.getMeter("u", "tokens")).toMatchObject({ value: n(70), credit: "token" });
    expect(h.store.getReservation("r1")).toBeUndefined();
  });

  it("an unknown unit on a line that converts nothing (a feature flag) is still INVALID_ARGUMENT", () => {
    const h = createHarness(policy);
    h.run(reserve, { customerId: "u", items: [...tokens(5), { entitlement: "flag" }] });
    const before = snapshot(h.store);
    expect(() => h.run(settle, { reservationId: "r1", actual: [{ entitlement: "flag", amount: 1, unit: "furlong" }, ...tokens(4)] })).toThrow(
      expect.objectContaining({ code: "INVALID_ARGUMENT", field: "actual[0].unit" }),
    );
    expect(snapshot(h.store)).toEqual(before);
  });
});

describe("settle after a deletion: each item counts on its meter's owner, if that still exists", () => {
  const seat = credit("seat");
  const orgPolicy = buildPolicy({
    free: {
      isDefault: true,
      entitlements: { tokens: { limit: { credit: token, value: 100 } }, seats: { scope: "org", limit: { credit: seat, mode: "soft", value: 2 } } },
    },
  });
  const seats = (amount: number) => [{ entitlement: "seats", amount }];
  const orgWithMember = (org: string, member: string) => {
    const h = createHarness(orgPolicy);
    h.run(upsertCustomer, { id: org, type: "org" });
    h.run(upsertCustomer, { id: member, refs: [org] });
    return h;
  };

  it("the org deleted: the member's settle counts nothing on the deleted org's meter", () => {
    const h = orgWithMember("globex", "bob");
    expect(view(h.run(reserve, { customerId: "bob", items: seats(2) }).result)).toMatchObject({ owner: "globex", held: n(2) });
    h.run(deleteCustomer, "globex");
    const out = h.run(settle, { reservationId: "r1", actual: seats(2) });
    expect(out.result).toMatchObject({ allowed: false, reason: "UNKNOWN_CUSTOMER", deniedItem: 0, customerId: "bob" });
    expect(out.result.items).toEqual([{ kind: "feature", entitlement: "seats", granted: false }]);
    expect(out.events).toEqual([]);
    expect(out.writes.map((w) => w.kind)).toEqual(["reservation-delete"]);
    expect(h.store.getMeter("globex", "seats")).toBeUndefined();
    // An org created again under the id starts afresh, not with the deleted one's seats.
    h.run(upsertCustomer, { id: "globex", type: "org" });
    expect(view(h.run(allow, { customerId: "bob", items: seats(0) }).result)).toMatchObject({ owner: "globex", value: 0n });
  });

  it("the org deleted and created again before the settle: the new org owes nothing of it", () => {
    const h = orgWithMember("globex", "bob");
    h.run(reserve, { customerId: "bob", items: seats(2) });
    h.run(deleteCustomer, "globex");
    h.now += 1000;
    h.run(upsertCustomer, { id: "globex", type: "org" });
    const out = h.run(settle, { reservationId: "r1", actual: seats(2) });
    expect(out.result).toMatchObject({ allowed: false, reason: "UNKNOWN_CUSTOMER", deniedItem: 0 });
    expect(h.store.getMeter("globex", "seats")).toBeUndefined();
  });

  it("the member deleted: its usage still counts on the org's meter, under the limit the org's plan puts on it", () => {
    const h = orgWithMember("initech", "carol");
    h.run(allow, { customerId: "carol", items: seats(1) });
    h.run(reserve, { customerId: "carol", items: seats(2), attributes: { model: "m" } });
    h.run(deleteCustomer, "carol");
    const out = h.run(settle, { reservationId: "r1", actual: seats(2) });
    expect(out.result).toMatchObject({ allowed: true, reason: "SOFT_LIMIT_EXCEEDED", customerId: "carol", plan: "" });
    expect(view(out.result)).toMatchObject({ owner: "initech", mode: "soft", value: n(3), held: 0n, overage: n(1) });
    expect(out.events.map((e) => [e.type, "customerId" in e ? e.customerId : "", "owner" in e ? e.owner : ""])).toEqual([["meter-overage", "carol", "initech"]]);
    expect(h.store.getMeter("initech", "seats")).toMatchObject({ value: n(3), holdSummary: { held: 0n, count: 0 } });
    expect(h.store.getReservation("r1")).toBeUndefined();
  });

  it("the member deleted: its own meter went with it, the org's item is still counted", () => {
    const h = orgWithMember("initech", "carol");
    h.run(reserve, { customerId: "carol", items: [...tokens(5), ...seats(1)] });
    h.run(deleteCustomer, "carol");
    const out = h.run(settle, { reservationId: "r1", actual: [...tokens(5), ...seats(1)] });
    expect(out.result).toMatchObject({ allowed: false, reason: "UNKNOWN_CUSTOMER", deniedItem: 0, customerId: "carol" });
    expect(out.result.items[0]).toEqual({ kind: "feature", entitlement: "tokens", granted: false });
    expect(view(out.result, 1)).toMatchObject({ owner: "initech", value: n(1), held: 0n });
    expect(h.store.getMeter("carol", "tokens")).toBeUndefined();
    expect(h.store.getMeter("initech", "seats")?.value).toBe(n(1));
  });
});

describe("release", () => {
  it("removes holds and the reservation; unknown → released:false with no writes", () => {
    const h = createHarness(policy);
    h.run(reserve, { customerId: "u", items: tokens(70) });
    h.run(reserve, { customerId: "u", items: tokens(20) });
    const out = h.run(release, { reservationId: "r1" });
    expect(out.result).toEqual({ released: true });
    expect(h.store.getHolds("u", "tokens").map((x) => x.reservationId)).toEqual(["r2"]);
    expect(h.store.getMeter("u", "tokens")?.holdSummary).toEqual({ held: n(20), count: 1, nextExpiry: T0 + 600_000 });
    expect(h.store.getReservation("r1")).toBeUndefined();
    const again = h.run(release, { reservationId: "r1" });
    expect(again).toEqual({ result: { released: false }, writes: [], events: [] });
    expect(h.run(allow, { customerId: "u", items: tokens(80) }).result.allowed).toBe(true);
  });

  it("an expired reservation is removed, but released:false: its hold had stopped counting", () => {
    const h = createHarness(policy);
    h.run(reserve, { customerId: "u", items: tokens(70), ttlMs: 1_000 });
    h.now = T0 + 1_000;
    const out = h.run(release, { reservationId: "r1" });
    expect(out.result).toEqual({ released: false });
    expect(h.store.getReservation("r1")).toBeUndefined();
    expect(h.store.getHolds("u", "tokens")).toEqual([]);
  });
});
