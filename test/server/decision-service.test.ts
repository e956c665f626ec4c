import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { startHarness, statusOf, unary } from "./harness.js";
import type { Harness, Obj } from "./harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

const allow = (req: Obj) => unary(h.decision, "Allow", req);

describe("DecisionService over grpc-js", () => {
  it("Allow counts usage and answers with flattened meter states", async () => {
    const res = await allow({ customer_id: "alice", items: [{ entitlement: "gpt_tokens", amount: 500 }], attributes: { model: "gpt-4o" } });
    expect(res).toMatchObject({ allowed: true, reason: "REASON_OK", customer_id: "alice", plan: "free", policy_version: "v-combined.yaml" });
    expect(res.denied_item).toBeUndefined();
    const [item] = res.items as Obj[];
    expect(item).toMatchObject({
      entitlement: "gpt_tokens",
      kind: "METER_KIND_METERED",
      granted: true,
      owner: "alice",
      credit: "token",
      mode: "LIMIT_MODE_HARD",
      value: 500,
      limit: 2000,
      remaining: 1500,
      held: 0,
      overage: 0,
    });
    expect(item?.period_start).toEqual({ seconds: String(Date.UTC(2026, 0, 15, 12) / 1000), nanos: 0 });
    // rolling 30 days from the meter's first use
    expect(item?.next_reset).toEqual({ seconds: String(Date.UTC(2026, 1, 14, 12) / 1000), nanos: 0 });
  });

  it("Allow past a hard limit is denied with the item index, and counts nothing", async () => {
    const res = await allow({
      customer_id: "alice",
      items: [
        { entitlement: "claude_tokens", amount: 1 },
        { entitlement: "gpt_tokens", amount: 1501 },
      ],
    });
    expect(res).toMatchObject({ allowed: false, reason: "REASON_HARD_LIMIT", denied_item: 1 });
    const meters = await unary(h.decision, "GetMeters", { customer_id: "alice", entitlements: ["gpt_tokens", "claude_tokens"] });
    expect((meters.meters as Obj[]).map((m) => [m.entitlement, m.value])).toEqual([
      ["gpt_tokens", 500],
      ["claude_tokens", 0],
    ]);
  });

  it("absent amount uses the limit's increment", async () => {
    const res = await allow({ customer_id: "inc", items: [{ entitlement: "gpt_tokens" }] });
    expect((res.items as Obj[])[0]?.value).toBe(1);
  });

  it("units convert into the credit's units", async () => {
    await unary(h.admin, "UpsertCustomer", { customer_id: "acme", type: "org" });
    const res = await allow({ customer_id: "bob", customer_hint: { refs: ["acme"] }, items: [{ entitlement: "storage_mb", amount: 0.5, unit: "GB" }] });
    expect(res.allowed).toBe(true);
    expect((res.items as Obj[])[0]).toMatchObject({ owner: "acme", unit: "MB", value: 500, limit: 1000 });
  });

  it("the example policy's seats have a floor: a member removed twice frees no extra seat", async () => {
    await unary(h.admin, "UpsertCustomer", { customer_id: "floor-org", type: "org" });
    const seat = (customer_id: string, amount: number) => allow({ customer_id, customer_hint: { refs: ["floor-org"] }, items: [{ entitlement: "seats", amount }] });
    await seat("m1", 1);
    await seat("m1", -1);
    expect(((await seat("m1", -1)).items as Obj[])[0]).toMatchObject({ owner: "floor-org", value: 0, limit: 3 });
    for (const m of ["m1", "m2", "m3"]) expect((await seat(m, 1)).allowed).toBe(true);
    expect(await seat("m4", 1)).toMatchObject({ allowed: false, reason: "REASON_HARD_LIMIT" });
  });

  it("a scoped entitlement without an owner of its type is SCOPE_UNRESOLVED", async () => {
    const res = await allow({ customer_id: "loner", items: [{ entitlement: "seats" }] });
    expect(res).toMatchObject({ allowed: false, reason: "REASON_SCOPE_UNRESOLVED", denied_item: 0 });
  });

  it("unknown entitlement is a decision, not an error", async () => {
    const res = await allow({ customer_id: "alice", items: [{ entitlement: "nope" }] });
    expect(res).toMatchObject({ allowed: false, reason: "REASON_UNKNOWN_ENTITLEMENT", denied_item: 0 });
  });

  it("a feature flag reports granted", async () => {
    await unary(h.admin, "UpsertCustomer", { customer_id: "prouser", plan: "pro" });
    const yes = await unary(h.decision, "Check", { customer_id: "prouser", items: [{ entitlement: "priority_support" }] });
    expect(yes).toMatchObject({ allowed: true, reason: "REASON_OK" });
    expect((yes.items as Obj[])[0]).toMatchObject({ kind: "METER_KIND_FEATURE", granted: true, owner: "" });
    const no = await unary(h.decision, "Check", { customer_id: "alice", items: [{ entitlement: "priority_support" }] });
    expect(no).toMatchObject({ allowed: false, reason: "REASON_NOT_ENTITLED" });
  });

  it("soft limit overage: allowed with SOFT_LIMIT_EXCEEDED", async () => {
    const res = await allow({ customer_id: "prouser", items: [{ entitlement: "gpt_tokens", amount: 50_010 }] });
    expect(res).toMatchObject({ allowed: true, reason: "REASON_SOFT_LIMIT_EXCEEDED" });
    expect((res.items as Obj[])[0]).toMatchObject({ mode: "LIMIT_MODE_SOFT", overage: 10, remaining: -10 });
  });

  it("Check changes nothing", async () => {
    const res = await unary(h.decision, "Check", { customer_id: "checker", items: [{ entitlement: "gpt_tokens", amount: 10 }] });
    expect(res).toMatchObject({ allowed: true });
    // Check reports the value Allow would leave; asking twice shows nothing was counted.
    expect((res.items as Obj[])[0]?.value).toBe(10);
    const again = await unary(h.decision, "Check", { customer_id: "checker", items: [{ entitlement: "gpt_tokens", amount: 10 }] });
    expect((again.items as Obj[])[0]?.value).toBe(10);
    const meters = await unary(h.decision, "GetMeters", { customer_id: "checker", entitlements: ["gpt_tokens"] });
    expect((meters.meters as Obj[])[0]?.value).toBe(0);
  });

  it("Record is never denied by a hard limit; past it is an overage", async () => {
    const res = await unary(h.decision, "Record", { customer_id: "rec", items: [{ entitlement: "gpt_tokens", amount: 2500 }] });
    expect(res).toMatchObject({ allowed: true, reason: "REASON_SOFT_LIMIT_EXCEEDED" });
    expect((res.items as Obj[])[0]).toMatchObject({ value: 2500, overage: 500 });
  });

  it("idempotency_key returns the first answer and counts once", async () => {
    const req = { customer_id: "idem", items: [{ entitlement: "gpt_tokens", amount: 7 }], idempotency_key: "k-1" };
    const a = await allow(req);
    const b = await allow(req);
    expect(b).toEqual(a);
    const meters = await unary(h.decision, "GetMeters", { customer_id: "idem", entitlements: ["gpt_tokens"] });
    expect((meters.meters as Obj[])[0]?.value).toBe(7);
  });

  it("Reserve holds room, Settle records the actual amount, Release frees the hold", async () => {
    const r = await unary(h.decision, "Reserve", {
      customer_id: "res",
      items: [{ entitlement: "gpt_tokens", amount: 1500 }],
      ttl: { seconds: 60, nanos: 0 },
    });
    expect(r).toMatchObject({ allowed: true, reason: "REASON_OK" });
    expect(r.reservation_id).toMatch(/\S/);
    expect(r.reservation_expires_at).toEqual({ seconds: String(Date.UTC(2026, 0, 15, 12) / 1000 + 60), nanos: 0 });
    expect((r.items as Obj[])[0]).toMatchObject({ held: 1500, remaining: 500 });

    const denied = await allow({ customer_id: "res", items: [{ entitlement: "gpt_tokens", amount: 600 }] });
    expect(denied).toMatchObject({ allowed: false, reason: "REASON_HARD_LIMIT" });

    const s = await unary(h.decision, "Settle", { reservation_id: r.reservation_id, actual: [{ entitlement: "gpt_tokens", amount: 1200 }] });
    expect(s).toMatchObject({ allowed: true, customer_id: "res" });
    expect((s.items as Obj[])[0]).toMatchObject({ value: 1200, held: 0 });

    const r2 = await unary(h.decision, "Reserve", { customer_id: "res", items: [{ entitlement: "gpt_tokens", amount: 100 }] });
    expect(await unary(h.decision, "Release", { reservation_id: r2.reservation_id })).toEqual({ released: true });
    expect(await unary(h.decision, "Release", { reservation_id: r2.reservation_id })).toEqual({ released: false });
    const m = await unary(h.decision, "GetMeters", { customer_id: "res", entitlements: ["gpt_tokens"] });
    expect((m.meters as Obj[])[0]).toMatchObject({ value: 1200, held: 0 });
  });

  it("GetMeters without entitlements lists the plan's entitlements", async () => {
    const m = await unary(h.decision, "GetMeters", { customer_id: "alice" });
    expect((m.meters as Obj[]).map((x) => x.entitlement).sort()).toEqual(["claude_tokens", "gpt_tokens", "seats", "storage_mb"].sort());
  });
});

