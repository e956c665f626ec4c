import { describe, expect, it } from "vitest";
import {
  allow,
  check,
  deleteCustomer,
  getCustomer,
  getMeters,
  listCustomers,
  record,
  setCustomerPlan,
  upsertCustomer,
  type EngineContext,
  type MeterView,
  type Outcome,
} from "../../src/engine/index.js";
import { isLimitrError, type ErrorCode } from "../../src/errors/index.js";
import { buildPolicy, createHarness, credit, n, snapshot } from "./harness.js";

const token = credit("token");
const seat = credit("seat");
const free = {
  isDefault: true,
  entitlements: {
    tokens: { limit: { credit: token, value: 10 } },
    seats: { scope: "org", limit: { credit: seat, value: 3 } },
  },
};
const pro = {
  entitlements: {
    tokens: { limit: { credit: token, value: 100 } },
    seats: { scope: "org", limit: { credit: seat, value: 10 } },
    support: {},
  },
};
const policy = buildPolicy({ free, pro });
const noDefault = buildPolicy({ pro });

function throwsCode(fn: () => unknown, code: ErrorCode, field: string): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(isLimitrError(caught, code), String(caught)).toBe(true);
  expect((caught as { field: string }).field).toBe(field);
}

describe("caller resolution", () => {
  it("an unknown customer is created on the default plan (stored with an empty plan)", () => {
    const h = createHarness(policy);
    const out = h.run(allow, { customerId: "u", items: [{ entitlement: "tokens" }] });
    expect(out.result).toMatchObject({ allowed: true, customerId: "u", plan: "free" });
    expect(h.store.getCustomer("u")).toMatchObject({ id: "u", plan: "", type: "user" });
    expect(out.events[0]).toMatchObject({ type: "customer-set" });
  });

  it("unknown with no hint and no default plan → UNKNOWN_CUSTOMER, nothing written", () => {
    const h = createHarness(noDefault);
    const out = h.run(allow, { customerId: "u", items: [{ entitlement: "tokens" }] });
    expect(out.result).toMatchObject({ allowed: false, reason: "UNKNOWN_CUSTOMER", deniedItem: 0, customerId: "", items: [] });
    expect(out.writes).toEqual([]);
  });

  it("an empty hint is no hint: with no default plan, UNKNOWN_CUSTOMER and nothing written", () => {
    const h = createHarness(noDefault);
    for (const hint of [{}, { plan: "", type: "", refs: [], altIds: [], metadata: {} }]) {
      const out = h.run(allow, { customerId: "u", items: [{ entitlement: "tokens" }], hint });
      expect(out.result).toMatchObject({ allowed: false, reason: "UNKNOWN_CUSTOMER" });
      expect(out.writes).toEqual([]);
    }
  });

  it("a hint creates the customer with its fields", () => {
    const h = createHarness(noDefault);
    h.run(allow, {
      customerId: "u",
      items: [{ entitlement: "support" }],
      hint: { plan: "pro", type: "api_key", refs: ["o"], altIds: ["sk_1", "sk_1"], metadata: { a: "1" } },
    });
    expect(h.store.getCustomer("u")).toMatchObject({ plan: "pro", type: "api_key", refs: ["o"], altIds: ["sk_1"], metadata: { a: "1" } });
    expect(h.store.resolveAltId("sk_1")).toBe("u");
  });

  it("a hint on an existing customer merges lists, replaces non-empty scalars, and only writes on change", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "u", refs: ["a"], altIds: ["x"], metadata: { k: "1" } });
    const same = h.run(allow, { customerId: "x", items: [{ entitlement: "tokens" }], hint: { refs: ["a"], plan: "", metadata: { k: "1" } } });
    expect(same.writes.map((w) => w.kind)).toEqual(["meter-put"]);
    const changed = h.run(allow, { customerId: "u", items: [{ entitlement: "tokens" }], hint: { plan: "pro", refs: ["b"], altIds: ["y"], metadata: { j: "2" } } });
    expect(changed.events.map((e) => e.type)).toEqual(["customer-set", "customer-plan-changed", "meter-changed"]);
    expect(changed.result.plan).toBe("pro");
    expect(h.store.getCustomer("u")).toMatchObject({ plan: "pro", refs: ["a", "b"], altIds: ["x", "y"], metadata: { k: "1", j: "2" } });
  });

  it("alt ids resolve everywhere an id is accepted", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "u", altIds: ["cus_1", "sk_1"] });
    h.run(allow, { customerId: "cus_1", items: [{ entitlement: "tokens", amount: 3 }] });
    h.run(allow, { customerId: "sk_1", items: [{ entitlement: "tokens", amount: 4 }] });
    const m = getMeters(h.ctx(), "cus_1", ["tokens"]).result[0] as MeterView;
    expect(m).toMatchObject({ owner: "u", value: n(7) });
    expect(getCustomer(h.ctx(), "sk_1").result.customer.id).toBe("u");
    expect(h.store.getCustomer("cus_1")).toBeUndefined();
  });
});

