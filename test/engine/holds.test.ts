/**
 * Holds live apart from their meter, which keeps only their summary: decisions read the summary,
 * and the holds themselves only when one is added or removed, or once one may have expired. A
 * model of reservations checks that nothing counts differently for it, whatever the order of
 * reserves, settles, releases, expiries and period resets.
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
  settle,
  summarizeHolds,
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

/** Runs `op` against a state that counts how often the holds themselves are read. */
function counted<A, T>(h: Harness, op: (ctx: EngineContext, arg: A) => Outcome<T>, arg: A): { out: Outcome<T>; holdReads: number } {
  let holdReads = 0;
  const state: StateReader = new Proxy(h.store, {
    get(target, prop, receiver) {
      if (prop === "getHolds") {
        return (owner: string, entitlement: string) => {
          holdReads++;
          return target.getHolds(owner, entitlement);
        };
      }
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
  const out = op({ ...h.ctx(), state }, arg);
  void h.store.commit(out.writes, out.events);
  return { out, holdReads };
}

describe("holds apart from their meter", () => {
  it("a decision on a meter with many open holds reads none of them until one may have expired", () => {
    const h = createHarness(policy);
    for (let i = 0; i < 40; i++) h.run(reserve, { customerId: "u", items: [{ entitlement: "a", amount: 1 }], ttlMs: 60_000 + i });
    expect(h.store.getMeter("u", "a")?.holdSummary).toEqual({ held: n(40), count: 40, nextExpiry: h.now + 60_000 });

    const a = counted(h, allow, { customerId: "u", items: [{ entitlement: "a", amount: 5 }] });
    expect(a.holdReads).toBe(0);
    expect(view(a.out.result as DecisionResult)).toMatchObject({ value: n(5), held: n(40), remaining: n(5) });
    // The meter row is rewritten; its holds are not.
    expect(a.out.writes).toEqual([expect.objectContaining({ kind: "meter-put" })]);
    expect(a.out.writes[0]).not.toHaveProperty("holds");
    expect(counted(h, check, { customerId: "u", items: [{ entitlement: "a", amount: 6 }] }).out.result.allowed).toBe(false);

    // The first hold expires: the next decision reads the holds once and drops the expired one.
    h.now += 60_000;
    const b = counted(h, allow, { customerId: "u", items: [{ entitlement: "a", amount: 6 }] });
    expect(b.holdReads).toBe(1);
    expect(b.out.result.allowed).toBe(true);
    expect(view(b.out.result as DecisionResult).held).toBe(n(39));
    expect(h.store.getHolds("u", "a")).toHaveLength(39);
    expect(h.store.getMeter("u", "a")?.holdSummary).toEqual({ held: n(39), count: 39, nextExpiry: h.now + 1 });
    expect(counted(h, allow, { customerId: "u", items: [{ entitlement: "a", amount: 0 }] }).holdReads).toBe(0);
  });

  it("a meter whose summary says it has no holds is never asked for them: a stray list cannot come back", () => {
    const h = createHarness(policy);
    const stale = { reservationId: "gone", amount: n(45), expiresAt: h.now + 60_000 };
    // A meter row and a holds row that disagree (as an older writer could have left them).
    void h.store.commit([{ kind: "meter-put", meter: { owner: "u", entitlement: "a", credit: "token", periodStart: h.now, value: 0n, overhead: 0n, holdSummary: NO_HOLD_SUMMARY, thresholdsReached: [] }, holds: [stale] }], []);
    const r = counted(h, reserve, { customerId: "u", items: [{ entitlement: "a", amount: 10 }], ttlMs: 1000 });
    expect(r.out.result.allowed).toBe(true);
    expect(r.holdReads).toBe(0);
    expect(h.store.getHolds("u", "a").map((x) => x.reservationId)).toEqual([r.out.result.reservationId]);
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
            expect(h.run(release, { reservationId: r.id }).result.released).toBe(true);
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
        const meter = h.state.getMeter("u", e);
        if (meter !== undefined) expect(meter.holdSummary).toEqual(summarizeHolds(h.state.getHolds("u", e)));
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
