import { describeStoreContract } from "./store-contract.js";
import fc from "fast-check";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { open, type Key } from "lmdb";
import { afterEach, describe, expect, it } from "vitest";
import {
  NO_HOLD_SUMMARY,
  summarizeHolds,
  type DecisionResult,
  type EngineEvent,
  type IdempotencyRecord,
  type ItemView,
  type MeterView,
  type StateRecord,
  type StoredEvent,
  type Write,
} from "../../src/engine/index.js";
import { isLimitrError } from "../../src/errors/index.js";
import { FORMAT_VERSION, createLmdbStore, type LmdbStore } from "../../src/store/index.js";
import { encodeMeter } from "../../src/store/row-codecs.js";
import { createMemoryStore } from "../../src/store/memory-store.js";
import { meterEvents } from "../helpers/event-arbitraries.js";
import { HUGE, customer, idempotency, meter, meterEvent, reservation } from "./fixtures.js";
import { tempDir, tempStore } from "./temp-store.js";

const disposers = new Map<unknown, () => Promise<void>>();

function make(fsync: boolean) {
  return (): LmdbStore => {
    const t = tempStore({ fsync });
    disposers.set(t.store, t.dispose);
    return t.store;
  };
}

const dispose = async (s: unknown): Promise<void> => {
  await disposers.get(s)?.();
  disposers.delete(s);
};

describeStoreContract("lmdb", make(false), { dispose });
describeStoreContract("lmdb fsync", make(true), { dispose });

// ───────────────────────────── LMDB specifics ─────────────────────────────


const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function dir(): string {
  const t = tempDir();
  cleanups.push(t.remove);
  return t.dir;
}

function openAt(path: string, options: { fsync?: boolean; maxDataBytes?: number; recentEvents?: number } = {}): LmdbStore {
  const s = createLmdbStore({ path, ...options });
  cleanups.push(() => s.close());
  return s;
}

const fileHash = (path: string): string =>
  createHash("sha256").update(readFileSync(join(path, "limitr.mdb"))).digest("hex");

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.fail("expected a rejection"),
    (e: unknown) => e,
  );
}

