/**
 * A policy swap that changes a limit's reset rule neither zeroes a running meter nor revives an
 * ended one (createEngine tracks the swap; the pure rules judge the stored period through it).
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEngine, type ItemView, type StatePort } from "../../src/engine/index.js";
import { loadPolicy, type CompiledPolicy, type ResetRule } from "../../src/policy/index.js";
import { createLmdbStore } from "../../src/store/index.js";
import { createMemoryStore } from "../../src/store/memory-store.js";
import { buildPolicy, credit, daily, DAY, monthly1, n, rolling } from "./harness.js";

const token = credit("token");
const hourly: ResetRule = { kind: "calendar", schedule: { kind: "hourly" }, text: "hourly" };
const policyWith = (reset: ResetRule | undefined, version: string, value = 100): CompiledPolicy =>
  buildPolicy({ free: { isDefault: true, entitlements: { t: { limit: { credit: token, value, ...(reset ? { reset } : {}) } } } } }, version);

const NOV_21_10H = Date.UTC(2026, 10, 21, 10, 0, 0);

/**
 * The store as a version that kept no reset-rule history left it: every row, no history (so an
 * engine over it judges a changed rule from the meter rows alone, as after an import).
 */
const withoutHistory = <S extends StatePort>(store: S): S => ({ ...store, resetRuleHistory: () => undefined });
const NOV_1 = Date.UTC(2026, 10, 1);
const NOV_21 = Date.UTC(2026, 10, 21);

function setup(first: CompiledPolicy, start: number) {
  const store = createMemoryStore();
  const s = { policy: first, now: start };
  const engine = createEngine({ store, policy: () => s.policy, clock: () => s.now, newId: () => "id" });
  const meter = async (): Promise<Extract<ItemView, { kind: "metered" }>> => {
    const [v] = await engine.getMeters("u", ["t"]);
    if (v?.kind !== "metered") throw new Error(`not metered: ${JSON.stringify(v)}`);
    return v;
  };
  const use = (amount: number) => engine.allow({ customerId: "u", items: [{ entitlement: "t", amount }] });
  return { s, engine, meter, use, store };
}

describe("reset rule changes across policy swaps", () => {
  it("monthly:1 → daily keeps a meter whose month is running, in the day of the change, and resets it at the next midnight", async () => {
    const { s, meter, use } = setup(policyWith(monthly1, "a"), NOV_21_10H);
    await use(40);
    expect(await meter()).toMatchObject({ value: n(40), periodStart: NOV_1 });

    s.policy = policyWith(daily, "b");
    s.now = NOV_21_10H + 60_000;
    expect(await meter()).toMatchObject({ value: n(40), periodStart: NOV_21, nextReset: NOV_21 + DAY });
    // A further swap that keeps the rule (a limit change) keeps the carried period.
    s.policy = policyWith(daily, "c", 200);
    expect(await meter()).toMatchObject({ value: n(40), limit: n(200), periodStart: NOV_21 });
    const r = await use(5);
    expect(r.items[0]).toMatchObject({ value: n(45), periodStart: NOV_21 });

    s.now = NOV_21 + DAY + 1;
    expect(await meter()).toMatchObject({ value: n(0), periodStart: NOV_21 + DAY });
  });

  it("an untouched meter is carried from the moment of the change, not from when it is next read", async () => {
    const { s, meter, use } = setup(policyWith(monthly1, "a"), Date.UTC(2026, 10, 3));
    await use(7);
    s.policy = policyWith(daily, "b");
    s.now = NOV_21_10H;
    expect(await meter()).toMatchObject({ value: n(7), periodStart: NOV_21 });
    s.now = NOV_21 + 3 * DAY;
    expect(await meter()).toMatchObject({ value: n(0) });
  });

  it("monthly:1 → no reset does not revive last month's meter", async () => {
    const { s, meter, use } = setup(policyWith(monthly1, "a"), Date.UTC(2026, 9, 20));
    await use(30);
    s.now = NOV_21_10H;
    s.policy = policyWith(undefined, "b");
    // Its month had ended before the change; judged by "never resets" alone the 30 would come back.
    expect(await meter()).toMatchObject({ value: n(0) });
    const r = await use(1);
    expect(r.items[0]).toMatchObject({ value: n(1) });
  });

  it("daily → monthly:1 counts an earlier day of this month toward the month", async () => {
    const { s, meter, use } = setup(policyWith(daily, "a"), Date.UTC(2026, 10, 5, 9));
    await use(30);
    s.now = NOV_21_10H;
    s.policy = policyWith(monthly1, "b");
    expect(await meter()).toMatchObject({ value: n(30), periodStart: NOV_1 });
  });

  it("daily → monthly:1 keeps today's usage for the rest of the month", async () => {
    const { s, meter, use } = setup(policyWith(daily, "a"), Date.UTC(2026, 10, 21, 8));
    await use(30);
    s.now = NOV_21_10H;
    s.policy = policyWith(monthly1, "b");
    expect(await meter()).toMatchObject({ value: n(30), periodStart: NOV_1, nextReset: Date.UTC(2026, 11, 1) });
  });

  it("a chain of changes (monthly → hourly → never resets) is judged through every rule", async () => {
    const { s, meter, use } = setup(policyWith(monthly1, "a"), Date.UTC(2026, 10, 2));
    await use(9);
    s.now = NOV_21_10H + 60_000;
    s.policy = policyWith(hourly, "b");
    expect(await meter()).toMatchObject({ value: n(9), periodStart: NOV_21_10H });
    // The hour of the change is over before the next change: the 9 had reset under `hourly`.
    s.now = NOV_21_10H + 2 * 3_600_000;
    s.policy = policyWith(undefined, "c");
    expect(await meter()).toMatchObject({ value: n(0) });
  });

  it("a rolling period change carries a running meter from the moment of the change", async () => {
    const start = Date.UTC(2026, 10, 20, 12);
    const { s, meter, use } = setup(policyWith(rolling(30 * DAY), "a"), start);
    await use(3);
    s.now = NOV_21_10H;
    s.policy = policyWith(rolling(DAY), "b");
    expect(await meter()).toMatchObject({ value: n(3), periodStart: NOV_21_10H, nextReset: NOV_21_10H + DAY });
  });

  // Compiled from policy text: a rolling rule keeps the author's spelling, and only the meaning
  // (the period length, the calendar schedule) may decide whether the rule changed.
  const limitText = (reset: string): CompiledPolicy => {
    const fields = reset === "" ? "" : `, ${reset}`;
    const text = `policy:\n  credits:\n    token: {}\n  plans:\n    free:\n      default: true\n      entitlements:\n        t:\n          limit: { credit: token, value: 100, resets: true${fields} }\n`;
    const r = loadPolicy(text, { version: reset });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    return r.policy;
  };
  it.each([
    // [before, after ("" = the default 30days), period length]
    [`reset_inc: "1day"`, `reset_inc: "24hr"`, DAY],
    ["", `reset_inc: "720hr"`, 30 * DAY],
    [`reset_inc: "30days"`, "", 30 * DAY],
    [`reset_sch: "weekly:monday"`, `reset_sch: " Weekly:MON "`, 7 * DAY],
  ] as const)("rewriting a rule with the same meaning ('%s' → '%s') does not move a running meter's period", async (before, after, length) => {
    // A Monday midnight, so the weekly period starts at the meter's start too.
    const start = Date.UTC(2026, 10, 23);
    const { s, meter, use } = setup(limitText(before), start);
    await use(3);
    s.now = start + 6 * 3_600_000;
    s.policy = limitText(after);
    expect(await meter()).toMatchObject({ value: n(3), periodStart: start, nextReset: start + length });
  });
});

