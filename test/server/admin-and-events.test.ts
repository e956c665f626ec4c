import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { collect, startHarness, statusOf, unary } from "./harness.js";
import type { Harness, Obj } from "./harness.js";
import { meterEvent } from "../store/fixtures.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

const watch = (req: Obj) => (h.decision as unknown as { WatchEvents(r: Obj): grpc.ClientReadableStream<Obj> }).WatchEvents(req);

describe("AdminService", () => {
  it("UpsertCustomer / GetCustomer (by alt id) / SetCustomerPlan / DeleteCustomer", async () => {
    const up = await unary(h.admin, "UpsertCustomer", { customer_id: "c1", plan: "pro", type: "user", alt_ids: ["cus_stripe_1"], metadata: { email: "a@b.c" } });
    expect(up.customer).toMatchObject({ id: "c1", plan: "pro", type: "user", alt_ids: ["cus_stripe_1"], metadata: { email: "a@b.c" }, effective_plan: "pro", plan_source: "PLAN_SOURCE_OWN" });
    const got = await unary(h.admin, "GetCustomer", { customer_id: "cus_stripe_1" });
    expect(got.customer).toMatchObject({ id: "c1", effective_plan: "pro" });
    const moved = await unary(h.admin, "SetCustomerPlan", { customer_id: "c1", plan: "" });
    expect(moved.customer).toMatchObject({ plan: "", effective_plan: "free", plan_source: "PLAN_SOURCE_DEFAULT" });
    const del = await unary(h.admin, "DeleteCustomer", { customer_id: "c1" });
    expect(del.customer).toMatchObject({ id: "c1" });
    const err = await statusOf(unary(h.admin, "GetCustomer", { customer_id: "c1" }));
    expect(err.code).toBe(grpc.status.NOT_FOUND);
  });

  it("SetCustomerPlan to a plan the policy lacks is an error, not a silent change", async () => {
    await unary(h.admin, "UpsertCustomer", { customer_id: "c2" });
    const err = await statusOf(unary(h.admin, "SetCustomerPlan", { customer_id: "c2", plan: "platinum" }));
    expect([grpc.status.INVALID_ARGUMENT, grpc.status.FAILED_PRECONDITION, grpc.status.NOT_FOUND]).toContain(err.code);
    expect(err.details).toMatch(/platinum/);
  });

  it("ListCustomers pages through every customer exactly once", async () => {
    for (let i = 0; i < 7; i++) await unary(h.admin, "UpsertCustomer", { customer_id: `page-${i}` });
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const res = await unary(h.admin, "ListCustomers", { page_size: 3, page_token: token });
      seen.push(...(res.customers as Obj[]).map((c) => c.id as string));
      token = res.next_page_token as string;
      pages += 1;
    } while (token !== "" && pages < 100);
    const ids = seen.filter((id) => id.startsWith("page-"));
    expect(ids).toEqual(Array.from({ length: 7 }, (_, i) => `page-${i}`));
    expect(new Set(seen).size).toBe(seen.length);
  });

  it("bad page_token and page_size are INVALID_ARGUMENT", async () => {
    expect((await statusOf(unary(h.admin, "ListCustomers", { page_token: "garbage!" }))).details).toMatch(/^page_token: /);
    expect((await statusOf(unary(h.admin, "ListCustomers", { page_size: -1 }))).details).toMatch(/^page_size: /);
    const ev = await statusOf(unary(h.admin, "ListEvents", { page_token: "Y3VzdG9tZXJzOng" }));
    expect(ev.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it("GetPolicyStatus reports the policy in force", async () => {
    const s = await unary(h.admin, "GetPolicyStatus", {});
    expect(s).toMatchObject({ version: "v-combined.yaml", source: "combined.yaml", last_errors: [], rejections_since_applied: 0 });
    expect(s.applied_at).toEqual({ seconds: String(Date.UTC(2026, 0, 15, 12) / 1000), nanos: 0 });
    expect(s.last_rejected_at).toBeNull();
  });

  it("ExportState streams every record exactly; ImportState restores them into a fresh server", async () => {
    await unary(h.decision, "Record", { customer_id: "exp", items: [{ entitlement: "gpt_tokens", amount: 0.1 }] });
    await unary(h.decision, "Record", { customer_id: "exp", items: [{ entitlement: "gpt_tokens", amount: 0.2 }] });
    await unary(h.decision, "Reserve", { customer_id: "exp", items: [{ entitlement: "claude_tokens", amount: 5 }] });
    // Past the limit (a Record is never denied), then given back: the overage billed stays.
    await unary(h.decision, "Record", { customer_id: "exp", items: [{ entitlement: "claude_tokens", amount: 2009 }] });
    await unary(h.decision, "Record", { customer_id: "exp", items: [{ entitlement: "claude_tokens", amount: -4 }] });
    const exported = await collect((h.admin as unknown as { ExportState(r: Obj): grpc.ClientReadableStream<Obj> }).ExportState({}));
    expect(exported.error).toBeUndefined();
    const records = exported.messages.map((m) => m.record as Obj);
    const meter = records.find((r) => (r.meter as Obj | null)?.owner === "exp" && (r.meter as Obj).entitlement === "gpt_tokens");
    expect((meter?.meter as Obj).value).toBe("0.3"); // exact decimal, not 0.30000000000000004
    expect((meter?.meter as Obj).billed_overage).toBe("0");
    expect((meter?.meter as Obj).reset_rule).toBe("2592000000ms"); // free's gpt_tokens: rolling 30 days
    const given = records.find((r) => (r.meter as Obj | null)?.owner === "exp" && (r.meter as Obj).entitlement === "claude_tokens");
    expect(given?.meter).toMatchObject({ value: "2005", billed_overage: "9" });
    expect(records.some((r) => r.reservation)).toBe(true);

    const fresh = await startHarness();
    try {
      const res = await new Promise<Obj>((resolve, reject) => {
        const call = (fresh.admin as unknown as { ImportState(cb: (e: grpc.ServiceError | null, r: Obj) => void): grpc.ClientWritableStream<Obj> }).ImportState(
          (e, r) => (e ? reject(e) : resolve(r)),
        );
        for (const record of records) call.write({ record });
        call.end();
      });
      expect(res.count).toBe(String(records.length));
      expect([...fresh.store.exportState()]).toEqual([...h.store.exportState()]);
    } finally {
      await fresh.close();
    }
  });

  it("ImportState names the bad record and field", async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      const call = (h.admin as unknown as { ImportState(cb: (e: grpc.ServiceError | null) => void): grpc.ClientWritableStream<Obj> }).ImportState(
        (e) => resolve(e as grpc.ServiceError),
      );
      call.write({ record: { customer: { id: "ok-import" } } });
      call.write({ record: { meter: { owner: "x", entitlement: "gpt_tokens", period_start: { seconds: 1 }, value: "lots" } } });
      call.end();
    });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/^requests\[1\]\.record\.meter\.value: /);
  });

  it("ListEvents answers audit queries by customer (alt id), entitlement, type and time, paged", async () => {
    await unary(h.admin, "UpsertCustomer", { customer_id: "aud", alt_ids: ["aud-alt"] });
    for (let i = 0; i < 5; i++) await unary(h.decision, "Allow", { customer_id: "aud", items: [{ entitlement: "gpt_tokens", amount: 500 }], idempotency_key: `aud-${i}` });
    const got: Obj[] = [];
    let token = "";
    do {
      const res = await unary(h.admin, "ListEvents", {
        customer_id: "aud-alt",
        entitlements: ["gpt_tokens"],
        types: ["EVENT_TYPE_METER_CHANGED", "EVENT_TYPE_METER_LIMIT"],
        page_size: 2,
        page_token: token,
      });
      got.push(...(res.events as Obj[]));
      token = res.next_page_token as string;
    } while (token !== "");
    expect(got.map((e) => e.type)).toEqual([...Array(4).fill("EVENT_TYPE_METER_CHANGED"), "EVENT_TYPE_METER_LIMIT"]);
    const limit = got[4]?.meter as Obj;
    expect(limit).toMatchObject({ customer_id: "aud", entitlement: "gpt_tokens", old_value: 2000, new_value: 2500, idempotency_key: "aud-4" });
    const seqs = got.map((e) => Number(e.sequence));
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);

    const future = await unary(h.admin, "ListEvents", { customer_id: "aud", start_time: { seconds: Date.UTC(2030, 0, 1) / 1000 } });
    expect(future.events).toEqual([]);
    const bad = await statusOf(unary(h.admin, "ListEvents", { types: ["EVENT_TYPE_UNSPECIFIED"] }));
    expect(bad.details).toMatch(/^types\[0\]: /);
  });
});

