/**
 * The audit trail, asked the two questions the issue names, through ListEvents (paged) on a real
 * sidecar:
 * - "why was this customer blocked on the 3rd?": meter-limit events of one customer (asked by an
 *   alt id) in a time range. A spawned sidecar runs on the real clock, so "the 3rd" is a window
 *   [t1, t2) that the test opens and closes around a burst of traffic; denials of the same
 *   customer before and after it, and of another customer inside it, must not be returned.
 * - "which calls made up this overage?": the meter events of one customer's soft-limited
 *   entitlement, each carrying the policy version, the request's idempotency key and its
 *   attributes (`model`); their overages add up to the meter's and are priced.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allowOne, unary, type Obj } from "./helpers/clients.js";
import {
  createWorkspace,
  listAllEvents,
  sleep,
  startEventsSidecar,
  type EventMsg,
  type RunningEventsSidecar,
  type Workspace,
} from "./helpers/event-stream.js";

let ws: Workspace;
let s: RunningEventsSidecar;
let policyVersion: string;

beforeAll(async () => {
  ws = createWorkspace();
  s = await startEventsSidecar(ws);
  policyVersion = (await unary<{ version: string }>(s.clients.admin, "GetPolicyStatus", {})).version;
});
afterAll(async () => {
  await s.stop();
  ws.remove();
});

const timestamp = (ms: number): Obj => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 });

/** A time strictly after every event already acknowledged and before any not yet sent. */
async function boundary(): Promise<number> {
  await sleep(5);
  const t = Date.now();
  await sleep(5);
  return t;
}

describe("audit with ListEvents", () => {
  it('answers "why was this customer blocked on the 3rd?"', async () => {
    const c = s.clients;
    await unary(c.admin, "UpsertCustomer", { customer_id: "erin", alt_ids: ["cus_erin"] });
    // "The 2nd": erin uses 8 of 10; frank hits his limit and is denied.
    await allowOne(c, "erin", "chat", 8, { idempotency_key: "day2-erin" });
    await allowOne(c, "frank", "chat", 10);
    await allowOne(c, "frank", "chat", 1, { idempotency_key: "day2-frank-denied" });
    const t1 = await boundary();
    // "The 3rd": erin's last 2 go through, then two calls are denied; frank is denied again.
    await allowOne(c, "erin", "chat", 2, { idempotency_key: "day3-erin-ok", attributes: { model: "gpt" } });
    const denied1 = await allowOne(c, "erin", "chat", 1, { idempotency_key: "day3-erin-1", attributes: { model: "gpt" } });
    const denied2 = await allowOne(c, "cus_erin", "chat", 3, { idempotency_key: "day3-erin-2", attributes: { model: "claude" } });
    await allowOne(c, "frank", "chat", 1, { idempotency_key: "day3-frank-denied" });
    const t2 = await boundary();
    // "The 4th": erin is denied again.
    await allowOne(c, "erin", "chat", 1, { idempotency_key: "day4-erin-denied" });
    expect([denied1["allowed"], denied2["allowed"], denied1["reason"]]).toEqual([false, false, "REASON_HARD_LIMIT"]);

    const query = { customer_id: "cus_erin", types: ["EVENT_TYPE_METER_LIMIT"], start_time: timestamp(t1), end_time: timestamp(t2) };
    const { events, pages } = await listAllEvents(c, query, 1);
    expect(pages).toBeGreaterThan(1);
    expect(events.map((e) => [e.type, e.meter?.["idempotency_key"]])).toEqual([
      ["EVENT_TYPE_METER_LIMIT", "day3-erin-1"],
      ["EVENT_TYPE_METER_LIMIT", "day3-erin-2"],
    ]);
    // The answer is in the events: at 10 of a hard 10, a call for 1 (then 3) more was refused.
    expect(events.map((e) => e.meter)).toEqual([
      expect.objectContaining({
        customer_id: "erin",
        owner: "erin",
        entitlement: "chat",
        plan: "free",
        mode: "LIMIT_MODE_HARD",
        old_value: 10,
        new_value: 11,
        limit: 10,
        diff: 1,
        attributes: { model: "gpt" },
        policy_version: policyVersion,
      }),
      expect.objectContaining({ old_value: 10, new_value: 13, diff: 3, attributes: { model: "claude" }, policy_version: policyVersion }),
    ]);
    // Without the window, the denial of "the 4th" shows too; frank's never do.
    const allTime = await listAllEvents(c, { customer_id: "erin", types: ["EVENT_TYPE_METER_LIMIT"] });
    expect(allTime.events.map((e) => e.meter?.["idempotency_key"])).toEqual(["day3-erin-1", "day3-erin-2", "day4-erin-denied"]);
  });

  it('answers "which calls made up this overage?"', async () => {
    const c = s.clients;
    // Soft limit 100 tokens at $0.01 per token past it. Another customer's usage interleaves.
    const calls: [string, number, string][] = [
      ["req-1", 60, "gpt"],
      ["req-2", 30, "claude"],
      ["req-3", 25, "gpt"], // crosses 100: 15 over
      ["req-4", 10, "claude"], // 10 more over
    ];
    for (const [key, amount, model] of calls) {
      await allowOne(c, "gina", "tokens", amount, { idempotency_key: key, attributes: { model } });
      await allowOne(c, "hank", "tokens", 50, { idempotency_key: `hank-${key}`, attributes: { model } });
    }
    // A retry of req-4 counts nothing again and adds no event.
    await allowOne(c, "gina", "tokens", 10, { idempotency_key: "req-4", attributes: { model: "claude" } });

    const usage = await listAllEvents(c, { customer_id: "gina", entitlements: ["tokens"] }, 2);
    expect(usage.pages).toBeGreaterThan(1);
    expect(
      usage.events.map((e: EventMsg) => [e.type, e.meter?.["idempotency_key"], e.meter?.["attributes"], e.meter?.["diff"], e.meter?.["overage"]]),
    ).toEqual([
      ["EVENT_TYPE_METER_CHANGED", "req-1", { model: "gpt" }, 60, 0],
      ["EVENT_TYPE_METER_CHANGED", "req-2", { model: "claude" }, 30, 0],
      ["EVENT_TYPE_METER_OVERAGE", "req-3", { model: "gpt" }, 25, 15],
      ["EVENT_TYPE_METER_OVERAGE", "req-4", { model: "claude" }, 10, 10],
    ]);
    expect(usage.events.every((e) => e.meter?.["policy_version"] === policyVersion)).toBe(true);

    // Just the calls that went past the limit, and what they are billed.
    const overage = await listAllEvents(c, { customer_id: "gina", types: ["EVENT_TYPE_METER_OVERAGE"] }, 1);
    expect(overage.events.map((e) => [e.meter?.["idempotency_key"], e.meter?.["overage"], e.meter?.["overage_price"]])).toEqual([
      ["req-3", 15, 0.15],
      ["req-4", 10, 0.1],
    ]);
    const { meters } = await unary<{ meters: { value: number; overage: number }[] }>(c.decision, "GetMeters", {
      customer_id: "gina",
      entitlements: ["tokens"],
    });
    const total = overage.events.reduce((sum, e) => sum + Number(e.meter?.["overage"]), 0);
    expect(meters[0]).toMatchObject({ value: 125, overage: 25 });
    expect(total).toBe(meters[0]?.overage);
  });
});