/**
 * Changes no policy swap of the same plan shows: a restart, a plan removed, the default moved. The
 * meter's row names the rule its period was computed under; until it is counted under the new
 * rule it lives by that one.
 */
describe("reset rules named by the meter's row", () => {
  const twoPlans = (pro: ResetRule | undefined, free: ResetRule | undefined, version: string, withPro = true): CompiledPolicy =>
    buildPolicy(
      {
        ...(withPro ? { pro: { entitlements: { t: { limit: { credit: token, value: 100, ...(pro ? { reset: pro } : {}) } } } } } : {}),
        free: { isDefault: true, entitlements: { t: { limit: { credit: token, value: 100, ...(free ? { reset: free } : {}) } } } },
      },
      version,
    );

  it("a restart between a rule change and the next use: the store's history dates the change at the first operation", async () => {
    const { use, store } = setup(policyWith(monthly1, "a"), NOV_21_10H);
    await use(40);
    expect(store.getMeter("u", "t")?.resetRule).toBe("monthly:1");
    // A new engine over the same store sees "b" from its first call; the store kept "a".
    const later = { policy: policyWith(daily, "b"), now: NOV_21_10H + 60_000 };
    const engine = createEngine({ store, policy: () => later.policy, clock: () => later.now, newId: () => "id" });
    const meter = async () => (await engine.getMeters("u", ["t"]))[0];
    expect(await meter()).toMatchObject({ value: n(40), periodStart: NOV_21, nextReset: NOV_21 + DAY });
    const r = await engine.allow({ customerId: "u", items: [{ entitlement: "t", amount: 1 }] });
    expect(r.items[0]).toMatchObject({ value: n(41), periodStart: NOV_21 });
    // A swap with a known moment: the decision writes the meter under the live rule.
    expect(store.getMeter("u", "t")).toMatchObject({ value: n(41), resetRule: "daily", periodStart: NOV_21, judgedAt: NOV_21_10H + 60_000 });
    later.now = NOV_21 + DAY;
    expect(await meter()).toMatchObject({ value: n(0), periodStart: NOV_21 + DAY });
  });

  it("a rule changed before a data dir kept its history does not zero a running meter", async () => {
    const { use, store } = setup(policyWith(monthly1, "a"), NOV_21_10H);
    await use(40);
    expect(store.getMeter("u", "t")?.resetRule).toBe("monthly:1");
    // As a version that kept no history left the dir: "b" is all the new engine knows of.
    const later = { policy: policyWith(daily, "b"), now: NOV_21_10H + 60_000 };
    const engine = createEngine({ store: withoutHistory(store), policy: () => later.policy, clock: () => later.now, newId: () => "id" });
    const meter = async () => (await engine.getMeters("u", ["t"]))[0];
    expect(await meter()).toMatchObject({ value: n(40), periodStart: NOV_21, nextReset: NOV_21 + DAY });
    const r = await engine.allow({ customerId: "u", items: [{ entitlement: "t", amount: 1 }] });
    expect(r.items[0]).toMatchObject({ value: n(41), periodStart: NOV_21 });
    // Carried, not rewritten: the row keeps its rule, start and judgement time until the day ends.
    expect(store.getMeter("u", "t")).toMatchObject({ value: n(41), resetRule: "monthly:1", periodStart: NOV_1, judgedAt: NOV_21_10H });
    later.now = NOV_21 + DAY;
    expect(await meter()).toMatchObject({ value: n(0), periodStart: NOV_21 + DAY });
  });

  it("a month that had ended is not revived by a restart under a rule that never resets", async () => {
    for (const kept of [true, false]) {
      const { use, store } = setup(policyWith(monthly1, "a"), Date.UTC(2026, 9, 20));
      await use(30);
      const engine = createEngine({ store: kept ? store : withoutHistory(store), policy: () => policyWith(undefined, "b"), clock: () => NOV_21_10H, newId: () => "id" });
      expect((await engine.getMeters("u", ["t"]))[0], `history kept: ${kept}`).toMatchObject({ value: n(0) });
    }
  });

  it("a plan removed from the policy: its customers' meters carry into the default plan's rule", async () => {
    const { s, engine, meter, use, store } = setup(twoPlans(monthly1, daily, "a"), NOV_21_10H);
    await engine.upsertCustomer({ id: "u", plan: "pro" });
    await use(40);
    s.policy = twoPlans(monthly1, daily, "b", false);
    s.now = NOV_21_10H + 60_000;
    expect(await meter()).toMatchObject({ value: n(40), periodStart: NOV_21, nextReset: NOV_21 + DAY });
    expect(store.getMeter("u", "t")).toMatchObject({ value: n(40), resetRule: "monthly:1" }); // reads write nothing
    // The day it was last counted in has ended: the count is over, though its month still runs.
    s.now = NOV_21 + DAY + 60_000;
    expect(await meter()).toMatchObject({ value: 0n, periodStart: NOV_21 + DAY });
    expect((await use(2)).items[0]).toMatchObject({ value: n(2), periodStart: NOV_21 + DAY });
    expect(store.getMeter("u", "t")).toMatchObject({ resetRule: "daily", periodStart: NOV_21 + DAY, judgedAt: NOV_21 + DAY + 60_000 });
  });

  it("the default moved to a plan with another rule: a running month carries into the day; a day that ended is over", async () => {
    const defaultPro = (version: string): CompiledPolicy =>
      buildPolicy(
        {
          pro: { isDefault: true, entitlements: { t: { limit: { credit: token, value: 100, reset: daily } } } },
          free: { entitlements: { t: { limit: { credit: token, value: 100, reset: monthly1 } } } },
        },
        version,
      );
    const { s, meter, use } = setup(twoPlans(monthly1, monthly1, "a"), NOV_21_10H);
    await use(40);
    s.policy = defaultPro("b");
    s.now = NOV_21_10H + 60_000;
    expect(await meter()).toMatchObject({ value: n(40), periodStart: NOV_21 });

    const back = setup(defaultPro("a"), Date.UTC(2026, 10, 19, 8));
    await back.use(7);
    back.s.policy = twoPlans(monthly1, monthly1, "b");
    back.s.now = NOV_21_10H;
    // Its day ended on the 20th, and the month's new period started then. (A policy swap the
    // engine saw would count it toward the month: there the moment of the change is known.)
    expect(await back.meter()).toMatchObject({ value: 0n, periodStart: Date.UTC(2026, 10, 20), nextReset: Date.UTC(2026, 11, 1) });
  });

  it("a meter its plan no longer meters keeps the rule it was written under when a reservation on it settles", async () => {
    const { s, engine, store } = setup(policyWith(monthly1, "a"), NOV_21_10H);
    const held = await engine.reserve({ customerId: "u", items: [{ entitlement: "t", amount: 5 }] });
    s.policy = buildPolicy({ free: { isDefault: true, entitlements: { t: {} } } }, "b");
    await engine.settle({ reservationId: held.reservationId as string, actual: [{ entitlement: "t", amount: 3 }] });
    expect(store.getMeter("u", "t")).toMatchObject({ value: n(3), resetRule: "monthly:1", periodStart: NOV_1 });
  });

  it("a row naming a rule no key stands for is refused, not judged by a guess", async () => {
    const { use, store } = setup(policyWith(monthly1, "a"), NOV_21_10H);
    await use(1);
    const m = store.getMeter("u", "t");
    if (m === undefined) throw new Error("no meter");
    await store.commit([{ kind: "meter-put", meter: { ...m, resetRule: "fortnightly" } }], []);
    await expect(use(1)).rejects.toMatchObject({ code: "INTERNAL", message: expect.stringContaining('stored meter (u, t): reset rule "fortnightly" is not a reset rule') });
    expect(store.getMeter("u", "t")?.value).toBe(n(1));
  });
});

