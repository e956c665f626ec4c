/**
 * A data dir restored from an export (`limitr-sidecar export`, then `import` into a new dir, as
 * after an emptyDir loss): a retried request with an idempotency key is answered as before and
 * counts nothing again, and the event log goes on numbering after the old one, so a consumer
 * resuming with its old cursor is told which events it cannot get instead of silently skipping
 * new ones.
 */
import type * as grpc from "@grpc/grpc-js";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { collect, unary, type Obj } from "./helpers/clients.js";
import { createWorkspace, lastSequence, seqOf, startEventsSidecar, subscribe, type RunningEventsSidecar } from "./helpers/event-stream.js";
import { runCli } from "./helpers/sidecar-process.js";

const ws = createWorkspace();
afterAll(() => ws.remove());

const allow = (s: RunningEventsSidecar, amount: number, key = ""): Promise<Obj> =>
  unary(s.clients.decision, "Allow", { customer_id: "acme", items: [{ entitlement: "tokens", amount }], idempotency_key: key });
const reserve = (s: RunningEventsSidecar, key: string): Promise<Obj> =>
  unary(s.clients.decision, "Reserve", { customer_id: "acme", items: [{ entitlement: "tokens", amount: 10 }], ttl: { seconds: "3600" }, idempotency_key: key });
const tokens = async (s: RunningEventsSidecar): Promise<Obj | undefined> =>
  (await unary<{ meters: Obj[] }>(s.clients.decision, "GetMeters", { customer_id: "acme", entitlements: ["tokens"] })).meters[0];

it("keeps idempotency keys and the event numbering across export and import into a new dir", async () => {
  const old = await startEventsSidecar(ws);
  const first = await allow(old, 60, "k1");
  for (let i = 0; i < 5; i++) await allow(old, 10); // past the soft limit: overage events
  const reserved = await reserve(old, "k2");
  const before = await tokens(old);
  const oldLast = await lastSequence(old.clients);
  expect(before).toMatchObject({ value: 110, held: 10 });
  await old.stop();

  const file = join(ws.dir, "backup.jsonl");
  expect(runCli(["export", "--data-dir", ws.dataDir, "--out", file]).status).toBe(0);
  const restored = { ...ws, dataDir: join(ws.dir, "restored") };
  expect(runCli(["import", "--data-dir", restored.dataDir, "--in", file]).status).toBe(0);

  const s = await startEventsSidecar(restored);
  try {
    // Retries after the restore: the stored answers, nothing counted or held again.
    expect(await allow(s, 60, "k1")).toEqual(first);
    expect(await reserve(s, "k2")).toEqual(reserved);
    expect(await tokens(s)).toEqual(before);

    // A consumer that had read only event 1 resumes: it learns the old events are gone, then gets
    // the new ones, numbered after the old log's.
    await allow(s, 1);
    const resumed = subscribe(s.clients, { from_sequence: 2 });
    await resumed.until((m) => m.some((x) => x.event !== undefined), "the first new event");
    resumed.cancel();
    expect(resumed.messages[0]?.events_lost).toEqual({ requested_sequence: "2", first_available_sequence: String(oldLast + 1) });
    expect(resumed.events().map(seqOf)[0]).toBe(oldLast + 1);
  } finally {
    await s.stop();
  }

  // An export from before these records were exported still imports; its numbering starts anew.
  const oldFormat = join(ws.dir, "old-format.jsonl");
  const lines = readFileSync(file, "utf8").trim().split("\n");
  writeFileSync(oldFormat, lines.filter((l) => !l.startsWith('{"eventLog"') && !l.startsWith('{"idempotency"')).join("\n") + "\n");
  const fromOld = { ...ws, dataDir: join(ws.dir, "from-old") };
  expect(runCli(["import", "--data-dir", fromOld.dataDir, "--in", oldFormat]).status).toBe(0);
  const o = await startEventsSidecar(fromOld);
  try {
    expect(await tokens(o)).toEqual(before);
    expect(await lastSequence(o.clients)).toBe(1); // its start-up's policy-applied event
  } finally {
    await o.stop();
  }
});

it("ImportState into a serving sidecar whose log has events of its own: a resume from an old cursor gets events_lost, also after a restart", async () => {
  const source = createWorkspace();
  const target = createWorkspace();
  try {
    const old = await startEventsSidecar(source);
    for (let i = 0; i < 8; i++) await allow(old, 20);
    const oldLast = await lastSequence(old.clients);
    const admin = old.clients.admin as unknown as { ExportState(r: Obj): grpc.ClientReadableStream<Obj> };
    const records = (await collect(admin.ExportState({}))).messages.map((m) => m.record as Obj);
    await old.stop();

    let s = await startEventsSidecar(target); // its start-up's policy-applied is its event 1
    try {
      expect(await lastSequence(s.clients)).toBeLessThan(3);
      await new Promise<Obj>((resolve, reject) => {
        const importer = s.clients.admin as unknown as { ImportState(cb: (e: grpc.ServiceError | null, r: Obj) => void): grpc.ClientWritableStream<Obj> };
        const call = importer.ImportState((e, ok) => (e ? reject(e) : resolve(ok)));
        for (const record of records) call.write({ record });
        call.end();
      });
      await allow(s, 1);
      // A consumer that had read events 1..2 of the old log resumes from 3: the dir's own event 1
      // is not the old log's, so it neither hides the loss nor is delivered.
      const lost = { requested_sequence: "3", first_available_sequence: String(oldLast + 1) };
      const resumed = subscribe(s.clients, { from_sequence: 3 });
      await resumed.until((m) => m.some((x) => x.event !== undefined), "the first new event");
      resumed.cancel();
      expect(resumed.messages[0]?.events_lost).toEqual(lost);
      expect(resumed.events().map(seqOf)).toEqual([oldLast + 1]);
      const fromStart = subscribe(s.clients, { from_sequence: 1 });
      await fromStart.until((m) => m.some((x) => x.event !== undefined), "the first new event");
      fromStart.cancel();
      expect(fromStart.events().map(seqOf)).toEqual([oldLast + 1]);

      await s.stop();
      s = await startEventsSidecar(target);
      const again = subscribe(s.clients, { from_sequence: 3 });
      await again.until((m) => m.some((x) => x.event !== undefined), "the first new event");
      again.cancel();
      expect(again.messages[0]?.events_lost).toEqual(lost);
      expect(again.events().map(seqOf)[0]).toBe(oldLast + 1);
    } finally {
      await s.stop();
    }
  } finally {
    source.remove();
    target.remove();
  }
}, 60_000);