describe("bad input is INVALID_ARGUMENT naming the field, and changes nothing", () => {
  const cases: [string, string, Obj, string][] = [
    ["empty customer_id", "Allow", { customer_id: "", items: [{ entitlement: "gpt_tokens" }] }, "customer_id"],
    ["no items", "Allow", { customer_id: "bad" }, "items"],
    ["empty entitlement", "Record", { customer_id: "bad", items: [{ entitlement: "gpt_tokens" }, { entitlement: "" }] }, "items[1].entitlement"],
    ["NaN amount", "Allow", { customer_id: "bad", items: [{ entitlement: "gpt_tokens", amount: NaN }] }, "items[0].amount"],
    ["Infinity amount", "Record", { customer_id: "bad", items: [{ entitlement: "gpt_tokens", amount: Infinity }] }, "items[0].amount"],
    ["-Infinity amount", "Check", { customer_id: "bad", items: [{ entitlement: "gpt_tokens", amount: -Infinity }] }, "items[0].amount"],
    ["unknown unit", "Allow", { customer_id: "bad", items: [{ entitlement: "gpt_tokens", amount: 1, unit: "parsecs" }] }, "items[0].unit"],
    ["zero ttl", "Reserve", { customer_id: "bad", items: [{ entitlement: "gpt_tokens" }], ttl: { seconds: 0 } }, "ttl"],
    ["negative ttl", "Reserve", { customer_id: "bad", items: [{ entitlement: "gpt_tokens" }], ttl: { seconds: -5 } }, "ttl"],
    ["ttl over 30 days", "Reserve", { customer_id: "bad", items: [{ entitlement: "gpt_tokens" }], ttl: { seconds: 30 * 86_400 + 1 } }, "ttl"],
    ["ttl past year 9999", "Reserve", { customer_id: "bad", items: [{ entitlement: "gpt_tokens" }], ttl: { seconds: 315_576_000_000 } }, "ttl"],
    ["empty reservation_id", "Settle", { reservation_id: "" }, "reservation_id"],
    ["settle NaN", "Settle", { reservation_id: "x", actual: [{ entitlement: "gpt_tokens", amount: NaN }] }, "actual[0].amount"],
    ["release empty id", "Release", { reservation_id: "" }, "reservation_id"],
    ["get meters empty id", "GetMeters", { customer_id: "" }, "customer_id"],
  ];
  it.each(cases)("%s", async (_name, method, req, field) => {
    const before = h.store.lastSequence();
    const err = await statusOf(unary(h.decision, method, req));
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details.startsWith(`${field}: `)).toBe(true);
    expect(h.store.lastSequence()).toBe(before);
    expect(h.store.getCustomer("bad")).toBeUndefined();
  });
});
