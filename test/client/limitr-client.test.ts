/**
 * The TypeScript client against the real, built sidecar (combined.yaml): every method, the
 * readable reasons, units in amounts, admin helpers, errors, and the events iterator.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLimitrClient, LimitrError, parseAmount, type LimitrClient, type WatchItem } from "../../src/client/index.js";
import { startSidecar, stopSidecar, type SidecarProcess } from "../e2e/helpers/sidecar-process.js";

let sidecar: SidecarProcess;
let limitr: LimitrClient;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "limitr-client-"));
  sidecar = await startSidecar(["--policy", "examples/policies/combined.yaml", "--data-dir", dir]);
  limitr = createLimitrClient({ address: sidecar.grpcAddress });
});

afterAll(async () => {
  limitr?.close();
  if (sidecar) expect((await stopSidecar(sidecar)).code).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

const meter = async (customer: string, entitlement: string) => (await limitr.getMeters(customer, [entitlement]))[0];

describe("decisions", () => {
  it("allow on one entitlement reads as allowed/reason/remaining with numbers and Dates", async () => {
    const d = await limitr.allow("user_1", "gpt_tokens", 500);
    expect(d).toMatchObject({ allowed: true, reason: "OK", deniedItem: undefined, customerId: "user_1", plan: "free", entitlement: "gpt_tokens", value: 500, limit: 2000, remaining: 1500, overage: 0, unit: "token" });
    expect(d.nextReset).toBeInstanceOf(Date);
    expect(d.items[0]).toMatchObject({ kind: "metered", mode: "hard", owner: "user_1", credit: "token", held: 0 });
    expect(d.nextReset!.getTime() - d.items[0]!.periodStart!.getTime()).toBe(30 * 86_400_000);
    expect(d.policyVersion).toBe((await limitr.getPolicyStatus()).version);
  });

  it("a hard limit denies with HARD_LIMIT and counts nothing; multi-item is all-or-nothing", async () => {
    const denied = await limitr.allow("user_1", "gpt_tokens", 1501);
    expect(denied).toMatchObject({ allowed: false, reason: "HARD_LIMIT", deniedItem: 0, value: 500, remaining: 1500 });
    const multi = await limitr.allow("user_1", [
      { entitlement: "gpt_tokens", amount: 100 },
      { entitlement: "claude_tokens", amount: 2001 },
    ]);
    expect(multi).toMatchObject({ allowed: false, reason: "HARD_LIMIT", deniedItem: 1, entitlement: "claude_tokens" });
    expect((await meter("user_1", "gpt_tokens"))?.value).toBe(500);
    const both = await limitr.allow("user_1", [{ entitlement: "gpt_tokens", amount: 100 }, { entitlement: "claude_tokens" }]);
    expect(both.items.map((m) => [m.entitlement, m.value])).toEqual([["gpt_tokens", 600], ["claude_tokens", 1]]);
  });

  it("reports NOT_ENTITLED, UNKNOWN_ENTITLEMENT, SCOPE_UNRESOLVED and SOFT_LIMIT_EXCEEDED by name", async () => {
    expect((await limitr.allow("user_2", "priority_support")).reason).toBe("NOT_ENTITLED");
    expect((await limitr.allow("user_2", "gpt_tokenz", 1)).reason).toBe("UNKNOWN_ENTITLEMENT");
    expect((await limitr.allow("user_2", "seats", 1)).reason).toBe("SCOPE_UNRESOLVED");
    const soft = await limitr.allow("pro_1", "gpt_tokens", 50_250, { customer: { plan: "pro" } });
    expect(soft).toMatchObject({ allowed: true, reason: "SOFT_LIMIT_EXCEEDED", plan: "pro", value: 50_250, overage: 250, remaining: -250 });
    expect((await limitr.allow("pro_1", "priority_support")).items[0]).toMatchObject({ kind: "feature", granted: true });
  });

  it("sends amounts with units ('250MB', '0.5GiB') for the server to convert", async () => {
    expect(parseAmount("1.5GB")).toEqual({ amount: 1.5, unit: "GB" });
    expect(parseAmount("10_000")).toEqual({ amount: 10_000, unit: "" });
    expect(() => parseAmount("lots")).toThrow(TypeError);
    const hint = { customer: { refs: ["org_units"] } };
    await limitr.upsertCustomer({ id: "org_units", type: "org" });
    expect(await limitr.allow("member_u", "storage_mb", "250MB", hint)).toMatchObject({ allowed: true, value: 250, unit: "MB" });
    expect((await limitr.allow("member_u", "storage_mb", "0.5GiB")).value).toBeCloseTo(786.870912, 9);
    expect((await limitr.allow("member_u", [{ entitlement: "storage_mb", amount: 1, unit: "GB" }])).reason).toBe("HARD_LIMIT");
    await expect(limitr.allow("member_u", "storage_mb", "3parsecs")).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
  });

  it("check changes nothing; record counts past a limit as overage", async () => {
    const c = await limitr.check("rec_1", "gpt_tokens", 1999);
    expect(c).toMatchObject({ allowed: true, reason: "OK", value: 1999 });
    expect((await meter("rec_1", "gpt_tokens"))?.value).toBe(0);
    const r = await limitr.record("rec_1", "gpt_tokens", 2300, { attributes: { model: "gpt-4o" } });
    expect(r).toMatchObject({ allowed: true, reason: "SOFT_LIMIT_EXCEEDED", value: 2300, overage: 300 });
    expect((await limitr.check("rec_1", "gpt_tokens", 1)).reason).toBe("HARD_LIMIT");
  });

  it("reserve holds room, settle counts the actual usage, release frees it once", async () => {
    const res = await limitr.reserve("res_1", "gpt_tokens", 1500, { ttlMs: 60_000 });
    expect(res).toMatchObject({ allowed: true, reason: "OK", value: 0, remaining: 500 });
    expect(res.items[0]?.held).toBe(1500);
    expect(res.reservationId).toMatch(/.+/);
    expect(res.expiresAt!.getTime() - Date.now()).toBeGreaterThan(50_000);
    expect((await limitr.allow("res_1", "gpt_tokens", 501)).reason).toBe("HARD_LIMIT");
    const settled = await limitr.settle(res.reservationId!, "gpt_tokens", 420);
    expect(settled).toMatchObject({ allowed: true, value: 420, remaining: 1580 });
    expect(settled.items[0]?.held).toBe(0);

    const r2 = await limitr.reserve("res_1", [{ entitlement: "gpt_tokens", amount: 1000 }]);
    expect((await meter("res_1", "gpt_tokens"))?.held).toBe(1000);
    expect(await limitr.release(r2.reservationId!)).toBe(true);
    expect(await limitr.release(r2.reservationId!)).toBe(false);
    expect(await meter("res_1", "gpt_tokens")).toMatchObject({ value: 420, held: 0 });
    const denied = await limitr.reserve("res_1", "gpt_tokens", 5000);
    expect(denied).toMatchObject({ allowed: false, reason: "HARD_LIMIT", reservationId: undefined, expiresAt: undefined });
  });

  it("an explicit idempotency key counts once; each call without one gets its own", async () => {
    const a = await limitr.allow("idem_1", "gpt_tokens", 10, { idempotencyKey: "order-42" });
    const b = await limitr.allow("idem_1", "gpt_tokens", 10, { idempotencyKey: "order-42" });
    expect([a.value, b.value]).toEqual([10, 10]);
    await limitr.allow("idem_1", "gpt_tokens", 10);
    await limitr.allow("idem_1", "gpt_tokens", 10);
    expect((await meter("idem_1", "gpt_tokens"))?.value).toBe(30);
  });

  it("takes many calls at once without Node's listener-leak warning", async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on("warning", onWarning);
    try {
      const c = createLimitrClient({ address: sidecar.grpcAddress });
      const decisions = await Promise.all(Array.from({ length: 64 }, () => c.allow("many_1", "gpt_tokens", 1)));
      c.close();
      expect(decisions.every((d) => d.allowed)).toBe(true);
      // Warnings are emitted on the next tick.
      await new Promise((r) => setImmediate(r));
      expect(warnings.map((w) => w.name)).not.toContain("MaxListenersExceededWarning");
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("rejects bad input with a LimitrError naming the field, without retrying", async () => {
    const retried: string[] = [];
    const c = createLimitrClient({ address: sidecar.grpcAddress, onRetry: (i) => retried.push(i.method) });
    try {
      const e = await c.allow("", "gpt_tokens", 1).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(LimitrError);
      expect(e).toMatchObject({ code: "INVALID_ARGUMENT", method: "Allow", attempts: 1 });
      expect((e as Error).message).toContain("customer_id");
      await expect(c.allow("x", "gpt_tokens", Number.NaN)).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
      expect(retried).toEqual([]);
    } finally {
      c.close();
    }
    await expect(c.allow("x", "gpt_tokens", 1)).rejects.toMatchObject({ code: "CANCELLED" });
  });
});

describe("arguments", () => {
  it("bad arguments reject the returned promise rather than throw", async () => {
    const c = createLimitrClient({ address: sidecar.grpcAddress });
    try {
      let thrown: unknown;
      let rejected: Promise<unknown> | undefined;
      try {
        rejected = c.allow("x", "gpt_tokens", "abc");
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeUndefined();
      await expect(rejected).rejects.toThrow(TypeError);
      await expect(c.reserve("x", "gpt_tokens", 1, { ttlMs: -1 })).rejects.toThrow(/ttlMs/);
      await expect(c.settle("r", "gpt_tokens", "1 parsec")).rejects.toThrow();
    } finally {
      c.close();
    }
  });

  it("a fractional ttlMs that rounds up to a whole second is a valid duration", async () => {
    const r = await limitr.reserve("ttl_1", "gpt_tokens", 1, { ttlMs: 1999.9999999 });
    expect(r.allowed).toBe(true);
    expect((r.expiresAt?.getTime() ?? 0) - Date.now()).toBeLessThanOrEqual(2_000);
  });
});

describe("admin helpers", () => {
  it("upsert, get (by alt id), set plan, delete", async () => {
    const org = await limitr.upsertCustomer({ id: "org_a", type: "org", plan: "free", altIds: ["cus_A"], metadata: { region: "eu" } });
    expect(org).toMatchObject({ id: "org_a", type: "org", plan: "free", effectivePlan: "free", planSource: "own", altIds: ["cus_A"], metadata: { region: "eu" } });
    expect(org.createdAt).toBeInstanceOf(Date);
    await limitr.upsertCustomer({ id: "alice", refs: ["org_a"] });
    expect(await limitr.getCustomer("alice")).toMatchObject({ plan: "", effectivePlan: "free", planSource: "inherited" });
    expect((await limitr.getCustomer("cus_A"))?.id).toBe("org_a");
    expect(await limitr.getCustomer("nobody")).toBeUndefined();
    expect(await limitr.setCustomerPlan("cus_A", "pro")).toMatchObject({ id: "org_a", plan: "pro", effectivePlan: "pro" });
    expect((await limitr.getCustomer("alice"))?.effectivePlan).toBe("pro");
    expect((await limitr.deleteCustomer("alice"))?.id).toBe("alice");
    expect(await limitr.deleteCustomer("alice")).toBeUndefined();
    const status = await limitr.getPolicyStatus();
    expect(status).toMatchObject({ lastErrors: [], rejectionsSinceApplied: 0 });
    expect(status.source).toContain("combined.yaml");
    expect(status.appliedAt).toBeInstanceOf(Date);
  });
});

describe("events()", () => {
  it("yields filtered events in order, and resumes from a sequence", async () => {
    const it1 = limitr.events({ types: ["meter-overage"], customerId: "ev_1", fromSequence: 1 })[Symbol.asyncIterator]();
    await limitr.record("ev_1", "gpt_tokens", 1500, { attributes: { model: "gpt-4o" } });
    await limitr.record("ev_1", "gpt_tokens", 600, { idempotencyKey: "ev-k1" }); // 100 over
    await limitr.record("ev_1", "gpt_tokens", 50); // 50 more over
    const first = (await it1.next()).value as WatchItem;
    const second = (await it1.next()).value as WatchItem;
    await it1.return?.();
    expect(first.kind === "event" && first.type).toBe("meter-overage");
    if (first.kind !== "event" || second.kind !== "event") throw new Error("expected events");
    expect(first.meter).toMatchObject({ customerId: "ev_1", owner: "ev_1", entitlement: "gpt_tokens", plan: "free", oldValue: 1500, newValue: 2100, diff: 600, overage: 100, idempotencyKey: "ev-k1", mode: "hard", unit: "token" });
    expect(first.meter?.overagePrice).toBeCloseTo(0.002, 12);
    // An event's overage is what that call added (what billing sums), not the running total.
    expect(second.meter).toMatchObject({ newValue: 2150, overage: 50 });
    expect(second.sequence).toBeGreaterThan(first.sequence);
    expect(first.time).toBeInstanceOf(Date);

    // Resuming at first.sequence + 1 starts exactly at the second overage.
    const resumed = limitr.events({ types: ["meter-overage"], customerId: "ev_1", fromSequence: first.sequence + 1 });
    for await (const e of resumed) {
      expect(e).toMatchObject({ kind: "event", sequence: second.sequence });
      break;
    }
  });

  it("carries customer and plan-change payloads, and rejects an unknown type name", async () => {
    const stream = limitr.events({ types: ["customer-plan-changed"], customerId: "ev_2", fromSequence: 1 })[Symbol.asyncIterator]();
    await limitr.upsertCustomer({ id: "ev_2", plan: "free" });
    await limitr.setCustomerPlan("ev_2", "pro", { resetMeters: true });
    const e = (await stream.next()).value as WatchItem;
    await stream.return?.();
    expect(e).toMatchObject({ kind: "event", type: "customer-plan-changed", planChanged: { customerId: "ev_2", previousPlan: "free", newPlan: "pro", metersReset: true } });
    const bad = limitr.events({ types: ["meter-party" as "meter-changed"] })[Symbol.asyncIterator]();
    await expect(bad.next()).rejects.toThrow(/unknown event type "meter-party"/);
  });

  it("maxBatchDelayMs lets the sidecar hold live events for up to that long; a bad value is a TypeError", async () => {
    const stream = limitr.events({ customerId: "ev_3", types: ["meter-changed"], maxBatchDelayMs: 1500 })[Symbol.asyncIterator]();
    const next = stream.next();
    await new Promise((r) => setTimeout(r, 100));
    await limitr.record("ev_3", "gpt_tokens", 7);
    const early = await Promise.race([next.then(() => "delivered"), new Promise((r) => setTimeout(() => r("held"), 300))]);
    expect(early).toBe("held");
    expect((await next).value).toMatchObject({ kind: "event", meter: { customerId: "ev_3", diff: 7 } });
    await stream.return?.();
    for (const bad of [-1, 1.5, Number.NaN]) {
      await expect(limitr.events({ maxBatchDelayMs: bad })[Symbol.asyncIterator]().next()).rejects.toThrow(/maxBatchDelayMs must be/);
    }
  });

  it("aborting the signal, or close(), ends the iteration at once, not after the rest of a batch", async () => {
    for (let i = 0; i < 30; i++) await limitr.record("ev_4", "gpt_tokens", 1);
    for (const how of ["signal", "close"] as const) {
      const c = createLimitrClient({ address: sidecar.grpcAddress });
      const ctl = new AbortController();
      // A replay from sequence 1 arrives in batches of up to 256 events.
      const seen: WatchItem[] = [];
      for await (const e of c.events({ customerId: "ev_4", fromSequence: 1, signal: ctl.signal })) {
        seen.push(e);
        if (seen.length === 1) {
          if (how === "signal") ctl.abort();
          else c.close();
        }
      }
      expect(seen, how).toHaveLength(1);
      c.close();
    }
  });

  it("a filter the server refuses ends the iteration with INVALID_ARGUMENT instead of reconnecting", async () => {
    const s = limitr.events({ fromSequence: 1e12 })[Symbol.asyncIterator]();
    await expect(s.next()).rejects.toMatchObject({ code: "INVALID_ARGUMENT", method: "WatchEvents" });
  });
});
