/**
 * withPendingWrites: what a decision reads after its customer hint's plan change carried the
 * caller's meters. Against a real memory store holding two meters and three holds.
 */
import { describe, expect, it } from "vitest";
import { reserve, upsertCustomer } from "../../src/engine/index.js";
import { withPendingWrites } from "../../src/engine/pending-state.js";
import type { Hold, Write } from "../../src/engine/index.js";
import { buildPolicy, createHarness, credit, DAY, n, T0 } from "./harness.js";

const token = credit("token");
const policy = buildPolicy({ p: { isDefault: true, entitlements: { a: { limit: { credit: token, value: 100 } }, b: { limit: { credit: token, value: 100 } } } } });

function stored() {
  const h = createHarness(policy);
  h.run(upsertCustomer, { id: "u", plan: "p" });
  h.run(reserve, { customerId: "u", items: [{ entitlement: "a", amount: 1 }], ttlMs: DAY });
  h.run(reserve, { customerId: "u", items: [{ entitlement: "a", amount: 2 }], ttlMs: 2 * DAY });
  h.run(reserve, { customerId: "u", items: [{ entitlement: "b", amount: 3 }], ttlMs: DAY });
  return h;
}

describe("withPendingWrites", () => {
  it("reads pending meters, customers and hold deletions over the store, and the rest from it", () => {
    const h = stored();
    const [first] = h.store.getHolds("u", "a") as [Hold, Hold];
    const a = h.store.getMeter("u", "a");
    if (a === undefined) throw new Error("no meter a");
    const customer = { ...(h.store.getCustomer("u") as NonNullable<ReturnType<typeof h.store.getCustomer>>), plan: "other" };
    const writes: Write[] = [
      { kind: "customer-put", customer, previous: h.store.getCustomer("u") },
      { kind: "meter-put", meter: { ...a, value: n(7) } },
      { kind: "hold-delete", owner: "u", entitlement: "a", hold: first },
    ];
    const state = withPendingWrites(h.store, writes);
    expect(state.getCustomer("u")?.plan).toBe("other");
    expect(state.getMeter("u", "a")?.value).toBe(n(7));
    expect(state.getMeter("u", "b")).toEqual(h.store.getMeter("u", "b"));
    expect(state.metersOf("u").map((m) => [m.entitlement, m.value])).toEqual([
      ["a", n(7)],
      ["b", 0n],
    ]);
    expect(state.getHolds("u", "a").map((x) => x.amount)).toEqual([n(2)]);
    expect(state.getHold("u", "a", first.expiresAt, first.reservationId)).toBeUndefined();
    expect(state.getHolds("u", "b").map((x) => x.amount)).toEqual([n(3)]);
    const later = T0 + 3 * DAY;
    expect(state.expiredHolds("u", "a", later).expired.map((x) => x.amount)).toEqual([n(2)]);
    expect(state.expiredHolds("u", "b", later)).toEqual(h.store.expiredHolds("u", "b", later));
    expect(state.getReservation("r1")).toEqual(h.store.getReservation("r1"));
  });

  it("refuses writes it does not overlay, and meters the store does not have", () => {
    const h = stored();
    expect(() => withPendingWrites(h.store, [{ kind: "reservation-delete", id: "r1" }])).toThrow(/reservation-delete/);
    const a = h.store.getMeter("u", "a");
    if (a === undefined) throw new Error("no meter a");
    expect(() => withPendingWrites(h.store, [{ kind: "meter-put", meter: { ...a, entitlement: "c" } }])).toThrow(/only stored meters/);
  });
});
