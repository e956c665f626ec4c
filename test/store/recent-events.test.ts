/**
 * The in-memory tail of the event log, against a model: it serves a read only when it holds the
 * first sequence asked for, and then exactly the events appended at those sequences.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { StoredEvent } from "../../src/engine/index.js";
import { createRecentEvents } from "../../src/store/recent-events.js";
import { meterEvent } from "./fixtures.js";

const stored = (seq: number): StoredEvent => ({ seq, event: meterEvent("c", "chat", BigInt(seq)) });

describe("recent events", () => {
  it("serves exactly the newest contiguous events it was given, and nothing it forgot", () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant("append" as const), n: fc.nat(7), jump: fc.oneof(fc.constant(0), fc.nat(5)) }),
      fc.record({ kind: fc.constant("forget" as const), back: fc.nat(10) }),
      fc.record({ kind: fc.constant("read" as const), back: fc.nat(12), limit: fc.nat(9) }),
      fc.record({ kind: fc.constant("clear" as const) }),
    );
    fc.assert(
      fc.property(fc.nat(5), fc.array(step, { maxLength: 40 }), (capacity, steps) => {
        const recent = createRecentEvents(capacity);
        // The model: every appended event by sequence, and the lowest sequence still valid.
        const log = new Map<number, StoredEvent>();
        let next = 1;
        // Empty at first: nothing is valid until the first append.
        let valid = Infinity;
        let cleared = true;
        for (const st of steps) {
          if (st.kind === "append") {
            // A jump makes earlier sequences unusable (they were never contiguous with these).
            const jump = st.n > 0 ? st.jump : 0;
            if (jump > 0 || (cleared && st.n > 0)) valid = next + jump;
            if (st.n > 0) cleared = false;
            next += jump;
            const batch = Array.from({ length: st.n }, (_, i) => stored(next + i));
            for (const e of batch) log.set(e.seq, e);
            next += st.n;
            recent.append(batch);
          } else if (st.kind === "clear") {
            // Nothing is valid until the next append, which starts a new range.
            recent.clear();
            cleared = true;
            valid = Infinity;
          } else if (st.kind === "forget") {
            const seq = next - 1 - st.back;
            recent.forgetThrough(seq);
            valid = Math.max(valid, seq + 1);
          } else {
            const from = Math.max(1, next - st.back);
            const got = recent.read(from, st.limit);
            if (got === undefined) continue;
            // Whatever it serves is held, valid, and the exact objects appended.
            expect(from).toBeGreaterThanOrEqual(valid);
            expect(from).toBeGreaterThanOrEqual(next - capacity);
            const want = Array.from({ length: Math.max(0, Math.min(st.limit, next - from)) }, (_, i) => log.get(from + i));
            expect(got).toHaveLength(want.length);
            got.forEach((e, i) => expect(e).toBe(want[i]));
          }
        }
        // A full ring serves its newest `capacity` sequences.
        if (capacity > 0 && next - capacity >= valid) expect(recent.read(next - capacity, capacity)).toHaveLength(capacity);
      }),
      { numRuns: 500 },
    );
  });

  it("lets go of everything on clear, then holds what is appended after", () => {
    const recent = createRecentEvents(4);
    recent.append([stored(1), stored(2)]);
    expect(recent.read(1, 10)).toHaveLength(2);
    recent.clear();
    expect(recent.read(1, 10)).toBeUndefined();
    expect(recent.read(3, 10)).toBeUndefined();
    recent.forgetThrough(10);
    recent.append([stored(3)]);
    expect(recent.read(2, 10)).toBeUndefined();
    expect(recent.read(3, 10)).toEqual([stored(3)]);
  });

  it("holds nothing with capacity 0", () => {
    const recent = createRecentEvents(0);
    recent.append([stored(1), stored(2)]);
    expect(recent.read(1, 10)).toBeUndefined();
    expect(recent.read(2, 10)).toBeUndefined();
  });
});
