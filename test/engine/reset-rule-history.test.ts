/**
 * The reset-rule history a store keeps for the engine: what is written, when, how it is read back,
 * and what happens when it cannot be written or read.
 */
import { describe, expect, it } from "vitest";
import { createEngine, type StatePort, type Write } from "../../src/engine/index.js";
import { parseRuleHistory, storedRuleHistory, type ResetRuleHistory } from "../../src/engine/reset-rule-history.js";
import { LimitrError } from "../../src/errors/index.js";
import type { CompiledPolicy, ResetRule } from "../../src/policy/index.js";
import { createMemoryStore } from "../../src/store/memory-store.js";
import { buildPolicy, credit, daily, DAY, monthly1, n } from "./harness.js";

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

  it("a swap's moment is never dated before the change it follows (a clock set back across a restart)", async () => {
    const store = createMemoryStore();
    await createEngine({ store, policy: () => policyWith(monthly1, "a"), clock: () => NOV_3, newId: () => "id" }).getMeters("u", []);
    await createEngine({ store, policy: () => policyWith(daily, "b"), clock: () => NOV_10, newId: () => "id" }).getMeters("u", []);
    await createEngine({ store, policy: () => policyWith(monthly1, "c"), clock: () => NOV_10 - DAY, newId: () => "id" }).getMeters("u", []);
    expect(stored(store).lineages[0]?.changes).toEqual([{ at: NOV_10, rule: "daily" }, { at: NOV_10, rule: "monthly:1" }]);
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
    await engine.getMeters("u", []);
    await engine.getMeters("u", []);
    failHistory = false;
    await engine.getMeters("u", []);
    await engine.getMeters("u", []);
    expect(attempts).toEqual(["history", "history", "history"]);
    expect(stored(inner)).toMatchObject({ since: NOV_3 });
    // A newer history is not replaced by an older one that failed.
    failHistory = true;
    s.policy = policyWith(daily, "b");
    await engine.getMeters("u", []);
    failHistory = false;
    s.policy = policyWith(undefined, "c");
    await engine.getMeters("u", []);
    await engine.getMeters("u", []);
    expect(stored(inner).lineages[0]).toMatchObject({ rule: "never" });
    expect(attempts.slice(3)).toEqual(["history", "history"]);
  });
});
