/**
 * State as it will read once an operation's first writes are applied, for an operation that
 * changes meters in two steps: a decision whose customer hint changed the caller's plan first
 * carries the caller's meters into the new plan's periods (as SetCustomerPlan does), and the
 * decision must then count on those meters, not on the stored ones.
 *
 * Only what that first step writes is overlaid: the customer, meters, and hold deletions (of
 * holds expired at the operation's `now`, so the next expiry `expiredHolds` reports is unchanged).
 */
import type { Customer, Hold, Meter, StateReader, Write } from "./types.js";

const meterKey = (owner: string, entitlement: string): string => `${owner}\u0000${entitlement}`;
const holdKey = (owner: string, entitlement: string, h: Hold): string => `${owner}\u0000${entitlement}\u0000${h.expiresAt}\u0000${h.reservationId}`;

export function withPendingWrites(base: StateReader, writes: readonly Write[]): StateReader {
  const customers = new Map<string, Customer>();
  const meters = new Map<string, Meter>();
  const deletedHolds = new Set<string>();
  for (const w of writes) {
    if (w.kind === "customer-put") customers.set(w.customer.id, w.customer);
    else if (w.kind === "meter-put") meters.set(meterKey(w.meter.owner, w.meter.entitlement), w.meter);
    else if (w.kind === "hold-delete") deletedHolds.add(holdKey(w.owner, w.entitlement, w.hold));
    else throw new Error(`withPendingWrites: a ${w.kind} write is not overlaid`);
  }
  for (const m of meters.values()) {
    if (base.getMeter(m.owner, m.entitlement) === undefined) throw new Error("withPendingWrites: only stored meters are overlaid");
  }
  const live =
    (owner: string, entitlement: string) =>
    (h: Hold): boolean =>
      !deletedHolds.has(holdKey(owner, entitlement, h));
  return {
    getCustomer: (id) => customers.get(id) ?? base.getCustomer(id),
    resolveAltId: (altId) => base.resolveAltId(altId),
    getMeter: (owner, entitlement) => meters.get(meterKey(owner, entitlement)) ?? base.getMeter(owner, entitlement),
    getHold: (owner, entitlement, expiresAt, reservationId) => {
      const h = base.getHold(owner, entitlement, expiresAt, reservationId);
      return h !== undefined && live(owner, entitlement)(h) ? h : undefined;
    },
    expiredHolds: (owner, entitlement, now) => {
      const r = base.expiredHolds(owner, entitlement, now);
      return deletedHolds.size === 0 ? r : { expired: r.expired.filter(live(owner, entitlement)), nextExpiry: r.nextExpiry };
    },
    getHolds: (owner, entitlement) => base.getHolds(owner, entitlement).filter(live(owner, entitlement)),
    // A carry rewrites stored meters and adds none, so the stored order stands.
    metersOf: (owner) => base.metersOf(owner).map((m) => meters.get(meterKey(owner, m.entitlement)) ?? m),
    getReservation: (id) => base.getReservation(id),
    getIdempotency: (key) => base.getIdempotency(key),
    listCustomers: (afterId, limit) => base.listCustomers(afterId, limit),
  };
}