/** Over a real LMDB store, so that a restart is a new engine over the same rows. */
describe("reset rules named by the row, with the swaps the engine saw", () => {
  const text = (rules: { free: string; pro?: string }, version: string): CompiledPolicy => {
    const limit = (rule: string) => `{ t: { limit: { credit: token, mode: hard, value: 100${rule === "never" ? "" : `, resets: true, ${rule}`} } } }`;
    const r = loadPolicy(
      `policy:\n  credits: { token: {} }\n  plans:\n${rules.pro === undefined ? "" : `    pro:\n      entitlements: ${limit(rules.pro)}\n`}    free:\n      default: true\n      entitlements: ${limit(rules.free)}\n`,
      { version },
    );
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    return r.policy;
  };
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  function lmdbSetup(policy: CompiledPolicy, now: number) {
    const dir = mkdtempSync(join(tmpdir(), "limitr-rules-"));
    dirs.push(dir);
    const s = { policy, now };
    const open = (keptHistory = true) => {
      const store = createLmdbStore({ path: dir });
      const port = keptHistory ? store : withoutHistory(store);
      return { store, engine: createEngine({ store: port, policy: () => s.policy, clock: () => s.now, newId: () => randomUUID() }) };
    };
    let r = open();
    return {
      s,
      get engine() {
        return r.engine;
      },
      async restart() {
        await r.store.close();
        r = open();
      },
      /** A restart onto the dir as a version that kept no reset-rule history would leave it. */
      async upgrade() {
        await r.store.close();
        r = open(false);
      },
      close: () => r.store.close(),
      meter: async (customerId = "u") => (await r.engine.getMeters(customerId, ["t"]))[0],
      use: (amount: number, customerId = "u") => r.engine.allow({ customerId, items: [{ entitlement: "t", amount }] }),
    };
  }

  it("a month carried into the day of its last use: denied that day, and the next day resets, as the answer said", async () => {
    const w = lmdbSetup(text({ free: "reset_sch: monthly:1" }, "a"), Date.UTC(2026, 10, 10, 9));
    await w.use(95);
    w.s.policy = text({ free: "reset_sch: daily" }, "b");
    await w.restart();
    w.s.now = Date.UTC(2026, 10, 10, 12);
    const denied = await w.use(10);
    expect(denied).toMatchObject({ allowed: false, reason: "HARD_LIMIT" });
    expect(denied.items[0]).toMatchObject({ value: n(95), periodStart: Date.UTC(2026, 10, 10), nextReset: Date.UTC(2026, 10, 11) });
    w.s.now = Date.UTC(2026, 10, 11, 12);
    expect((await w.use(10)).items[0]).toMatchObject({ value: n(10), periodStart: Date.UTC(2026, 10, 11) });
    await w.close();
  });

  it("a month last counted on an earlier day carries into the day a daily rule found after a restart is first used", async () => {
    const w = lmdbSetup(text({ free: "reset_sch: monthly:1" }, "a"), Date.UTC(2026, 10, 3, 12));
    await w.use(95);
    w.s.policy = text({ free: "reset_sch: daily" }, "b");
    await w.restart();
    // The dir's history knows the month ran under monthly:1 until now: a swap, as if seen live.
    w.s.now = Date.UTC(2026, 10, 10, 12);
    expect(await w.meter()).toMatchObject({ value: n(95), periodStart: Date.UTC(2026, 10, 10), nextReset: Date.UTC(2026, 10, 11) });
    expect(await w.use(10)).toMatchObject({ allowed: false });
    w.s.now = Date.UTC(2026, 10, 11, 12);
    expect((await w.use(10)).items[0]).toMatchObject({ value: n(10), periodStart: Date.UTC(2026, 10, 11) });
    await w.close();
  });

  it("a swap the engine saw before a restart still dates the meters it left untouched", async () => {
    const w = lmdbSetup(text({ free: "reset_sch: monthly:1" }, "a"), Date.UTC(2026, 10, 3, 12));
    await w.use(95);
    w.s.policy = text({ free: "reset_sch: daily" }, "b");
    w.s.now = Date.UTC(2026, 10, 10, 12);
    await w.meter("someone");
    w.s.now = Date.UTC(2026, 10, 10, 13);
    expect(await w.meter()).toMatchObject({ value: n(95), periodStart: Date.UTC(2026, 10, 10) });
    await w.restart();
    // Judged from its row alone, the count would be over: its day (the 3rd) ended long ago.
    expect(await w.meter()).toMatchObject({ value: n(95), periodStart: Date.UTC(2026, 10, 10), nextReset: Date.UTC(2026, 10, 11) });
    // And the next swap after the restart chains onto it: the day's count carries into the week.
    w.s.policy = text({ free: "reset_sch: weekly:mon" }, "c");
    w.s.now = Date.UTC(2026, 10, 10, 14);
    await w.restart();
    expect(await w.meter()).toMatchObject({ value: n(95), periodStart: Date.UTC(2026, 10, 9), nextReset: Date.UTC(2026, 10, 16) });
    await w.close();
  });

  it("a month last counted on an earlier day is over under a daily rule found on a dir that kept no history", async () => {
    const w = lmdbSetup(text({ free: "reset_sch: monthly:1" }, "a"), Date.UTC(2026, 10, 3, 12));
    await w.use(95);
    w.s.policy = text({ free: "reset_sch: daily" }, "b");
    await w.upgrade();
    w.s.now = Date.UTC(2026, 10, 10, 12);
    expect(await w.meter()).toMatchObject({ value: 0n, periodStart: Date.UTC(2026, 10, 10) });
    expect((await w.use(10)).items[0]).toMatchObject({ value: n(10) });
    await w.close();
  });

  it.each(["reset_sch: weekly:wed", "never", "reset_inc: 7days", "reset_sch: monthly:1"])(
    "a count an unseen change had ended stays ended through a later swap the engine saw (to %s)",
    async (third) => {
      const w = lmdbSetup(text({ free: "reset_sch: monthly:1" }, "a"), Date.UTC(2026, 10, 21, 10));
      await w.use(90);
      w.s.policy = text({ free: "reset_sch: daily" }, "b");
      await w.upgrade();
      w.s.now = Date.UTC(2026, 10, 21, 11);
      expect(await w.meter()).toMatchObject({ value: n(90), nextReset: Date.UTC(2026, 10, 22) });
      w.s.now = Date.UTC(2026, 10, 22, 12);
      expect(await w.meter()).toMatchObject({ value: 0n });
      w.s.policy = text({ free: third }, "c");
      w.s.now = Date.UTC(2026, 10, 23, 12);
      expect(await w.meter()).toMatchObject({ value: 0n });
      expect((await w.use(50)).allowed).toBe(true);
      await w.close();
    },
  );

  // alice's row (monthly:1, set on the 20th under pro) does not say when she came to free: before
  // free's swap, when free's daily rule would have ended her count at midnight, or after. In doubt
  // the count is dropped: over if free's rule then would have ended it before the swap, else judged
  // against free's rule now, as an unseen change.
  it.each([
    ["daily", "never", Date.UTC(2026, 10, 25), 0n],
    ["never", "reset_sch: daily", Date.UTC(2026, 10, 21, 12), 0n],
    ["reset_sch: weekly:mon", "never", Date.UTC(2026, 10, 25), n(80)],
  ] as const)("another plan's swap (free: %s → %s) drops a count only where either plan's rule would have", async (before, after, moved, value) => {
    const rule = (r: string) => (r === "daily" ? "reset_sch: daily" : r);
    const w = lmdbSetup(text({ free: rule(before), pro: "reset_sch: monthly:1" }, "a"), Date.UTC(2026, 10, 19));
    await w.engine.upsertCustomer({ id: "acme", type: "org", plan: "pro" });
    await w.engine.upsertCustomer({ id: "alice", refs: ["acme"] });
    w.s.now = Date.UTC(2026, 10, 20, 10);
    await w.use(80, "alice");
    w.s.policy = text({ free: rule(after), pro: "reset_sch: monthly:1" }, "b");
    w.s.now = Date.UTC(2026, 10, 21, 10);
    await w.meter("someone");
    w.s.now = moved;
    await w.engine.setCustomerPlan({ customerId: "acme", plan: "free", resetMeters: false });
    expect(await w.meter("alice")).toMatchObject({ value });
    await w.restart();
    expect(await w.meter("alice")).toMatchObject({ value });
    await w.close();
  });

  it("a count that ended under the plan a customer moved into stays ended when that plan's rule is swapped", async () => {
    const w = lmdbSetup(text({ free: "reset_sch: daily", pro: "reset_sch: monthly:1" }, "a"), Date.UTC(2026, 10, 19));
    await w.engine.upsertCustomer({ id: "acme", type: "org", plan: "pro" });
    await w.engine.upsertCustomer({ id: "alice", refs: ["acme"] });
    w.s.now = Date.UTC(2026, 10, 20, 10);
    await w.use(80, "alice");
    w.s.now = Date.UTC(2026, 10, 20, 12);
    await w.engine.setCustomerPlan({ customerId: "acme", plan: "free", resetMeters: false });
    expect(await w.meter("alice")).toMatchObject({ value: n(80), nextReset: Date.UTC(2026, 10, 21) });
    w.s.now = Date.UTC(2026, 10, 21, 10);
    expect(await w.meter("alice")).toMatchObject({ value: 0n });
    w.s.policy = text({ free: "never", pro: "reset_sch: monthly:1" }, "b");
    w.s.now = Date.UTC(2026, 10, 21, 11);
    expect(await w.meter("alice")).toMatchObject({ value: 0n });
    expect((await w.engine.check({ customerId: "alice", items: [{ entitlement: "t", amount: 30 }] })).allowed).toBe(true);
    await w.close();
  });

  it("a customer moved to a plan with the same rule keeps its count, though that plan's rule was swapped before", async () => {
    const w = lmdbSetup(text({ free: "reset_sch: daily", pro: "reset_sch: weekly:mon" }, "a"), Date.UTC(2026, 10, 23, 8));
    await w.engine.upsertCustomer({ id: "alice", plan: "pro" });
    w.s.now = Date.UTC(2026, 10, 23, 9);
    await w.use(80, "alice");
    w.s.policy = text({ free: "reset_sch: weekly:mon", pro: "reset_sch: weekly:mon" }, "b");
    w.s.now = Date.UTC(2026, 10, 24, 10);
    await w.meter("someone");
    w.s.now = Date.UTC(2026, 10, 24, 11);
    await w.engine.setCustomerPlan({ customerId: "alice", plan: "free", resetMeters: false });
    expect(await w.meter("alice")).toMatchObject({ value: n(80), periodStart: Date.UTC(2026, 10, 23) });
    expect((await w.use(30, "alice")).allowed).toBe(false);
    await w.restart();
    expect(await w.meter("alice")).toMatchObject({ value: n(80) });
    await w.close();
  });

  it("a customer moved to a plan whose swapped-in rule its row already names keeps its count", async () => {
    const w = lmdbSetup(text({ free: "reset_sch: daily", pro: "reset_sch: monthly:1" }, "a"), Date.UTC(2026, 10, 19));
    await w.engine.upsertCustomer({ id: "alice", plan: "pro" });
    w.s.now = Date.UTC(2026, 10, 20, 10);
    await w.use(80, "alice");
    w.s.policy = text({ free: "reset_sch: monthly:1", pro: "reset_sch: daily" }, "b");
    w.s.now = Date.UTC(2026, 10, 21, 10);
    await w.meter("someone");
    expect(await w.meter("alice")).toMatchObject({ value: n(80) });
    w.s.now = Date.UTC(2026, 10, 21, 11);
    await w.engine.setCustomerPlan({ customerId: "alice", plan: "free", resetMeters: false });
    expect(await w.meter("alice")).toMatchObject({ value: n(80), periodStart: NOV_1 });
    expect((await w.use(30, "alice")).allowed).toBe(false);
    await w.close();
  });

  it("a count the old plan had ended stays ended when the customer moves to a plan with the same rule", async () => {
    const w = lmdbSetup(text({ free: "reset_sch: monthly:1", pro: "reset_sch: monthly:1" }, "a"), Date.UTC(2026, 10, 19));
    await w.engine.upsertCustomer({ id: "alice", plan: "pro" });
    w.s.now = Date.UTC(2026, 10, 20, 10);
    await w.use(80, "alice");
    w.s.policy = text({ free: "reset_sch: monthly:1", pro: "reset_sch: daily" }, "b");
    await w.restart();
    w.s.now = Date.UTC(2026, 10, 20, 11);
    expect(await w.meter("alice")).toMatchObject({ value: n(80), nextReset: Date.UTC(2026, 10, 21) });
    w.s.policy = text({ free: "reset_sch: daily", pro: "reset_sch: daily" }, "c");
    w.s.now = Date.UTC(2026, 10, 21, 0, 30);
    await w.meter("someone");
    w.s.now = Date.UTC(2026, 10, 21, 0, 45);
    expect(await w.meter("alice")).toMatchObject({ value: 0n });
    w.s.now = Date.UTC(2026, 10, 21, 1);
    await w.engine.setCustomerPlan({ customerId: "alice", plan: "free", resetMeters: false });
    expect(await w.meter("alice")).toMatchObject({ value: 0n });
    expect((await w.use(30, "alice")).items[0]).toMatchObject({ value: n(30) });
    await w.close();
  });

  it("a count kept across an unseen change keeps its end when the customer moves to a same-rule plan swapped since", async () => {
    const w = lmdbSetup(text({ free: "reset_sch: daily", pro: "reset_sch: daily" }, "a"), Date.UTC(2026, 10, 21, 9));
    await w.engine.upsertCustomer({ id: "alice", plan: "pro" });
    await w.engine.upsertCustomer({ id: "bob", plan: "pro" });
    w.s.now = Date.UTC(2026, 10, 21, 10);
    await w.use(40, "alice");
    await w.use(40, "bob");
    w.s.policy = text({ free: "reset_sch: daily", pro: "reset_sch: monthly:1" }, "b");
    await w.upgrade();
    w.s.now = Date.UTC(2026, 10, 21, 11);
    await w.meter("someone");
    w.s.policy = text({ free: "reset_sch: monthly:1", pro: "reset_sch: monthly:1" }, "c");
    w.s.now = Date.UTC(2026, 10, 21, 12);
    await w.meter("someone");
    w.s.now = Date.UTC(2026, 10, 21, 13);
    await w.engine.setCustomerPlan({ customerId: "alice", plan: "free", resetMeters: false });
    expect(await w.meter("alice")).toMatchObject({ value: n(40), nextReset: Date.UTC(2026, 10, 22) });
    w.s.now = Date.UTC(2026, 10, 22, 10);
    expect(await w.meter("bob")).toMatchObject({ value: 0n });
    expect(await w.meter("alice")).toMatchObject({ value: 0n });
    expect((await w.use(70, "alice")).allowed).toBe(true);
    await w.close();
  });

  it("a meter whose rolling window passed keeps its cadence when the customer moves to a plan with the same rule", async () => {
    const w = lmdbSetup(text({ free: "reset_inc: 10days", pro: "reset_inc: 10days" }, "a"), Date.UTC(2026, 10, 1));
    await w.engine.upsertCustomer({ id: "alice", plan: "free" });
    await w.use(10, "alice");
    w.s.now = Date.UTC(2026, 10, 16);
    await w.engine.setCustomerPlan({ customerId: "alice", plan: "pro", resetMeters: false });
    expect(await w.meter("alice")).toMatchObject({ value: 0n, periodStart: Date.UTC(2026, 10, 11), nextReset: Date.UTC(2026, 10, 21) });
    await w.close();
  });

  it("a count still kept under an unseen change goes on through a later swap the engine saw", async () => {
    const w = lmdbSetup(text({ free: "reset_sch: monthly:1" }, "a"), Date.UTC(2026, 10, 21, 10));
    await w.use(90);
    w.s.policy = text({ free: "reset_sch: daily" }, "b");
    await w.upgrade();
    w.s.now = Date.UTC(2026, 10, 21, 11);
    expect(await w.meter()).toMatchObject({ value: n(90) });
    // The same day, daily → weekly:mon: the day's count carries into the week, from the swap.
    w.s.policy = text({ free: "reset_sch: weekly:mon" }, "c");
    w.s.now = Date.UTC(2026, 10, 21, 12);
    expect(await w.meter()).toMatchObject({ value: n(90), periodStart: Date.UTC(2026, 10, 16), nextReset: Date.UTC(2026, 10, 23) });
    await w.close();
  });

  it("a swap the engine saw dates a row by when it was last judged, not by its calendar period's start", async () => {
    // Both rows are written under monthly:1 at noon on the 21st, after a swap into it at 10:00; only
    // what the plan had before that swap differs. The next swap, to daily, is the row's.
    for (const before of ["reset_sch: monthly:1", "reset_sch: daily"]) {
      const w = lmdbSetup(text({ free: before }, "a"), Date.UTC(2026, 10, 21, 9));
      await w.meter("someone");
      w.s.policy = text({ free: "reset_sch: monthly:1" }, "b");
      w.s.now = Date.UTC(2026, 10, 21, 10);
      await w.meter("someone");
      w.s.now = Date.UTC(2026, 10, 21, 12);
      await w.use(60);
      w.s.policy = text({ free: "reset_sch: daily" }, "c");
      w.s.now = Date.UTC(2026, 10, 22, 10);
      expect(await w.meter(), before).toMatchObject({ value: n(60), periodStart: Date.UTC(2026, 10, 22) });
      w.s.now = Date.UTC(2026, 10, 23, 10);
      expect(await w.meter(), before).toMatchObject({ value: 0n });
      expect((await w.use(50)).allowed, before).toBe(true);
      await w.close();
    }
  });

  it.each(["reset_sch: monthly:1", "reset_inc: 30days"])("monthly:1 → never resets, swapped while the month ran, keeps the count for good (rule before: %s)", async (first) => {
    const w = lmdbSetup(text({ free: first }, "a"), Date.UTC(2026, 10, 1));
    await w.meter("someone");
    w.s.policy = text({ free: "reset_sch: monthly:1" }, "b");
    w.s.now = Date.UTC(2026, 10, 4);
    await w.meter("someone");
    w.s.now = Date.UTC(2026, 10, 5);
    await w.use(60);
    w.s.policy = text({ free: "never" }, "c");
    w.s.now = Date.UTC(2026, 10, 30, 12);
    await w.meter("someone");
    w.s.now = Date.UTC(2026, 11, 5);
    expect(await w.meter()).toMatchObject({ value: n(60) });
    await w.close();
  });

  it("a swap back to the rule the row names does not revive a period the swap between had ended", async () => {
    const w = lmdbSetup(text({ free: "reset_inc: 30days" }, "a"), Date.UTC(2026, 10, 3, 12));
    await w.use(60);
    w.s.policy = text({ free: "reset_inc: 1day" }, "b");
    w.s.now = Date.UTC(2026, 10, 10, 12);
    expect(await w.meter()).toMatchObject({ value: n(60) });
    w.s.policy = text({ free: "reset_inc: 30days" }, "c");
    w.s.now = Date.UTC(2026, 10, 12, 12);
    // The day of the first swap ended on the 11th: the 60 are over.
    expect(await w.meter()).toMatchObject({ value: 0n });
    expect((await w.use(30)).items[0]).toMatchObject({ value: n(30), periodStart: Date.UTC(2026, 10, 12, 12) });
    w.s.policy = text({ free: "reset_sch: weekly:mon" }, "d");
    w.s.now = Date.UTC(2026, 10, 13, 12);
    expect(await w.meter()).toMatchObject({ value: n(30) });
    await w.restart();
    expect(await w.meter()).toMatchObject({ value: n(30) });
    await w.close();
  });

  it("a swap of another plan's rule does not date a meter written under this plan", async () => {
    const w = lmdbSetup(text({ free: "reset_inc: 1day", pro: "reset_inc: 1day" }, "a"), Date.UTC(2026, 10, 1, 12));
    await w.engine.upsertCustomer({ id: "acme", type: "org", plan: "pro" });
    await w.engine.upsertCustomer({ id: "alice", refs: ["acme"] });
    w.s.policy = text({ free: "reset_inc: 30days", pro: "reset_inc: 1day" }, "b");
    w.s.now = Date.UTC(2026, 10, 2, 12);
    await w.meter("someone");
    w.s.now = Date.UTC(2026, 10, 20, 12);
    await w.use(80, "alice");
    w.s.now = Date.UTC(2026, 10, 25, 12);
    await w.engine.setCustomerPlan({ customerId: "acme", plan: "free", resetMeters: false });
    // alice's day ended on the 21st, under the rule her row names; free's swap on the 2nd is not hers.
    expect(await w.meter("alice")).toMatchObject({ value: 0n });
    await w.restart();
    expect(await w.meter("alice")).toMatchObject({ value: 0n });
    await w.close();
  });
});

