/**
 * WatchEvents resumes exactly where a consumer left off: after the client goes away mid-stream,
 * and after the server restarts on the same data dir. "Exactly" is checked against the log
 * itself (ListEvents): the union of what the consumer received is every event, each once, in
 * sequence order, field for field.
 */
import { afterEach, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { allowOne, unary } from "./helpers/clients.js";
import {
  createWorkspace,
  gapsAndDuplicates,
  lastSequence,
  listAllEvents,
  reached,
  runConcurrently,
  seqOf,
  startEventsSidecar,
  subscribe,
  type EventMsg,
  type RunningEventsSidecar,
  type Workspace,
} from "./helpers/event-stream.js";

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function workspace(): Workspace {
  const ws = createWorkspace();
  cleanups.push(() => ws.remove());
  return ws;
}

async function start(ws: Workspace): Promise<RunningEventsSidecar> {
  const s = await startEventsSidecar(ws);
  cleanups.push(() => s.stop());
  return s;
}

describe("WatchEvents resume", () => {
  it("resumes after the client cancels mid-stream: from last seen + 1, no gap, no duplicate", async () => {
    const s = await start(workspace());
    const c = s.clients;
    // Traffic runs the whole time: the first consumer cancels while events are still arriving,
    // and more are committed while nobody is subscribed.
    const traffic = runConcurrently(400, 8, (i) =>
      allowOne(c, `cust-${i % 7}`, "images", 1, { attributes: { model: `m${i % 3}` }, idempotency_key: `k-${i}` }),
    );
    const first = subscribe(c, { from_sequence: "1" });
    await first.until((m) => m.length >= 60, "60 events before cancelling");
    first.cancel();
    const cancelled = await first.ended;
    expect(cancelled?.code).toBe(grpc.status.CANCELLED);
    const before = first.events();
    // Messages can still be in flight when cancel() is called; whatever arrived counts as seen.
    const lastSeen = seqOf(before[before.length - 1] as EventMsg);
    expect(lastSeen).toBeGreaterThanOrEqual(60);

    await traffic;
    const last = await lastSequence(c);
    expect(last).toBeGreaterThan(lastSeen); // the second subscriber really has to catch up

    const second = subscribe(c, { from_sequence: String(lastSeen + 1) });
    cleanups.push(() => second.cancel());
    await second.until(reached(last), `sequence ${last}`);
    const after = second.events();
    expect(seqOf(after[0] as EventMsg)).toBe(lastSeen + 1);

    const union = [...before, ...after];
    const seqs = union.map(seqOf);
    expect(gapsAndDuplicates(seqs)).toEqual({ gaps: [], duplicates: [] });
    expect(seqs[0]).toBe(1);
    expect(seqs[seqs.length - 1]).toBe(last);
    // Field for field what the log holds (not just the right numbers).
    expect(union).toEqual((await listAllEvents(c)).events);
    expect(second.messages.every((m) => m.kind === "event")).toBe(true);
    // 400 allows of `images`, each counted once (the idempotency keys are all distinct).
    expect(union.filter((e) => e.type === "EVENT_TYPE_METER_CHANGED")).toHaveLength(400);
  });

  it("resumes after the server restarts on the same data dir: sequences continue, replay is complete", async () => {
    const ws = workspace();
    const s1 = await start(ws);
    await runConcurrently(60, 6, (i) => allowOne(s1.clients, `cust-${i % 4}`, "chat", 1, { idempotency_key: `a-${i}` }));
    const beforeRestart = (await listAllEvents(s1.clients)).events;
    const last1 = seqOf(beforeRestart[beforeRestart.length - 1] as EventMsg);

    // A live subscriber when SIGTERM comes: it reads everything, then is told to resume
    // elsewhere (UNAVAILABLE), never left hanging or ended as if the log were complete.
    const live = subscribe(s1.clients, { from_sequence: "1" });
    await live.until(reached(last1), `sequence ${last1}`);
    const exit = await s1.stop();
    expect(exit.code).toBe(0);
    const endStatus = await live.ended;
    expect(endStatus?.code).toBe(grpc.status.UNAVAILABLE);
    const seen = live.events();
    expect(seen).toEqual(beforeRestart);
    const cursor = seqOf(seen[seen.length - 1] as EventMsg) + 1;

    const s2 = await start(ws);
    // More traffic after the restart: 40 more `chat` units spread over the same customers
    // (each has a hard limit of 10, so some are denied and logged as meter-limit).
    await runConcurrently(40, 6, (i) => allowOne(s2.clients, `cust-${i % 4}`, "chat", 1, { idempotency_key: `b-${i}` }));
    const all = (await listAllEvents(s2.clients)).events;
    const last2 = seqOf(all[all.length - 1] as EventMsg);

    // Sequence numbers continue from the old log (the new policy-applied event is next).
    expect(all.slice(0, beforeRestart.length)).toEqual(beforeRestart);
    expect(seqOf(all[beforeRestart.length] as EventMsg)).toBe(last1 + 1);
    expect(all[beforeRestart.length]?.type).toBe("EVENT_TYPE_POLICY_APPLIED");
    expect(gapsAndDuplicates(all.map(seqOf))).toEqual({ gaps: [], duplicates: [] });

    // Resume from the cursor: exactly the events committed since, old and new process alike.
    const resumed = subscribe(s2.clients, { from_sequence: String(cursor) });
    cleanups.push(() => resumed.cancel());
    await resumed.until(reached(last2), `sequence ${last2}`);
    expect(resumed.events()).toEqual(all.filter((e) => seqOf(e) >= cursor));

    // A full replay from 1 on the new process is complete too.
    const replay = subscribe(s2.clients, { from_sequence: "0" });
    cleanups.push(() => replay.cancel());
    await replay.until(reached(last2), `sequence ${last2}`);
    expect(replay.events()).toEqual(all);

    // The meters the events describe survived too: per customer, what the chat events added.
    for (let k = 0; k < 4; k++) {
      const id = `cust-${k}`;
      const added = all
        .filter((e) => e.meter?.["customer_id"] === id && e.meter["entitlement"] === "chat")
        .filter((e) => e.type === "EVENT_TYPE_METER_CHANGED" || e.type === "EVENT_TYPE_METER_OVERAGE")
        .reduce((sum, e) => sum + Number(e.meter?.["diff"]), 0);
      const { meters } = await unary<{ meters: { value: number }[] }>(s2.clients.decision, "GetMeters", { customer_id: id, entitlements: ["chat"] });
      expect(meters[0]?.value).toBe(added);
      expect(added).toBe(10); // 25 attempts each, hard limit 10
    }
  });

  it("announces its position first when asked: a live-only stream that breaks before any event resumes from it", async () => {
    const s = await start(workspace());
    const c = s.clients;
    for (let i = 0; i < 3; i++) await allowOne(c, "pos-1", "chat", 1);
    const last = await lastSequence(c);

    const live = subscribe(c, { send_position: true });
    cleanups.push(() => live.cancel());
    await live.until((m) => m.length >= 1, "the position");
    expect(live.messages[0]).toMatchObject({ kind: "position", position: { next_sequence: String(last + 1) } });
    live.cancel();
    // Committed while nobody is subscribed: a live-only restart would never see these.
    await allowOne(c, "pos-1", "chat", 1);
    await allowOne(c, "pos-2", "chat", 1);
    const resumed = subscribe(c, { from_sequence: live.messages[0]?.position?.next_sequence, send_position: true });
    cleanups.push(() => resumed.cancel());
    await resumed.until((m) => m.length >= 3, "the position and two events");
    expect(resumed.messages[0]).toMatchObject({ kind: "position", position: { next_sequence: String(last + 1) } });
    expect(resumed.events().map(seqOf)).toEqual([last + 1, last + 2]);

    // With from_sequence the position is where the replay starts (0 read as 1); without
    // send_position there is no position message, as before it existed.
    const replay = subscribe(c, { from_sequence: "0", send_position: true });
    cleanups.push(() => replay.cancel());
    await replay.until((m) => m.length >= 2, "the position and the first event");
    expect(replay.messages[0]).toMatchObject({ kind: "position", position: { next_sequence: "1" } });
    expect(seqOf(replay.messages[1]?.event as EventMsg)).toBe(1);
    const plain = subscribe(c, { from_sequence: "1" });
    cleanups.push(() => plain.cancel());
    await plain.until((m) => m.length >= 1, "the first event");
    expect(plain.messages[0]?.kind).toBe("event");
  });
});