describe("plan resolution", () => {
  it.each([
    // customers (upserted in order), caller, expected plan, source
    [[{ id: "u", plan: "pro" }], "u", "pro", "own"],
    [[{ id: "o", plan: "pro", type: "org" }, { id: "u", refs: ["o"] }], "u", "pro", "inherited"],
    [[{ id: "o", type: "org" }, { id: "t", plan: "pro", type: "team" }, { id: "u", refs: ["o", "t"] }], "u", "pro", "inherited"],
    [[{ id: "a" }, { id: "b", refs: ["a"] }, { id: "a", refs: ["b"] }, { id: "u", refs: ["a"] }], "u", "free", "default"],
    [[{ id: "u" }], "u", "free", "default"],
  ] as const)("%j → %s %s", (customers, caller, plan, source) => {
    const h = createHarness(policy);
    for (const c of customers) h.run(upsertCustomer, c);
    expect(getCustomer(h.ctx(), caller).result).toMatchObject({ effectivePlan: plan, planSource: source });
  });

  it("depth-first: the first ref's ancestors win over the second ref", () => {
    const h = createHarness(buildPolicy({ free, pro, team: { entitlements: {} } }));
    h.run(upsertCustomer, { id: "org", plan: "pro" });
    h.run(upsertCustomer, { id: "a", refs: ["org"] });
    h.run(upsertCustomer, { id: "b", plan: "team" });
    h.run(upsertCustomer, { id: "u", refs: ["a", "b"] });
    expect(getCustomer(h.ctx(), "u").result.effectivePlan).toBe("pro");
  });

  it("a stored plan that vanished falls back and says so; no plan at all → NOT_ENTITLED", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "u", plan: "pro" });
    h.policy = buildPolicy({ free });
    expect(getCustomer(h.ctx(), "u").result).toMatchObject({ effectivePlan: "free", planSource: "default", missingPlan: "pro" });
    h.policy = buildPolicy({ other: { entitlements: {} }, free: { entitlements: free.entitlements } });
    const r = h.run(allow, { customerId: "u", items: [{ entitlement: "tokens" }] }).result;
    expect(r).toMatchObject({ allowed: false, reason: "NOT_ENTITLED", plan: "" });
  });
});

