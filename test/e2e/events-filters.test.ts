/**
 * WatchEvents filters (event type, customer by primary or alt id, entitlement, combined) over a
 * replayed part and a live part of the log, checked against the unfiltered log with a predicate
 * written here independently of the server's; ListEvents with the same filters agrees. Bad
 * `from_sequence` and bad filters are INVALID_ARGUMENT naming the field.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { allowOne, statusOf, unary, type Obj } from "./helpers/clients.js";
import {
  createWorkspace,
  lastSequence,
  listAllEvents,
  reached,
  seqOf,
  startEventsSidecar,
  subscribe,
  type EventMsg,
  type RunningEventsSidecar,
  type Subscriber,
  type Workspace,
} from "./helpers/event-stream.js";

let ws: Workspace;
let s: RunningEventsSidecar;

beforeAll(async () => {
  ws = createWorkspace();
  s = await startEventsSidecar(ws);
});
afterAll(async () => {
  await s.stop();
  ws.remove();
});

/** A mix of customers, entitlements and outcomes: counted, overage and denied in each round. */
async function traffic(round: number): Promise<void> {
  const c = s.clients;
  for (let i = 0; i < 6; i++) {
    await allowOne(c, "stripe_alice", "chat", 1, { idempotency_key: `r${round}-a-chat-${i}` });
    await allowOne(c, "bob", "chat", 2, { idempotency_key: `r${round}-b-chat-${i}` });
    await allowOne(c, i % 2 === 0 ? "alice" : "bob", "tokens", 40, { attributes: { model: "gpt" } });
    await allowOne(c, "carol", "images", 1);
  }
}

/** Who an event is about, the way the API documents it (caller, meter owner, customer record). */
function about(e: EventMsg): string[] {
  const m = e.meter;
  if (m) return [String(m["customer_id"]), String(m["owner"])];
  for (const k of ["customer_set", "customer_removed"]) {
    const customer = (e[k] as { customer?: { id: string } } | undefined)?.customer;
    if (customer) return [customer.id];
  }
  const changed = e["customer_plan_changed"] as { customer_id: string } | undefined;
  return changed ? [changed.customer_id] : [];
}

