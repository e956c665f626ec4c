/**
 * Threshold events end to end, on a policy written for the test (`chat`: hard 10 requests,
 * `thresholds: [50, 80, 100]`): `meter-threshold` fires once per period when each percent is
 * first reached, in the same commit as the usage that reached it (the next sequence number, the
 * same time and call, already in the log when the Allow answers); `meter-threshold-cleared` fires
 * when a decrement, or a reset into a new period, takes the meter back below.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allowOne, unary, type Obj } from "./helpers/clients.js";
import {
  createWorkspace,
  lastSequence,
  listAllEvents,
  reached,
  seqOf,
  sleep,
  startEventsSidecar,
  subscribe,
  type EventMsg,
  type RunningEventsSidecar,
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

/** [type, old, new, threshold] of an event, for compact expectations. */
function brief(e: EventMsg): [string, number, number, number | undefined] {
  const m = e.meter as Obj;
  return [e.type.replace("EVENT_TYPE_METER_", ""), Number(m["old_value"]), Number(m["new_value"]), m["threshold"] as number | undefined];
}

/**
 * Sends one Allow and returns the events it logged: read from the log the moment the answer
 * arrives, so whatever is returned was committed together with (or before) the usage.
 */
async function allowAndLogged(customer: string, entitlement: string, amount: number, key: string): Promise<{ res: Obj; events: EventMsg[] }> {
  const before = await lastSequence(s.clients);
  const res = await allowOne(s.clients, customer, entitlement, amount, { idempotency_key: key, attributes: { model: "gpt" } });
  const { events } = await listAllEvents(s.clients, { customer_id: customer, entitlements: [entitlement] });
  return { res, events: events.filter((e) => seqOf(e) > before) };
}

describe("threshold events", () => {
  it("fire once when each percent is first reached, in the usage's commit, and clear on a decrement", async () => {
    const c = s.clients;
    const from = (await lastSequence(c)) + 1;
    const live = subscribe(c, { customer_id: "ivy", from_sequence: String(from) });

    const steps: [number, ReturnType<typeof brief>[]][] = [
      [4, [["CHANGED", 0, 4, undefined]]],
      [1, [["CHANGED", 4, 5, undefined], ["THRESHOLD", 4, 5, 50]]],
      [1, [["CHANGED", 5, 6, undefined]]], // 50 % again: already reached this period
      [4, [["CHANGED", 6, 10, undefined], ["THRESHOLD", 6, 10, 80], ["THRESHOLD", 6, 10, 100]]],
      [1, [["LIMIT", 10, 11, undefined]]], // denied: nothing changed, nothing reached
      [-3, [["CHANGED", 10, 7, undefined], ["THRESHOLD_CLEARED", 10, 7, 80], ["THRESHOLD_CLEARED", 10, 7, 100]]],
      [1, [["CHANGED", 7, 8, undefined], ["THRESHOLD", 7, 8, 80]]], // below, then reached again
    ];
    const logged: EventMsg[] = [];
    for (const [i, [amount, expected]] of steps.entries()) {
      const key = `ivy-${i}`;
      const { events } = await allowAndLogged("ivy", "chat", amount, key);
      expect(events.map(brief), `step ${i} (${amount})`).toEqual(expected);
      // One commit: consecutive sequence numbers, the same time, the same call.
      const seqs = events.map(seqOf);
      expect(seqs).toEqual(seqs.map((_, j) => (seqs[0] as number) + j));
      for (const e of events) {
        expect(e.time).toEqual(events[0]?.time);
        expect(e.meter).toMatchObject({ idempotency_key: key, attributes: { model: "gpt" }, customer_id: "ivy", limit: 10 });
      }
      logged.push(...events);
    }

    // A WatchEvents subscriber sees the same events, each threshold right after its usage.
    const last = seqOf(logged[logged.length - 1] as EventMsg);
    await live.until(reached(last), `sequence ${last}`);
    live.cancel();
    expect(live.events().filter((e) => e.meter?.["entitlement"] === "chat")).toEqual(logged);
  });

  it("clear every reached threshold when the period resets", async () => {
    // `burst` resets every 2 s. One call reaches all three thresholds at once.
    const first = await allowAndLogged("jack", "burst", 10, "jack-1");
    expect(first.events.map(brief)).toEqual([
      ["CHANGED", 0, 10, undefined],
      ["THRESHOLD", 0, 10, 50],
      ["THRESHOLD", 0, 10, 80],
      ["THRESHOLD", 0, 10, 100],
    ]);
    // Wait until the period has certainly ended (the answer says when it does).
    const item = (first.res["items"] as Obj[])[0] as { next_reset: { seconds: string; nanos: number } };
    const nextReset = Number(item.next_reset.seconds) * 1000 + Math.ceil(item.next_reset.nanos / 1e6);
    await sleep(Math.max(0, nextReset - Date.now()) + 100);

    const next = await allowAndLogged("jack", "burst", 1, "jack-2");
    expect(next.events.map(brief)).toEqual([
      ["RESET", 10, 0, undefined],
      ["THRESHOLD_CLEARED", 10, 0, 50],
      ["THRESHOLD_CLEARED", 10, 0, 80],
      ["THRESHOLD_CLEARED", 10, 0, 100],
      ["CHANGED", 0, 1, undefined],
    ]);
    const { meters } = await unary<{ meters: { value: number }[] }>(s.clients.decision, "GetMeters", { customer_id: "jack", entitlements: ["burst"] });
    expect(meters[0]?.value).toBe(1);
  });
});
