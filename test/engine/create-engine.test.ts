import { describe, expect, it } from "vitest";
import { createEngine, type EngineEvent, type StatePort, type StoredEvent, type Write } from "../../src/engine/index.js";
import { createMemoryStore } from "../../src/store/memory-store.js";
import { buildPolicy, credit, T0 } from "./harness.js";

const policy = buildPolicy({ free: { isDefault: true, entitlements: { t: { limit: { credit: credit("token"), value: 10 } } } } });

/** A store whose commits settle only when the test says so, recording what was committed. */
function gatedStore() {
  const inner = createMemoryStore();
  const commits: { writes: readonly Write[]; events: readonly EngineEvent[] }[] = [];
  const gates: (() => void)[] = [];
  const store: StatePort = {
    ...inner,
    commit(writes, events) {
      commits.push({ writes, events });
      const done = inner.commit(writes, events);
      return new Promise((resolve) => gates.push(() => resolve(done)));
    },
  };
  /** The commits of operations: not the reset-rule history the first operation starts. */
  const ofOperations = () => commits.filter((c) => !c.writes.some((w) => w.kind === "reset-rule-history"));
  return { store, commits, ofOperations, open: () => gates.splice(0).forEach((g) => g()) };
}

describe("createEngine", () => {
  it("answers only after the commit settles; replays and empty outcomes still commit (barrier)", async () => {
    const g = gatedStore();
    const engine = createEngine({ store: g.store, policy: () => policy, clock: () => T0, newId: () => "id" });
    let answered = false;
    const first = engine.allow({ customerId: "u", items: [{ entitlement: "t" }], idempotencyKey: "k" }).then((r) => ((answered = true), r));
    await Promise.resolve();
    await Promise.resolve();
    expect(answered).toBe(false);
    const replay = engine.allow({ customerId: "u", items: [{ entitlement: "t" }], idempotencyKey: "k" });
    const released = engine.release({ reservationId: "nope" });
    // The first operation's policy starts the data dir's reset-rule history, committed ahead of it.
    expect(g.commits.map((c) => c.writes.map((w) => w.kind))).toEqual([["reset-rule-history"], ["customer-put", "meter-put", "idempotency-put"], [], []]);
    g.open();
    expect(await replay).toEqual(await first);
    expect(await released).toEqual({ released: false });
  });

  it("reads never commit, and read the policy and clock once per operation", async () => {
    const g = gatedStore();
    let policyReads = 0;
    let clockReads = 0;
    const engine = createEngine({
      store: g.store,
      policy: () => (policyReads++, policy),
      clock: () => (clockReads++, T0),
      newId: () => "id",
    });
    // The first read answers once the reset-rule history its policy starts is committed.
    const first = engine.check({ customerId: "u", items: [{ entitlement: "t" }] });
    await new Promise((r) => setImmediate(r));
    g.open();
    await first;
    await engine.getMeters("u", []);
    await expect(engine.getCustomer("u")).rejects.toMatchObject({ code: "NOT_FOUND" });
    await engine.listCustomers("", 10);
    expect(g.ofOperations()).toEqual([]);
    expect(g.commits).toHaveLength(1);
    expect([policyReads, clockReads]).toEqual([4, 4]);
  });

  it("bad input rejects with a LimitrError and commits nothing", async () => {
    const g = gatedStore();
    const engine = createEngine({ store: g.store, policy: () => policy, clock: () => T0, newId: () => "id" });
    await expect(engine.allow({ customerId: "", items: [{ entitlement: "t" }] })).rejects.toMatchObject({ code: "INVALID_ARGUMENT", field: "customer_id" });
    expect(g.ofOperations()).toEqual([]);
  });
});

