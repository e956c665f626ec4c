/**
 * The in-memory store: the engine's `StatePort` and an `EventLog` over plain Maps. For tests,
 * benchmarks and ephemeral use; it satisfies the same contract as the LMDB store (writes visible
 * synchronously, commit atomic, events numbered from 1, listeners called after each commit).
 */
import type {
  CommitReceipt,
  Customer,
  EngineEvent,
  EventLog,
  ExpiredHolds,
  Hold,
  IdempotencyRecord,
  Meter,
  Reservation,
  StatePort,
  StateRecord,
  StoredEvent,
  Write,
} from "../engine/index.js";
import { compareCodePoints } from "./code-point-order.js";
import { byExpiry, holdId, meterSlot } from "./write-ops.js";

export interface MemoryStore extends StatePort, EventLog {
  /** Every stored customer, meter and reservation, in key order (for export and tests). */
  exportState(): Iterable<StateRecord>;
}

export function createMemoryStore(): MemoryStore {
  const customers = new Map<string, Customer>();
  const altIndex = new Map<string, string>();
  const meters = new Map<string, Map<string, Meter>>();
  /** By `meterSlot` (the LMDB store's identity of a meter), then `holdId`. */
  const holds = new Map<string, Map<string, Hold>>();
  const reservations = new Map<string, Reservation>();
  const idempotency = new Map<string, IdempotencyRecord>();
  const events: StoredEvent[] = [];
  const listeners = new Set<(events: readonly StoredEvent[]) => void>();
  let ruleHistory: unknown;
  /** Customer ids in order, rebuilt lazily after an insert or delete (listing is rare). */
  let sortedIds: string[] | undefined;

  function apply(w: Write): void {
    switch (w.kind) {
      case "customer-put": {
        // The stored record is the truth for the index; `previous` is what the engine saw.
        const before = customers.get(w.customer.id) ?? w.previous;
        if (before !== undefined) for (const alt of before.altIds) if (altIndex.get(alt) === before.id) altIndex.delete(alt);
        if (!customers.has(w.customer.id)) sortedIds = undefined;
        customers.set(w.customer.id, w.customer);
        for (const alt of w.customer.altIds) altIndex.set(alt, w.customer.id);
        return;
      }
      case "customer-delete": {
        const before = customers.get(w.customer.id) ?? w.customer;
        for (const alt of before.altIds) if (altIndex.get(alt) === before.id) altIndex.delete(alt);
        if (customers.delete(w.customer.id)) sortedIds = undefined;
        return;
      }
      case "meter-put": {
        let own = meters.get(w.meter.owner);
        if (own === undefined) meters.set(w.meter.owner, (own = new Map()));
        own.set(w.meter.entitlement, w.meter);
        return;
      }
      case "hold-put": {
        const slot = meterSlot(w.owner, w.entitlement);
        let own = holds.get(slot);
        if (own === undefined) holds.set(slot, (own = new Map()));
        own.set(holdId(w.hold.expiresAt, w.hold.reservationId), w.hold);
        return;
      }
      case "hold-delete": {
        const slot = meterSlot(w.owner, w.entitlement);
        const own = holds.get(slot);
        if (own === undefined) return;
        own.delete(holdId(w.hold.expiresAt, w.hold.reservationId));
        if (own.size === 0) holds.delete(slot);
        return;
      }
      case "meter-delete": {
        holds.delete(meterSlot(w.owner, w.entitlement));
        const own = meters.get(w.owner);
        if (own === undefined) return;
        own.delete(w.entitlement);
        if (own.size === 0) meters.delete(w.owner);
        return;
      }
      case "reservation-put":
        reservations.set(w.reservation.id, w.reservation);
        return;
      case "reservation-delete":
        reservations.delete(w.id);
        return;
      case "idempotency-put":
        idempotency.set(w.record.key, w.record);
        return;
      case "reset-rule-history":
        ruleHistory = w.history;
        return;
    }
  }

  function ids(): string[] {
    sortedIds ??= [...customers.keys()].sort(compareCodePoints);
    return sortedIds;
  }

  return {
    getCustomer: (id) => customers.get(id),
    resolveAltId: (altId) => altIndex.get(altId),
    getMeter: (owner, entitlement) => meters.get(owner)?.get(entitlement),
    getHold: (owner, entitlement, expiresAt, reservationId) => holds.get(meterSlot(owner, entitlement))?.get(holdId(expiresAt, reservationId)),
    expiredHolds(owner, entitlement, now): ExpiredHolds {
      const expired: Hold[] = [];
      let nextExpiry = Infinity;
      for (const h of holds.get(meterSlot(owner, entitlement))?.values() ?? []) {
        if (h.expiresAt <= now) expired.push(h);
        else if (h.expiresAt < nextExpiry) nextExpiry = h.expiresAt;
      }
      return { expired: expired.sort(byExpiry), nextExpiry };
    },
    getHolds: (owner, entitlement) => [...(holds.get(meterSlot(owner, entitlement))?.values() ?? [])].sort(byExpiry),
    metersOf(owner) {
      const own = meters.get(owner);
      if (own === undefined) return [];
      return [...own.values()].sort((a, b) => compareCodePoints(a.entitlement, b.entitlement));
    },
    getReservation: (id) => reservations.get(id),
    getIdempotency: (key) => idempotency.get(key),
    resetRuleHistory: () => ruleHistory,
    listCustomers(afterId, limit) {
      const all = ids();
      // First index with id > afterId (binary search: listing pages through 100k+ customers).
      let lo = 0;
      let hi = all.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareCodePoints(all[mid] as string, afterId) <= 0) lo = mid + 1;
        else hi = mid;
      }
      const out: Customer[] = [];
      for (let i = lo; i < all.length && out.length < limit; i++) out.push(customers.get(all[i] as string) as Customer);
      return out;
    },

    commit(writes: readonly Write[], newEvents: readonly EngineEvent[]): Promise<CommitReceipt> {
      // Nothing here can fail half-way: every write is a Map operation.
      for (const w of writes) apply(w);
      if (newEvents.length === 0) return Promise.resolve({ sequences: [] });
      const stored: StoredEvent[] = [];
      const sequences: number[] = [];
      for (const event of newEvents) {
        const seq = events.length + 1;
        stored.push({ seq, event });
        sequences.push(seq);
        events.push({ seq, event });
      }
      // Listeners run after the commit, outside it: a throwing listener cannot undo the commit.
      for (const listener of listeners) queueMicrotask(() => listener(stored));
      return Promise.resolve({ sequences });
    },

    readEvents(fromSeq, limit) {
      const start = Math.max(1, Math.floor(fromSeq)) - 1;
      return events.slice(start, start + Math.max(0, limit));
    },
    lastSequence: () => events.length,
    firstSequence: () => 1,
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    // Every event is in memory here anyway.
    keepRecent: () => () => {},

    *exportState(): Iterable<StateRecord> {
      for (const id of ids()) yield { kind: "customer", customer: customers.get(id) as Customer };
      for (const owner of [...meters.keys()].sort(compareCodePoints)) {
        for (const meter of this.metersOf(owner)) yield { kind: "meter", meter, holds: this.getHolds(owner, meter.entitlement) };
      }
      for (const id of [...reservations.keys()].sort(compareCodePoints)) yield { kind: "reservation", reservation: reservations.get(id) as Reservation };
    },
  };
}
