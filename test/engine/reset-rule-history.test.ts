/**
 * The reset-rule history a store keeps for the engine: what is written, when, how it is read back,
 * and what happens when it cannot be written or read.
 */
import { describe, expect, it } from "vitest";
import { createEngine, type StatePort, type Write } from "../../src/engine/index.js";
import { MAX_KEPT_CHANGES } from "../../src/engine/reset-rule-changes.js";
import { parseRuleHistory, storedRuleHistory, type ResetRuleHistory } from "../../src/engine/reset-rule-history.js";
import { LimitrError } from "../../src/errors/index.js";
import type { CompiledPolicy, ResetRule } from "../../src/policy/index.js";
import { open } from "lmdb";
import { join } from "node:path";
import { createLmdbStore } from "../../src/store/index.js";
import { createMemoryStore } from "../../src/store/memory-store.js";
import { tempDir } from "../store/temp-store.js";
import { buildPolicy, credit, daily, DAY, monthly1, n, rolling } from "./harness.js";

const token = credit("token");
const policyWith = (reset: ResetRule | undefined, version: string, extra: Record<string, ResetRule> = {}): CompiledPolicy =>
  buildPolicy(
    {
      free: { isDefault: true, entitlements: { t: { limit: { credit: token, value: 100, ...(reset ? { reset } : {}) } } } },
      ...Object.fromEntries(Object.entries(extra).map(([plan, r]) => [plan, { entitlements: { t: { limit: { credit: token, value: 100, reset: r } } } }])),
    },
    version,
  );
const NOV_3 = Date.UTC(2026, 10, 3, 12);
const NOV_10 = Date.UTC(2026, 10, 10, 12);

const stored = (store: StatePort): ResetRuleHistory => store.resetRuleHistory() as ResetRuleHistory;