describe("scoped entitlements", () => {
  it("every user of an org consumes the org's one meter; the 4th seat on free is denied", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "acme", type: "org" });
    const results = ["u1", "u2", "u3", "u4"].map((u) => h.run(allow, { customerId: u, items: [{ entitlement: "seats" }], hint: { refs: ["acme"] } }).result);
    expect(results.map((r) => r.allowed)).toEqual([true, true, true, false]);
    expect(results[3]).toMatchObject({ reason: "HARD_LIMIT", deniedItem: 0 });
    expect(h.store.getMeter("acme", "seats")?.value).toBe(n(3));
    expect(h.store.metersOf("u1")).toEqual([]);
  });

  it("nearest by breadth-first search, starting at the caller, through cycles", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "far", type: "org" });
    h.run(upsertCustomer, { id: "near", type: "org" });
    h.run(upsertCustomer, { id: "team", type: "team", refs: ["far"] });
    h.run(upsertCustomer, { id: "team2", type: "team", refs: ["near"] });
    h.run(upsertCustomer, { id: "u", refs: ["team", "team2"] });
    h.run(upsertCustomer, { id: "team", type: "team", refs: ["u", "far"] });
    expect(h.run(allow, { customerId: "u", items: [{ entitlement: "seats" }] }).result.items[0]).toMatchObject({ owner: "far" });
    h.run(upsertCustomer, { id: "u", refs: ["team", "near"] });
    expect(h.run(allow, { customerId: "u", items: [{ entitlement: "seats" }] }).result.items[0]).toMatchObject({ owner: "near" });
    expect(h.run(allow, { customerId: "near", items: [{ entitlement: "seats" }] }).result.items[0]).toMatchObject({ owner: "near" });
  });

  it("no owner → SCOPE_UNRESOLVED, never metered on the caller", () => {
    const h = createHarness(policy);
    const out = h.run(allow, { customerId: "loner", items: [{ entitlement: "seats" }] });
    expect(out.result).toMatchObject({ allowed: false, reason: "SCOPE_UNRESOLVED", deniedItem: 0 });
    expect(h.store.metersOf("loner")).toEqual([]);
  });
});

describe("a hint's alt id that another customer has", () => {
  const tokens = (amount: number) => [{ entitlement: "tokens", amount }];

  it("is skipped, the rest of the hint applies, and the call is decided and counted for its caller", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "a", altIds: ["sk_a"] });
    const out = h.run(allow, { customerId: "z", items: tokens(2), hint: { plan: "pro", altIds: ["sk_a", "sk_z", "a"], metadata: { k: "v" } } });
    expect(out.result).toMatchObject({ allowed: true, customerId: "z", plan: "pro", items: [{ owner: "z", value: n(2) }] });
    expect(out.altIdConflicts).toEqual([
      { customerId: "z", altId: "sk_a", heldBy: "a" },
      { customerId: "z", altId: "a", heldBy: "a" },
    ]);
    expect(h.store.getCustomer("z")).toMatchObject({ plan: "pro", altIds: ["sk_z"], metadata: { k: "v" } });
    expect([h.store.resolveAltId("sk_a"), h.store.resolveAltId("sk_z")]).toEqual(["a", "z"]);
  });

  it("a Record racing with the alt id's first use as an id still counts, and so does every later call with the hint", () => {
    const h = createHarness(policy);
    // The app's other code path used the API key as a customer id first (created on the default plan).
    h.run(record, { customerId: "sk_live_1", items: tokens(100) });
    const rec = h.run(record, { customerId: "alice", items: tokens(50), hint: { altIds: ["sk_live_1"] } });
    expect(rec.result).toMatchObject({ allowed: true, customerId: "alice", items: [{ owner: "alice", value: n(50) }] });
    expect(rec.altIdConflicts).toEqual([{ customerId: "alice", altId: "sk_live_1", heldBy: "sk_live_1" }]);
    const later = h.run(record, { customerId: "alice", items: tokens(1), hint: { altIds: ["sk_live_1"] } });
    expect(later.result).toMatchObject({ items: [{ owner: "alice", value: n(51) }] });
    expect(later.writes.map((w) => w.kind)).toEqual(["meter-put"]);
    expect(later.altIdConflicts).toHaveLength(1);
    expect(h.store.getCustomer("alice")?.altIds).toEqual([]);
    expect(h.store.getMeter("sk_live_1", "tokens")?.value).toBe(n(100));
  });

  it("a Check reports it too, writing nothing; an alt id the caller already has is no conflict", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "a", altIds: ["sk_a"] });
    h.run(upsertCustomer, { id: "b", altIds: ["sk_b"] });
    const before = snapshot(h.store);
    const out = h.run(check, { customerId: "sk_b", items: tokens(1), hint: { altIds: ["sk_b", "sk_a"] } });
    expect(out.result).toMatchObject({ allowed: true, customerId: "b" });
    expect(out.altIdConflicts).toEqual([{ customerId: "b", altId: "sk_a", heldBy: "a" }]);
    expect(snapshot(h.store)).toEqual(before);
    expect(h.run(allow, { customerId: "b", items: tokens(1), hint: { altIds: ["sk_b"] } })).not.toHaveProperty("altIdConflicts");
  });
});

