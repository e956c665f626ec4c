/**
 * A plan change that changes a limit's reset rule is judged as a policy swap's rule change is
 * (issue 2: a running period keeps its count into the new rule's current period, an ended one
 * starts at zero), not by the new plan's rule alone: that would bring back a daily count from an
 * earlier day under `monthly:1`, and zero a running month under `daily`.
 */
import { describe, expect, it } from "vitest";
import { allow, check, getMeters, reserve, setCustomerPlan, upsertCustomer, type MeterView } from "../../src/engine/index.js";
import { buildPolicy, createHarness, credit, daily, DAY, monthly1, n, rolling, T0 } from "./harness.js";

const token = credit("token");
const policy = buildPolicy({
  daily: { isDefault: true, entitlements: { t: { limit: { credit: token, value: 10, reset: daily } } } },
  monthly: { entitlements: { t: { limit: { credit: token, value: 10, reset: monthly1 } } } },
  weekly: { entitlements: { t: { limit: { credit: token, value: 10, reset: rolling(7 * DAY) } } } },
  forever: { entitlements: { t: { limit: { credit: token, value: 10 } } } },
});

const HOUR = 3_600_000;

function meterOf(h: ReturnType<typeof createHarness>): MeterView {
  return getMeters(h.ctx(), "u", ["t"]).result[0] as MeterView;
}

describe("changing plan between reset rules", () => {
  it("a period that had ended under the old plan's rule does not come back under the new one", () => {
    const h = createHarness(policy); // T0 = 2026-01-15T12:00Z
    h.run(upsertCustomer, { id: "u", plan: "daily" });
    h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 8 }] });
    h.now = T0 + 3 * DAY; // Jan 18: the daily period of Jan 15 ended on Jan 16
    const change = h.run(setCustomerPlan, { customerId: "u", plan: "monthly", resetMeters: false });
    expect(change.events.filter((e) => e.type === "meter-reset")).toMatchObject([{ type: "meter-reset", entitlement: "t", diff: -n(8) }]);
    const r = h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 5 }] }).result;
    expect(r).toMatchObject({ allowed: true, reason: "OK" });
    expect(r.items[0]).toMatchObject({ value: n(5), periodStart: Date.UTC(2026, 0, 1) });
  });

  it("a running period keeps its count into the new rule's period, then resets by the new rule", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "u", plan: "monthly" });
    h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 8 }] }); // January's period
    h.now = T0 + HOUR;
    const change = h.run(setCustomerPlan, { customerId: "u", plan: "daily", resetMeters: false });
    expect(change.events.some((e) => e.type === "meter-reset")).toBe(false);
    expect(meterOf(h)).toMatchObject({ value: n(8), periodStart: Date.UTC(2026, 0, 15), nextReset: Date.UTC(2026, 0, 16) });
    expect(h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 3 }] }).result).toMatchObject({ allowed: false, reason: "HARD_LIMIT" });
    h.now = Date.UTC(2026, 0, 16, 0, 0, 1);
    expect(meterOf(h)).toMatchObject({ value: 0n, periodStart: Date.UTC(2026, 0, 16) });
  });

  it("a rolling rule starts its period at the change; a limit that never resets keeps the meter's own start", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "u", plan: "monthly" });
    h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 4 }] });
    h.now = T0 + HOUR;
    h.run(setCustomerPlan, { customerId: "u", plan: "weekly", resetMeters: false });
    expect(meterOf(h)).toMatchObject({ value: n(4), periodStart: T0 + HOUR, nextReset: T0 + HOUR + 7 * DAY });
    h.now = T0 + 2 * HOUR;
    h.run(setCustomerPlan, { customerId: "u", plan: "forever", resetMeters: false });
    expect(meterOf(h)).toMatchObject({ value: n(4), periodStart: T0 + HOUR });
  });

  it("the same holds when UpsertCustomer changes the plan", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "u", plan: "daily" });
    h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 8 }] });
    h.now = T0 + 3 * DAY;
    h.run(upsertCustomer, { id: "u", plan: "monthly" });
    expect(meterOf(h)).toMatchObject({ value: 0n });
  });

  it("reset_meters clears reached thresholds with meter-threshold-cleared events, as a lazy reset does", () => {
    const withThresholds = buildPolicy({
      a: { isDefault: true, entitlements: { t: { limit: { credit: token, value: 10, reset: daily, thresholds: [50, 80] } } } },
      b: { entitlements: { t: { limit: { credit: token, value: 10, reset: daily, thresholds: [50, 80] } } } },
    });
    const h = createHarness(withThresholds);
    h.run(upsertCustomer, { id: "u", plan: "a" });
    h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 6 }] });
    expect(h.store.getMeter("u", "t")?.thresholdsReached).toEqual([50]);
    const reset = h.run(setCustomerPlan, { customerId: "u", plan: "b", resetMeters: true });
    expect(reset.events.filter((e) => e.type.startsWith("meter-"))).toMatchObject([
      { type: "meter-reset", oldValue: n(6), newValue: 0n },
      { type: "meter-threshold-cleared", threshold: 50 },
    ]);
    expect(h.store.getMeter("u", "t")?.thresholdsReached).toEqual([]);
  });

  it("a plan change between plans with the same rule changes no meter's count or period, only when it was last set", () => {
    const same = buildPolicy({
      a: { isDefault: true, entitlements: { t: { limit: { credit: token, value: 10, reset: daily } } } },
      b: { entitlements: { t: { limit: { credit: token, value: 20, reset: { ...daily } } } } },
    });
    const h = createHarness(same);
    h.run(upsertCustomer, { id: "u", plan: "a" });
    h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 8 }] });
    h.now = T0 + HOUR;
    const change = h.run(setCustomerPlan, { customerId: "u", plan: "b", resetMeters: false });
    const puts = change.writes.filter((w) => w.kind === "meter-put");
    expect(puts).toHaveLength(1);
    expect(meterOf(h)).toMatchObject({ value: n(8), periodStart: Date.UTC(2026, 0, 15) });
    expect(h.store.getMeter("u", "t")).toMatchObject({ value: n(8), periodStart: Date.UTC(2026, 0, 15), resetRule: "daily", judgedAt: T0 + HOUR });
  });
});