/** A change the sidecar did not see: the answer is the same whichever calls come first. */
describe("a count carried across an unseen rule change", () => {
  const text = (rule: string, version: string, plans = ""): CompiledPolicy => {
    const limit = rule === "never" ? "" : `, resets: true, ${rule}`;
    const r = loadPolicy(
      `policy:\n  credits: { token: {} }\n  plans:\n    free:\n      default: true\n      entitlements: { t: { limit: { credit: token, mode: hard, value: 100${limit} } }, x: {} }\n${plans}`,
      { version },
    );
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    return r.policy;
  };
  /** A new engine over `store` as a version that kept no history left it: the change is unseen. */
  const reopen = (store: ReturnType<typeof createMemoryStore>, policy: CompiledPolicy, at: { now: number }) =>
    createEngine({ store: withoutHistory(store), policy: () => policy, clock: () => at.now, newId: () => randomUUID() });

  it.each(["a Check", "a denied Allow", "a denied Allow of [t, z]", "a denied Allow of [z, t]"] as const)(
    "daily → monthly:1 unseen keeps the day's count to its end, whatever probes it first (%s)",
    async (probe) => {
      // z is another plan's: not entitled on free.
      const other = "    other:\n      entitlements: { z: {} }\n";
      const store = createMemoryStore();
      const at = { now: Date.UTC(2026, 10, 21, 9) };
      await reopen(store, text("reset_sch: daily", "a", other), at).allow({ customerId: "u", items: [{ entitlement: "t", amount: 90 }] });
      const engine = reopen(store, text("reset_sch: monthly:1", "b", other), at);
      at.now = Date.UTC(2026, 10, 21, 12);
      expect((await engine.getMeters("u", ["t"]))[0]).toMatchObject({ value: n(90), periodStart: NOV_1, nextReset: Date.UTC(2026, 10, 22) });
      const t = { entitlement: "t", amount: 20 };
      const z = { entitlement: "z" };
      const answer =
        probe === "a Check" ? await engine.check({ customerId: "u", items: [t] })
        : probe === "a denied Allow" ? await engine.allow({ customerId: "u", items: [t] })
        : probe === "a denied Allow of [t, z]" ? await engine.allow({ customerId: "u", items: [t, z] })
        : await engine.allow({ customerId: "u", items: [z, t] });
      expect(answer.allowed).toBe(false);
      // The reset the answers promised: a new period from then, to the month's end.
      at.now = Date.UTC(2026, 10, 22, 0, 0, 1);
      expect((await engine.getMeters("u", ["t"]))[0]).toMatchObject({ value: 0n, periodStart: Date.UTC(2026, 10, 22), nextReset: Date.UTC(2026, 11, 1) });
      expect((await engine.allow({ customerId: "u", items: [t] })).items[0]).toMatchObject({ value: n(20), periodStart: Date.UTC(2026, 10, 22) });
      const reset = store.readEvents(1, 100).map((e) => e.event).find((e) => e.type === "meter-reset");
      expect(reset).toMatchObject({ oldValue: n(90), newValue: 0n, periodStart: Date.UTC(2026, 10, 22) });
    },
  );

  it("monthly:1 → never resets unseen keeps the month's count to the month's end, denied call or not", async () => {
    const store = createMemoryStore();
    const at = { now: Date.UTC(2026, 10, 5) };
    await reopen(store, text("reset_sch: monthly:1", "a"), at).allow({ customerId: "u", items: [{ entitlement: "t", amount: 90 }] });
    const engine = reopen(store, text("never", "b"), at);
    at.now = Date.UTC(2026, 10, 30);
    expect((await engine.getMeters("u", ["t"]))[0]).toMatchObject({ value: n(90), nextReset: Date.UTC(2026, 11, 1) });
    expect((await engine.allow({ customerId: "u", items: [{ entitlement: "t", amount: 20 }] })).allowed).toBe(false);
    at.now = Date.UTC(2026, 11, 5);
    const after = await engine.allow({ customerId: "u", items: [{ entitlement: "t", amount: 20 }] });
    expect(after.items[0]).toMatchObject({ value: n(20), periodStart: Date.UTC(2026, 11, 5), nextReset: undefined });
  });

  it("usage settled while no plan metered the entitlement counts as of then when a daily plan meters it again", async () => {
    const plans = (pro: string) => `    pro:\n      entitlements: { ${pro} }\n`;
    const withPro = (pro: string, v: string) => text("reset_sch: daily", v, plans(pro));
    const store = createMemoryStore();
    const at = { now: Date.UTC(2026, 10, 20, 23) };
    const policy = { p: withPro("t: { limit: { credit: token, value: 1000, resets: true, reset_sch: monthly:1 } }, y: {}", "a") };
    const engine = createEngine({ store, policy: () => policy.p, clock: () => at.now, newId: () => randomUUID() });
    await engine.upsertCustomer({ id: "u", plan: "pro" });
    const held = await engine.reserve({ customerId: "u", items: [{ entitlement: "t", amount: 50 }] });
    policy.p = withPro("y: {}", "b");
    at.now = Date.UTC(2026, 10, 21, 2);
    await engine.settle({ reservationId: held.reservationId as string, actual: [{ entitlement: "t", amount: 50 }] });
    expect(store.getMeter("u", "t")).toMatchObject({ value: n(50), resetRule: "monthly:1", judgedAt: at.now });
    // Back on free, whose t resets daily: the 50 were counted today.
    at.now = Date.UTC(2026, 10, 21, 3);
    await engine.setCustomerPlan({ customerId: "u", plan: "free", resetMeters: false });
    expect((await engine.getMeters("u", ["t"]))[0]).toMatchObject({ value: n(50), periodStart: NOV_21 });
  });

  it("a judgement time past its own period's end (no decision writes one) stands for nothing: the period start does", async () => {
    const store = createMemoryStore();
    const at = { now: Date.UTC(2026, 10, 5) };
    await reopen(store, text("reset_sch: monthly:1", "a"), at).allow({ customerId: "u", items: [{ entitlement: "t", amount: 90 }] });
    const m = store.getMeter("u", "t");
    if (m === undefined) throw new Error("no meter");
    await store.commit([{ kind: "meter-put", meter: { ...m, judgedAt: Date.UTC(2030, 0, 1) } }], []);
    const engine = reopen(store, text("reset_sch: daily", "b"), at);
    for (const day of [21, 22, 25]) {
      at.now = Date.UTC(2026, 10, day, 12);
      expect((await engine.getMeters("u", ["t"]))[0], `Nov ${day}`).toMatchObject({ value: 0n });
      expect((await engine.check({ customerId: "u", items: [{ entitlement: "t", amount: 20 }] })).allowed).toBe(true);
    }
  });

  it("usage settled after its period ended while no plan metered it counts in a new period of the row's own rule", async () => {
    for (const back of ["reset_sch: daily", "reset_sch: monthly:1"]) {
      const pro = (t: string) => `    pro:\n      entitlements: { ${t}y: {} }\n`;
      const metered = (rule: string, v: string) => text("reset_sch: daily", v, pro(`t: { limit: { credit: token, value: 1000, resets: true, ${rule} } }, `));
      const store = createMemoryStore();
      const at = { now: Date.UTC(2026, 10, 20, 23) };
      const policy = { p: metered("reset_sch: daily", "a") };
      const engine = createEngine({ store, policy: () => policy.p, clock: () => at.now, newId: () => randomUUID() });
      await engine.upsertCustomer({ id: "u", plan: "pro" });
      const held = await engine.reserve({ customerId: "u", items: [{ entitlement: "t", amount: 50 }] });
      policy.p = text("reset_sch: daily", "b", pro(""));
      at.now = Date.UTC(2026, 10, 21, 2);
      await engine.settle({ reservationId: held.reservationId as string, actual: [{ entitlement: "t", amount: 50 }] });
      expect(store.getMeter("u", "t"), back).toMatchObject({ value: n(50), resetRule: "daily", periodStart: NOV_21, judgedAt: at.now });
      policy.p = metered(back, "c");
      at.now = Date.UTC(2026, 10, 21, 3);
      expect((await engine.getMeters("u", ["t"]))[0], back).toMatchObject({ value: n(50) });
    }
  });

  it("an imported judgement time outside the row's period start and now is held to them", async () => {
    const store = createMemoryStore();
    const at = { now: NOV_21_10H };
    await reopen(store, text("reset_sch: daily", "a"), at).allow({ customerId: "u", items: [{ entitlement: "t", amount: 90 }] });
    const m = store.getMeter("u", "t");
    if (m === undefined) throw new Error("no meter");
    const engine = reopen(store, text("reset_sch: monthly:1", "b"), at);
    await store.commit([{ kind: "meter-put", meter: { ...m, judgedAt: Date.UTC(2030, 0, 1) } }], []);
    expect((await engine.getMeters("u", ["t"]))[0]).toMatchObject({ value: n(90), periodStart: NOV_1, nextReset: Date.UTC(2026, 10, 22) });
    await store.commit([{ kind: "meter-put", meter: { ...m, judgedAt: Date.UTC(2026, 9, 31) } }], []);
    expect((await engine.getMeters("u", ["t"]))[0]).toMatchObject({ value: n(90), periodStart: NOV_1, nextReset: Date.UTC(2026, 10, 22) });
  });
});