describe("admin", () => {
  it.each<[string, (ctx: EngineContext) => Outcome<unknown>, ErrorCode, string]>([
    ["empty id", (c) => upsertCustomer(c, { id: "" }), "INVALID_ARGUMENT", "id"],
    ["unknown plan", (c) => upsertCustomer(c, { id: "z", plan: "gold" }), "INVALID_ARGUMENT", "plan"],
    ["self ref", (c) => upsertCustomer(c, { id: "z", refs: ["a", "z"] }), "INVALID_ARGUMENT", "refs[1]"],
    ["alt id taken", (c) => upsertCustomer(c, { id: "z", altIds: ["free", "sk_a"] }), "ALREADY_EXISTS", "alt_ids[1]"],
    ["alt id is a primary id", (c) => upsertCustomer(c, { id: "z", altIds: ["a"] }), "ALREADY_EXISTS", "alt_ids[0]"],
    ["id is an alt id", (c) => upsertCustomer(c, { id: "sk_a" }), "ALREADY_EXISTS", "id"],
    ["get unknown", (c) => getCustomer(c, "nobody"), "NOT_FOUND", "customer_id"],
    ["delete unknown", (c) => deleteCustomer(c, "nobody"), "NOT_FOUND", "customer_id"],
    ["set plan unknown customer", (c) => setCustomerPlan(c, { customerId: "nobody", plan: "pro", resetMeters: false }), "NOT_FOUND", "customer_id"],
    ["set plan unknown plan", (c) => setCustomerPlan(c, { customerId: "a", plan: "gold", resetMeters: false }), "INVALID_ARGUMENT", "plan"],
    // A hint's errors name the request's proto field, customer_hint, as a client wrote it.
    ["hint empty alt id", (c) => allow(c, { customerId: "z", items: [{ entitlement: "tokens" }], hint: { altIds: [""] } }), "INVALID_ARGUMENT", "customer_hint.alt_ids[0]"],
    // Blank is refused as empty is, as it is for customer ids: such a ref or alt id can never be reached.
    ["blank ref", (c) => upsertCustomer(c, { id: "z", refs: ["a", " \t"] }), "INVALID_ARGUMENT", "refs[1]"],
    ["blank alt id", (c) => upsertCustomer(c, { id: "z", altIds: ["   "] }), "INVALID_ARGUMENT", "alt_ids[0]"],
    ["blank type", (c) => upsertCustomer(c, { id: "a", type: "  " }), "INVALID_ARGUMENT", "type"],
    ["hint blank ref", (c) => allow(c, { customerId: "z", items: [{ entitlement: "tokens" }], hint: { refs: ["  "] } }), "INVALID_ARGUMENT", "customer_hint.refs[0]"],
    ["hint blank alt id, stored customer", (c) => allow(c, { customerId: "a", items: [{ entitlement: "tokens" }], hint: { altIds: ["x", " "] } }), "INVALID_ARGUMENT", "customer_hint.alt_ids[1]"],
    ["hint blank type", (c) => record(c, { customerId: "z", items: [{ entitlement: "tokens" }], hint: { type: "\n" } }), "INVALID_ARGUMENT", "customer_hint.type"],
    ["hint blank type, check", (c) => check(c, { customerId: "a", items: [{ entitlement: "tokens" }], hint: { type: " " } }), "INVALID_ARGUMENT", "customer_hint.type"],
    ["hint self ref, stored customer", (c) => allow(c, { customerId: "a", items: [{ entitlement: "tokens" }], hint: { refs: ["a"] } }), "INVALID_ARGUMENT", "customer_hint.refs[0]"],
  ])("%s", (_name, op, code, field) => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "a", altIds: ["sk_a"] });
    const before = snapshot(h.store);
    throwsCode(() => op(h.ctx()), code, field);
    expect(snapshot(h.store)).toEqual(before);
  });

  it("upsert replaces given fields and moves alt ids in the index", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "a", altIds: ["x", "y"], metadata: { k: "v" } });
    const out = h.run(upsertCustomer, { id: "a", altIds: ["y", "z"], plan: "pro" });
    expect(out.events.map((e) => e.type)).toEqual(["customer-set", "customer-plan-changed"]);
    expect(out.result).toMatchObject({ effectivePlan: "pro", planSource: "own", customer: { altIds: ["y", "z"], metadata: { k: "v" } } });
    expect([h.store.resolveAltId("x"), h.store.resolveAltId("y"), h.store.resolveAltId("z")]).toEqual([undefined, "a", "a"]);
    expect(h.run(upsertCustomer, { id: "a", plan: "pro" }).writes).toEqual([]);
  });

  it("delete removes the customer, its alt ids and its meters", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "a", altIds: ["x"] });
    h.run(allow, { customerId: "a", items: [{ entitlement: "tokens", amount: 2 }] });
    const out = h.run(deleteCustomer, "x");
    expect(out.writes.map((w) => w.kind)).toEqual(["customer-delete", "meter-delete"]);
    expect(out.events.map((e) => e.type)).toEqual(["customer-removed"]);
    expect(snapshot(h.store)).toEqual([]);
    expect(h.store.resolveAltId("x")).toBeUndefined();
  });

  it("a plan change keeps meters (value and period) unless a reset is asked for", () => {
    const h = createHarness(policy);
    h.run(allow, { customerId: "a", items: [{ entitlement: "tokens", amount: 9 }] });
    const up = h.run(setCustomerPlan, { customerId: "a", plan: "pro", resetMeters: false });
    expect(up.result).toMatchObject({ effectivePlan: "pro" });
    expect(up.events.map((e) => e.type)).toEqual(["customer-set", "customer-plan-changed"]);
    expect(h.run(allow, { customerId: "a", items: [{ entitlement: "tokens", amount: 50 }] }).result.items[0]).toMatchObject({ value: n(59), limit: n(100) });
    h.now += 1000;
    const reset = h.run(setCustomerPlan, { customerId: "a", plan: "free", resetMeters: true });
    expect(reset.events.map((e) => e.type)).toEqual(["customer-set", "customer-plan-changed", "meter-reset"]);
    expect(reset.events[2]).toMatchObject({ oldValue: n(59), newValue: 0n, limit: n(10) });
    expect(h.store.getMeter("a", "tokens")).toMatchObject({ value: 0n, periodStart: h.now });
  });

  it("list pages in id order with effective plans", () => {
    const h = createHarness(policy);
    for (const id of ["c", "a", "d", "b"]) h.run(upsertCustomer, { id });
    const page1 = listCustomers(h.ctx(), "", 3).result;
    const page2 = listCustomers(h.ctx(), "c", 3).result;
    expect(page1.map((v) => v.customer.id)).toEqual(["a", "b", "c"]);
    expect(page2.map((v) => `${v.customer.id}:${v.effectivePlan}`)).toEqual(["d:free"]);
  });

  it("check evaluates a would-be customer with refs to existing ones without writing", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "acme", type: "org", plan: "pro" });
    const before = snapshot(h.store);
    const out = h.run(check, { customerId: "new", items: [{ entitlement: "seats" }, { entitlement: "support" }], hint: { refs: ["acme"] } });
    expect(out.result).toMatchObject({ allowed: true, plan: "pro", items: [{ owner: "acme" }, { granted: true }] });
    expect(snapshot(h.store)).toEqual(before);
  });
});