describe("the reset-rule history", () => {
  it("is written at the first operation, again only when a swap changes a lineage, and read back as it was", async () => {
    const store = createMemoryStore();
    const s = { policy: policyWith(monthly1, "a"), now: NOV_3 };
    const engine = createEngine({ store, policy: () => s.policy, clock: () => s.now, newId: () => "id" });
    await engine.check({ customerId: "u", items: [{ entitlement: "t" }] });
    expect(stored(store)).toEqual({ since: NOV_3, lineages: [{ plan: "free", entitlement: "t", rule: "monthly:1", changes: [] }] });
    const first = store.resetRuleHistory();
    // A reload that changes no rule writes nothing.
    s.policy = policyWith(monthly1, "b");
    await engine.check({ customerId: "u", items: [{ entitlement: "t" }] });
    expect(store.resetRuleHistory()).toBe(first);
    s.policy = policyWith(daily, "c", { pro: { kind: "rolling", everyMs: DAY, text: "1day" } });
    s.now = NOV_10;
    await engine.check({ customerId: "u", items: [{ entitlement: "t" }] });
    s.policy = policyWith(undefined, "d", { pro: { kind: "rolling", everyMs: DAY, text: "24hr" } });
    s.now = NOV_10 + 1000;
    await engine.check({ customerId: "u", items: [{ entitlement: "t" }] });
    const history = stored(store);
    expect(history).toEqual({
      since: NOV_3,
      lineages: [
        { plan: "free", entitlement: "t", rule: "never", changes: [{ at: NOV_10 + 1000, rule: "daily" }, { at: NOV_10, rule: "monthly:1" }] },
        { plan: "pro", entitlement: "t", rule: "86400000ms", changes: [] },
      ],
    });
    const parsed = parseRuleHistory(history);
    if (!parsed.ok) throw new Error(parsed.message);
    expect(storedRuleHistory(parsed.history)).toEqual(history);
  });

  it("a clock set back never re-dates the stored history", async () => {
    const store = createMemoryStore();
    await createEngine({ store, policy: () => policyWith(monthly1, "a"), clock: () => NOV_3, newId: () => "id" }).getMeters("u", []);
    await createEngine({ store, policy: () => policyWith(daily, "b"), clock: () => NOV_10, newId: () => "id" }).getMeters("u", []);
    // A swap seen by a clock behind the last one is dated at it, so the chain stays newest first.
    await createEngine({ store, policy: () => policyWith(monthly1, "c"), clock: () => NOV_10 - DAY, newId: () => "id" }).getMeters("u", []);
    const kept = { since: NOV_3, lineages: [{ plan: "free", entitlement: "t", rule: "monthly:1", changes: [{ at: NOV_10, rule: "daily" }, { at: NOV_10, rule: "monthly:1" }] }] };
    expect(stored(store)).toEqual(kept);
    // A start whose clock is behind the whole history changes none of it.
    await createEngine({ store, policy: () => policyWith(monthly1, "c"), clock: () => NOV_3 - DAY, newId: () => "id" }).getMeters("u", []);
    expect(stored(store)).toEqual(kept);
  });

  it("a count from before a daily → monthly:1 → daily round trip is kept when the clock ran ahead at the second swap", async () => {
    const store = createMemoryStore();
    const at = { now: Date.UTC(2026, 10, 3, 10) };
    const policies = { a: policyWith(daily, "a"), b: policyWith(monthly1, "b"), c: policyWith(daily, "c") };
    const live = { p: policies.a };
    const engine = createEngine({ store, policy: () => live.p, clock: () => at.now, newId: () => "id" });
    await engine.allow({ customerId: "u", items: [{ entitlement: "t", amount: 90 }] });
    live.p = policies.b;
    at.now = Date.UTC(2026, 10, 3, 12);
    await engine.getMeters("someone", []);
    live.p = policies.c;
    at.now = NOV_10 + 2 * DAY;
    await engine.getMeters("someone", []);
    at.now = NOV_10 + 3_600_000;
    // The first swap, dated right, came after the row for certain: so did the second.
    expect((await engine.getMeters("u", ["t"]))[0]).toMatchObject({ value: n(90) });
    expect((await engine.allow({ customerId: "u", items: [{ entitlement: "t", amount: 90 }] })).allowed).toBe(false);
  });

  it("a restart whose clock is behind, then set right, keeps a count the swap carried", async () => {
    const store = createMemoryStore();
    const at = { now: Date.UTC(2026, 10, 9, 12) };
    await createEngine({ store, policy: () => policyWith(monthly1, "a"), clock: () => at.now, newId: () => "id" }).allow({ customerId: "u", items: [{ entitlement: "t", amount: 90 }] });
    at.now = NOV_10;
    expect((await createEngine({ store, policy: () => policyWith(daily, "b"), clock: () => at.now, newId: () => "id" }).getMeters("u", ["t"]))[0]).toMatchObject({ value: n(90) });
    at.now = Date.UTC(2026, 10, 8, 13);
    const engine = createEngine({ store, policy: () => policyWith(daily, "b"), clock: () => at.now, newId: () => "id" });
    await engine.getMeters("someone", []);
    at.now = NOV_10 + 3_900_000;
    expect((await engine.getMeters("u", ["t"]))[0]).toMatchObject({ value: n(90), periodStart: Date.UTC(2026, 10, 10) });
    expect((await engine.allow({ customerId: "u", items: [{ entitlement: "t", amount: 20 }] })).allowed).toBe(false);
  });

  it.each([
    ["after a restart", true],
    ["in the same process", false],
  ] as const)("a swap dated by a clock that ran ahead does not let a hard limit be passed once the clock is right (%s)", async (_name, restart) => {
    const store = createMemoryStore();
    await createEngine({ store, policy: () => policyWith(monthly1, "a"), clock: () => NOV_3, newId: () => "id" }).getMeters("u", []);
    // The swap to daily is first used while the clock is two days ahead.
    const at = { now: NOV_10 + 2 * DAY };
    // One policy object: the process sees no further swap when its clock is set right.
    const b = policyWith(daily, "b");
    const ahead = createEngine({ store, policy: () => b, clock: () => at.now, newId: () => "id" });
    await ahead.getMeters("u", []);
    const engine = restart ? createEngine({ store, policy: () => b, clock: () => at.now, newId: () => "id" }) : ahead;
    const answers: boolean[] = [];
    for (let i = 0; i < 5; i++) {
      at.now = NOV_10 + i * 1000;
      answers.push((await engine.allow({ customerId: "new", items: [{ entitlement: "t", amount: 60 }] })).allowed);
    }
    expect(answers).toEqual([true, false, false, false, false]);
    expect(store.getMeter("new", "t")).toMatchObject({ value: n(60), periodStart: Date.UTC(2026, 10, 10) });
  });

  it(`keeps at most ${MAX_KEPT_CHANGES} changes per lineage, however many swaps there were`, async () => {
    const store = createMemoryStore();
    const s = { policy: policyWith(rolling(30 * DAY), "a"), now: NOV_3 };
    const engine = createEngine({ store, policy: () => s.policy, clock: () => s.now, newId: () => "id" });
    await engine.allow({ customerId: "old", items: [{ entitlement: "t", amount: 5 }] });
    for (let i = 1; i <= 3 * MAX_KEPT_CHANGES; i++) {
      s.policy = policyWith(rolling((i % 2 === 0 ? 30 : 60) * DAY), `v${i}`);
      s.now = NOV_3 + i * 60_000;
      await engine.allow({ customerId: "busy", items: [{ entitlement: "t", amount: 1 }] });
    }
    const changes = stored(store).lineages[0]?.changes ?? [];
    expect(changes).toHaveLength(MAX_KEPT_CHANGES);
    expect(changes[0]).toEqual({ at: s.now, rule: `${60 * DAY}ms` });
    expect(changes[MAX_KEPT_CHANGES - 1]?.at).toBe(NOV_3 + (2 * MAX_KEPT_CHANGES + 1) * 60_000);
    // A row judged before the oldest change kept is judged from it on, by the rule before it (30
    // days, its own): its period still runs, so its count is carried to the last swap.
    for (const e of [engine, createEngine({ store, policy: () => s.policy, clock: () => s.now, newId: () => "id" })]) {
      expect((await e.getMeters("old", ["t"]))[0]).toMatchObject({ value: n(5), periodStart: s.now });
    }
  });

  it("a read under a swap answers once the history is committed, or storage is full; else fails with it", async () => {
    const inner = createMemoryStore();
    const gates: { history: boolean; settle: (failure?: LimitrError) => void }[] = [];
    const store: StatePort = {
      ...inner,
      commit(writes: readonly Write[], events) {
        const history = writes.some((w) => w.kind === "reset-rule-history");
        return new Promise((resolve, reject) =>
          gates.push({ history, settle: (failure) => (failure === undefined ? resolve(inner.commit(writes, events)) : reject(failure)) }),
        );
      },
    };
    const s = { policy: policyWith(monthly1, "a"), now: NOV_3 };
    const engine = createEngine({ store, policy: () => s.policy, clock: () => s.now, newId: () => "id" });
    let answered = false;
    const first = engine.check({ customerId: "u", items: [{ entitlement: "t" }] }).then(() => (answered = true));
    // Another read in flight meanwhile waits for the same commit.
    const second = engine.getMeters("u", ["t"]).then(() => (answered = true));
    await new Promise((r) => setImmediate(r));
    expect([answered, gates.map((g) => g.history)]).toEqual([false, [true]]);
    // Reads of customers judge no meter: they do not wait.
    expect(await engine.listCustomers("", 10)).toEqual([]);
    gates.splice(0).forEach((g) => g.settle());
    await Promise.all([first, second]);
    // Once the history is kept, reads answer at once again.
    await engine.check({ customerId: "u", items: [{ entitlement: "t" }] });
    s.policy = policyWith(daily, "b");
    let failedAnswered = false;
    const failed = engine.check({ customerId: "u", items: [{ entitlement: "t" }] }).then((r) => ((failedAnswered = true), r));
    await new Promise((r) => setImmediate(r));
    expect(failedAnswered).toBe(false);
    gates.splice(0).forEach((g) => g.settle(new LimitrError("RESOURCE_EXHAUSTED", "storage full")));
    // Storage is full: the read answers all the same, and the next operation tries again.
    expect(await failed).toMatchObject({ allowed: true });
    const refused = engine.getMeters("u", ["t"]);
    expect(gates.map((g) => g.history)).toEqual([true]);
    // Any other failure (another process took the dir over, an I/O error): the read fails with it.
    gates.splice(0).forEach((g) => g.settle(new LimitrError("FAILED_PRECONDITION", "another process opened the data dir")));
    await expect(refused).rejects.toMatchObject({ code: "FAILED_PRECONDITION" });
    const retried = engine.getMeters("u", ["t"]);
    expect(gates.map((g) => g.history)).toEqual([true]);
    gates.splice(0).forEach((g) => g.settle());
    expect(await retried).toHaveLength(1);
    expect(stored(inner).lineages[0]).toMatchObject({ rule: "daily" });
  });

  it.each([
    ["not an object", 42, "reset-rule history: (the value) must be an object"],
    ["no since", { lineages: [] }, "reset-rule history: since must be a time in epoch ms"],
    ["a rule no key stands for", { since: 1, lineages: [{ plan: "free", entitlement: "t", rule: "fortnightly", changes: [] }] }, 'lineages[0].rule is not a reset rule: "fortnightly"'],
    ["changes out of order", { since: 1, lineages: [{ plan: "free", entitlement: "t", rule: "daily", changes: [{ at: 5, rule: "never" }, { at: 6, rule: "daily" }] }] }, "lineages[0].changes[1].at must not be after the change listed before it"],
    ["a lineage twice", { since: 1, lineages: [0, 1].map(() => ({ plan: "free", entitlement: "t", rule: "daily", changes: [] })) }, 'lineages[1] repeats plan "free", entitlement "t"'],
  ])("a damaged one (%s) is reported, set aside and replaced", async (_name, damaged, message) => {
    expect(parseRuleHistory(damaged)).toEqual({ ok: false, message: expect.stringContaining(message) });
    const store = createMemoryStore();
    await store.commit([{ kind: "reset-rule-history", history: damaged as ResetRuleHistory }], []);
    const told: string[] = [];
    const engine = createEngine({ store, policy: () => policyWith(monthly1, "a"), clock: () => NOV_3, newId: () => "id", onResetRuleHistoryIgnored: (m) => told.push(m) });
    expect(told).toEqual([]); // read at the first operation, not before
    expect((await engine.allow({ customerId: "u", items: [{ entitlement: "t", amount: 5 }] })).items[0]).toMatchObject({ value: n(5) });
    expect(told).toEqual([expect.stringContaining(message)]);
    expect(stored(store)).toMatchObject({ since: NOV_3, lineages: [{ plan: "free", rule: "monthly:1" }] });
  });

  it("a value at its key in a data dir that is not one this code wrote is reported and replaced", async () => {
    const { dir, remove } = tempDir();
    try {
      await createLmdbStore({ path: dir }).close();
      // Damaged in place: kept by the dir's last writer, but no history.
      const env = open({ path: join(dir, "limitr.mdb") });
      const meta = env.openDB({ name: "meta", encoding: "msgpack" });
      await meta.put("reset-rule-history", "not a history");
      await meta.put("reset-rule-history-kept-by", meta.get("writer"));
      await env.close();
      for (const expected of [["reset-rule history: (the value) must be an object"], []]) {
        const store = createLmdbStore({ path: dir });
        const told: string[] = [];
        const engine = createEngine({ store, policy: () => policyWith(monthly1, "a"), clock: () => NOV_3, newId: () => "id", onResetRuleHistoryIgnored: (m) => told.push(m) });
        await engine.allow({ customerId: "u", items: [{ entitlement: "t", amount: 1 }] });
        expect(told).toEqual(expected);
        expect(store.resetRuleHistory()).toMatchObject({ since: NOV_3 });
        await store.close();
      }
    } finally {
      remove();
    }
  });

  it("is kept, and reads under its swap answer, while the data budget is full", async () => {
    const { dir, remove } = tempDir();
    try {
      const s = { policy: policyWith(monthly1, "a"), now: NOV_3 };
      const first = createLmdbStore({ path: dir });
      await createEngine({ store: first, policy: () => s.policy, clock: () => s.now, newId: () => "id" }).allow({ customerId: "u", items: [{ entitlement: "t", amount: 90 }] });
      await first.close();
      // Reopened with a budget below what the dir already holds: every write of data is refused.
      const store = createLmdbStore({ path: dir, maxDataBytes: 1 });
      const engine = createEngine({ store, policy: () => s.policy, clock: () => s.now, newId: () => "id" });
      await expect(engine.allow({ customerId: "u", items: [{ entitlement: "t", amount: 1 }] })).rejects.toMatchObject({ code: "RESOURCE_EXHAUSTED" });
      s.policy = policyWith(daily, "b");
      s.now = NOV_10;
      expect((await engine.getMeters("u", ["t"]))[0]).toMatchObject({ value: n(90), periodStart: Date.UTC(2026, 10, 10) });
      expect((await engine.check({ customerId: "u", items: [{ entitlement: "t", amount: 20 }] })).allowed).toBe(false);
      // A read that shares its batch with a refused write: the history fails with them; the read answers.
      s.policy = policyWith(undefined, "c");
      const [read, write] = await Promise.allSettled([engine.getMeters("u", ["t"]), engine.allow({ customerId: "u", items: [{ entitlement: "t", amount: 1 }] })]);
      expect(read).toMatchObject({ status: "fulfilled", value: [{ value: n(90) }] });
      expect(write).toMatchObject({ status: "rejected", reason: { code: "RESOURCE_EXHAUSTED" } });
      expect(stored(store).lineages[0]).toMatchObject({ rule: "daily", changes: [{ at: NOV_10, rule: "monthly:1" }] });
      await store.close();
    } finally {
      remove();
    }
  });

  it("bytes at its key that do not decode keep no data dir from being claimed: they are reported and replaced", async () => {
    const { dir, remove } = tempDir();
    try {
      await createLmdbStore({ path: dir }).close();
      const env = open({ path: join(dir, "limitr.mdb") });
      const writer: unknown = env.openDB({ name: "meta", encoding: "msgpack" }).get("writer");
      // A msgpack array of two elements that holds one: the decoder runs out of bytes.
      await env.openDB({ name: "meta", encoding: "binary" }).put("reset-rule-history", Buffer.from([0x92, 0x01]));
      await env.openDB({ name: "meta", encoding: "msgpack" }).put("reset-rule-history-kept-by", writer);
      await env.close();
      const store = createLmdbStore({ path: dir });
      const told: string[] = [];
      const engine = createEngine({ store, policy: () => policyWith(monthly1, "a"), clock: () => NOV_3, newId: () => "id", onResetRuleHistoryIgnored: (m) => told.push(m) });
      expect((await engine.allow({ customerId: "u", items: [{ entitlement: "t", amount: 1 }] })).allowed).toBe(true);
      expect(told).toEqual([expect.stringContaining("the stored reset-rule history cannot be read")]);
      expect(store.resetRuleHistory()).toMatchObject({ since: NOV_3 });
      await store.close();
    } finally {
      remove();
    }
  });

  it("is committed again by the next operation when its commit failed", async () => {
    const inner = createMemoryStore();
    const attempts: string[] = [];
    let failHistory = true;
    const store: StatePort = {
      ...inner,
      commit(writes: readonly Write[], events) {
        const history = writes.some((w) => w.kind === "reset-rule-history");
        attempts.push(history ? "history" : "operation");
        if (history && failHistory) return Promise.reject(new LimitrError("UNAVAILABLE", "disk says no"));
        return inner.commit(writes, events);
      },
    };
    const s = { policy: policyWith(monthly1, "a"), now: NOV_3 };
    const engine = createEngine({ store, policy: () => s.policy, clock: () => s.now, newId: () => "id" });
    // A read under the policy fails with its history's commit (storage is not full).
    await expect(engine.getMeters("u", [])).rejects.toMatchObject({ code: "UNAVAILABLE" });
    await expect(engine.getMeters("u", [])).rejects.toMatchObject({ code: "UNAVAILABLE" });
    failHistory = false;
    await engine.getMeters("u", []);
    await engine.getMeters("u", []);
    expect(attempts).toEqual(["history", "history", "history"]);
    expect(stored(inner)).toMatchObject({ since: NOV_3 });
    // A newer history is not replaced by an older one that failed.
    failHistory = true;
    s.policy = policyWith(daily, "b");
    await expect(engine.getMeters("u", [])).rejects.toMatchObject({ code: "UNAVAILABLE" });
    failHistory = false;
    s.policy = policyWith(undefined, "c");
    await engine.getMeters("u", []);
    await engine.getMeters("u", []);
    expect(stored(inner).lineages[0]).toMatchObject({ rule: "never" });
    expect(attempts.slice(3)).toEqual(["history", "history"]);
  });
});