describe("WatchEvents filters", () => {
  it("deliver exactly the matching events, replayed and live, and ListEvents agrees", async () => {
    const c = s.clients;
    await unary(c.admin, "UpsertCustomer", { customer_id: "alice", alt_ids: ["stripe_alice"] });
    await traffic(1);

    const cases: { name: string; req: Obj; want: (e: EventMsg) => boolean }[] = [
      {
        name: "types",
        req: { types: ["EVENT_TYPE_METER_LIMIT", "EVENT_TYPE_METER_OVERAGE"] },
        want: (e) => e.type === "EVENT_TYPE_METER_LIMIT" || e.type === "EVENT_TYPE_METER_OVERAGE",
      },
      { name: "customer by alt id", req: { customer_id: "stripe_alice" }, want: (e) => about(e).includes("alice") },
      { name: "customer by primary id", req: { customer_id: "bob" }, want: (e) => about(e).includes("bob") },
      { name: "entitlement", req: { entitlements: ["tokens"] }, want: (e) => e.meter?.["entitlement"] === "tokens" },
      {
        name: "combined",
        req: { customer_id: "bob", entitlements: ["chat", "images"], types: ["EVENT_TYPE_METER_LIMIT", "EVENT_TYPE_METER_CHANGED"] },
        want: (e) =>
          about(e).includes("bob") &&
          ["chat", "images"].includes(String(e.meter?.["entitlement"])) &&
          ["EVENT_TYPE_METER_LIMIT", "EVENT_TYPE_METER_CHANGED"].includes(e.type),
      },
    ];
    const subs: Subscriber[] = cases.map(({ req }) => subscribe(c, { ...req, from_sequence: "1" }));
    try {
      // Let each subscriber finish replaying round 1, then commit round 2: those events reach
      // subscribers that are already following the live end of the log.
      const round1 = (await listAllEvents(c)).events;
      for (const [i, { name, want }] of cases.entries()) {
        const matching = round1.filter(want);
        if (matching.length > 0) await (subs[i] as Subscriber).until(reached(seqOf(matching[matching.length - 1] as EventMsg)), `round 1 of ${name}`);
      }
      await traffic(2);

      const all = (await listAllEvents(c)).events;
      for (const [i, { name, req, want }] of cases.entries()) {
        const expected = all.filter(want);
        // Every filter selects some events and leaves some out, or it would test nothing.
        expect(expected.length, name).toBeGreaterThan(0);
        expect(expected.length, name).toBeLessThan(all.length);
        const sub = subs[i] as Subscriber;
        await sub.until(reached(seqOf(expected[expected.length - 1] as EventMsg)), `the last ${name} event`);
        expect(sub.events(), name).toEqual(expected);
        expect((await listAllEvents(c, req, 7)).events, `ListEvents ${name}`).toEqual(expected);
      }
      // Both rounds are in what every filter selects, so both the replay and the live part count.
      for (const { name, want } of cases) {
        const selected = all.filter(want);
        expect(selected.some((e) => seqOf(e) <= seqOf(round1[round1.length - 1] as EventMsg)), name).toBe(true);
        expect(selected.some((e) => seqOf(e) > seqOf(round1[round1.length - 1] as EventMsg)), name).toBe(true);
      }
      // Hard limit 10: bob (2 per call) is denied once in round 1 and 6 times in round 2, alice
      // (1 per call) twice in round 2.
      const limits = (id: string): number => all.filter((e) => e.type === "EVENT_TYPE_METER_LIMIT" && about(e).includes(id)).length;
      expect([limits("bob"), limits("alice")]).toEqual([7, 2]);
    } finally {
      for (const sub of subs) sub.cancel();
    }
  });

  it("a customer filter by an id no customer has yet follows the customer that takes it as an alt id", async () => {
    const c = s.clients;
    // Billing subscribes by the Stripe id before the customer's first call creates it.
    const sub = subscribe(c, { customer_id: "cus_later", send_position: true });
    try {
      await sub.until((m) => m.length >= 1, "the opening position");
      await allowOne(c, "dave", "chat", 1, { customer_hint: { alt_ids: ["cus_later"] } });
      await allowOne(c, "bob", "chat", 1); // someone else's
      await allowOne(c, "dave", "chat", 2);
      const wanted = (await listAllEvents(c, { customer_id: "cus_later" })).events;
      expect(wanted.map((e) => e.type)).toEqual(["EVENT_TYPE_CUSTOMER_SET", "EVENT_TYPE_METER_CHANGED", "EVENT_TYPE_METER_CHANGED"]);
      await sub.until(reached(seqOf(wanted[2] as EventMsg)), "dave's events");
      expect(sub.events()).toEqual(wanted);
    } finally {
      sub.cancel();
    }
  });

  it("reject a bad from_sequence and bad filters with INVALID_ARGUMENT naming the field", async () => {
    const c = s.clients;
    const last = await lastSequence(c);
    const bad: [Obj, string][] = [
      [{ from_sequence: String(last + 2) }, "from_sequence"],
      [{ from_sequence: "18446744073709551615" }, "from_sequence"],
      [{ types: ["EVENT_TYPE_UNSPECIFIED"] }, "types[0]"],
      [{ types: ["EVENT_TYPE_METER_CHANGED", 99] }, "types[1]"],
      [{ entitlements: ["chat", ""] }, "entitlements[1]"],
    ];
    for (const [req, field] of bad) {
      const sub = subscribe(c, req);
      const error = await sub.ended;
      expect(error?.code, JSON.stringify(req)).toBe(grpc.status.INVALID_ARGUMENT);
      expect(error?.details, JSON.stringify(req)).toContain(field);
      expect(sub.messages).toEqual([]);
    }
    // The newest + 1 is fine: it means "from the next event on".
    const next = subscribe(c, { from_sequence: String(last + 1) });
    await allowOne(c, "carol", "images", 1);
    await next.until(reached(last + 1), `sequence ${last + 1}`);
    next.cancel();

    const badList: [Obj, string][] = [
      [{ types: ["EVENT_TYPE_UNSPECIFIED"] }, "types[0]"],
      [{ types: [42] }, "types[0]"],
      [{ entitlements: [""] }, "entitlements[0]"],
      [{ page_token: "not-a-token" }, "page_token"],
      [{ start_time: { seconds: 2000 }, end_time: { seconds: 1000 } }, "end_time"],
    ];
    for (const [req, field] of badList) {
      const error = await statusOf(unary(c.admin, "ListEvents", req));
      expect(error.code, JSON.stringify(req)).toBe(grpc.status.INVALID_ARGUMENT);
      expect(error.details, JSON.stringify(req)).toContain(field);
    }
  });
});
