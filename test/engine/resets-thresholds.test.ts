import { describe, expect, it } from "vitest";
import { allow, check, getMeters, record, type MeterView } from "../../src/engine/index.js";
import { buildPolicy, createHarness, credit, DAY, monthly1, n, rolling, T0 } from "./harness.js";

const token = credit("token");
const policy = (value = 10, reset = rolling(DAY)) =>
  buildPolicy({
    free: {
      isDefault: true,
      entitlements: {
        roll: { limit: { credit: token, value, reset } },
        month: { limit: { credit: token, value: 10, reset: monthly1 } },
        soft: { limit: { credit: token, mode: "soft", value: 100, thresholds: [50, 80, 100] } },
        zero: { limit: { credit: token, mode: "soft", value: 0, thresholds: [50] } },
      },
    },
  });

const use = (entitlement: string, amount: number) => ({ customerId: "u", items: [{ entitlement, amount }] });

describe("lazy resets", () => {
  it("rolling periods step from the meter's own start and missed periods collapse", () => {
    const h = createHarness(policy());
    h.run(allow, use("roll", 10));
    h.now = T0 + 3 * DAY + 5;
    const out = h.run(allow, use("roll", 4));
    expect(out.events.map((e) => e.type)).toEqual(["meter-reset", "meter-changed"]);
    expect(out.events[0]).toMatchObject({ oldValue: n(10), newValue: 0n, periodStart: T0 + 3 * DAY });
    expect(out.result.items[0]).toMatchObject({ value: n(4), periodStart: T0 + 3 * DAY, nextReset: T0 + 4 * DAY });
  });

  it("calendar periods start at the boundary; a new meter starts at the current one", () => {
    const h = createHarness(policy());
    const r = h.run(allow, use("month", 1)).result.items[0] as MeterView;
    expect(r.periodStart).toBe(Date.UTC(2026, 0, 1));
    expect(r.nextReset).toBe(Date.UTC(2026, 1, 1));
  });

  it("a denied call after the boundary still writes the reset (and only the reset)", () => {
    const h = createHarness(policy());
    h.run(allow, use("roll", 8));
    h.now = T0 + DAY;
    const out = h.run(allow, { customerId: "u", items: [{ entitlement: "roll", amount: 11 }] });
    expect(out.result.allowed).toBe(false);
    expect(out.events.map((e) => e.type)).toEqual(["meter-reset", "meter-limit"]);
    expect(out.writes).toHaveLength(1);
    expect(h.store.getMeter("u", "roll")).toMatchObject({ value: 0n, periodStart: T0 + DAY });
  });

  it("reads show the new period without writing", () => {
    const h = createHarness(policy());
    h.run(allow, use("roll", 8));
    h.now = T0 + DAY;
    expect(getMeters(h.ctx(), "u", ["roll"]).result[0]).toMatchObject({ value: 0n, periodStart: T0 + DAY });
    expect(check(h.ctx(), use("roll", 10)).result.allowed).toBe(true);
    expect(h.store.getMeter("u", "roll")).toMatchObject({ value: n(8), periodStart: T0 });
  });

  it("changing the limit's value or period never strands the meter: a period change nobody saw keeps the count until the old period ends", () => {
    const h = createHarness(policy());
    h.run(allow, use("roll", 8));
    h.policy = policy(20, rolling(7 * DAY));
    // No policy swap was seen (the harness keeps no tracker): the meter's row names the rule it was
    // written under and when. Its day was still running: the count is kept, in the week that
    // starts at its last judgement, until the day would have ended.
    h.now = T0 + DAY / 2;
    const r = h.run(allow, use("roll", 5)).result.items[0];
    expect(r).toMatchObject({ value: n(13), limit: n(20), periodStart: T0, nextReset: T0 + DAY });
    expect(h.store.getMeter("u", "roll")).toMatchObject({ value: n(13), resetRule: "86400000ms", periodStart: T0, judgedAt: T0 });
    h.now = T0 + 2 * DAY;
    expect(h.run(allow, use("roll", 1)).result.items[0]).toMatchObject({ value: n(1), periodStart: T0 + 2 * DAY, nextReset: T0 + 9 * DAY });
    expect(h.store.getMeter("u", "roll")).toMatchObject({ resetRule: "604800000ms", judgedAt: T0 + 2 * DAY });
  });

  it("a meter whose period had ended under the rule it was written under is not revived by a longer one", () => {
    const h = createHarness(policy());
    h.run(allow, use("roll", 8));
    h.policy = policy(20, rolling(7 * DAY));
    h.now = T0 + 2 * DAY;
    const r = h.run(allow, use("roll", 5)).result.items[0];
    expect(r).toMatchObject({ value: n(5), periodStart: T0 + 2 * DAY, nextReset: T0 + 9 * DAY });
  });
});

describe("thresholds", () => {
  it("fire once per period when first reached, and clear on a decrease", () => {
    const h = createHarness(policy());
    const types = (amount: number) =>
      h.run(record, use("soft", amount)).events.flatMap((e) => (e.type === "meter-threshold" || e.type === "meter-threshold-cleared" ? [`${e.type}:${e.threshold}`] : []));
    expect(types(49)).toEqual([]);
    expect(types(1)).toEqual(["meter-threshold:50"]);
    expect(types(10)).toEqual([]);
    expect(types(45)).toEqual(["meter-threshold:80", "meter-threshold:100"]);
    expect(types(5)).toEqual([]);
    expect(types(-35)).toEqual(["meter-threshold-cleared:80", "meter-threshold-cleared:100"]);
    expect(h.store.getMeter("u", "soft")?.thresholdsReached).toEqual([50]);
    expect(types(0.5)).toEqual([]);
  });

  it("a limit of 0 has no thresholds", () => {
    const h = createHarness(policy());
    expect(h.run(record, use("zero", 5)).events.map((e) => e.type)).toEqual(["customer-set", "meter-overage"]);
  });

  it("a reset clears the thresholds reached", () => {
    const h = createHarness(
      buildPolicy({ p: { isDefault: true, entitlements: { t: { limit: { credit: token, mode: "soft", value: 10, thresholds: [50], reset: rolling(DAY) } } } } }),
    );
    h.run(allow, use("t", 6));
    h.now += DAY;
    const out = h.run(allow, use("t", 1));
    expect(out.events.map((e) => e.type)).toEqual(["meter-reset", "meter-threshold-cleared", "meter-changed"]);
    expect(h.store.getMeter("u", "t")?.thresholdsReached).toEqual([]);
  });
});
