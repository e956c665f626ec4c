import { describe, expect, it } from "vitest";
import { allow, record, reserve, settle } from "../../src/engine/index.js";
import { buildPolicy, createHarness, credit, n, snapshot } from "./harness.js";

const policy = buildPolicy({ free: { isDefault: true, entitlements: { t: { limit: { credit: credit("token"), value: 10 } } } } });
const req = (amount: number, key = "k1") => ({ customerId: "u", items: [{ entitlement: "t", amount }], idempotencyKey: key });

describe("idempotency", () => {
  it.each([allow, record])("a replay returns the stored result and changes nothing (%#)", (op) => {
    const h = createHarness(policy);
    const first = h.run(op, req(4));
    expect(first.writes.at(-1)).toMatchObject({ kind: "idempotency-put", record: { key: "k1", expiresAt: h.now + 86_400_000 } });
    const before = snapshot(h.store);
    const again = h.run(op, req(4));
    expect(again).toEqual({ result: first.result, writes: [], events: [], replayed: op === allow ? "allow" : "record" });
    expect(snapshot(h.store)).toEqual(before);
    expect(h.store.getMeter("u", "t")?.value).toBe(n(4));
  });

  it("a denial is remembered too", () => {
    const h = createHarness(policy);
    h.run(allow, req(11));
    expect(h.run(allow, req(11)).result).toMatchObject({ allowed: false, reason: "HARD_LIMIT" });
  });

  it("the same key with a different request is INVALID_ARGUMENT on idempotency_key", () => {
    const h = createHarness(policy);
    h.run(allow, req(4));
    for (const other of [req(5), { ...req(4), customerId: "v" }, { ...req(4), hint: { plan: "free" } }]) {
      expect(() => h.run(allow, other)).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT", field: "idempotency_key" }));
    }
    expect(() => h.run(record, req(4))).toThrow(expect.objectContaining({ field: "idempotency_key" }));
  });

  it("hint metadata order does not change the fingerprint", () => {
    const h = createHarness(policy);
    h.run(allow, { ...req(1), hint: { metadata: { a: "1", b: "2" } } });
    expect(h.run(allow, { ...req(1), hint: { metadata: { b: "2", a: "1" } } }).writes).toEqual([]);
  });

  it("after the window the key counts again", () => {
    const h = createHarness(policy, undefined, { idempotencyWindowMs: 1000 });
    h.run(allow, req(4));
    h.now += 1000;
    expect(h.run(allow, req(4)).result.items[0]).toMatchObject({ value: n(8) });
  });

  it("reserve and settle replay too (a replayed settle does not hit NOT_FOUND)", () => {
    const h = createHarness(policy);
    const r = h.run(reserve, { ...req(3, "rk") }).result;
    expect(h.run(reserve, { ...req(3, "rk") }).result).toEqual(r);
    const s = h.run(settle, { reservationId: "r1", actual: [{ entitlement: "t", amount: 2 }], idempotencyKey: "sk" }).result;
    expect(h.run(settle, { reservationId: "r1", actual: [{ entitlement: "t", amount: 2 }], idempotencyKey: "sk" }).result).toEqual(s);
    expect(h.store.getMeter("u", "t")?.value).toBe(n(2));
  });

  it("the same key with different attributes is INVALID_ARGUMENT, not a replay of the other answer", () => {
    const h = createHarness(policy);
    h.run(allow, { ...req(4), attributes: { model: "gpt-4o" } });
    for (const attributes of [{ model: "claude" }, { model: "gpt-4o", region: "eu" }, {}]) {
      expect(() => h.run(allow, { ...req(4), attributes })).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT", field: "idempotency_key" }));
    }
    h.run(reserve, { ...req(1, "rk"), attributes: { model: "a" } });
    expect(() => h.run(reserve, { ...req(1, "rk"), attributes: { model: "b" } })).toThrow(expect.objectContaining({ field: "idempotency_key" }));
    const settleReq = (model: string) => ({ reservationId: "r1", actual: [{ entitlement: "t", amount: 1 }], attributes: { model }, idempotencyKey: "sk" });
    h.run(settle, settleReq("a"));
    expect(() => h.run(settle, settleReq("b"))).toThrow(expect.objectContaining({ field: "idempotency_key" }));
    // A settle without attributes means "the reservation's", so it is another request too.
    const { attributes: _inherited, ...withoutAttributes } = settleReq("a");
    expect(() => h.run(settle, withoutAttributes)).toThrow(expect.objectContaining({ field: "idempotency_key" }));
    expect(h.store.getMeter("u", "t")?.value).toBe(n(5));
  });

  it("attribute order does not change the fingerprint, and no attributes is the same as {}", () => {
    const h = createHarness(policy);
    h.run(allow, { ...req(1), attributes: { a: "1", b: "2" } });
    expect(h.run(allow, { ...req(1), attributes: { b: "2", a: "1" } }).writes).toEqual([]);
    h.run(allow, req(1, "k2"));
    expect(h.run(allow, { ...req(1, "k2"), attributes: {} }).writes).toEqual([]);
  });

  it("a retry of a request whose key was stored by an older version (no attributes in its fingerprint) still replays", () => {
    const h = createHarness(policy);
    const first = h.run(allow, { ...req(4), attributes: { model: "gpt" } });
    const put = first.writes.find((w) => w.kind === "idempotency-put");
    if (put?.kind !== "idempotency-put") throw new Error("no idempotency record");
    // Exactly what the previous version stored for this request, still within the window.
    const legacy = JSON.stringify(["allow", "u", [["t", 4, ""]], null, ""]);
    void h.store.commit([{ ...put, record: { ...put.record, fingerprint: legacy } }], []);
    const again = h.run(allow, { ...req(4), attributes: { model: "gpt" } });
    expect(again).toMatchObject({ result: first.result, writes: [], replayed: "allow" });
    // The old form still tells a different request apart.
    expect(() => h.run(allow, req(5))).toThrow(expect.objectContaining({ field: "idempotency_key" }));
    expect(h.store.getMeter("u", "t")?.value).toBe(n(4));
  });
});