describe("lmdb store", () => {
  it("reads everything back after reopen, including quantities beyond int64", async () => {
    const path = dir();
    const s1 = openAt(path);
    const c = customer("c1", { altIds: ["stripe_1"], refs: ["org1"], metadata: { email: "x@y" } });
    const holds = [{ reservationId: "r1", amount: -HUGE, expiresAt: 7 }];
    const m = meter("c1", "chat", HUGE, { overhead: -HUGE, holdSummary: summarizeHolds(holds) });
    const events: EngineEvent[] = [
      meterEvent("c1", "chat", HUGE, { overagePrice: HUGE * HUGE }),
      { type: "customer-set", time: 5, customer: c },
      { type: "policy-applied", time: 6, policyVersion: "v2", source: "/p.yaml", removedPlans: ["old"] },
    ];
    await s1.commit(
      [
        { kind: "customer-put", customer: c, previous: undefined },
        { kind: "meter-put", meter: m },
        { kind: "hold-put", owner: "c1", entitlement: "chat", hold: holds[0] as (typeof holds)[0] },
        { kind: "reservation-put", reservation: reservation("r1") },
        { kind: "idempotency-put", record: idempotency("k1", 99) },
      ],
      events,
    );
    await s1.close();

    const s2 = openAt(path);
    expect(s2.getCustomer("c1")).toEqual(c);
    expect(s2.resolveAltId("stripe_1")).toBe("c1");
    expect(s2.getMeter("c1", "chat")).toEqual(m);
    expect(s2.metersOf("c1")).toEqual([m]);
    expect(s2.getHolds("c1", "chat")).toEqual(holds);
    expect(s2.getReservation("r1")).toEqual(reservation("r1"));
    expect(s2.getIdempotency("k1")).toEqual(idempotency("k1", 99));
    expect(s2.readEvents(1, 10)).toEqual(events.map((event, i) => ({ seq: i + 1, event })));
    // The next event continues the sequence instead of reusing numbers.
    const receipt = await s2.commit([], [meterEvent("c1", "chat", 1n)]);
    expect(receipt.sequences).toEqual([4]);
    expect([s2.firstSequence(), s2.lastSequence()]).toEqual([1, 4]);
  });

  it("writes many concurrent commits in one transaction and acknowledges each after it", async () => {
    const s = openAt(dir());
    await s.commit([], [meterEvent("warm", "up", 1n)]);
    const before = s.stats().batchesCommitted;
    const settled: number[] = [];
    const commits = Array.from({ length: 500 }, (_, i) => {
      const p = s.commit([{ kind: "meter-put", meter: meter(`c${i}`, "chat", BigInt(i)) }], [meterEvent(`c${i}`, "chat", 1n)]);
      return p.then(() => settled.push(i));
    });
    // Visible to reads at once, acknowledged only later.
    expect(s.getMeter("c499", "chat")?.value).toBe(499n);
    expect(s.stats().pendingCommits).toBe(500);
    expect(settled).toEqual([]);
    await Promise.all(commits);
    expect(settled).toEqual(Array.from({ length: 500 }, (_, i) => i));
    expect(s.stats().batchesCommitted - before).toBe(1);
    expect(s.lastSequence()).toBe(501);
  });

  it("stores the last of several writes to one key in a batch, whatever their order", async () => {
    // One batch writes each key several times (only the last write reaches LMDB); reopening
    // shows exactly the final state, every event kept.
    const path = dir();
    const s = openAt(path);
    await s.commit(
      [
        { kind: "meter-put", meter: meter("gone", "chat", 9n) },
        { kind: "customer-put", customer: customer("back", { altIds: ["alt_back"] }), previous: undefined },
      ],
      [],
    );
    const before = s.stats().batchesCommitted;
    const c = customer("back", { altIds: ["alt_back"] });
    const commits = [
      ...Array.from({ length: 50 }, (_, i) =>
        s.commit([{ kind: "meter-put", meter: meter("hot", "chat", BigInt(i + 1)) }], [meterEvent("hot", "chat", 1n)]),
      ),
      s.commit([{ kind: "meter-put", meter: meter("gone", "chat", 10n) }], []),
      s.commit([{ kind: "meter-delete", owner: "gone", entitlement: "chat" }], []),
      s.commit([{ kind: "customer-delete", customer: c }], []),
      s.commit([{ kind: "customer-put", customer: customer("back", { plan: "team", altIds: ["alt_new"] }), previous: undefined }], []),
      s.commit([{ kind: "meter-delete", owner: "fresh", entitlement: "chat" }], []),
      s.commit([{ kind: "meter-put", meter: meter("fresh", "chat", 3n) }], []),
    ];
    await Promise.all(commits);
    expect(s.stats().batchesCommitted - before).toBe(1);
    await s.close();

    const again = openAt(path);
    expect(again.getMeter("hot", "chat")?.value).toBe(50n);
    expect(again.getMeter("gone", "chat")).toBeUndefined();
    expect(again.getMeter("fresh", "chat")?.value).toBe(3n);
    expect(again.getCustomer("back")?.plan).toBe("team");
    expect(again.resolveAltId("alt_back")).toBeUndefined();
    expect(again.resolveAltId("alt_new")).toBe("back");
    expect(again.readEvents(1, 100).map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it("reads through its row cache exactly what a store without one reads, at any cache size", async () => {
    // Random writes (some awaited, some left pending so batches overlap reads) and reads of a
    // few customers, alt ids and meters, against the memory store as the reference. Tiny caches
    // force evictions; the failing batch (over the data limit) must leave cached reads intact;
    // ("a\0b", "c") and ("a", "b\0c") are different meters.
    const ids = ["a", "b", "a\u0000b", "c"] as const;
    const id = fc.constantFrom(...ids);
    const step = fc.oneof(
      fc.record({ kind: fc.constant("meter" as const), owner: id, ent: fc.constantFrom("chat", "c", "b\u0000c"), value: fc.bigInt({ min: 0n, max: 99n }) }),
      fc.record({ kind: fc.constant("unmeter" as const), owner: id, ent: fc.constantFrom("chat", "c", "b\u0000c") }),
      fc.record({ kind: fc.constant("customer" as const), id, plan: fc.constantFrom("free", "pro"), alt: fc.constantFrom("x", "y") }),
      fc.record({ kind: fc.constant("uncustomer" as const), id }),
      fc.record({ kind: fc.constant("settle" as const) }),
      fc.record({ kind: fc.constant("oversized" as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 30 }), fc.constantFrom(0, 1, 3, 1000), async (steps, entries) => {
        const s = createLmdbStore({ path: dir(), rowCacheEntries: entries, maxDataBytes: 2_000_000 });
        const ref = createMemoryStore();
        const pending: Promise<unknown>[] = [];
        const both = (writes: Write[]): void => {
          pending.push(s.commit(writes, []));
          pending.push(ref.commit(writes, []));
        };
        const same = (): void => {
          for (const o of ids) {
            expect(s.getCustomer(o)).toEqual(ref.getCustomer(o));
            for (const e of ["chat", "c", "b\u0000c"]) expect(s.getMeter(o, e)).toEqual(ref.getMeter(o, e));
          }
          for (const a of ["x", "y"]) expect(s.resolveAltId(a)).toEqual(ref.resolveAltId(a));
        };
        try {
          for (const st of steps) {
            switch (st.kind) {
              case "meter":
                both([{ kind: "meter-put", meter: meter(st.owner, st.ent, st.value) }]);
                break;
              case "unmeter":
                both([{ kind: "meter-delete", owner: st.owner, entitlement: st.ent }]);
                break;
              case "customer":
                both([{ kind: "customer-put", customer: customer(st.id, { plan: st.plan, altIds: [st.alt] }), previous: ref.getCustomer(st.id) }]);
                break;
              case "uncustomer": {
                const c = ref.getCustomer(st.id);
                if (c) both([{ kind: "customer-delete", customer: c }]);
                break;
              }
              case "settle":
                await Promise.allSettled(pending.splice(0));
                break;
              case "oversized": {
                // Settle first so only this batch fails; it must change nothing anyone reads.
                await Promise.allSettled(pending.splice(0));
                same();
                const big = customer("a", { metadata: { blob: "x".repeat(3_000_000) } });
                await expect(s.commit([{ kind: "customer-put", customer: big, previous: s.getCustomer("a") }], [])).rejects.toThrow(/storage full/);
                break;
              }
            }
            same();
          }
          await Promise.allSettled(pending.splice(0));
          same();
        } finally {
          await s.close();
        }
      }),
      { numRuns: 60 },
    );
  });

  it("hands event-log readers the objects its subscribers got, while they are among the newest", async () => {
    const s = createLmdbStore({ path: dir(), recentEvents: 8 });
    cleanups.push(() => s.close());
    const delivered: unknown[] = [];
    s.subscribe((events) => delivered.push(...events));
    s.keepRecent();
    await s.commit([], Array.from({ length: 5 }, (_, i) => meterEvent("c1", "chat", BigInt(i + 1))));
    await s.commit([], Array.from({ length: 5 }, (_, i) => meterEvent("c1", "chat", BigInt(i + 6))));
    // Sequences 3..10 are held (the newest 8): the very objects, so their encoding is shared.
    const recent = s.readEvents(3, 100);
    expect(recent.map((e) => e.seq)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
    recent.forEach((e, i) => expect(e).toBe(delivered[i + 2]));
    expect(s.readEvents(9, 1)[0]).toBe(delivered[8]);
    // Older ones come from LMDB: equal, decoded anew.
    const old = s.readEvents(1, 3);
    expect(old).toEqual(delivered.slice(0, 3));
    expect(old[0]).not.toBe(delivered[0]);
    // Pruned sequences are never served from memory.
    expect(await s.pruneEvents({ maxCount: 2, now: 0 })).toEqual({ deleted: 8 });
    expect(s.readEvents(3, 100).map((e) => e.seq)).toEqual([9, 10]);
    expect(s.readEvents(1, 100).map((e) => e.seq)).toEqual([9, 10]);
  });

  it("keeps events in memory only while a reader that fell behind asks it to", async () => {
    const s = createLmdbStore({ path: dir(), recentEvents: 8 });
    cleanups.push(() => s.close());
    const delivered: StoredEvent[] = [];
    const held = (seq: number): boolean => s.readEvents(seq, 1)[0] === delivered[seq - 1];
    // A listener (metrics, a live feed) does not make the store hold events.
    const stopPlain = s.subscribe((events) => delivered.push(...events));
    await s.commit([], [meterEvent("c1", "chat", 1n)]);
    expect(held(1)).toBe(false);
    // A feed that fell behind: what commits from now on is held.
    const stopFeed = s.keepRecent();
    const stopFeed2 = s.keepRecent();
    await s.commit([], [meterEvent("c1", "chat", 2n), meterEvent("c1", "chat", 3n)]);
    expect([held(1), held(2), held(3)]).toEqual([false, true, true]);
    expect(s.readEvents(1, 10).map((e) => e.seq)).toEqual([1, 2, 3]);
    // Held until the last such feed caught up (releasing twice counts once).
    stopFeed();
    stopFeed();
    await s.commit([], [meterEvent("c1", "chat", 4n)]);
    expect([held(3), held(4)]).toEqual([true, true]);
    stopFeed2();
    expect([held(3), held(4)]).toEqual([false, false]);
    // Events committed while nobody could read back are read from LMDB, then held again.
    await s.commit([], [meterEvent("c1", "chat", 5n)]);
    s.keepRecent();
    await s.commit([], [meterEvent("c1", "chat", 6n)]);
    expect([held(5), held(6)]).toEqual([false, true]);
    expect(s.readEvents(1, 10)).toEqual(delivered);
    stopPlain();
  });

  it("reads the same event log with its in-memory tail as without, at any tail size", async () => {
    // Random batches of events, prunes and a batch that fails (its sequences are given out again),
    // applied to a store holding the newest N events in memory and to one holding none.
    const step = fc.oneof(
      fc.record({ kind: fc.constant("events" as const), n: fc.nat(6) }),
      fc.record({ kind: fc.constant("prune" as const), keep: fc.nat(20) }),
      fc.record({ kind: fc.constant("oversized" as const) }),
      fc.record({ kind: fc.constant("read" as const), from: fc.nat(60), limit: fc.nat(12) }),
      // A feed falls behind or catches up: the tail fills only while one is behind.
      fc.record({ kind: fc.constant("feed" as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 25 }), fc.constantFrom(1, 3, 16, 4096), async (steps, held) => {
        const s = createLmdbStore({ path: dir(), recentEvents: held, maxDataBytes: 2_000_000 });
        const ref = createLmdbStore({ path: dir(), recentEvents: 0, maxDataBytes: 2_000_000 });
        let t = 0;
        let stopFeed: (() => void) | undefined;
        const toggleFeed = (): void => {
          if (stopFeed === undefined) stopFeed = s.keepRecent();
          else {
            stopFeed();
            stopFeed = undefined;
          }
        };
        toggleFeed();
        try {
          for (const st of steps) {
            switch (st.kind) {
              case "feed":
                toggleFeed();
                break;
              case "events": {
                const events = Array.from({ length: st.n }, () => meterEvent("c", "chat", 1n, { time: t++ }));
                await Promise.all([s.commit([], events), ref.commit([], events)]);
                break;
              }
              case "prune":
                expect(await s.pruneEvents({ maxCount: st.keep, now: 0 })).toEqual(await ref.pruneEvents({ maxCount: st.keep, now: 0 }));
                break;
              case "oversized":
                for (const store of [s, ref]) {
                  const big = customer("a", { metadata: { blob: "x".repeat(3_000_000) } });
                  await expect(store.commit([{ kind: "customer-put", customer: big, previous: undefined }], [meterEvent("a", "chat", 1n)])).rejects.toThrow(/storage full/);
                }
                break;
              case "read":
                expect(s.readEvents(st.from, st.limit)).toEqual(ref.readEvents(st.from, st.limit));
                break;
            }
            expect([s.firstSequence(), s.lastSequence()]).toEqual([ref.firstSequence(), ref.lastSequence()]);
          }
          expect(s.readEvents(1, 1000)).toEqual(ref.readEvents(1, 1000));
        } finally {
          await s.close();
          await ref.close();
        }
      }),
      { numRuns: 40 },
    );
  });

  it("rejects a whole batch that does not fit, applies none of it, and recovers", async () => {
    const path = dir();
    const s = openAt(path, { maxDataBytes: 256 * 1024 });
    await s.commit([{ kind: "meter-put", meter: meter("c1", "chat", 10n) }], [meterEvent("c1", "chat", 10n)]);
    const big = customer("big", { metadata: { blob: "x".repeat(512 * 1024) } });
    // Three decisions in one turn: one batch. The second cannot fit, so none may land.
    const a = s.commit([{ kind: "meter-put", meter: meter("c1", "chat", 11n) }], [meterEvent("c1", "chat", 1n)]);
    const b = s.commit([{ kind: "customer-put", customer: big, previous: undefined }], []);
    const c = s.commit([{ kind: "meter-put", meter: meter("c2", "chat", 1n) }], []);
    expect(s.getMeter("c1", "chat")?.value).toBe(11n);
    const errors = await Promise.all([rejection(a), rejection(b), rejection(c)]);
    for (const e of errors) {
      expect(isLimitrError(e, "RESOURCE_EXHAUSTED")).toBe(true);
      expect((e as Error).message).toMatch(/storage full/);
    }
    // Back to committed state: reads, sequence numbers and the file all as before the batch.
    expect(s.getMeter("c1", "chat")?.value).toBe(10n);
    expect(s.getCustomer("big")).toBeUndefined();
    expect(s.getMeter("c2", "chat")).toBeUndefined();
    expect(s.lastSequence()).toBe(1);
    const ok = await s.commit([{ kind: "meter-put", meter: meter("c1", "chat", 12n) }], [meterEvent("c1", "chat", 2n)]);
    expect(ok.sequences).toEqual([2]);
    await s.close();
    const again = openAt(path);
    expect(again.getMeter("c1", "chat")?.value).toBe(12n);
    expect(again.getCustomer("big")).toBeUndefined();
    expect(again.readEvents(1, 10).map((e) => e.event.type === "meter-changed" && e.event.diff)).toEqual([10n, 2n]);
  });

  it("rejects an id LMDB cannot store on its own commit only", async () => {
    const s = openAt(dir());
    const good = s.commit([{ kind: "meter-put", meter: meter("c1", "chat", 1n) }], []);
    const bad = s.commit([{ kind: "meter-put", meter: meter("x".repeat(600), "chat", 1n) }], []);
    const e = await rejection(bad);
    expect(isLimitrError(e, "INVALID_ARGUMENT")).toBe(true);
    expect((e as Error).message).toMatch(/writes\[0\]\.meter\.owner/);
    await good;
    expect(s.getMeter("c1", "chat")?.value).toBe(1n);
  });

  it("refuses an id the key encoding cannot read back: 64 characters or more with U+0000 to U+0004", async () => {
    const s = openAt(dir());
    const long = "o".repeat(63);
    // Shorter ids are escaped by the key encoding: any character is fine.
    await s.commit([{ kind: "meter-put", meter: meter(`${"o".repeat(62)}\0`, "chat", 1n) }], []);
    expect(s.getMeter(`${"o".repeat(62)}\0`, "chat")?.value).toBe(1n);
    const hold = { reservationId: "r", amount: 1n, expiresAt: 5 };
    for (const [write, field] of [
      [{ kind: "meter-put", meter: meter(`${long}\0`, "x", 1n) }, "writes[0].meter.owner"],
      [{ kind: "meter-put", meter: meter("c1", `${long}\u0004`, 1n) }, "writes[0].meter.entitlement"],
      [{ kind: "hold-put", owner: `\u0001${long}`, entitlement: "chat", hold }, "writes[0].owner"],
      [{ kind: "hold-put", owner: "c1", entitlement: "chat", hold: { ...hold, reservationId: `${long}\u0002` } }, "writes[0].hold.reservationId"],
      [{ kind: "customer-put", customer: customer(`${long}\0`), previous: undefined }, "writes[0].customer.id"],
      [{ kind: "customer-put", customer: customer("c1", { altIds: ["ok", `${long}\u0003`] }), previous: undefined }, "writes[0].customer.altIds[1]"],
      [{ kind: "reservation-put", reservation: reservation(`${long}\0`) }, "writes[0].reservation.id"],
      [{ kind: "idempotency-put", record: idempotency(`${long}\0`, 1) }, "writes[0].record.key"],
    ] as const) {
      const e = await rejection(s.commit([write], []));
      expect(isLimitrError(e, "INVALID_ARGUMENT")).toBe(true);
      expect(e).toMatchObject({ field });
      expect((e as Error).message).toMatch(/must not contain U\+0000 to U\+0004 when 64 characters or longer/);
    }
    expect(s.getMeter(`${long}\0`, "x")).toBeUndefined();
    expect(s.getCustomer("c1")).toBeUndefined();
    // Deletes are not checked: what an earlier version stored can still be removed.
    await s.commit([{ kind: "meter-delete", owner: `${long}\0`, entitlement: "chat" }, { kind: "hold-delete", owner: `${long}\0`, entitlement: "chat", hold }], []);
  });

  it("an owner's meters leave out another owner's whose key reads back as if it were this owner's", async () => {
    const path = dir();
    const o = "o".repeat(64);
    const first = openAt(path);
    await first.commit([{ kind: "meter-put", meter: meter(o, "chat", 1n) }], []);
    await first.close();
    // As a version that did not refuse such ids stored it: [o + "\0x", "chat"] reads back as [o, "x", "chat"].
    const env = open({ path: join(path, "limitr.mdb"), maxDbs: 16 });
    const meters = env.openDB({ name: "meters", encoding: "msgpack" });
    await meters.put([`${o}\0x`, "chat"], encodeMeter(meter(`${o}\0x`, "chat", 2n)));
    await env.close();
    const s = openAt(path);
    expect(s.metersOf(o).map((m) => [m.owner, m.entitlement])).toEqual([[o, "chat"]]);
    expect(s.getMeter(`${o}\0x`, "chat")?.value).toBe(2n);
  });

  it("--fsync: a commit that fails while a batch is flushing does not hand that batch's sequences out again", async () => {
    const path = dir();
    const first = openAt(path);
    await first.commit([], [meterEvent("a", "chat", 1n)]);
    await first.close();
    // A customer row that cannot be decoded: a commit that reads it fails in applying its writes.
    const env = open({ path: join(path, "limitr.mdb"), maxDbs: 16 });
    await env.openDB({ name: "customers", encoding: "msgpack" }).put("broken", ["not a customer row"]);
    await env.close();

    const s = openAt(path, { fsync: true });
    const flushing = s.commit([], [meterEvent("b", "chat", 1n)]);
    // Let the batch be written and start its flush, then fail a commit while it waits for it.
    await new Promise((r) => setImmediate(r));
    const failed = s.commit([{ kind: "customer-put", customer: customer("broken"), previous: undefined }], [meterEvent("c", "chat", 1n)]);
    expect((await flushing).sequences).toEqual([2]);
    await rejection(failed);
    expect((await s.commit([], [meterEvent("d", "chat", 1n)])).sequences).toEqual([3]);
    expect(s.readEvents(1, 10).map((e) => `${e.seq}:${(e.event as { owner: string }).owner}`)).toEqual(["1:a", "2:b", "3:d"]);
  });

  it("pruning idempotency keys gets past an index key that reads back other than it was stored", async () => {
    const path = dir();
    const first = openAt(path);
    await first.commit([{ kind: "idempotency-put", record: idempotency("k1", 6) }, { kind: "idempotency-put", record: idempotency("k2", 9) }], []);
    await first.close();
    // As a version that did not refuse such keys stored one: it reads back as [5, "o…", "b"].
    const env = open({ path: join(path, "limitr.mdb"), maxDbs: 16 });
    const index = env.openDB({ name: "idempotency-exp", encoding: "msgpack" });
    await index.put([5, `${"o".repeat(64)}\0b`], null);
    await index.put([6, `${"p".repeat(64)}\0b`], null);
    expect([...index.getKeys()].map((k) => (k as unknown[]).length)).toEqual([3, 2, 3, 2]);
    await env.close();
    const s = openAt(path);
    expect(await s.pruneIdempotency(10)).toEqual({ deleted: 2 });
    expect([s.getIdempotency("k1"), s.getIdempotency("k2")]).toEqual([undefined, undefined]);
  });

  it("measures an id's limit in UTF-8 bytes, not in characters", async () => {
    const s = openAt(dir());
    // "€" is one UTF-16 unit and three UTF-8 bytes: 170 of them are 510 bytes, 171 are 513.
    await s.commit([{ kind: "meter-put", meter: meter("€".repeat(170), "chat", 1n) }], []);
    const e = await rejection(s.commit([{ kind: "meter-put", meter: meter("€".repeat(171), "chat", 1n) }], []));
    expect((e as Error).message).toMatch(/writes\[0\]\.meter\.owner: must be at most 512 bytes/);
    expect(s.getMeter("€".repeat(170), "chat")?.value).toBe(1n);
    expect(s.getMeter("€".repeat(171), "chat")).toBeUndefined();
    await s.close();
  });

  it("keeps the reset-rule history across a reopen, and sets it aside once a writer that keeps none wrote the dir", async () => {
    const path = dir();
    const history = { since: 1, lineages: [{ plan: "free", entitlement: "t", rule: "daily", changes: [] }] };
    const s = openAt(path);
    await s.commit([{ kind: "reset-rule-history", history }], []);
    await s.close();
    // A later writer of this version is handed it by the claim, and so is the one after it.
    for (let i = 0; i < 2; i++) {
      const again = createLmdbStore({ path, onResetRuleHistorySetAside: () => expect.unreachable("set aside") });
      expect(again.resetRuleHistory(), `reopen ${i}`).toEqual(history);
      await again.close();
    }
    // An older version claims the dir (a new writer token) and writes it, never the history.
    const env = open({ path: join(path, "limitr.mdb") });
    await env.openDB({ name: "meta", encoding: "msgpack" }).put("writer", "pid 1, an older version");
    await env.close();
    const setAside: string[] = [];
    const after = createLmdbStore({ path, onResetRuleHistorySetAside: (w) => setAside.push(w) });
    expect(setAside).toEqual(["pid 1, an older version"]);
    expect(after.resetRuleHistory()).toBeUndefined();
    await after.commit([{ kind: "reset-rule-history", history: { ...history, since: 2 } }], []);
    await after.close();
    const last = openAt(path);
    expect(last.resetRuleHistory()).toEqual({ ...history, since: 2 });
    await last.close();
  });

  it("refuses a data dir of a future format without changing it", async () => {
    const path = dir();
    await openAt(path).close();
    const env = open({ path: join(path, "limitr.mdb") });
    const meta = env.openDB({ name: "meta" });
    await meta.put("format", FORMAT_VERSION + 1);
    await env.close();
    const hash = fileHash(path);
    let error: unknown;
    try {
      createLmdbStore({ path });
    } catch (e) {
      error = e;
    }
    expect(isLimitrError(error, "FAILED_PRECONDITION")).toBe(true);
    expect((error as Error).message).toMatch(new RegExp(`storage format ${FORMAT_VERSION + 1}.*reads formats 1 to ${FORMAT_VERSION}`));
    expect(fileHash(path)).toBe(hash);
  });

  it("a data dir whose first open was cut short before its format was written opens as a fresh one", async () => {
    const path = dir();
    // What an open killed between creating the meta table and writing the number leaves.
    const env = open({ path: join(path, "limitr.mdb") });
    env.openDB({ name: "meta", encoding: "msgpack" });
    await env.close();
    let error: unknown;
    try {
      createLmdbStore({ path, readOnly: true });
    } catch (e) {
      error = e;
    }
    expect(isLimitrError(error, "NOT_FOUND")).toBe(true);
    const s = openAt(path);
    await s.commit([{ kind: "meter-put", meter: meter("c1", "chat", 5n) }], []);
    await s.close();
    const again = openAt(path);
    expect(again.getMeter("c1", "chat")?.value).toBe(5n);
    await again.close();
    const raw = open({ path: join(path, "limitr.mdb") });
    expect(raw.openDB({ name: "meta", encoding: "msgpack" }).get("format")).toBe(FORMAT_VERSION);
    await raw.close();
  });

  it.each([100, 4096, 8191])("refuses, naming it and changing nothing, a data file of %i bytes that an interrupted creation left", (size) => {
    const path = dir();
    const file = join(path, "limitr.mdb");
    writeFileSync(file, Buffer.alloc(size, 7));
    for (const readOnly of [false, true]) {
      let error: unknown;
      try {
        createLmdbStore({ path, readOnly });
      } catch (e) {
        error = e;
      }
      expect(isLimitrError(error, "FAILED_PRECONDITION"), `readOnly: ${readOnly}`).toBe(true);
      expect((error as Error).message).toContain(`the data file ${file} is ${size} bytes, shorter than an LMDB environment's two meta pages`);
    }
    expect(readFileSync(file)).toEqual(Buffer.alloc(size, 7));
    expect(readdirSync(path)).toEqual(["limitr.mdb"]);
  });

  it("refuses an LMDB environment that limitr did not write", async () => {
    const path = dir();
    const env = open({ path: join(path, "limitr.mdb") });
    await env.openDB({ name: "something-else" }).put("k", 1);
    await env.close();
    expect(() => createLmdbStore({ path })).toThrow(/not written by limitr-sidecar/);
  });

  it("reports a data dir that cannot be created as UNAVAILABLE", () => {
    // Running as root, chmod cannot make a dir unwritable; a path below a regular file can never
    // be created by anyone.
    const file = join(dir(), "not-a-dir");
    writeFileSync(file, "x");
    let error: unknown;
    try {
      createLmdbStore({ path: join(file, "data") });
    } catch (e) {
      error = e;
    }
    expect(isLimitrError(error, "UNAVAILABLE")).toBe(true);
    expect((error as Error).message).toMatch(/opening the data dir/);
  });

  it("close waits for pending commits, then refuses reads and commits", async () => {
    const path = dir();
    const s = openAt(path);
    let acknowledged = 0;
    const commits = Array.from({ length: 50 }, (_, i) =>
      s.commit([{ kind: "meter-put", meter: meter("c1", "chat", BigInt(i + 1)) }], [meterEvent("c1", "chat", 1n)]).then(() => acknowledged++),
    );
    await s.close();
    expect(acknowledged).toBe(50);
    await Promise.all(commits);
    expect(isLimitrError(await rejection(s.commit([], [])), "UNAVAILABLE")).toBe(true);
    expect(() => s.getMeter("c1", "chat")).toThrow(/store is closed/);
    const again = openAt(path);
    expect(again.getMeter("c1", "chat")?.value).toBe(50n);
    expect(again.lastSequence()).toBe(50);
  });

  it("exports a snapshot that imports into a fresh store unchanged", async () => {
    const s = openAt(dir());
    const writes: Write[] = [];
    for (let i = 0; i < 1200; i++) {
      writes.push({ kind: "customer-put", customer: customer(`c${i}`, { altIds: [`alt${i}`] }), previous: undefined });
      writes.push({ kind: "meter-put", meter: meter(`c${i}`, "chat", HUGE + BigInt(i)) });
    }
    writes.push({ kind: "reservation-put", reservation: reservation("r1") });
    await s.commit(writes, []);
    const exported = [...s.exportState()];
    expect(exported).toHaveLength(2401);

    const target = openAt(dir());
    async function* stream(): AsyncIterable<StateRecord> {
      yield* exported;
    }
    expect(await target.importState(stream())).toEqual({ count: 2401 });
    expect([...target.exportState()]).toEqual(exported);
    expect(target.resolveAltId("alt1199")).toBe("c1199");
  });

  it("an imported meter's holds replace what it held, also when a stream names the meter twice; a hold listed twice is refused", async () => {
    const s = openAt(dir());
    const hold = (reservationId: string, amount: bigint, expiresAt: number) => ({ reservationId, amount, expiresAt });
    const [a, b, c] = [hold("a", 1n, 10), hold("b", 2n, 20), hold("c", 3n, 30)];
    const m = meter("c1", "chat", 1n, { holdSummary: summarizeHolds([a, b]) });
    const put = (h: typeof a): Write => ({ kind: "hold-put", owner: "c1", entitlement: "chat", hold: h });
    await s.commit([{ kind: "meter-put", meter: m }, put(a), put(b)], []);
    async function* stream(...records: StateRecord[]): AsyncIterable<StateRecord> {
      yield* records;
    }
    // The record's summary is not trusted: the store makes it from the holds.
    expect(await s.importState(stream({ kind: "meter", meter: m, holds: [c] }, { kind: "meter", meter: m, holds: [b, c] }))).toEqual({ count: 2 });
    expect(s.getHolds("c1", "chat")).toEqual([b, c]);
    expect(s.getMeter("c1", "chat")?.holdSummary).toEqual(summarizeHolds([b, c]));

    const twice = await rejection(s.importState(stream({ kind: "customer", customer: customer("x") }, { kind: "meter", meter: m, holds: [a, b, a] })));
    expect(isLimitrError(twice, "INVALID_ARGUMENT")).toBe(true);
    expect(twice).toMatchObject({ field: "records[1].meter.holds[2]" });
    expect((twice as Error).message).toMatch(/reservation "a" holds this meter twice with the same expiry/);
    // What came before the refused record is in; the refused one changed nothing.
    expect(s.getCustomer("x")).toEqual(customer("x"));
    expect(s.getHolds("c1", "chat")).toEqual([b, c]);
  });

  it("exports idempotency keys and the log's position; imported, a key replays and the numbering goes on after the old log's", async () => {
    const source = openAt(dir());
    await source.commit([{ kind: "idempotency-put", record: idempotency("k1", 5_000) }, { kind: "idempotency-put", record: idempotency("k2", 9_000) }], []);
    await source.commit([], Array.from({ length: 20 }, () => meterEvent("a", "chat", 1n)));
    await source.pruneEvents({ maxCount: 5, now: 0 });
    const exported = [...source.exportState()];
    expect(exported).toEqual([
      { kind: "event-log", lastSequence: 20 },
      { kind: "idempotency", record: idempotency("k1", 5_000) },
      { kind: "idempotency", record: idempotency("k2", 9_000) },
    ]);

    const path = dir();
    let target = openAt(path);
    expect((await target.commit([], [meterEvent("b", "chat", 1n)])).sequences).toEqual([1]);
    expect(await target.importState(exported)).toEqual({ count: 3 });
    expect(target.getIdempotency("k1")).toEqual(idempotency("k1", 5_000));
    // The dir keeps its own event, but under the old log's numbers it is not that log's: the log
    // is available from after the mark, and the next event is numbered after it.
    expect([target.lastSequence(), target.firstSequence()]).toEqual([20, 21]);
    expect((await target.commit([], [meterEvent("b", "chat", 2n)])).sequences).toEqual([21]);
    expect(target.listEvents({ limit: 10 }).events.map((e) => e.seq)).toEqual([21]);
    await target.close();
    target = openAt(path);
    expect([target.lastSequence(), target.firstSequence()]).toEqual([21, 21]);
    // The expiry index came with the key: pruning finds it.
    expect(await target.pruneIdempotency(6_000)).toEqual({ deleted: 1 });
    // Pruning the events below the mark does not lower it; neither does an import of a lower one.
    await target.pruneEvents({ maxCount: 0, now: 0 });
    expect(await target.importState([{ kind: "event-log", lastSequence: 3 }])).toEqual({ count: 1 });
    await target.close();
    const reopened = openAt(path);
    expect([reopened.lastSequence(), reopened.firstSequence()]).toEqual([21, 22]);
    expect((await reopened.commit([], [meterEvent("b", "chat", 3n)])).sequences).toEqual([22]);
  });

  it("a log position imported into a fresh store survives a reopen with no event after it", async () => {
    const path = dir();
    const s = openAt(path);
    expect(await s.importState([{ kind: "event-log", lastSequence: 13 }])).toEqual({ count: 1 });
    expect([s.lastSequence(), s.firstSequence()]).toEqual([13, 14]);
    await s.close();
    const reopened = openAt(path);
    expect([reopened.lastSequence(), reopened.firstSequence()]).toEqual([13, 14]);
    expect((await reopened.commit([], [meterEvent("a", "chat", 1n)])).sequences).toEqual([14]);
  });

  it("an import applies each record as it arrives: a call after it builds on it, and is checked against what the calls before it left", async () => {
    const s = openAt(dir());
    const a = { reservationId: "a", amount: 1n, expiresAt: 10 };
    const seen: unknown[] = [];
    async function* stream(): AsyncIterable<StateRecord> {
      yield { kind: "meter", meter: meter("c1", "chat", 10n, { holdSummary: summarizeHolds([a]) }), holds: [a] };
      // The next record has not arrived; a decision meanwhile counts on top of the imported meter.
      const m = s.getMeter("c1", "chat");
      seen.push(m?.value, s.getHolds("c1", "chat"));
      if (m !== undefined) await s.commit([{ kind: "meter-put", meter: { ...m, value: m.value + 100n } }], []);
      yield { kind: "customer", customer: customer("imported", { altIds: ["sk_shared"] }) };
      // An upsert meanwhile finds the alt id taken (the admin API refuses it then), and takes another.
      seen.push(s.resolveAltId("sk_shared"));
      await s.commit([{ kind: "customer-put", customer: customer("b", { altIds: ["sk_b"] }), previous: undefined }], []);
      yield { kind: "customer", customer: customer("late", { altIds: ["sk_b"] }) };
    }
    const e = await rejection(s.importState(stream()));
    expect(seen).toEqual([10n, [a], "imported"]);
    expect((e as Error).message).toBe('records[2].customer.alt_ids[0]: alt id "sk_b" already belongs to customer "b"');
    expect(s.getMeter("c1", "chat")?.value).toBe(110n);
    expect(s.getHolds("c1", "chat")).toEqual([a]);
    expect([s.resolveAltId("sk_shared"), s.resolveAltId("sk_b"), s.getCustomer("late")]).toEqual(["imported", "b", undefined]);
  });

  it("a second writer on the same dir takes it over: the first stops committing, nothing acknowledged is overwritten", async () => {
    const path = dir();
    const first = openAt(path);
    await first.commit([{ kind: "meter-put", meter: meter("a", "chat", 1n) }], [meterEvent("a", "chat", 1n)]);
    // Another sidecar (a rollout that overlapped, a wrong replica count) opens the same dir.
    const second = openAt(path);
    expect((await second.commit([], [meterEvent("b", "chat", 1n)])).sequences).toEqual([2]);
    const refused = await rejection(first.commit([{ kind: "meter-put", meter: meter("a", "chat", 2n) }], [meterEvent("a", "chat", 2n)]));
    expect(isLimitrError(refused, "FAILED_PRECONDITION")).toBe(true);
    expect((refused as Error).message).toMatch(/another process \(pid \d+, .*\) opened the data dir .* run one sidecar per data dir/);
    await expect(first.pruneEvents({ maxCount: 0, now: 0 })).rejects.toThrow(/another process/);
    expect((await second.commit([], [meterEvent("b", "chat", 2n)])).sequences).toEqual([3]);
    await first.close();
    await second.close();
    const after = openAt(path);
    expect(after.readEvents(1, 10).map((e) => `${e.seq}:${(e.event as { owner: string }).owner}`)).toEqual(["1:a", "2:b", "3:b"]);
    expect(after.getMeter("a", "chat")?.value).toBe(1n);
  });

  it("with deferClaim, the dir stays the other writer's until claim(); calls before it are UNAVAILABLE; losing it is reported once", async () => {
    const path = dir();
    const lost: string[] = [];
    const first = createLmdbStore({ path, onWriterLost: (m) => lost.push(m) });
    cleanups.push(() => first.close());
    await first.commit([{ kind: "meter-put", meter: meter("a", "chat", 1n) }], [meterEvent("a", "chat", 1n)]);

    const second = createLmdbStore({ path, deferClaim: true });
    cleanups.push(() => second.close());
    expect(isLimitrError(await rejection(second.commit([], [meterEvent("b", "chat", 1n)])), "UNAVAILABLE")).toBe(true);
    expect(() => second.getMeter("a", "chat")).toThrow(/still starting/);
    expect((await first.commit([], [meterEvent("a", "chat", 2n)])).sequences).toEqual([2]);
    expect(lost).toEqual([]);

    second.claim();
    second.claim(); // idempotent: still the writer
    expect(second.getMeter("a", "chat")?.value).toBe(1n);
    expect((await second.commit([], [meterEvent("b", "chat", 1n)])).sequences).toEqual([3]);
    await rejection(first.commit([], [meterEvent("a", "chat", 3n)]));
    await rejection(first.commit([], [meterEvent("a", "chat", 4n)]));
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatch(/another process \(pid \d+, .*\) opened the data dir/);
  });

  it("a read-only open (an export) leaves the writer writing, and refuses commits of its own", async () => {
    const path = dir();
    const writer = openAt(path);
    await writer.commit([], [meterEvent("a", "chat", 1n)]);
    const reader = createLmdbStore({ path, readOnly: true });
    cleanups.push(() => reader.close());
    expect([...reader.exportState()]).toEqual([{ kind: "event-log", lastSequence: 1 }]);
    expect(isLimitrError(await rejection(reader.commit([], [meterEvent("r", "chat", 1n)])), "FAILED_PRECONDITION")).toBe(true);
    expect((await writer.commit([], [meterEvent("a", "chat", 2n)])).sequences).toEqual([2]);
  });

  it("a read-only open (an export) of a dir that holds no data refuses it and creates nothing", async () => {
    const parent = dir();
    const missing = join(parent, "typo");
    const empty = join(parent, "empty");
    mkdirSync(empty);
    // An environment no limitr-sidecar wrote to: opened (created) and closed without a write.
    const bare = join(parent, "bare");
    mkdirSync(bare);
    await open({ path: join(bare, "limitr.mdb") }).close();
    const bareFiles = readdirSync(bare).sort();
    for (const path of [missing, empty, bare]) {
      let error: unknown;
      try {
        createLmdbStore({ path, readOnly: true });
      } catch (e) {
        error = e;
      }
      expect(isLimitrError(error, "NOT_FOUND"), path).toBe(true);
      expect((error as Error).message).toContain(`data dir ${path} holds no limitr-sidecar data`);
    }
    expect(existsSync(missing)).toBe(false);
    expect(readdirSync(empty)).toEqual([]);
    expect(readdirSync(bare).sort()).toEqual(bareFiles);
    const raw = open({ path: join(bare, "limitr.mdb") });
    expect([...raw.getKeys()]).toEqual([]);
    await raw.close();
  });

  it("an import that fails part-way keeps exactly the records before the failure, whatever the chunking", async () => {
    for (const failAt of [1, 499, 500, 600, 1001]) {
      const s = openAt(dir());
      async function* stream(): AsyncIterable<StateRecord> {
        for (let i = 0; i < failAt; i++) yield { kind: "customer", customer: customer(`c${i}`) };
        // The server's decoder throws like this on a record it refuses.
        throw new Error(`requests[${failAt}].record.meter.value: not a decimal`);
      }
      await expect(s.importState(stream())).rejects.toThrow(`requests[${failAt}]`);
      const ids = [...s.exportState()].map((r) => (r.kind === "customer" ? r.customer.id : "?"));
      expect(ids.length).toBe(failAt);
      expect(new Set(ids)).toEqual(new Set(Array.from({ length: failAt }, (_, i) => `c${i}`)));
    }
  });

  it("an import cut short by a full store says how many records it imported, through which, and keeps exactly those", async () => {
    const s = openAt(dir(), { maxDataBytes: 256 * 1024 });
    const records = Array.from({ length: 5000 }, (_, i): StateRecord => ({ kind: "customer", customer: customer(`c${i}`, { metadata: { pad: "x".repeat(200) } }) }));
    const e = await rejection(s.importState(records, (i) => `line ${i + 1}`));
    expect(isLimitrError(e, "RESOURCE_EXHAUSTED")).toBe(true);
    const m = /; (\d+) record\(s\) imported \(through line (\d+)\), none after$/.exec((e as Error).message);
    expect(m, (e as Error).message).not.toBeNull();
    const imported = Number(m?.[1]);
    expect(Number(m?.[2])).toBe(imported);
    expect(imported).toBeGreaterThan(0);
    expect(imported).toBeLessThan(5000);
    const ids = [...s.exportState()].map((r) => (r.kind === "customer" ? r.customer.id : "?"));
    expect(new Set(ids)).toEqual(new Set(Array.from({ length: imported }, (_, i) => `c${i}`)));
  });

  it("an import refuses a record the store cannot key on its own: the records before it are kept, whatever the chunking", async () => {
    for (const badAt of [0, 2, 600]) {
      const s = openAt(dir());
      const records: StateRecord[] = Array.from({ length: badAt }, (_, i) => ({ kind: "customer", customer: customer(`c${i}`) }));
      records.push({ kind: "customer", customer: customer("x".repeat(600)) }, { kind: "customer", customer: customer("after") });
      const e = await rejection(s.importState(records));
      expect(e).toMatchObject({ code: "INVALID_ARGUMENT", field: `records[${badAt}].customer.id` });
      expect((e as Error).message).toBe(`records[${badAt}].customer.id: must be at most 512 bytes (UTF-8)`);
      const ids = [...s.exportState()].map((r) => (r.kind === "customer" ? r.customer.id : "?"));
      expect(new Set(ids)).toEqual(new Set(Array.from({ length: badAt }, (_, i) => `c${i}`)));
    }
  });

  it("an import refuses a record no admin call or decision could have stored, naming its field, and keeps the records before it", async () => {
    const hold = (amount: bigint, expiresAt = 2_000_000_000_000) => ({ reservationId: "r", amount, expiresAt });
    const denied = idempotency("k", 2_000_000_000_000).result;
    const metered = denied.items[1] as MeterView;
    const keyed = (change: Partial<IdempotencyRecord>): StateRecord => ({ kind: "idempotency", record: { ...idempotency("k", 2_000_000_000_000), ...change } });
    const answered = (change: Partial<DecisionResult>): StateRecord => keyed({ result: { ...denied, ...change } as DecisionResult });
    const cases: [string, StateRecord, string][] = [
      ["an alt id another stored customer holds", { kind: "customer", customer: customer("eve", { altIds: ["stripe_bob"] }) }, 'records[1].customer.alt_ids[0]: alt id "stripe_bob" already belongs to customer "bob"'],
      ["an alt id an earlier record of the import took", { kind: "customer", customer: customer("eve", { altIds: ["new_alt"] }) }, 'records[1].customer.alt_ids[0]: alt id "new_alt" already belongs to customer "first"'],
      ["an alt id that is another customer's id", { kind: "customer", customer: customer("mallory", { altIds: ["bob"] }) }, 'records[1].customer.alt_ids[0]: "bob" is already the id of another customer'],
      ["an alt id that is its own id", { kind: "customer", customer: customer("selfie", { altIds: ["selfie"] }) }, `records[1].customer.alt_ids[0]: an alt id cannot equal the customer's own id ("selfie")`],
      ["an id that is another customer's alt id", { kind: "customer", customer: customer("stripe_bob") }, 'records[1].customer.id: "stripe_bob" is already an alt id of customer "bob"'],
      ["a ref to itself", { kind: "customer", customer: customer("loop", { refs: ["loop"] }) }, 'records[1].customer.refs[0]: a customer cannot refer to itself ("loop")'],
      ["a negative hold", { kind: "meter", meter: meter("m", "chat", 5n), holds: [hold(-100n * 10n ** 9n)] }, "records[1].meter.holds[0].amount: must not be negative"],
      ["a hold with no valid expiry", { kind: "meter", meter: meter("m", "chat", 5n), holds: [hold(1n, NaN)] }, "records[1].meter.holds[0].expires_at: is not a valid time"],
      ["a value no double holds", { kind: "meter", meter: meter("m", "chat", 10n ** 408n), holds: [] }, "records[1].meter.value: is too large"],
      ["a negative billed overage", { kind: "meter", meter: meter("m", "chat", 5n, { billedOverage: -1n }), holds: [] }, "records[1].meter.billed_overage: must not be negative"],
      ["a reset rule no policy has", { kind: "meter", meter: meter("m", "chat", 5n, { resetRule: "fortnightly" }), holds: [] }, 'records[1].meter.reset_rule: "fortnightly" is not a reset rule: expected "never", a period in ms ("86400000ms") or a calendar schedule ("monthly:1")'],
      ["a reset rule spelt as a policy spells it", { kind: "meter", meter: meter("m", "chat", 5n, { resetRule: "1day" }), holds: [] }, 'records[1].meter.reset_rule: "1day" is not a reset rule: expected "never", a period in ms ("86400000ms") or a calendar schedule ("monthly:1")'],
      ["a judgement time past the end of its period", { kind: "meter", meter: meter("m", "chat", 5n, { resetRule: "daily", periodStart: Date.UTC(2026, 10, 21), judgedAt: Date.UTC(2026, 10, 22) }), holds: [] }, 'records[1].meter.judged_at: must be before the end of the period that period_start starts under reset_rule "daily" (2026-11-22T00:00:00.000Z)'],
      ["a judgement time in the future", { kind: "meter", meter: meter("m", "chat", 5n, { resetRule: "never", judgedAt: Date.now() + 86_400_000 }), holds: [] }, "records[1].meter.judged_at: must not be later than now: no decision can have judged the meter then"],
      ["a threshold that is no percent", { kind: "meter", meter: meter("m", "chat", 5n, { thresholdsReached: [50, NaN] }), holds: [] }, "records[1].meter.thresholds_reached[1]: must be a percent (a finite number, not negative), got NaN"],
      ["a period start that is no time", { kind: "meter", meter: meter("m", "chat", 5n, { periodStart: Infinity }), holds: [] }, "records[1].meter.period_start: is not a valid time"],
      ["a reservation that expires before it was made", { kind: "reservation", reservation: reservation("r", { createdAt: 2_000, expiresAt: 1_000 }) }, "records[1].reservation.expires_at: must not be before created_at"],
      ["a negative reservation amount", { kind: "reservation", reservation: reservation("r", { items: [{ entitlement: "chat", owner: "c1", amount: -1n }] }) }, "records[1].reservation.items[0].amount: must not be negative"],
      ["a hold listed twice", { kind: "meter", meter: meter("m", "chat", 5n), holds: [hold(1n), hold(2n)] }, 'records[1].meter.holds[1]: reservation "r" holds this meter twice with the same expiry'],
      ["a reservation id the storage cannot key", { kind: "reservation", reservation: reservation("x".repeat(600)) }, "records[1].reservation.id: must be at most 512 bytes (UTF-8)"],
      ["an alt id the storage cannot key", { kind: "customer", customer: customer("long", { altIds: ["y".repeat(600)] }) }, "records[1].customer.alt_ids[0]: must be at most 512 bytes (UTF-8)"],
      ["a key with no fingerprint", keyed({ fingerprint: "" }), "records[1].idempotency.fingerprint: is required"],
      ["a fingerprint no request has", keyed({ fingerprint: "allow:k" }), "records[1].idempotency.fingerprint: must be a request fingerprint as the sidecar exports it"],
      ["a denied item past the answer's items", answered({ deniedItem: 2 }), "records[1].idempotency.answer.denied_item: must be the index of one of the answer's 2 item(s), got 2"],
      ["an answer holding a negative amount", answered({ items: [denied.items[0] as ItemView, { ...metered, held: -5n }] }), "records[1].idempotency.answer.items[1].held: must not be negative"],
      ["an answer with a negative overage", answered({ items: [denied.items[0] as ItemView, { ...metered, overage: -1n }] }), "records[1].idempotency.answer.items[1].overage: must not be negative"],
      ["a limit's denial with no customer", answered({ customerId: "" }), "records[1].idempotency.answer.customer_id: is required"],
      ["a blank reservation id", answered({ reservationId: "  " }), "records[1].idempotency.answer.reservation_id: must not be blank"],
    ];
    for (const [name, bad, message] of cases) {
      const s = openAt(dir());
      await s.commit([{ kind: "customer-put", customer: customer("bob", { altIds: ["stripe_bob"] }), previous: undefined }], []);
      const before = [...s.exportState()];
      const first = customer("first", { altIds: ["new_alt"] });
      const e = await rejection(s.importState([{ kind: "customer", customer: first }, bad, { kind: "customer", customer: customer("after") }]));
      expect(e, name).toMatchObject({ code: "INVALID_ARGUMENT" });
      expect((e as Error).message, name).toBe(message);
      const after = [...s.exportState()];
      expect(after, name).toHaveLength(before.length + 1);
      expect(after, name).toEqual(expect.arrayContaining([...before, { kind: "customer", customer: first }]));
    }
    // What decisions do store still imports: an unknown caller's denial names no customer and no
    // item; remaining goes below zero past the limit; a fingerprint from before attributes.
    const s = openAt(dir());
    const unknownCaller = answered({ reason: "UNKNOWN_CUSTOMER", deniedItem: 0, customerId: "", plan: "", items: [] });
    const overLimit = answered({ items: [denied.items[0] as ItemView, { ...metered, value: 12n, limit: 10n, remaining: -2n, held: 0n }] });
    const legacy = keyed({ fingerprint: JSON.stringify(["allow", "c1", [["chat", 1, ""]], null, ""]) });
    expect(await s.importState([unknownCaller, overLimit, legacy])).toEqual({ count: 3 });
  });

  it("an import may replace customers with the alt ids they hold, and move an alt id a record before it freed", async () => {
    const s = openAt(dir());
    await s.commit(
      [
        { kind: "customer-put", customer: customer("a", { altIds: ["x"] }), previous: undefined },
        { kind: "customer-put", customer: customer("b", { altIds: ["y"] }), previous: undefined },
      ],
      [],
    );
    // A restore of an export over the data it was taken from.
    const exported = [...s.exportState()];
    expect(await s.importState(exported)).toEqual({ count: 2 });
    expect([...s.exportState()]).toEqual(exported);
    // "a" gives "x" up, "b" takes it, in one chunk; then a named in the same import again.
    const moved = [customer("a", { altIds: [] }), customer("b", { altIds: ["y", "x"] }), customer("a", { altIds: ["z"] })];
    expect(await s.importState(moved.map((c) => ({ kind: "customer" as const, customer: c })))).toEqual({ count: 3 });
    expect([s.resolveAltId("x"), s.resolveAltId("y"), s.resolveAltId("z")]).toEqual(["b", "b", "a"]);
    // "b" still holds "x": taking it back fails, naming the record.
    const e = await rejection(s.importState([{ kind: "customer", customer: customer("a", { altIds: ["x"] }) }]));
    expect((e as Error).message).toBe('records[0].customer.alt_ids[0]: alt id "x" already belongs to customer "b"');
  });

  it("prunes events by count and by age in small transactions", async () => {
    const s = openAt(dir());
    for (let i = 0; i < 3; i++) {
      const events = Array.from({ length: 1000 }, (_, j) => meterEvent("c1", "chat", 1n, { time: i * 1000 + j }));
      await s.commit([], events);
    }
    expect(await s.pruneEvents({ maxCount: 2500, now: 0 })).toEqual({ deleted: 500 });
    expect([s.firstSequence(), s.lastSequence(), s.stats().eventCount]).toEqual([501, 3000, 2500]);
    // Older than 1500 ms at now = 3000: times below 1500, i.e. seq 501..1500.
    expect(await s.pruneEvents({ maxAgeMs: 1500, now: 3000 })).toEqual({ deleted: 1000 });
    expect(s.firstSequence()).toBe(1501);
    expect(s.readEvents(1, 1)[0]?.seq).toBe(1501);
    expect(await s.pruneEvents({ maxCount: 0, now: 0 })).toEqual({ deleted: 1500 });
    expect([s.firstSequence(), s.lastSequence()]).toEqual([3001, 3000]);
    expect((await s.commit([], [meterEvent("c1", "chat", 1n)])).sequences).toEqual([3001]);
  });

  it("never gives a sequence out twice, even after pruning emptied the log and the store reopened", async () => {
    // An idle week prunes the whole log under the default retention by age.
    const path = dir();
    const s = openAt(path);
    await s.commit([], [1, 2, 3].map((i) => meterEvent("c1", "chat", BigInt(i), { time: 1000 })));
    expect(await s.pruneEvents({ maxAgeMs: 500, now: 10_000 })).toEqual({ deleted: 3 });
    await s.close();

    const again = openAt(path);
    expect([again.firstSequence(), again.lastSequence()]).toEqual([4, 3]);
    expect((await again.commit([], [meterEvent("c1", "chat", 4n, { time: 20_000 })])).sequences).toEqual([4]);
    // A reader resuming after the last sequence it saw before the restart finds the new event.
    expect(again.readEvents(4, 10).map((e) => e.seq)).toEqual([4]);
    expect(again.listEvents({ afterSeq: 3, limit: 10 }).events.map((e) => e.seq)).toEqual([4]);
    // Pruning part of the log later leaves the mark behind the newest event: still sequence 5 next.
    expect(await again.pruneEvents({ maxCount: 0, now: 0 })).toEqual({ deleted: 1 });
    await again.close();
    const third = openAt(path);
    expect((await third.commit([], [meterEvent("c1", "chat", 5n)])).sequences).toEqual([5]);
  });

  it("prunes only expired idempotency keys, and not one decided again with a later expiry", async () => {
    const s = openAt(dir());
    const writes: Write[] = Array.from({ length: 1100 }, (_, i) => ({
      kind: "idempotency-put" as const,
      record: idempotency(`k${i}`, i < 1000 ? 100 : 300),
    }));
    await s.commit(writes, []);
    await s.commit([{ kind: "idempotency-put", record: idempotency("k0", 500) }], []);
    expect(await s.pruneIdempotency(200)).toEqual({ deleted: 999 });
    expect(s.getIdempotency("k1")).toBeUndefined();
    expect(s.getIdempotency("k0")?.expiresAt).toBe(500);
    expect(s.getIdempotency("k1000")?.expiresAt).toBe(300);
    expect(await s.pruneIdempotency(400)).toEqual({ deleted: 100 });
    expect(await s.pruneIdempotency(600)).toEqual({ deleted: 1 });
    expect(s.getIdempotency("k0")).toBeUndefined();
  });

  it("prunes reservations expired past the grace in chunks, and none still live or re-made", async () => {
    const s = openAt(dir());
    // 1200 rows (more than one chunk of 500): r0..r1099 expire at 1000, r1100..r1199 at 5000.
    const writes: Write[] = Array.from({ length: 1200 }, (_, i) => ({
      kind: "reservation-put" as const,
      reservation: reservation(`r${String(i).padStart(4, "0")}`, { expiresAt: i < 1100 ? 1000 : 5000 }),
    }));
    await s.commit(writes, []);
    // Made again with a later expiry: must survive a prune that would have taken the old row.
    await s.commit([{ kind: "reservation-put", reservation: reservation("r0000", { expiresAt: 9000 }) }], []);
    // Expired, but still inside the grace: kept (a late Settle still finds it).
    expect(await s.pruneReservations(1500, 1000)).toEqual({ deleted: 0 });
    expect(await s.pruneReservations(2000, 1000)).toEqual({ deleted: 1099 });
    expect(s.getReservation("r0001")).toBeUndefined();
    expect(s.getReservation("r1099")).toBeUndefined();
    expect(s.getReservation("r0000")?.expiresAt).toBe(9000);
    expect(s.getReservation("r1100")?.expiresAt).toBe(5000);
    expect([...s.exportState()].filter((r) => r.kind === "reservation")).toHaveLength(101);
    expect(await s.pruneReservations(2000, 1000)).toEqual({ deleted: 0 });
    expect(await s.pruneReservations(10_000, 0)).toEqual({ deleted: 101 });
    expect([...s.exportState()].filter((r) => r.kind === "reservation")).toHaveLength(0);
  });

  it("never exposes the events of a commit whose transaction has not committed", async () => {
    for (const fsync of [false, true]) {
      const s = openAt(dir(), { fsync });
      await s.commit([], [meterEvent("c0", "chat", 1n)]);
      const delivered: number[] = [];
      s.subscribe((events) => delivered.push(...events.map((e) => e.seq)));
      const pending = s.commit([{ kind: "meter-put", meter: meter("c1", "chat", 5n) }], [meterEvent("c1", "chat", 5n)]);
      // The write is visible to decisions at once (the overlay), but its event is not in the log
      // yet: no reader, audit query, retention or subscriber may see it before LMDB has it.
      expect(s.getMeter("c1", "chat")?.value).toBe(5n);
      expect(s.lastSequence()).toBe(1);
      expect(s.readEvents(2, 10)).toEqual([]);
      expect(s.listEvents({ limit: 10 }).events.map((e) => e.seq)).toEqual([1]);
      expect(s.stats()).toMatchObject({ eventCount: 1, lastSequence: 1, pendingCommits: 1 });
      expect(delivered).toEqual([]);
      expect((await pending).sequences).toEqual([2]);
      expect(delivered).toEqual([2]);
      expect(s.readEvents(1, 10).map((e) => e.seq)).toEqual([1, 2]);
    }
  });

  it("answers audit queries with filters and pages", async () => {
    const s = openAt(dir());
    await s.commit([{ kind: "customer-put", customer: customer("c1", { altIds: ["stripe_1"] }), previous: undefined }], []);
    const events: EngineEvent[] = [];
    for (let i = 0; i < 20; i++) {
      const who = i % 2 === 0 ? "c1" : "c2";
      const ent = i % 4 < 2 ? "chat" : "images";
      events.push(i % 5 === 0 ? { ...meterEvent(who, ent, 1n, { time: i }), type: "meter-overage" } : meterEvent(who, ent, 1n, { time: i }));
    }
    await s.commit([], events);
    const seqs = (q: Parameters<LmdbStore["listEvents"]>[0]): number[] => s.listEvents(q).events.map((e) => e.seq);
    expect(seqs({ customerId: "stripe_1", entitlements: ["chat"], limit: 100 })).toEqual([1, 5, 9, 13, 17]);
    expect(seqs({ types: ["meter-overage"], limit: 100 })).toEqual([1, 6, 11, 16]);
    // Empty lists mean "any" (the server always passes lists, empty when the request has none).
    expect(seqs({ types: [], entitlements: [], limit: 100 })).toHaveLength(20);
    expect(seqs({ fromTime: 3, toTime: 6, limit: 100 })).toEqual([4, 5, 6]);
    const first = s.listEvents({ customerId: "c2", limit: 3 });
    expect(first.events.map((e) => e.seq)).toEqual([2, 4, 6]);
    expect(first.nextAfterSeq).toBe(6);
    const rest = s.listEvents({ customerId: "c2", afterSeq: first.nextAfterSeq ?? 0, limit: 100 });
    expect(rest.events.map((e) => e.seq)).toEqual([8, 10, 12, 14, 16, 18, 20]);
    expect(rest.nextAfterSeq).toBeUndefined();
    // A rare filter stops at the scan limit with a cursor instead of reading the whole log.
    const capped = s.listEvents({ customerId: "nobody", limit: 10, scanLimit: 7 });
    expect(capped).toEqual({ events: [], nextAfterSeq: 7 });
  });

  it("keeps acknowledged commits with fsync on, across reopen", async () => {
    const path = dir();
    const s = openAt(path, { fsync: true });
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => s.commit([{ kind: "meter-put", meter: meter(`c${i}`, "chat", HUGE) }], [meterEvent(`c${i}`, "chat", HUGE)])),
    );
    await s.close();
    const again = openAt(path, { fsync: true });
    expect(again.metersOf("c19")).toEqual([meter("c19", "chat", HUGE)]);
    expect(again.lastSequence()).toBe(20);
    expect(again.stats()).toMatchObject({ eventCount: 20, firstSequence: 1, lastSequence: 20, pendingCommits: 0 });
  });
});

describe("lmdb event rows", () => {
  /** The raw event table, opened the way format 1 wrote it (msgpack, no shared structures). */
  function rawEvents(path: string): { put: (seq: number, row: unknown) => void; get: (seq: number) => unknown; format: () => unknown; setFormat: (v: number) => void; close: () => Promise<void> } {
    const env = open({ path: join(path, "limitr.mdb"), maxDbs: 16 });
    const events = env.openDB({ name: "events", encoding: "msgpack" });
    const meta = env.openDB({ name: "meta", encoding: "msgpack" });
    return {
      put: (seq, row) => events.transactionSync(() => events.putSync(seq, row)),
      get: (seq) => events.get(seq),
      format: () => meta.get("format"),
      setFormat: (v) => meta.transactionSync(() => meta.putSync("format", v)),
      close: () => env.close(),
    };
  }

  const validText = fc.oneof(fc.constant(""), fc.string({ unit: "grapheme", maxLength: 12 }), fc.string({ maxLength: 120 }));
  // msgpack stores -0 as 0, for every row version; no policy threshold is -0.
  const threshold = fc.double().map((x) => (Object.is(x, -0) ? 0 : x));

  it("reads back from LMDB exactly the meter event it stored, for any meter event", async () => {
    // No in-memory tail: every read decodes the stored row.
    const s = openAt(dir(), { recentEvents: 0 });
    await fc.assert(
      fc.asyncProperty(meterEvents(validText, threshold), async (event) => {
        const { sequences } = await s.commit([], [event]);
        expect(s.readEvents(sequences[0] as number, 1)).toEqual([{ seq: sequences[0], event }]);
      }),
      { numRuns: 300 },
    );
  });

  it("stores meter events as v2 tuples, other events as v1 maps", async () => {
    const path = dir();
    const s = openAt(path);
    const customerSet: EngineEvent = { type: "customer-set", time: 5, customer: customer("c1") };
    await s.commit([], [meterEvent("c1", "chat", HUGE), customerSet]);
    await s.close();
    const raw = rawEvents(path);
    const [meterRow, customerRow] = [raw.get(1), raw.get(2)] as unknown[][];
    await raw.close();
    expect(meterRow?.[0]).toBe(2);
    expect(meterRow?.[1]).toBe("meter-changed");
    expect(customerRow?.[0]).toBe(1);
    expect(openAt(path, { recentEvents: 0 }).readEvents(1, 10).map((e) => e.event)).toEqual([meterEvent("c1", "chat", HUGE), customerSet]);
  });

  it("upgrades a format-1 data dir in place and reads its v1 event rows", async () => {
    const path = dir();
    await openAt(path).close();
    const raw = rawEvents(path);
    raw.setFormat(1);
    // The rows format 1 wrote: [1, the event as a map], nanos as numbers or decimal strings.
    const old = meterEvent("c1", "chat", HUGE, { overagePrice: undefined, attributes: { model: "m" } });
    const v1 = (n: bigint): number | string => (n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString());
    const { oldValue, newValue, limit, diff, remaining, overage } = old;
    raw.put(1, [1, { ...old, oldValue: v1(oldValue), newValue: v1(newValue), limit: v1(limit), diff: v1(diff), remaining: v1(remaining), overage: v1(overage), overagePrice: null }]);
    raw.put(2, [1, { type: "customer-set", time: 5, customer: [1, "c1", "pro", "user", [], [], {}, 1_700_000_000_000, 1_700_000_000_000] }]);
    await raw.close();

    const s = openAt(path);
    expect(s.lastSequence()).toBe(2);
    await s.commit([], [meterEvent("c2", "chat", 1n)]);
    await s.close();
    const after = rawEvents(path);
    expect(after.format()).toBe(FORMAT_VERSION);
    await after.close();
    expect(openAt(path, { recentEvents: 0 }).readEvents(1, 10).map((e) => e.event)).toEqual([
      old,
      { type: "customer-set", time: 5, customer: customer("c1") },
      meterEvent("c2", "chat", 1n),
    ]);
  });

  it("reports an unreadable v2 row as such, naming what is wrong", async () => {
    const path = dir();
    await openAt(path).close();
    const raw = rawEvents(path);
    raw.put(1, [2, "meter-bogus", 1, "c1", "c1", "chat", "pro", "t", "t", "hard", 0, 1, 10, 1, 9, 0, null, 0, [], "v", ""]);
    raw.put(2, [2, "meter-changed", 1, "c1", "c1", "chat", "pro", "t", "t", "hard", 0, 1, 10, 1, 9, 0, null, 0, ["odd"], "v", ""]);
    raw.put(3, [2, "meter-changed", 1, "c1", "c1", "chat", "pro", "t", "t", "toString", 0, 1, 10, 1, 9, 0, null, 0, [], "v", ""]);
    await raw.close();
    const s = openAt(path, { recentEvents: 0 });
    const read = (seq: number): unknown => {
      try {
        return s.readEvents(seq, 1);
      } catch (e) {
        return e;
      }
    };
    expect(isLimitrError(read(1), "INTERNAL")).toBe(true);
    expect((read(1) as Error).message).toMatch(/meter event type meter-bogus is unknown/);
    expect((read(2) as Error).message).toMatch(/attributes are not key\/value pairs/);
    // Only own entries of the mode table count: "toString" is on every object's prototype.
    expect((read(3) as Error).message).toMatch(/meter event mode toString is unknown/);
  });
});

describe("lmdb meter holds", () => {
  /** The meter rows storage formats 1 and 2 wrote: [1, owner, entitlement, credit, periodStart, value, overhead, holds, thresholds]. */
  const v1Meter = (owner: string, entitlement: string, value: number, holds: unknown[]): unknown[] => [1, owner, entitlement, "tokens", 1_700_000_000_000, value, 0, holds, [50]];

  function rawTables(path: string) {
    const env = open({ path: join(path, "limitr.mdb"), maxDbs: 16 });
    const meters = env.openDB({ name: "meters", encoding: "msgpack" });
    const holds = env.openDB({ name: "holds", encoding: "msgpack" });
    const meta = env.openDB({ name: "meta", encoding: "msgpack" });
    return { env, meters, holds, meta };
  }

  /** A data dir as storage format 2 left it, with these meter rows. */
  async function formatTwoDir(rows: readonly (readonly [Key, unknown[]])[]): Promise<string> {
    const path = dir();
    await openAt(path).close();
    const raw = rawTables(path);
    raw.env.transactionSync(() => {
      raw.meta.putSync("format", 2);
      for (const [key, row] of rows) raw.meters.putSync(key, row);
    });
    await raw.env.close();
    return path;
  }

  /** Every meter and holds row, as stored. */
  const storedRows = (t: ReturnType<typeof rawTables>): unknown[] => [...t.meters.getRange(), ...t.holds.getRange()].map(({ key, value }) => [key, value]);

  /** The rows after the dir is opened once more: an upgraded dir is not upgraded again. */
  async function rowsAfterAnotherOpen(path: string): Promise<unknown[]> {
    await openAt(path).close();
    const again = rawTables(path);
    const rows = storedRows(again);
    await again.env.close();
    return rows;
  }

  it("a format-4 data dir is read as it is, and opened to write gets the new number with no row rewritten", async () => {
    // As format 4 left it: meter rows of ten elements at most, naming no reset rule.
    const f4 = [2, "c1", "chat", "tokens", 1_700_000_000_000, 7, 0, null, [50], null];
    const path = dir();
    await openAt(path).close();
    const raw = rawTables(path);
    raw.env.transactionSync(() => {
      raw.meta.putSync("format", 4);
      raw.meters.putSync(["c1", "chat"], f4);
    });
    await raw.env.close();

    // An export reads it without upgrading it (its writer may be format 4's code, still running).
    const reader = createLmdbStore({ path, readOnly: true });
    expect(reader.getMeter("c1", "chat")).toEqual(meter("c1", "chat", 7n, { billedOverage: 0n, thresholdsReached: [50] }));
    await reader.close();
    const unread = rawTables(path);
    expect(unread.meta.get("format")).toBe(4);
    await unread.env.close();

    await openAt(path).close();
    const after = rawTables(path);
    expect(after.meta.get("format")).toBe(5);
    expect(after.meters.get(["c1", "chat"])).toEqual(f4);
    await after.env.close();
  });

  it("upgrades a format-2 data dir: holds move out of their meter rows, once", async () => {
    const path = await formatTwoDir([
      [["c1", "chat"], v1Meter("c1", "chat", 7, [["r1", 5, 9_000], ["r2", "123456789012345678901", 8_000]])],
      [["c2", "chat"], v1Meter("c2", "chat", 3, [])],
    ]);

    const s = openAt(path);
    // In expiry order, as every store lists them.
    const holds = [
      { reservationId: "r2", amount: 123456789012345678901n, expiresAt: 8_000 },
      { reservationId: "r1", amount: 5n, expiresAt: 9_000 },
    ];
    expect(s.getMeter("c1", "chat")).toEqual(meter("c1", "chat", 7n, { holdSummary: summarizeHolds(holds), thresholdsReached: [50] }));
    expect(s.getHolds("c1", "chat")).toEqual(holds);
    // A meter row without holds reads as it is, and is left as it was.
    expect(s.getMeter("c2", "chat")).toEqual(meter("c2", "chat", 3n, { thresholdsReached: [50] }));
    expect(s.getHolds("c2", "chat")).toEqual([]);
    expect([...s.exportState()].filter((r) => r.kind === "meter").map((r) => (r.kind === "meter" ? r.holds : []))).toEqual([holds, []]);
    await s.close();

    const after = rawTables(path);
    expect(after.meta.get("format")).toBe(FORMAT_VERSION);
    expect((after.meters.get(["c1", "chat"]) as unknown[])[0]).toBe(2);
    expect(after.meters.get(["c2", "chat"])).toEqual(v1Meter("c2", "chat", 3, []));
    const upgraded = storedRows(after);
    await after.env.close();
    expect(await rowsAfterAnotherOpen(path)).toEqual(upgraded);
  });

  it("upgrades a format-3 data dir: each meter's list of holds becomes a row per hold, once", async () => {
    const path = dir();
    await openAt(path).close();
    const raw = rawTables(path);
    /** A meter row of format 3: [2, owner, entitlement, credit, periodStart, value, overhead, summary, thresholds]. */
    const v2Meter = (owner: string, summary: unknown[] | null): unknown[] => [2, owner, "chat", "tokens", 1_700_000_000_000, 4, 0, summary, []];
    raw.env.transactionSync(() => {
      raw.meta.putSync("format", 3);
      raw.meters.putSync(["c1", "chat"], v2Meter("c1", [20, 3, 8_000]));
      raw.holds.putSync(["c1", "chat"], [1, [["r1", 5, 9_000], ["r2", 7, 8_000], ["r2", 8, 8_000]]]);
      // A list its meter does not count, and one without a meter: never read, so dropped.
      raw.meters.putSync(["c2", "chat"], v2Meter("c2", null));
      raw.holds.putSync(["c2", "chat"], [1, [["stale", 45, 9_000]]]);
      raw.holds.putSync(["c3", "chat"], [1, [["orphan", 1, 9_000]]]);
      // A meter whose summary counts holds it has no list of: it counts none.
      raw.meters.putSync(["c4", "chat"], v2Meter("c4", [9, 1, 8_000]));
    });
    await raw.env.close();

    const s = openAt(path);
    // The two holds of one reservation with one expiry (never placed by the engine) became one.
    const holds = [
      { reservationId: "r2", amount: 15n, expiresAt: 8_000 },
      { reservationId: "r1", amount: 5n, expiresAt: 9_000 },
    ];
    expect(s.getHolds("c1", "chat")).toEqual(holds);
    expect(s.getMeter("c1", "chat")?.holdSummary).toEqual({ held: 20n, count: 2, nextExpiry: 8_000 });
    expect(s.getHold("c1", "chat", 9_000, "r1")).toEqual(holds[1]);
    expect(s.getHolds("c2", "chat")).toEqual([]);
    expect(s.getHolds("c3", "chat")).toEqual([]);
    expect(s.getMeter("c4", "chat")?.holdSummary).toEqual(NO_HOLD_SUMMARY);
    await s.close();

    const after = rawTables(path);
    expect(after.meta.get("format")).toBe(FORMAT_VERSION);
    expect([...after.holds.getKeys()]).toEqual([
      ["c1", "chat", 8_000, "r2"],
      ["c1", "chat", 9_000, "r1"],
    ]);
    const upgraded = storedRows(after);
    await after.env.close();
    expect(await rowsAfterAnotherOpen(path)).toEqual(upgraded);
  });

  it("a read-only open (export) refuses a format-2 data dir instead of upgrading it under its writer", async () => {
    const path = await formatTwoDir([[["c1", "chat"], v1Meter("c1", "chat", 7, [["r1", 5, 9_000]])]]);
    let error: unknown;
    try {
      createLmdbStore({ path, readOnly: true });
    } catch (e) {
      error = e;
    }
    expect(isLimitrError(error, "FAILED_PRECONDITION")).toBe(true);
    expect((error as Error).message).toMatch(/storage format 2.*only when it opens the dir to write it.*Nothing was changed/);
    const after = rawTables(path);
    expect(after.meta.get("format")).toBe(2);
    expect(after.meters.get(["c1", "chat"])).toEqual(v1Meter("c1", "chat", 7, [["r1", 5, 9_000]]));
    expect([...after.holds.getRange()]).toEqual([]);
    await after.env.close();
  });

  it("refuses to read a format-2 meter row that still carries holds, instead of dropping them", async () => {
    const path = dir();
    await openAt(path).close();
    const raw = rawTables(path);
    // As if the upgrade had been skipped: the format says 3, the row is still the old one.
    raw.meters.transactionSync(() => raw.meters.putSync(["c1", "chat"], v1Meter("c1", "chat", 7, [["r1", 5, 9_000]])));
    await raw.env.close();
    const s = openAt(path);
    let error: unknown;
    try {
      s.getMeter("c1", "chat");
    } catch (e) {
      error = e;
    }
    expect(isLimitrError(error, "INTERNAL")).toBe(true);
    expect((error as Error).message).toMatch(/still carries its holds/);
  });

  it("a batch that fails puts back the holds it deleted", async () => {
    const path = dir();
    const s = openAt(path);
    const h = { reservationId: "r1", amount: 5n, expiresAt: 50 };
    const m = (holds: readonly (typeof h)[]) => ({ kind: "meter-put" as const, meter: meter("c1", "chat", 1n, { holdSummary: summarizeHolds(holds) }) });
    await s.commit([m([h]), { kind: "hold-put", owner: "c1", entitlement: "chat", hold: h }], []);
    // Another writer takes the dir over: this store's next batch fails its writer check.
    const other = openAt(path);
    const p = s.commit([m([]), { kind: "hold-delete", owner: "c1", entitlement: "chat", hold: h }], []);
    expect(s.getHolds("c1", "chat")).toEqual([]);
    await expect(p).rejects.toMatchObject({ code: "FAILED_PRECONDITION" });
    expect(s.getHolds("c1", "chat")).toEqual([h]);
    expect(s.expiredHolds("c1", "chat", 50)).toEqual({ expired: [h], nextExpiry: Infinity });
    expect(s.getMeter("c1", "chat")?.holdSummary).toEqual(summarizeHolds([h]));
    await other.close();
  });

  it("a batch that fails takes its holds back with it", async () => {
    const s = openAt(dir(), { maxDataBytes: 1 });
    const h = { reservationId: "r1", amount: 5n, expiresAt: 50 };
    const p = s.commit([{ kind: "meter-put", meter: meter("c1", "chat", 1n, { holdSummary: summarizeHolds([h]) }) }, { kind: "hold-put", owner: "c1", entitlement: "chat", hold: h }], []);
    expect(s.getHolds("c1", "chat")).toEqual([h]);
    await expect(p).rejects.toMatchObject({ code: "RESOURCE_EXHAUSTED" });
    expect(s.getHolds("c1", "chat")).toEqual([]);
    expect(s.getMeter("c1", "chat")).toBeUndefined();
  });
});