describe("WatchEvents", () => {
  it("replays stored events from from_sequence, then continues live, filtered by customer alt id and type", async () => {
    await unary(h.admin, "UpsertCustomer", { customer_id: "w1", alt_ids: ["w1-alt"] });
    const from = h.store.lastSequence() + 1;
    await unary(h.decision, "Allow", { customer_id: "w1", items: [{ entitlement: "gpt_tokens", amount: 1 }], attributes: { model: "gpt-4o" } });
    await unary(h.decision, "Allow", { customer_id: "other", items: [{ entitlement: "gpt_tokens", amount: 1 }] });
    const stream = watch({ from_sequence: from, customer_id: "w1-alt", types: ["EVENT_TYPE_METER_CHANGED"] });
    const got = collect(stream, 2);
    await unary(h.decision, "Allow", { customer_id: "w1", items: [{ entitlement: "gpt_tokens", amount: 2 }] });
    const { messages } = await got;
    const events = messages.map((m) => m.event as Obj);
    expect(events.map((e) => (e.meter as Obj).diff)).toEqual([1, 2]);
    expect(events[0]).toMatchObject({ type: "EVENT_TYPE_METER_CHANGED", payload: "meter" });
    expect(events[0]?.meter).toMatchObject({ customer_id: "w1", owner: "w1", entitlement: "gpt_tokens", attributes: { model: "gpt-4o" }, policy_version: "v-combined.yaml" });
    expect(Number(events[1]?.sequence)).toBeGreaterThan(Number(events[0]?.sequence));
  });

  it("filters by entitlement", async () => {
    const from = h.store.lastSequence() + 1;
    await unary(h.decision, "Allow", { customer_id: "w2", items: [{ entitlement: "gpt_tokens", amount: 1 }] });
    await unary(h.decision, "Allow", { customer_id: "w2", items: [{ entitlement: "claude_tokens", amount: 3 }] });
    const { messages } = await collect(watch({ from_sequence: from, entitlements: ["claude_tokens"] }), 1);
    expect((messages[0]?.event as Obj).meter).toMatchObject({ entitlement: "claude_tokens", diff: 3 });
  });

  it("max_batch_events: the same events in the same order, several per message, at most the cap each", async () => {
    const from = h.store.lastSequence() + 1;
    for (let i = 1; i <= 7; i++) await unary(h.decision, "Allow", { customer_id: "wb", items: [{ entitlement: "gpt_tokens", amount: i }] });
    const filter = { from_sequence: from, customer_id: "wb", types: ["EVENT_TYPE_METER_CHANGED"] };
    const single = await collect(watch(filter), 7);
    expect(single.messages.every((m) => m.kind === "event")).toBe(true);
    // Replayed from the log: 7 ready events, at most 3 per message.
    const batched = collect(watch({ ...filter, max_batch_events: 3 }), 4);
    await new Promise((r) => setTimeout(r, 50));
    await unary(h.decision, "Allow", { customer_id: "wb", items: [{ entitlement: "gpt_tokens", amount: 8 }] });
    const { messages } = await batched;
    expect(messages.map((m) => m.kind)).toEqual(["batch", "batch", "batch", "batch"]);
    const batches = messages.map((m) => (m.batch as { events: Obj[] }).events);
    expect(batches.map((b) => b.length)).toEqual([3, 3, 1, 1]);
    const diffs = batches.flat().map((e) => (e.meter as Obj).diff);
    expect(diffs).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(batches.flat().slice(0, 7)).toEqual(single.messages.map((m) => m.event));
    // 0 and 1 mean one event per message.
    const one = await collect(watch({ ...filter, max_batch_events: 1 }), 2);
    expect(one.messages.map((m) => m.kind)).toEqual(["event", "event"]);
  });

  it("max_batch_events above 1024 means 1024", async () => {
    const from = h.store.lastSequence() + 1;
    await h.store.commit([], Array.from({ length: 1100 }, (_, i) => meterEvent("cap", "gpt_tokens", BigInt(i + 1))));
    const { messages } = await collect(watch({ from_sequence: from, customer_id: "cap", max_batch_events: 5000 }), 2);
    expect(messages.map((m) => (m.batch as { events: Obj[] }).events.length)).toEqual([1024, 76]);
  });

  it("max_batch_delay_ms: live events of separate Allows wait for a fuller batch, up to the delay", async () => {
    const allow = (amount: number) => unary(h.decision, "Allow", { customer_id: "wd", items: [{ entitlement: "gpt_tokens", amount }] });
    const filter = { customer_id: "wd", types: ["EVENT_TYPE_METER_CHANGED"], max_batch_events: 3 };
    // A minute's delay: the first message can only come from a full batch of three commits.
    const full = collect(watch({ ...filter, max_batch_delay_ms: 60_000 }), 1);
    await new Promise((r) => setTimeout(r, 50));
    for (let i = 1; i <= 3; i++) await allow(i);
    const first = (await full).messages[0]?.batch as { events: Obj[] };
    expect(first.events.map((e) => (e.meter as Obj).diff)).toEqual([1, 2, 3]);
    // A short delay: a lone event goes once it is over.
    const lone = collect(watch({ ...filter, max_batch_delay_ms: 20 }), 1);
    await new Promise((r) => setTimeout(r, 50));
    await allow(4);
    expect(((await lone).messages[0]?.batch as { events: Obj[] }).events.map((e) => (e.meter as Obj).diff)).toEqual([4]);
  });

  it("max_batch_delay_ms without max_batch_events: each event at once, one per message", async () => {
    const filter = { customer_id: "wu", types: ["EVENT_TYPE_METER_CHANGED"], max_batch_delay_ms: 60_000 };
    const got = collect(watch(filter), 2);
    await new Promise((r) => setTimeout(r, 50));
    await unary(h.decision, "Allow", { customer_id: "wu", items: [{ entitlement: "gpt_tokens", amount: 1 }] });
    await unary(h.decision, "Allow", { customer_id: "wu", items: [{ entitlement: "gpt_tokens", amount: 2 }] });
    // The delay (capped at 10 s) would hold them; nothing waits for it.
    const early = await Promise.race([got, new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000))]);
    expect(early).toBeDefined();
    const { messages } = await got;
    expect(messages.map((m) => m.kind)).toEqual(["event", "event"]);
    expect(messages.map((m) => ((m.event as Obj).meter as Obj).diff)).toEqual([1, 2]);
  });

  it("max_batch_delay_ms above 10000 means 10000, not a timer past Node's limit", async () => {
    // Node runs a timer longer than 2^31-1 ms after 1 ms instead, with a warning each time.
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on("warning", onWarning);
    try {
      const filter = { customer_id: "wcap", types: ["EVENT_TYPE_METER_CHANGED"], max_batch_events: 2, max_batch_delay_ms: 4_294_967_295 };
      const got = collect(watch(filter), 1);
      await new Promise((r) => setTimeout(r, 50));
      await unary(h.decision, "Allow", { customer_id: "wcap", items: [{ entitlement: "gpt_tokens", amount: 1 }] });
      const early = await Promise.race([got.then(() => "delivered"), new Promise((r) => setTimeout(() => r("waiting"), 300))]);
      expect(early).toBe("waiting");
      await unary(h.decision, "Allow", { customer_id: "wcap", items: [{ entitlement: "gpt_tokens", amount: 2 }] });
      const events = ((await got).messages[0]?.batch as { events: Obj[] }).events;
      expect(events.map((e) => (e.meter as Obj).diff)).toEqual([1, 2]);
      expect(warnings).not.toContain("TimeoutOverflowWarning");
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("bad from_sequence and bad filters are INVALID_ARGUMENT", async () => {
    const past = await collect(watch({ from_sequence: h.store.lastSequence() + 5 }));
    expect(past.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(past.error?.details).toMatch(/^from_sequence: /);
    const type = await collect(watch({ types: ["EVENT_TYPE_CUSTOMER_SET", "EVENT_TYPE_UNSPECIFIED"] }));
    expect(type.error?.details).toMatch(/^types\[1\]: /);
  });
});
