/**
 * Retention end to end: the background maintenance of a real sidecar (`--event-retention-count`,
 * run every `--maintenance-interval`) prunes the oldest events; ListEvents stops returning them;
 * a WatchEvents that asks for a pruned sequence, or falls behind retention while reading, is told
 * with an `events_lost` marker naming the first available sequence, never left with a silent gap.
 */
import { afterEach, describe, expect, it } from "vitest";
import { allowOne } from "./helpers/clients.js";
import {
  createWorkspace,
  gapsAndDuplicates,
  lastSequence,
  listAllEvents,
  reached,
  runConcurrently,
  seqOf,
  sleep,
  startEventsSidecar,
  subscribe,
  type EventMsg,
  type RunningEventsSidecar,
  type WatchMessage,
} from "./helpers/event-stream.js";
import type { SidecarClients } from "./helpers/clients.js";

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(keep: number): Promise<RunningEventsSidecar> {
  const ws = createWorkspace();
  cleanups.push(() => ws.remove());
  const s = await startEventsSidecar(ws, ["--event-retention-count", String(keep), "--maintenance-interval", "100ms"]);
  cleanups.push(() => s.stop());
  return s;
}

/** Waits (polling ListEvents) until the maintenance has pruned the log down to `keep` events. */
async function prunedTo(c: SidecarClients, keep: number): Promise<EventMsg[]> {
  for (let i = 0; i < 300; i++) {
    const { events } = await listAllEvents(c);
    if (events.length <= keep) return events;
    await sleep(100);
  }
  throw new Error(`the log was not pruned to ${keep} events`);
}

/** Checks a WatchEvents transcript: events step by one, except across a lost marker that says exactly what was skipped. */
function expectNoSilentGap(messages: readonly WatchMessage[]): void {
  let prev: number | undefined;
  let pendingLost: { requested: number; first: number } | undefined;
  for (const m of messages) {
    if (m.events_lost) {
      pendingLost = { requested: Number(m.events_lost.requested_sequence), first: Number(m.events_lost.first_available_sequence) };
      if (prev !== undefined) expect(pendingLost.requested).toBe(prev + 1);
      expect(pendingLost.first).toBeGreaterThan(pendingLost.requested);
      continue;
    }
    const seq = seqOf(m.event as EventMsg);
    if (pendingLost) expect(seq).toBe(pendingLost.first);
    else if (prev !== undefined) expect(seq).toBe(prev + 1);
    prev = seq;
    pendingLost = undefined;
  }
}

describe("event retention", () => {
  it("prunes the oldest events; a WatchEvents from a pruned sequence gets the lost marker first", async () => {
    const keep = 25;
    const s = await start(keep);
    const c = s.clients;
    await runConcurrently(100, 8, (i) => allowOne(c, `cust-${i % 5}`, "images", 1));
    const retained = await prunedTo(c, keep);
    const last = seqOf(retained[retained.length - 1] as EventMsg);
    const first = seqOf(retained[0] as EventMsg);
    // 100 decisions and 5 customer creations were logged: only the newest 25 remain.
    expect(last).toBeGreaterThanOrEqual(106);
    expect(retained).toHaveLength(keep);
    expect(first).toBe(last - keep + 1);
    expect(gapsAndDuplicates(retained.map(seqOf))).toEqual({ gaps: [], duplicates: [] });

    // From 1 (pruned): the marker comes first, then everything from the first retained event.
    const fromOne = subscribe(c, { from_sequence: "1" });
    cleanups.push(() => fromOne.cancel());
    await fromOne.until(reached(last), `sequence ${last}`);
    expect(fromOne.messages[0]).toMatchObject({
      kind: "events_lost",
      events_lost: { requested_sequence: "1", first_available_sequence: String(first) },
    });
    expect(fromOne.events()).toEqual(retained);

    // From the last pruned sequence: told about exactly that one.
    const fromPruned = subscribe(c, { from_sequence: String(first - 1) });
    cleanups.push(() => fromPruned.cancel());
    await fromPruned.until(reached(last), `sequence ${last}`);
    expect(fromPruned.messages[0]?.events_lost).toEqual({ requested_sequence: String(first - 1), first_available_sequence: String(first) });
    expect(fromPruned.events()).toEqual(retained);

    // From the first retained sequence: nothing was lost, so no marker.
    const fromFirst = subscribe(c, { from_sequence: String(first) });
    cleanups.push(() => fromFirst.cancel());
    await fromFirst.until(reached(last), `sequence ${last}`);
    expect(fromFirst.messages.every((m) => m.kind === "event")).toBe(true);
    expect(fromFirst.events()).toEqual(retained);

    // ListEvents no longer returns pruned events, with or without filters.
    const audit = await listAllEvents(c, { types: ["EVENT_TYPE_METER_CHANGED"], customer_id: "cust-0" });
    expect(audit.events.every((e) => seqOf(e) >= first)).toBe(true);
  });

  it("a subscriber that falls behind retention while reading gets a lost marker mid-stream, never a silent gap", async () => {
    const keep = 50;
    const s = await start(keep);
    const c = s.clients;
    const from = (await lastSequence(c)) + 1;
    const call = (c.decision as unknown as { WatchEvents: (r: object) => AsyncIterable<WatchMessage> & { cancel(): void } }).WatchEvents({
      from_sequence: String(from),
    });
    cleanups.push(() => call.cancel());

    // The consumer reads 5 events, then stops reading (backpressure) until released.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const messages: WatchMessage[] = [];
    let target = Infinity;
    const consumer = (async () => {
      for await (const m of call) {
        messages.push(m);
        if (messages.length === 5) await released;
        if (m.event && seqOf(m.event) >= target) return;
      }
    })();

    // 5000 events: far more than the pipeline holds for a subscriber that stopped reading (its
    // feed's 1,024 events, the HTTP/2 stream's buffer and window, the client's buffer; on Node
    // 22, whose streams buffer 64 KiB to Node 20's 16, all of 2,000 fit), and retention keeps 50.
    await runConcurrently(5000, 32, (i) => allowOne(c, `cust-${i % 10}`, "images", 1));
    target = await lastSequence(c);
    const retained = await prunedTo(c, keep);
    release();
    await consumer;

    expectNoSilentGap(messages);
    const markers = messages.filter((m) => m.events_lost !== undefined);
    expect(markers).toHaveLength(1);
    const events = messages.flatMap((m) => (m.event ? [m.event] : []));
    expect(seqOf(events[0] as EventMsg)).toBe(from);
    // Everything after the marker is the retained log, as it was when the consumer resumed.
    expect(events.slice(-retained.length)).toEqual(retained);
    expect(Number(markers[0]?.events_lost?.first_available_sequence)).toBe(seqOf(retained[0] as EventMsg));
  });
});
