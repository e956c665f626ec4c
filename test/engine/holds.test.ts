/**
 * Holds live apart from their meter, one row each, and the meter keeps only their summary:
 * decisions read the summary; a settle or release reads the one hold it removes, and a decision
 * reads the expired ones once the summary says one may have expired. A model of reservations
 * checks that nothing counts differently for it, whatever the order of reserves, settles,
 * releases, expiries and period resets.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_ENGINE_OPTIONS,
  NO_HOLD_SUMMARY,
  allow,
  check,
  release,
  reserve,
  setCustomerPlan,
  settle,
  summarizeHolds,
  upsertCustomer,
  type DecisionResult,
  type EngineContext,
  type MeterView,
  type Outcome,
  type StatePort,
  type StateReader,
} from "../../src/engine/index.js";
import { createMemoryStore } from "../../src/store/memory-store.js";
import { tempStore } from "../store/temp-store.js";
import { T0, buildPolicy, createHarness, credit, n, rolling, type Harness } from "./harness.js";

const token = credit("token");
const policy = buildPolicy({
  free: {
    isDefault: true,
    entitlements: {
      a: { limit: { credit: token, value: 50 } },
      b: { limit: { credit: token, value: 40, reset: rolling(1000) } },
    },
  },
});

const view = (r: DecisionResult): MeterView => r.items[0] as MeterView;

interface HoldReads {
  /** Single holds read (`getHold`). */
  one: number;
  /** Rows returned by `expiredHolds`, plus one per call (the look past the expired ones). */
  expired: number;
  /** Every hold of a meter (`getHolds`): for export and deletion, never a decision. */
  all: number;
}