/** A customer on "daily" who used 8 on Jan 15, three days later (that day's period long over). */
function usedOnDailyThenThreeDaysLater(): ReturnType<typeof createHarness> {
  const h = createHarness(policy);
  h.run(upsertCustomer, { id: "u", plan: "daily" });
  h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 8 }] });
  h.now = T0 + 3 * DAY;
  return h;
}

describe("a decision's customer hint that changes the plan (SPEC §3: meters keep value and period)", () => {
  it("a period that had ended under the old plan's rule does not come back: the decision counts from zero", () => {
    const h = usedOnDailyThenThreeDaysLater();
    const out = h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 5 }], hint: { plan: "monthly" } });
    expect(out.result).toMatchObject({ allowed: true, plan: "monthly" });
    expect(out.result.items[0]).toMatchObject({ value: n(5), periodStart: Date.UTC(2026, 0, 1) });
    expect(out.events.map((e) => e.type)).toEqual(["customer-set", "customer-plan-changed", "meter-reset", "meter-changed"]);
    expect(h.store.getMeter("u", "t")).toMatchObject({ value: n(5), periodStart: Date.UTC(2026, 0, 1) });
  });

  it("a running period keeps its count into the new rule's period: the decision counts on top of it", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "u", plan: "monthly" });
    h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 8 }] });
    h.now = T0 + HOUR;
    const denied = h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 3 }], hint: { plan: "daily" } });
    expect(denied.result).toMatchObject({ allowed: false, reason: "HARD_LIMIT", plan: "daily" });
    expect(denied.result.items[0]).toMatchObject({ value: n(8), periodStart: Date.UTC(2026, 0, 15) });
    // The plan change and its carry are kept (the hint is applied even when the call is denied).
    expect(h.store.getCustomer("u")?.plan).toBe("daily");
    expect(meterOf(h)).toMatchObject({ value: n(8), periodStart: Date.UTC(2026, 0, 15), nextReset: Date.UTC(2026, 0, 16) });
    expect(h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 2 }] }).result).toMatchObject({ allowed: true });
  });

  it("new refs in a hint that reach another plan count as a plan change too", () => {
    const h = usedOnDailyThenThreeDaysLater();
    h.run(upsertCustomer, { id: "org", plan: "monthly", type: "org" });
    h.run(upsertCustomer, { id: "u", plan: "" }); // inherits: daily is the default
    const out = h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 5 }], hint: { refs: ["org"] } });
    expect(out.result).toMatchObject({ allowed: true, plan: "monthly" });
    expect(out.result.items[0]).toMatchObject({ value: n(5), periodStart: Date.UTC(2026, 0, 1) });
  });

  it("a Check with such a hint decides on the carried meter and changes nothing", () => {
    const h = usedOnDailyThenThreeDaysLater();
    const out = h.run(check, { customerId: "u", items: [{ entitlement: "t", amount: 10 }], hint: { plan: "monthly" } });
    expect(out.result).toMatchObject({ allowed: true, plan: "monthly" });
    expect(out.writes).toEqual([]);
    expect(h.store.getCustomer("u")?.plan).toBe("daily");
  });

  it("open holds survive the restart, and expired ones are dropped once", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "u", plan: "daily" });
    h.run(reserve, { customerId: "u", items: [{ entitlement: "t", amount: 2 }], ttlMs: 10 * DAY });
    h.run(reserve, { customerId: "u", items: [{ entitlement: "t", amount: 3 }], ttlMs: DAY });
    h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 4 }] });
    h.now = T0 + 3 * DAY; // the 3-hold expired, the 2-hold is open
    const out = h.run(allow, { customerId: "u", items: [{ entitlement: "t", amount: 8 }], hint: { plan: "monthly" } });
    expect(out.result).toMatchObject({ allowed: true });
    expect(out.result.items[0]).toMatchObject({ value: n(8), held: n(2) });
    expect(out.writes.filter((w) => w.kind === "hold-delete")).toHaveLength(1);
    expect(h.store.getHolds("u", "t").map((x) => x.amount)).toEqual([n(2)]);
    expect(h.store.getMeter("u", "t")?.holdSummary).toMatchObject({ held: n(2), count: 1 });
  });
});