describe("createEngine: hint alt ids another customer has", () => {
  it("are told to onHintAltIdConflict once the answer is durable (a Check's at once), and the call goes on", async () => {
    const g = gatedStore();
    const told: unknown[] = [];
    const engine = createEngine({ store: g.store, policy: () => policy, clock: () => T0, newId: () => "id", onHintAltIdConflict: (c) => told.push(c) });
    const first = engine.record({ customerId: "sk_1", items: [{ entitlement: "t" }] });
    const second = engine.record({ customerId: "alice", items: [{ entitlement: "t" }], hint: { altIds: ["sk_1"] } });
    await Promise.resolve();
    expect(told).toEqual([]);
    g.open();
    await first;
    expect(await second).toMatchObject({ allowed: true, customerId: "alice" });
    expect(told).toEqual([{ customerId: "alice", altId: "sk_1", heldBy: "sk_1" }]);
    expect(await engine.check({ customerId: "alice", items: [{ entitlement: "t" }], hint: { altIds: ["sk_1"] } })).toMatchObject({ allowed: true });
    expect(told).toHaveLength(2);
  });
});

describe("memory store", () => {
  it("numbers events from 1, reads ranges, and notifies listeners after the commit", async () => {
    const store = createMemoryStore();
    const seen: StoredEvent[][] = [];
    const unsubscribe = store.subscribe((evs) => seen.push([...evs]));
    const engine = createEngine({ store, policy: () => policy, clock: () => T0, newId: () => "id" });
    expect([store.firstSequence(), store.lastSequence()]).toEqual([1, 0]);
    await engine.allow({ customerId: "u", items: [{ entitlement: "t" }] });
    await engine.allow({ customerId: "u", items: [{ entitlement: "t" }] });
    expect(store.lastSequence()).toBe(3);
    expect(store.readEvents(2, 10).map((e) => [e.seq, e.event.type])).toEqual([
      [2, "meter-changed"],
      [3, "meter-changed"],
    ]);
    await Promise.resolve();
    expect(seen.map((g) => g.map((e) => e.seq))).toEqual([[1, 2], [3]]);
    unsubscribe();
    await engine.allow({ customerId: "u", items: [{ entitlement: "t" }] });
    await Promise.resolve();
    expect(seen).toHaveLength(2);
    const receipt = await store.commit([], []);
    expect(receipt).toEqual({ sequences: [] });
  });

  it("keeps the alt-id index in step with customer puts and deletes, and exports in key order", async () => {
    const store = createMemoryStore();
    const engine = createEngine({ store, policy: () => policy, clock: () => T0, newId: () => "id" });
    await engine.upsertCustomer({ id: "b", altIds: ["x"] });
    await engine.upsertCustomer({ id: "a", altIds: ["y"] });
    await engine.upsertCustomer({ id: "b", altIds: ["z"] });
    expect([store.resolveAltId("x"), store.resolveAltId("z"), store.resolveAltId("y")]).toEqual([undefined, "b", "a"]);
    await engine.allow({ customerId: "z", items: [{ entitlement: "t" }] });
    expect([...store.exportState()].map((r) => (r.kind === "customer" ? r.customer.id : r.kind === "meter" ? `${r.meter.owner}/${r.meter.entitlement}` : r.kind))).toEqual(["a", "b", "b/t"]);
    await engine.deleteCustomer("b");
    expect([store.resolveAltId("z"), store.metersOf("b"), store.listCustomers("", 10).map((c) => c.id)]).toEqual([undefined, [], ["a"]]);
  });

  it("lists in Unicode code point order (as LMDB does)", async () => {
    const store = createMemoryStore();
    const engine = createEngine({ store, policy: () => policy, clock: () => T0, newId: () => "id" });
    for (const id of ["\u{1F600}", "\uFFFF", "a"]) await engine.upsertCustomer({ id });
    expect(store.listCustomers("", 10).map((c) => c.id)).toEqual(["a", "\uFFFF", "\u{1F600}"]);
    expect(store.listCustomers("\uFFFF", 10).map((c) => c.id)).toEqual(["\u{1F600}"]);
  });
});
