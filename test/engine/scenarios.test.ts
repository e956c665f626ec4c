/** The seed scenarios of issue 2, walked through with exact numbers on the shipped policies. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createEngine, type DecisionResult, type Engine, type EngineEvent, type MeterView } from "../../src/engine/index.js";
import { loadPolicy, type CompiledPolicy } from "../../src/policy/index.js";
import { createMemoryStore, type MemoryStore } from "../../src/store/memory-store.js";
import { n } from "./harness.js";

function load(file: string): CompiledPolicy {
  const r = loadPolicy(readFileSync(new URL(`../../examples/policies/${file}`, import.meta.url), "utf8"), { version: file });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.policy;
}

interface World {
  engine: Engine;
  store: MemoryStore;
  events: EngineEvent[];
  setNow(t: number): void;
}

function world(policy: CompiledPolicy, start: number): World {
  const store = createMemoryStore();
  let now = start;
  let ids = 0;
  const events: EngineEvent[] = [];
  const origCommit = store.commit.bind(store);
  store.commit = (writes, evs) => {
    events.push(...evs);
    return origCommit(writes, evs);
  };
  const engine = createEngine({ store, policy: () => policy, clock: () => now, newId: () => `res-${++ids}` });
  return { engine, store, events, setNow: (t) => (now = t) };
}

const mv = (r: DecisionResult | readonly unknown[], i = 0): MeterView => ("items" in r ? r.items[i] : r[i]) as MeterView;
const MAR3 = Date.UTC(2026, 2, 3, 10);

describe("ai-tokens.yaml", () => {
  const policy = load("ai-tokens.yaml");

  it("a free user goes past the soft 1,000 tokens and is billed the overage", async () => {
    const w = world(policy, MAR3);
    const r1 = await w.engine.allow({ customerId: "dev", items: [{ entitlement: "gpt_tokens", amount: 900 }] });
    expect(r1).toMatchObject({ allowed: true, reason: "OK", plan: "free" });
    const r2 = await w.engine.allow({ customerId: "dev", items: [{ entitlement: "gpt_tokens", amount: 250 }], attributes: { model: "gpt-4o" } });
    expect(r2).toMatchObject({ allowed: true, reason: "SOFT_LIMIT_EXCEEDED" });
    expect(mv(r2)).toMatchObject({ value: n(1150), limit: n(1000), remaining: n(-150), overage: n(150), periodStart: Date.UTC(2026, 2, 1), nextReset: Date.UTC(2026, 3, 1) });
    const overage = w.events.find((e) => e.type === "meter-overage");
    expect(overage).toMatchObject({ overage: n(150), overagePrice: n(0.003), attributes: { model: "gpt-4o" }, plan: "free", policyVersion: "ai-tokens.yaml" });
    // The provider cost is recorded: 1150 × 0.000008.
    expect(w.store.getMeter("dev", "gpt_tokens")?.overhead).toBe(n(0.0092));
    // Next month starts at zero.
    w.setNow(Date.UTC(2026, 3, 1));
    expect(mv(await w.engine.getMeters("dev", ["gpt_tokens"]))).toMatchObject({ value: 0n, overage: 0n });
  });

  it("a pro user is hard-denied at 10,000, per model, with the would-be value reported", async () => {
    const w = world(policy, MAR3);
    await w.engine.upsertCustomer({ id: "acme", plan: "pro" });
    expect((await w.engine.allow({ customerId: "acme", items: [{ entitlement: "gpt_tokens", amount: 9_990 }] })).allowed).toBe(true);
    const denied = await w.engine.allow({
      customerId: "acme",
      items: [{ entitlement: "requests" }, { entitlement: "gpt_tokens", amount: 11 }],
    });
    expect(denied).toMatchObject({ allowed: false, reason: "HARD_LIMIT", deniedItem: 1 });
    expect(w.events.at(-1)).toMatchObject({ type: "meter-limit", oldValue: n(9_990), newValue: n(10_001) });
    // All-or-nothing: the request item before the denied one was not counted either.
    expect(w.store.getMeter("acme", "requests")).toBeUndefined();
    // Claude has its own meter and its own cap.
    const claude = await w.engine.allow({ customerId: "acme", items: [{ entitlement: "claude_tokens", amount: 10_000 }, { entitlement: "streaming" }] });
    expect(claude.allowed).toBe(true);
    expect(mv(claude)).toMatchObject({ value: n(10_000), remaining: 0n });
    expect((await w.engine.allow({ customerId: "acme", items: [{ entitlement: "gpt_tokens", amount: 10 }] })).allowed).toBe(true);
    expect(await w.engine.allow({ customerId: "dev", items: [{ entitlement: "streaming" }] })).toMatchObject({ allowed: false, reason: "NOT_ENTITLED" });
  });
});

describe("combined.yaml", () => {
  const policy = load("combined.yaml");

  it("seats: 3 users join a free org, the 4th is denied; the org upgrades to pro mid-period and keeps its count", async () => {
    const w = world(policy, MAR3);
    await w.engine.upsertCustomer({ id: "acme", type: "org", altIds: ["cus_StripeAcme"] });
    const join = (u: string) => w.engine.allow({ customerId: u, items: [{ entitlement: "seats" }], hint: { refs: ["acme"], altIds: [`sk_live_${u}`] } });
    const results = [await join("alice"), await join("bob"), await join("carol"), await join("dave")];
    expect(results.map((r) => r.allowed)).toEqual([true, true, true, false]);
    expect(mv(results[3] as DecisionResult)).toMatchObject({ owner: "acme", value: n(3), limit: n(3) });
    await w.engine.setCustomerPlan({ customerId: "cus_StripeAcme", plan: "pro", resetMeters: false });
    const again = await join("dave");
    expect(again).toMatchObject({ allowed: true, plan: "pro" });
    expect(mv(again)).toMatchObject({ owner: "acme", value: n(4), limit: n(10) });
    // A user leaving gives the seat back.
    expect(mv(await w.engine.allow({ customerId: "sk_live_bob", items: [{ entitlement: "seats", amount: -1 }] }))).toMatchObject({ value: n(3) });
  });

  it("storage: a '1GB' daily limit, usage sent in MB, GiB and bytes", async () => {
    const w = world(policy, MAR3);
    await w.engine.upsertCustomer({ id: "acme", type: "org" });
    const store = (amount: number, unit: string) => w.engine.allow({ customerId: "alice", items: [{ entitlement: "storage_mb", amount, unit }], hint: { refs: ["acme"] } });
    expect(mv(await store(500, "MB"))).toMatchObject({ value: n(500), limit: n(1000), unit: "MB" });
    const gib = await store(0.5, "GiB"); // 536.870912 MB: 1036.870912 > 1000
    expect(gib).toMatchObject({ allowed: false, reason: "HARD_LIMIT" });
    expect(mv(await store(400_000_000, "bytes"))).toMatchObject({ value: n(900) });
    expect(mv(await store(0.1, "GB"))).toMatchObject({ value: n(1000), remaining: 0n });
    await expect(store(1, "s")).rejects.toMatchObject({ code: "INVALID_ARGUMENT", field: "items[0].unit" });
    w.setNow(Date.UTC(2026, 2, 4));
    expect(mv(await store(0.5, "GiB"))).toMatchObject({ value: n(536.870912), periodStart: Date.UTC(2026, 2, 4) });
  });

  it("alt ids (Stripe id, API key) resolve everywhere; users inherit the org's plan and keep usage across an upgrade", async () => {
    const w = world(policy, MAR3);
    await w.engine.upsertCustomer({ id: "acme", type: "org", altIds: ["cus_StripeAcme"] });
    await w.engine.upsertCustomer({ id: "alice", refs: ["acme"], altIds: ["sk_live_alice", "alice@acme.example"] });
    expect(await w.engine.getCustomer("alice@acme.example")).toMatchObject({ effectivePlan: "free", planSource: "default" });
    const r = await w.engine.allow({ customerId: "sk_live_alice", items: [{ entitlement: "gpt_tokens", amount: 1_800 }] });
    expect(mv(r)).toMatchObject({ owner: "alice", value: n(1_800), limit: n(2_000), nextReset: MAR3 + 30 * 86_400_000 });
    expect((await w.engine.allow({ customerId: "sk_live_alice", items: [{ entitlement: "gpt_tokens", amount: 201 }] })).allowed).toBe(false);
    expect(await w.engine.allow({ customerId: "alice", items: [{ entitlement: "priority_support" }] })).toMatchObject({ reason: "NOT_ENTITLED" });

    w.setNow(MAR3 + 86_400_000);
    await w.engine.setCustomerPlan({ customerId: "cus_StripeAcme", plan: "pro", resetMeters: false });
    expect(await w.engine.getCustomer("sk_live_alice")).toMatchObject({ effectivePlan: "pro", planSource: "inherited" });
    const after = await w.engine.allow({ customerId: "alice@acme.example", items: [{ entitlement: "gpt_tokens", amount: 40_000 }, { entitlement: "priority_support" }] });
    expect(after).toMatchObject({ allowed: true, plan: "pro" });
    // Usage kept (1,800 + 40,000) under pro's soft 50,000 limit: free's rolling 30 days were still
    // running, so the count carries into pro's calendar month (alice's row names the rule it was
    // written under; she inherits the plan, so the org's plan change did not rewrite it).
    expect(mv(after)).toMatchObject({ value: n(41_800), limit: n(50_000), mode: "soft", periodStart: Date.UTC(2026, 2, 1), nextReset: Date.UTC(2026, 3, 1) });
    expect(w.events.filter((e) => e.type === "meter-threshold").map((e) => (e.type === "meter-threshold" ? e.threshold : 0))).toEqual([80]);
    const m = await w.engine.getMeters("cus_StripeAcme", []);
    expect(m.map((v) => v.entitlement)).toEqual(["seats", "storage_mb", "gpt_tokens", "claude_tokens", "priority_support"]);
  });
});