/** Runs `op` against a state that counts how many holds it reads. */
function counted<A, T>(h: Harness, op: (ctx: EngineContext, arg: A) => Outcome<T>, arg: A): { out: Outcome<T>; reads: HoldReads } {
  const reads: HoldReads = { one: 0, expired: 0, all: 0 };
  const store = h.store;
  const state: StateReader = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === "getHold") {
        return (...args: Parameters<StateReader["getHold"]>) => {
          reads.one++;
          return store.getHold(...args);
        };
      }
      if (prop === "expiredHolds") {
        return (...args: Parameters<StateReader["expiredHolds"]>) => {
          const found = store.expiredHolds(...args);
          reads.expired += found.expired.length + 1;
          return found;
        };
      }
      if (prop === "getHolds") {
        return (...args: Parameters<StateReader["getHolds"]>) => {
          reads.all++;
          return store.getHolds(...args);
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
  const out = op({ ...h.ctx(), state }, arg);
  void h.store.commit(out.writes, out.events);
  return { out, reads };
}

const NO_READS: HoldReads = { one: 0, expired: 0, all: 0 };

describe("holds apart from their meter", () => {
  it("a decision on a meter with many open holds reads none of them until one may have expired", () => {
    const h = createHarness(policy);
    for (let i = 0; i < 40; i++) h.run(reserve, { customerId: "u", items: [{ entitlement: "a", amount: 1 }], ttlMs: 60_000 + i });
    expect(h.store.getMeter("u", "a")?.holdSummary).toEqual({ held: n(40), count: 40, nextExpiry: h.now + 60_000 });

    const a = counted(h, allow, { customerId: "u", items: [{ entitlement: "a", amount: 5 }] });
    expect(a.reads).toEqual(NO_READS);
    expect(view(a.out.result as DecisionResult)).toMatchObject({ value: n(5), held: n(40), remaining: n(5) });
    // The meter row is rewritten; its holds are not.
    expect(a.out.writes).toEqual([expect.objectContaining({ kind: "meter-put" })]);
    expect(counted(h, check, { customerId: "u", items: [{ entitlement: "a", amount: 6 }] }).out.result.allowed).toBe(false);

    // The first hold expires: the next decision reads it (and looks one further) and drops it.
    h.now += 60_000;
    const b = counted(h, allow, { customerId: "u", items: [{ entitlement: "a", amount: 6 }] });
    expect(b.reads).toEqual({ ...NO_READS, expired: 2 });
    expect(b.out.result.allowed).toBe(true);
    expect(view(b.out.result as DecisionResult).held).toBe(n(39));
    expect(b.out.writes.map((w) => w.kind)).toEqual(["meter-put", "hold-delete"]);
    expect(h.store.getHolds("u", "a")).toHaveLength(39);
    expect(h.store.getMeter("u", "a")?.holdSummary).toEqual({ held: n(39), count: 39, nextExpiry: h.now + 1 });
    expect(counted(h, allow, { customerId: "u", items: [{ entitlement: "a", amount: 0 }] }).reads).toEqual(NO_READS);
  });

  it("a reserve writes its own hold and a settle or release removes only its own, whatever else is open", () => {
    const h = createHarness(policy);
    for (let i = 0; i < 40; i++) h.run(reserve, { customerId: "u", items: [{ entitlement: "a", amount: 1 }], ttlMs: 60_000 });
    const r = counted(h, reserve, { customerId: "u", items: [{ entitlement: "a", amount: 2 }], ttlMs: 30_000 });
    expect(r.reads).toEqual(NO_READS);
    expect(r.out.writes.map((w) => w.kind)).toEqual(["meter-put", "hold-put", "reservation-put"]);
    // The earliest hold now expires sooner than the others: the summary says so.
    expect(h.store.getMeter("u", "a")?.holdSummary).toEqual({ held: n(42), count: 41, nextExpiry: h.now + 30_000 });

    const id = r.out.result.reservationId as string;
    const s = counted(h, settle, { reservationId: id, actual: [{ entitlement: "a", amount: 1 }] });
    expect(s.reads).toEqual({ ...NO_READS, one: 1 });
    expect(s.out.writes.filter((w) => w.kind.startsWith("hold-"))).toEqual([
      { kind: "hold-delete", owner: "u", entitlement: "a", hold: { reservationId: id, amount: n(2), expiresAt: h.now + 30_000 } },
    ]);
    // The summary keeps its earliest expiry (no look for the next one); a later decision finds
    // nothing expired then, and stores the real next expiry.
    expect(h.store.getMeter("u", "a")?.holdSummary).toEqual({ held: n(40), count: 40, nextExpiry: h.now + 30_000 });
    h.now += 30_000;
    const later = counted(h, allow, { customerId: "u", items: [{ entitlement: "a", amount: 0 }] });
    expect(later.reads).toEqual({ ...NO_READS, expired: 1 });
    expect(h.store.getMeter("u", "a")?.holdSummary).toEqual({ held: n(40), count: 40, nextExpiry: h.now + 30_000 });

    const other = h.store.getHolds("u", "a")[7]?.reservationId as string;
    const rel = counted(h, release, { reservationId: other });
    expect(rel.reads).toEqual({ ...NO_READS, one: 1 });
    expect(rel.out.writes.map((w) => w.kind)).toEqual(["meter-put", "hold-delete", "reservation-delete"]);
    expect(h.store.getHolds("u", "a").map((x) => x.reservationId)).not.toContain(other);
    expect(h.store.getMeter("u", "a")?.holdSummary).toMatchObject({ held: n(39), count: 39 });
  });

  const meterRow = (h: Harness, holdSummary = NO_HOLD_SUMMARY) => ({ owner: "u", entitlement: "a", credit: "token", periodStart: h.now, value: 0n, overhead: 0n, billedOverage: 0n, resetRule: "never", judgedAt: h.now, holdSummary, thresholdsReached: [] });

  it("the rows are the truth: a meter whose summary counts none is not asked, and a row it missed is counted once the summary runs out", () => {
    const h = createHarness(policy);
    const stray = { reservationId: "stray", amount: n(45), expiresAt: h.now + 60_000 };
    // A meter row and a hold row that disagree (which no commit of the engine leaves).
    void h.store.commit([{ kind: "meter-put", meter: meterRow(h) }, { kind: "hold-put", owner: "u", entitlement: "a", hold: stray }], []);
    const r = counted(h, reserve, { customerId: "u", items: [{ entitlement: "a", amount: 5 }], ttlMs: 1000 });
    expect(r.out.result.allowed).toBe(true);
    expect(r.reads).toEqual(NO_READS);
    expect(h.store.getMeter("u", "a")?.holdSummary).toEqual({ held: n(5), count: 1, nextExpiry: h.now + 1000 });
    // The reserve's hold expires: the summary would count nothing while a row is left, so the
    // rows are counted again.
    h.now += 1000;
    const a = counted(h, allow, { customerId: "u", items: [{ entitlement: "a", amount: 0 }] });
    expect(view(a.out.result as DecisionResult).held).toBe(n(45));
    expect(a.reads).toEqual({ one: 0, expired: 2, all: 1 });
    expect(h.store.getMeter("u", "a")?.holdSummary).toEqual({ held: n(45), count: 1, nextExpiry: stray.expiresAt });
  });

  it("a summary with no rows behind it counts nothing once its bound has passed", () => {
    const h = createHarness(policy);
    void h.store.commit([{ kind: "meter-put", meter: meterRow(h, { held: n(30), count: 2, nextExpiry: h.now + 10 }) }], []);
    expect(view(h.run(check, { customerId: "u", items: [{ entitlement: "a", amount: 0 }] }).result).held).toBe(n(30));
    h.now += 10;
    const a = counted(h, allow, { customerId: "u", items: [{ entitlement: "a", amount: 50 }] });
    expect(a.out.result.allowed).toBe(true);
    expect(view(a.out.result as DecisionResult).held).toBe(0n);
    expect(h.store.getMeter("u", "a")?.holdSummary).toEqual(NO_HOLD_SUMMARY);
  });

  it("a plan change that restarts the meters drops their expired holds with them, and keeps the open ones", () => {
    const h = createHarness(policy);
    h.run(upsertCustomer, { id: "u" });
    const gone = h.run(reserve, { customerId: "u", items: [{ entitlement: "a", amount: 3 }], ttlMs: 1000 }).result.reservationId;
    const kept = h.run(reserve, { customerId: "u", items: [{ entitlement: "a", amount: 4 }], ttlMs: 5000 }).result.reservationId;
    h.now += 1000;
    const out = h.run(setCustomerPlan, { customerId: "u", plan: "", resetMeters: true });
    expect(out.writes.filter((w) => w.kind === "hold-delete").map((w) => w.kind === "hold-delete" && w.hold.reservationId)).toEqual([gone]);
    expect(h.store.getHolds("u", "a").map((x) => x.reservationId)).toEqual([kept]);
    expect(h.store.getMeter("u", "a")).toMatchObject({ value: 0n, holdSummary: { held: n(4), count: 1, nextExpiry: h.now + 4000 } });
  });

  it("a read never writes: a Check after an expiry counts without the expired hold and stores nothing", () => {
    const h = createHarness(policy);
    h.run(reserve, { customerId: "u", items: [{ entitlement: "a", amount: 30 }], ttlMs: 1000 });
    h.now += 1000;
    const c = counted(h, check, { customerId: "u", items: [{ entitlement: "a", amount: 50 }] });
    expect(c.out.result.allowed).toBe(true);
    expect(c.out.writes).toEqual([]);
    expect(h.store.getHolds("u", "a")).toHaveLength(1);
  });

  type Step =
    | { readonly op: "reserve"; readonly ent: "a" | "b"; readonly amount: number; readonly ttl: number }
    | { readonly op: "settle"; readonly pick: number; readonly actual: number }
    | { readonly op: "release"; readonly pick: number }
    | { readonly op: "allow"; readonly ent: "a" | "b"; readonly amount: number }
    | { readonly op: "wait"; readonly ms: number };

  const ent = fc.constantFrom("a" as const, "b" as const);
  const step: fc.Arbitrary<Step> = fc.oneof(
    fc.record({ op: fc.constant("reserve" as const), ent, amount: fc.integer({ min: 1, max: 15 }), ttl: fc.integer({ min: 1, max: 3000 }) }),
    fc.record({ op: fc.constant("settle" as const), pick: fc.nat(), actual: fc.integer({ min: 0, max: 10 }) }),
    fc.record({ op: fc.constant("release" as const), pick: fc.nat() }),
    fc.record({ op: fc.constant("allow" as const), ent, amount: fc.integer({ min: 0, max: 12 }) }),
    fc.record({ op: fc.constant("wait" as const), ms: fc.integer({ min: 0, max: 1500 }) }),
  );

  /** A clock, an engine context and a store: the memory store, or LMDB with real batches. */
  interface Runner {
    now: number;
    readonly state: StatePort;
    run<A, T>(op: (ctx: EngineContext, arg: A) => Outcome<T>, arg: A): Outcome<T>;
    /** Waits for every commit handed to the store so far (LMDB: they are batched until then). */
    settled(): Promise<void>;
  }

  function runner(state: StatePort): Runner {
    let next = 0;
    let pending: Promise<unknown>[] = [];
    const r: Runner = {
      now: T0,
      state,
      run(op, arg) {
        const out = op({ policy, state, now: r.now, newId: () => `r${++next}`, options: DEFAULT_ENGINE_OPTIONS }, arg);
        pending.push(state.commit(out.writes, out.events));
        return out;
      },
      async settled() {
        const all = pending;
        pending = [];
        await Promise.all(all);
      },
    };
    return r;
  }

  /** Steps against a model of the reservations; commits are awaited after every `flushEvery` steps. */
  async function checkAgainstModel(h: Runner, steps: readonly Step[], flushEvery: number): Promise<void> {
    const limits = { a: 50, b: 40 };
    const value = { a: 0, b: 0 };
    // b resets every 1000 ms from its first change; open holds survive the reset.
    let bStart: number | undefined;
    const open: { id: string; ent: "a" | "b"; amount: number; expiresAt: number }[] = [];
    const held = (e: "a" | "b"): number => open.reduce((s, r) => (r.ent === e && r.expiresAt > h.now ? s + r.amount : s), 0);
    const roll = (): void => {
      if (bStart !== undefined && h.now >= bStart + 1000) {
        bStart += Math.floor((h.now - bStart) / 1000) * 1000;
        value.b = 0;
      }
    };
    const changed = (e: "a" | "b"): void => {
      if (e === "b") bStart ??= h.now;
    };
    /** Anything but a Check that read a meter leaves none of its expired holds stored. */
    const noneExpired = (e: "a" | "b"): void => {
      for (const x of h.state.getHolds("u", e)) expect(x.expiresAt).toBeGreaterThan(h.now);
    };
    for (let i = 0; i < steps.length; i++) {
      const s = steps[i] as Step;
      if (i % flushEvery === 0) await h.settled();
      roll();
      switch (s.op) {
        case "wait":
          h.now += s.ms;
          continue;
        case "reserve": {
          const r = h.run(reserve, { customerId: "u", items: [{ entitlement: s.ent, amount: s.amount }], ttlMs: s.ttl }).result;
          const fits = value[s.ent] + s.amount + held(s.ent) <= limits[s.ent];
          expect(r.allowed).toBe(fits);
          if (fits) {
            changed(s.ent);
            open.push({ id: r.reservationId as string, ent: s.ent, amount: s.amount, expiresAt: h.now + s.ttl });
          }
          noneExpired(s.ent);
          break;
        }
        case "allow": {
          const r = h.run(allow, { customerId: "u", items: [{ entitlement: s.ent, amount: s.amount }] }).result;
          const fits = value[s.ent] + s.amount + held(s.ent) <= limits[s.ent];
          expect(r.allowed).toBe(fits);
          if (fits && s.amount > 0) {
            changed(s.ent);
            value[s.ent] += s.amount;
          }
          expect(view(r)).toMatchObject({ value: n(value[s.ent]), held: n(held(s.ent)) });
          noneExpired(s.ent);
          break;
        }
        case "settle":
        case "release": {
          if (open.length === 0) continue;
          const [r] = open.splice(s.pick % open.length, 1);
          if (r === undefined) continue;
          if (s.op === "release") {
            // An expired one is removed too, but freed nothing: released only while it held.
            expect(h.run(release, { reservationId: r.id }).result.released).toBe(r.expiresAt > h.now);
            break;
          }
          const out = h.run(settle, { reservationId: r.id, actual: [{ entitlement: r.ent, amount: s.actual }] }).result;
          expect(out.allowed).toBe(true);
          if (s.actual > 0) {
            changed(r.ent);
            value[r.ent] += s.actual;
          }
          expect(view(out)).toMatchObject({ value: n(value[r.ent]), held: n(held(r.ent)) });
          noneExpired(r.ent);
          break;
        }
      }
      for (const e of ["a", "b"] as const) {
        const c = h.run(check, { customerId: "u", items: [{ entitlement: e, amount: 0 }] }).result;
        expect(view(c)).toMatchObject({ value: n(value[e]), held: n(held(e)) });
        // What the meter stores about its holds is always what its stored holds add up to.
        // (`nextExpiry` may be earlier than the earliest: a lower bound.)
        const meter = h.state.getMeter("u", e);
        if (meter !== undefined) {
          const stored = summarizeHolds(h.state.getHolds("u", e));
          expect(meter.holdSummary).toEqual({ ...stored, nextExpiry: stored.count === 0 ? Infinity : expect.any(Number) });
          expect(meter.holdSummary.nextExpiry).toBeLessThanOrEqual(stored.nextExpiry);
        }
      }
    }
    await h.settled();
  }

  it("decisions and views count open holds exactly as a model of the reservations does (memory store)", async () => {
    await fc.assert(fc.asyncProperty(fc.array(step, { maxLength: 60 }), (steps) => checkAgainstModel(runner(createMemoryStore()), steps, 1)));
  });

  it("the same on LMDB, with decisions batched into shared transactions and read back from the file", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 60 }), fc.integer({ min: 1, max: 6 }), async (steps, flushEvery) => {
        const t = tempStore();
        try {
          await checkAgainstModel(runner(t.store), steps, flushEvery);
        } finally {
          await t.dispose();
        }
      }),
      { numRuns: 40 },
    );
  });
});
