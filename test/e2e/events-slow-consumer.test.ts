/**
 * A slow WatchEvents consumer never holds decisions up and never misses an event.
 *
 * Design (bounded in time for CI): the consumer reads with real backpressure (async iteration of
 * the grpc-js stream: nothing is read from HTTP/2 until it asks for the next message) and sleeps
 * 50 ms per event for as long as the 10k decisions are running; once they have all completed it
 * drains without sleeping. Sleeping 50 ms for all ~10k events would take ~500 s, which CI cannot
 * afford, and would prove nothing more: what matters is the phase where decisions and a slow
 * consumer overlap.
 *
 * What it proves:
 * - all 10k decisions complete while the consumer has received only a small part of the events
 *   (at 50 ms per event it can take at most ~20 events per second), so decisions did not wait
 *   for it;
 * - the consumer then receives every event, in order, with no gap, duplicate or lost marker.
 *   Thousands of events are outstanding when the decisions finish, far more than the server
 *   keeps in memory per subscriber (a bounded buffer of 1024 events plus the HTTP/2 windows), so
 *   the rest can only have come from the stored log: the subscriber switched to catch-up instead
 *   of blocking anything or dropping anything.
 */
import { afterEach, describe, expect, it } from "vitest";
import { allowOne } from "./helpers/clients.js";
import {
  createWorkspace,
  gapsAndDuplicates,
  lastSequence,
  runConcurrently,
  sleep,
  startEventsSidecar,
  type EventMsg,
  type WatchMessage,
} from "./helpers/event-stream.js";

const DECISIONS = 10_000;
const SLOW_MS_PER_EVENT = 50;

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("WatchEvents slow consumer", () => {
  it(`receives every event in order while ${DECISIONS} decisions complete without waiting for it`, { timeout: 240_000 }, async () => {
    const ws = createWorkspace();
    cleanups.push(() => ws.remove());
    const s = await startEventsSidecar(ws);
    cleanups.push(() => s.stop());
    const c = s.clients;

    const from = (await lastSequence(c)) + 1;
    const call = (c.decision as unknown as { WatchEvents: (r: object) => AsyncIterable<WatchMessage> & { cancel(): void } }).WatchEvents({
      from_sequence: String(from),
    });
    cleanups.push(() => call.cancel());

    let decisionsDone = false;
    let receivedWhenDecisionsDone = -1;
    const received: EventMsg[] = [];
    const markers: WatchMessage[] = [];
    let target = Infinity; // the last sequence, known once the decisions are done
    const caughtUp = (): boolean => received.length > 0 && Number(received[received.length - 1]?.sequence) >= target;
    const consumer = (async () => {
      for await (const m of call) {
        if (m.event) received.push(m.event);
        else markers.push(m);
        if (m.event && caughtUp()) return;
        if (!decisionsDone) await sleep(SLOW_MS_PER_EVENT);
      }
    })();
    // Handled below; if it is left waiting for a message after the last, the cleanup's cancel ends it.
    consumer.catch(() => {});

    let allowed = 0;
    await runConcurrently(DECISIONS, 64, async (i) => {
      const res = await allowOne(c, `cust-${i % 50}`, "images", 1, { attributes: { model: "m" } });
      if (res["allowed"] === true) allowed++;
    });
    decisionsDone = true;
    receivedWhenDecisionsDone = received.length;
    target = await lastSequence(c);

    expect(allowed).toBe(DECISIONS);
    // At most a few hundred events could have been consumed while the decisions ran; if the
    // decisions had been paced by the consumer, it would have received nearly all of them.
    expect(receivedWhenDecisionsDone).toBeLessThan(DECISIONS / 2);

    // Draining without sleeps, it can reach the last event while lastSequence is still in flight,
    // and then waits for a message that never comes.
    if (!caughtUp()) await consumer;
    expect(markers).toEqual([]); // nothing was pruned: no lost marker, and no silent gap either
    const seqs = received.map((e) => Number(e.sequence));
    expect(seqs[0]).toBe(from);
    expect(seqs[seqs.length - 1]).toBe(target);
    expect(gapsAndDuplicates(seqs)).toEqual({ gaps: [], duplicates: [] });
    // Every decision's event is there (plus the 50 auto-created customers' customer-set events).
    expect(received.filter((e) => e.type === "EVENT_TYPE_METER_CHANGED")).toHaveLength(DECISIONS);
    expect(received).toHaveLength(target - from + 1);
  });
});
