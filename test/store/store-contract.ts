/**
 * The store contract: what the engine relies on from any `StatePort & EventLog`. Registered once
 * per implementation (memory, LMDB; tomorrow Redis), so they cannot drift apart.
 */
import { afterEach, describe, expect, it } from "vitest";
import { summarizeHolds, type EventLog, type StatePort, type StoredEvent } from "../../src/engine/index.js";
import { HUGE, customer, idempotency, meter, meterEvent, reservation } from "./fixtures.js";

export type ContractStore = StatePort & EventLog;

export interface ContractOptions {
  /** Releases what the factory made (close, delete the temp dir). */
  readonly dispose?: (store: ContractStore) => Promise<void> | void;
}

export function describeStoreContract(
  name: string,
  make: () => ContractStore,
  options: ContractOptions = {},
): void {
  describe(`store contract: ${name}`, () => {
    const made: ContractStore[] = [];
    const fresh = (): ContractStore => {
      const s = make();
      made.push(s);
      return s;
    };
    afterEach(async () => {
      for (const s of made.splice(0)) await options.dispose?.(s);
    });

    it("starts empty", () => {
      const s = fresh();
      expect(s.getCustomer("c1")).toBeUndefined();
      expect(s.resolveAltId("a1")).toBeUndefined();
      expect(s.getMeter("c1", "chat")).toBeUndefined();
      expect(s.metersOf("c1")).toEqual([]);
      expect(s.getReservation("r1")).toBeUndefined();
      expect(s.getIdempotency("k1")).toBeUndefined();
      expect(s.listCustomers("", 10)).toEqual([]);
      expect(s.lastSequence()).toBe(0);
      expect(s.firstSequence()).toBe(1);
      expect(s.readEvents(1, 10)).toEqual([]);
    });

    it("keeps the reset-rule history last committed, as it was given", async () => {
      const s = fresh();
      expect(s.resetRuleHistory()).toBeUndefined();
      const first = { since: 1, lineages: [{ plan: "free", entitlement: "t", rule: "daily", changes: [] }] };
      const second = { since: 1, lineages: [{ plan: "free", entitlement: "t", rule: "never", changes: [{ at: 5, rule: "daily" }] }] };
      await s.commit([{ kind: "reset-rule-history", history: first }], []);
      expect(s.resetRuleHistory()).toEqual(first);
      await s.commit([{ kind: "reset-rule-history", history: second }, { kind: "meter-put", meter: meter("c1", "chat", 1n) }], []);
      expect(s.resetRuleHistory()).toEqual(second);
    });

    it("shows a commit's writes to the very next read, before its promise settles", async () => {
      const s = fresh();
      const c = customer("c1", { altIds: ["stripe_1"] });
      const p = s.commit([{ kind: "customer-put", customer: c, previous: undefined }], []);
      expect(s.getCustomer("c1")).toEqual(c);
      expect(s.resolveAltId("stripe_1")).toBe("c1");
      await p;
      expect(s.getCustomer("c1")).toEqual(c);
      expect(s.resolveAltId("stripe_1")).toBe("c1");
    });

    it("keeps quantities beyond int64 exact in meters, reservations, idempotency and events", async () => {
      const s = fresh();
      const holds = [{ reservationId: "r1", amount: HUGE, expiresAt: 5 }];
      const m = meter("c1", "chat", HUGE, { overhead: -HUGE, holdSummary: summarizeHolds(holds), thresholdsReached: [50, 80] });
      const ev = meterEvent("c1", "chat", HUGE, { overagePrice: -HUGE });
      await s.commit(
        [
          { kind: "meter-put", meter: m },
          { kind: "hold-put", owner: "c1", entitlement: "chat", hold: holds[0] as (typeof holds)[0] },
          { kind: "reservation-put", reservation: reservation("r1") },
          { kind: "idempotency-put", record: idempotency("k1", 99) },
        ],
        [ev],
      );
      expect(s.getMeter("c1", "chat")).toEqual(m);
      expect(s.getHolds("c1", "chat")).toEqual(holds);
      expect(s.getMeter("c1", "chat")?.value).toBe(HUGE);
      expect(s.getReservation("r1")).toEqual(reservation("r1"));
      expect(s.getIdempotency("k1")).toEqual(idempotency("k1", 99));
      expect(s.readEvents(1, 10)).toEqual([{ seq: 1, event: ev }]);
    });

    it("maintains the alt-id index through updates and deletes", async () => {
      const s = fresh();
      const v1 = customer("c1", { altIds: ["a", "b"] });
      await s.commit([{ kind: "customer-put", customer: v1, previous: undefined }], []);
      const v2 = customer("c1", { altIds: ["b", "c"] });
      await s.commit([{ kind: "customer-put", customer: v2, previous: v1 }], []);
      expect([s.resolveAltId("a"), s.resolveAltId("b"), s.resolveAltId("c")]).toEqual([undefined, "c1", "c1"]);
      await s.commit([{ kind: "customer-delete", customer: v2 }], []);
      expect(s.getCustomer("c1")).toBeUndefined();
      expect([s.resolveAltId("b"), s.resolveAltId("c")]).toEqual([undefined, undefined]);
    });

    it("lists one owner's meters in entitlement order, and no other owner's", async () => {
      const s = fresh();
      await s.commit(
        [
          { kind: "meter-put", meter: meter("a", "zeta", 1n) },
          { kind: "meter-put", meter: meter("ab", "alpha", 2n) },
          { kind: "meter-put", meter: meter("a", "alpha", 3n) },
          { kind: "meter-put", meter: meter("a!", "x", 4n) },
          { kind: "meter-put", meter: meter("a\u0000", "x", 4n) },
        ],
        [],
      );
      // Pending (uncommitted) changes merge into the listing too.
      const p = s.commit(
        [
          { kind: "meter-put", meter: meter("a", "mid", 5n) },
          { kind: "meter-delete", owner: "a", entitlement: "zeta" },
        ],
        [],
      );
      expect(s.metersOf("a").map((m) => [m.entitlement, m.value])).toEqual([["alpha", 3n], ["mid", 5n]]);
      await p;
      expect(s.metersOf("a").map((m) => [m.entitlement, m.value])).toEqual([["alpha", 3n], ["mid", 5n]]);
      expect(s.getMeter("a", "zeta")).toBeUndefined();
    });

    it("pages customers in code point order, merging pending puts and deletes", async () => {
      const s = fresh();
      const ids = ["b", "a", "\u{1F600}", "\uFFFF", "aa", "c"];
      await s.commit(ids.map((id) => ({ kind: "customer-put" as const, customer: customer(id), previous: undefined })), []);
      const p = s.commit(
        [
          { kind: "customer-delete", customer: customer("aa") },
          { kind: "customer-put", customer: customer("ab"), previous: undefined },
        ],
        [],
      );
      const all: string[] = [];
      for (let after = ""; ; ) {
        const page = s.listCustomers(after, 2);
        if (page.length === 0) break;
        all.push(...page.map((c) => c.id));
        after = page[page.length - 1]?.id ?? "";
      }
      expect(all).toEqual(["a", "ab", "b", "c", "\uFFFF", "\u{1F600}"]);
      await p;
      expect(s.listCustomers("a", 3).map((c) => c.id)).toEqual(["ab", "b", "c"]);
    });

    it("keeps each hold as a row of its own: read one by one, the expired ones as a range, gone with their meter", async () => {
      const s = fresh();
      const h1 = { reservationId: "r1", amount: 5n, expiresAt: 50 };
      const h2 = { reservationId: "r2", amount: 7n, expiresAt: 40 };
      const h3 = { reservationId: "r3", amount: 1n, expiresAt: 40 };
      const hold = (h: typeof h1, owner = "c1", entitlement = "chat") => ({ kind: "hold-put" as const, owner, entitlement, hold: h });
      const drop = (h: typeof h1) => ({ kind: "hold-delete" as const, owner: "c1", entitlement: "chat", hold: h });
      const m = (holds: readonly (typeof h1)[]) => ({ kind: "meter-put" as const, meter: meter("c1", "chat", 1n, { holdSummary: summarizeHolds(holds) }) });
      const neighbours = [hold(h2, "c1", "chas"), hold(h2, "c1", "chatter"), hold(h1, "c", "1chat"), hold(h1, "c1\0", "chat")];
      await s.commit(neighbours, []);
      const p = s.commit([m([h1, h2, h3]), hold(h1), hold(h2), hold(h3)], []);
      const expectStored = (): void => {
        // In expiry order, then by reservation id.
        expect(s.getHolds("c1", "chat")).toEqual([h2, h3, h1]);
        expect(s.getHold("c1", "chat", 40, "r2")).toEqual(h2);
        expect(s.getHold("c1", "chat", 50, "r2")).toBeUndefined();
        expect(s.getHold("c1", "chas", 40, "r1")).toBeUndefined();
        expect(s.expiredHolds("c1", "chat", 39)).toEqual({ expired: [], nextExpiry: 40 });
        expect(s.expiredHolds("c1", "chat", 40)).toEqual({ expired: [h2, h3], nextExpiry: 50 });
        expect(s.expiredHolds("c1", "chat", 49.5)).toEqual({ expired: [h2, h3], nextExpiry: 50 });
        expect(s.expiredHolds("c1", "chat", 1e15)).toEqual({ expired: [h2, h3, h1], nextExpiry: Infinity });
        expect(s.getHolds("c1", "chas")).toEqual([h2]);
        expect(s.getHolds("c1", "chatter")).toEqual([h2]);
        expect(s.getHolds("c", "1chat")).toEqual([h1]);
        expect(s.getHolds("c1", "other")).toEqual([]);
        expect(s.expiredHolds("c1", "other", 1e15)).toEqual({ expired: [], nextExpiry: Infinity });
      };
      // Visible before the commit settles, like every other write.
      expectStored();
      await p;
      expectStored();

      const h4 = { reservationId: "r4", amount: 2n, expiresAt: 45 };
      const q = s.commit([m([h3, h1, h4]), drop(h2), hold(h4)], []);
      const expectChanged = (): void => {
        expect(s.getHolds("c1", "chat")).toEqual([h3, h4, h1]);
        expect(s.getHold("c1", "chat", 40, "r2")).toBeUndefined();
        expect(s.expiredHolds("c1", "chat", 45)).toEqual({ expired: [h3, h4], nextExpiry: 50 });
        expect(s.expiredHolds("c1", "chat", 44)).toEqual({ expired: [h3], nextExpiry: 45 });
      };
      expectChanged();
      await q;
      expectChanged();

      await s.commit([{ kind: "meter-delete", owner: "c1", entitlement: "chat" }], []);
      expect(s.getMeter("c1", "chat")).toBeUndefined();
      expect(s.getHolds("c1", "chat")).toEqual([]);
      expect(s.getHold("c1", "chat", 50, "r1")).toBeUndefined();
      expect(s.getHolds("c1", "chas")).toEqual([h2]);
      expect(s.getHolds("c1", "chatter")).toEqual([h2]);
      expect(s.getHolds("c", "1chat")).toEqual([h1]);
      expect(s.getHolds("c1\0", "chat")).toEqual([h1]);
    });

    it("in one batch, a hold is what its last write said, and a meter deleted takes the holds written before", async () => {
      const s = fresh();
      const h1 = { reservationId: "r1", amount: 5n, expiresAt: 50 };
      const h1b = { ...h1, amount: 9n };
      const h2 = { reservationId: "r2", amount: 7n, expiresAt: 40 };
      const put = (h: typeof h1, entitlement = "chat") => ({ kind: "hold-put" as const, owner: "c1", entitlement, hold: h });
      const m = (value: bigint, holds: readonly (typeof h1)[], entitlement = "chat") => meter("c1", entitlement, value, { holdSummary: summarizeHolds(holds) });
      // Not awaited one by one: the LMDB store writes them in one transaction, each key once.
      const commits = [
        s.commit([{ kind: "meter-put", meter: m(1n, [h1, h2]) }, put(h1), put(h2)], []),
        s.commit([{ kind: "meter-put", meter: m(2n, [h2]) }, { kind: "hold-delete", owner: "c1", entitlement: "chat", hold: h1 }], []),
        s.commit([{ kind: "meter-put", meter: m(3n, [h2, h1b]) }, put(h1b)], []),
        s.commit([{ kind: "meter-put", meter: m(1n, [h1], "gone") }, put(h1, "gone")], []),
        s.commit([{ kind: "meter-delete", owner: "c1", entitlement: "gone" }], []),
      ];
      expect(s.getHolds("c1", "chat")).toEqual([h2, h1b]);
      expect(s.getHolds("c1", "gone")).toEqual([]);
      await Promise.all(commits);
      expect(s.getHolds("c1", "chat")).toEqual([h2, h1b]);
      expect(s.getHold("c1", "chat", 50, "r1")).toEqual(h1b);
      expect(s.getMeter("c1", "chat")).toEqual(m(3n, [h2, h1b]));
      expect(s.getHolds("c1", "gone")).toEqual([]);
    });

    it("a pending hold replaces the committed row of the same id, once, in every read", async () => {
      const s = fresh();
      const h1 = { reservationId: "r1", amount: 5n, expiresAt: 50 };
      const h2 = { reservationId: "r2", amount: 7n, expiresAt: 60 };
      const put = (h: typeof h1) => ({ kind: "hold-put" as const, owner: "c1", entitlement: "chat", hold: h });
      await s.commit([put(h1), put(h2)], []);
      const bigger = { ...h1, amount: 9n };
      const p = s.commit([put(bigger)], []);
      expect(s.getHolds("c1", "chat")).toEqual([bigger, h2]);
      expect(s.expiredHolds("c1", "chat", 50)).toEqual({ expired: [bigger], nextExpiry: 60 });
      expect(s.expiredHolds("c1", "chat", 60)).toEqual({ expired: [bigger, h2], nextExpiry: Infinity });
      expect(s.getHold("c1", "chat", 50, "r1")).toEqual(bigger);
      await p;
      expect(s.getHolds("c1", "chat")).toEqual([bigger, h2]);
      // A pending delete of a committed row hides it from the range, and the next row answers.
      const q = s.commit([{ kind: "hold-delete", owner: "c1", entitlement: "chat", hold: bigger }], []);
      expect(s.expiredHolds("c1", "chat", 55)).toEqual({ expired: [], nextExpiry: 60 });
      await q;
      expect(s.expiredHolds("c1", "chat", 55)).toEqual({ expired: [], nextExpiry: 60 });
    });

    it("in one batch, holds whose owner, entitlement and reservation ids run together stay apart", async () => {
      const s = fresh();
      const one = { kind: "hold-put" as const, owner: "o", entitlement: "chat", hold: { reservationId: "7\0r", amount: 1n, expiresAt: 5 } };
      const two = { kind: "hold-put" as const, owner: "o", entitlement: "chat\u00005", hold: { reservationId: "r", amount: 2n, expiresAt: 7 } };
      await Promise.all([s.commit([one], []), s.commit([two], [])]);
      expect(s.getHolds("o", "chat")).toEqual([one.hold]);
      expect(s.getHolds("o", "chat\u00005")).toEqual([two.hold]);
    });

    it("deletes reservations", async () => {
      const s = fresh();
      await s.commit([{ kind: "reservation-put", reservation: reservation("r1") }], []);
      await s.commit([{ kind: "reservation-delete", id: "r1" }], []);
      expect(s.getReservation("r1")).toBeUndefined();
    });

    it("numbers events in order and tells subscribers after the commit, in order", async () => {
      const s = fresh();
      const seen: StoredEvent[] = [];
      const settled: number[] = [];
      const unsubscribe = s.subscribe((events) => {
        // Every event handed to a subscriber is already readable from the log.
        const last = events[events.length - 1];
        if (last) expect(s.lastSequence()).toBeGreaterThanOrEqual(last.seq);
        seen.push(...events);
      });
      const commits = [0, 1, 2].map((i) =>
        s.commit([], [meterEvent(`c${i}`, "chat", 1n), meterEvent(`c${i}`, "img", 2n)]).then((r) => {
          settled.push(i);
          return r;
        }),
      );
      const receipts = await Promise.all(commits);
      expect(receipts.map((r) => r.sequences)).toEqual([[1, 2], [3, 4], [5, 6]]);
      expect(settled).toEqual([0, 1, 2]);
      expect(seen.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(s.readEvents(3, 2).map((e) => [e.seq, e.event.type])).toEqual([[3, "meter-changed"], [4, "meter-changed"]]);
      expect(s.lastSequence()).toBe(6);
      expect(s.firstSequence()).toBe(1);
      unsubscribe();
      await s.commit([], [meterEvent("c9", "chat", 1n)]);
      expect(seen).toHaveLength(6);
    });

    it("settles an empty commit only after every earlier commit (a barrier)", async () => {
      const s = fresh();
      const order: string[] = [];
      const a = s.commit([{ kind: "meter-put", meter: meter("c1", "chat", 1n) }], []).then(() => order.push("write"));
      const b = s.commit([], []).then(() => order.push("barrier"));
      await Promise.all([a, b]);
      expect(order).toEqual(["write", "barrier"]);
    });

    it("admits exactly the limit when 200 check-then-increment decisions race (no lost update)", async () => {
      const s = fresh();
      const limit = 100n;
      let admitted = 0;
      const commits: Promise<unknown>[] = [];
      // What the engine does per Allow(1): read, decide, commit; all 200 before any commit settles.
      for (let i = 0; i < 200; i++) {
        const value = s.getMeter("c1", "chat")?.value ?? 0n;
        if (value + 1n > limit) continue;
        admitted++;
        commits.push(s.commit([{ kind: "meter-put", meter: meter("c1", "chat", value + 1n) }], [meterEvent("c1", "chat", 1n)]));
      }
      await Promise.all(commits);
      expect(admitted).toBe(100);
      expect(s.getMeter("c1", "chat")?.value).toBe(100n);
      expect(s.lastSequence()).toBe(100);
    });
  });
}
