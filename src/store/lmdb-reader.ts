/**
 * Reads state through the overlay (pending commits), then a bounded cache of decoded committed
 * rows for the keys every decision reads (customers, alt ids, meters; see row-cache.ts), then
 * LMDB. Nothing is loaded ahead: a million stored customers cost start-up nothing, and a read the
 * cache cannot answer is a B-tree lookup in the memory map.
 */
import type { Key, Transaction } from "lmdb";
import type { Customer, ExpiredHolds, Hold, IdempotencyRecord, Meter, Reservation, StateReader } from "../engine/index.js";
import { compareCodePoints } from "./code-point-order.js";
import type { Table, Tables } from "./lmdb-layout.js";
import type { Overlay } from "./overlay.js";
import { MISS, type RowCache } from "./row-cache.js";
import { decodeCustomer, decodeHold, decodeIdempotency, decodeMeter, decodeReservation } from "./row-codecs.js";
import { storeError } from "./store-error.js";
import { byExpiry, holdId, holdKey, meterSlot, slotOf } from "./write-ops.js";

/**
 * A meter's committed hold rows, in key (expiry) order, from LMDB alone (`transaction`: read
 * in that one). Keys [owner, entitlement, expiresAt, reservationId] follow [owner, entitlement];
 * the first key of another meter, or of another shape, ends them.
 */
export function* holdRowsOf(table: Table, owner: string, entitlement: string, transaction?: Transaction): Generator<Hold> {
  const start: Key = [owner, entitlement];
  for (const { key, value } of table.getRange(transaction === undefined ? { start } : { start, transaction })) {
    if (!Array.isArray(key) || key.length !== 4 || key[0] !== owner || key[1] !== entitlement || typeof key[2] !== "number") return;
    yield decodeHold(key, value);
  }
}

/** `guard` throws when the store is closed; LMDB errors on reads are wrapped like write errors. */
export function createLmdbReader(tables: Tables, overlay: Overlay, cache: RowCache, guard: (action: string) => void): StateReader {
  function read<T>(action: string, f: () => T): T {
    guard(action);
    try {
      return f();
    } catch (e) {
      throw storeError(e, action);
    }
  }

  function lookup<T>(action: string, hit: { hit: false } | { hit: true; value: T | undefined }, load: () => unknown, decode: (v: unknown) => T): T | undefined {
    if (hit.hit) return hit.value;
    return read(action, () => {
      const v = load();
      return v === undefined ? undefined : decode(v);
    });
  }

  /** A committed row through the cache; `load` reads and decodes it from LMDB. */
  function cached<T>(action: string, slot: string, load: () => T | undefined): T | undefined {
    guard(action);
    const c = cache.get(slot);
    if (c !== MISS) return c as T | undefined;
    const v = read(action, load);
    cache.set(slot, v);
    return v;
  }

  /**
   * Visits a meter's committed hold rows in key (expiry) order, without those a pending write
   * replaced or deleted, until `visit` returns false.
   */
  function committedHolds(action: string, owner: string, entitlement: string, pending: ReadonlyMap<string, Hold | undefined>, visit: (h: Hold) => boolean): void {
    read(action, () => {
      for (const hold of holdRowsOf(tables.holds, owner, entitlement)) {
        if (pending.size > 0 && pending.has(holdId(hold.expiresAt, hold.reservationId))) continue;
        if (!visit(hold)) break;
      }
    });
  }

  return {
    getCustomer(id) {
      const hit = overlay.customer(id);
      if (hit.hit) return hit.value;
      return cached("reading a customer", slotOf("customers", id), () => {
        const v = tables.customers.get(id);
        return v === undefined ? undefined : decodeCustomer(v);
      });
    },

    resolveAltId(altId) {
      const hit = overlay.altId(altId);
      if (hit.hit) return hit.value;
      return cached("resolving an alt id", slotOf("altIds", altId), () => {
        const v = tables.altIds.get(altId);
        return typeof v === "string" ? v : undefined;
      });
    },

    getMeter(owner, entitlement) {
      const hit = overlay.meter(owner, entitlement);
      if (hit.hit) return hit.value;
      return cached("reading a meter", meterSlot(owner, entitlement), () => {
        const v = tables.meters.get([owner, entitlement]);
        return v === undefined ? undefined : decodeMeter(v);
      });
    },

    // Holds are not cached: one is read when its reservation ends, the expired ones once.
    getHold(owner, entitlement, expiresAt, reservationId) {
      const hit = overlay.hold(meterSlot(owner, entitlement), holdId(expiresAt, reservationId));
      if (hit.hit) return hit.value;
      return read("reading a hold", () => {
        const key = holdKey(owner, entitlement, expiresAt, reservationId);
        const v = tables.holds.get(key);
        return v === undefined ? undefined : decodeHold(key, v);
      });
    },

    expiredHolds(owner, entitlement, now): ExpiredHolds {
      const pending = overlay.holdsOf(meterSlot(owner, entitlement));
      const expired: Hold[] = [];
      let nextExpiry = Infinity;
      committedHolds("reading a meter's expired holds", owner, entitlement, pending, (h) => {
        if (h.expiresAt > now) {
          nextExpiry = h.expiresAt;
          return false;
        }
        expired.push(h);
        return true;
      });
      if (pending.size === 0) return { expired, nextExpiry };
      for (const h of pending.values()) {
        if (h === undefined) continue;
        if (h.expiresAt <= now) expired.push(h);
        else if (h.expiresAt < nextExpiry) nextExpiry = h.expiresAt;
      }
      return { expired: expired.sort(byExpiry), nextExpiry };
    },

    getHolds(owner, entitlement) {
      const pending = overlay.holdsOf(meterSlot(owner, entitlement));
      const holds: Hold[] = [];
      committedHolds("reading a meter's holds", owner, entitlement, pending, (h) => holds.push(h) > 0);
      if (pending.size === 0) return holds;
      for (const h of pending.values()) if (h !== undefined) holds.push(h);
      return holds.sort(byExpiry);
    },

    metersOf(owner) {
      const pending = overlay.metersOf(owner);
      const byEntitlement = new Map<string, Meter>();
      read("reading meters", () => {
        // Keys [owner, *] are contiguous; stop at the first key of another owner.
        for (const { key, value } of tables.meters.getRange({ start: [owner] })) {
          if (!Array.isArray(key) || key[0] !== owner) break;
          const m = decodeMeter(value);
          // Another owner's row whose key reads back as if it were this owner's (an id written
          // before write-ops.ts refused the ones the key encoding cannot escape).
          if (m.owner !== owner) continue;
          if (!pending.has(m.entitlement)) byEntitlement.set(m.entitlement, m);
        }
      });
      for (const [ent, m] of pending) if (m) byEntitlement.set(ent, m);
      return [...byEntitlement.values()].sort((a, b) => compareCodePoints(a.entitlement, b.entitlement));
    },

    getReservation: (id) =>
      lookup<Reservation>(
        "reading a reservation",
        overlay.reservation(id),
        () => tables.reservations.get(id),
        decodeReservation,
      ),

    getIdempotency: (key) =>
      lookup<IdempotencyRecord>(
        "reading an idempotency key",
        overlay.idempotency(key),
        () => tables.idempotency.get(key),
        decodeIdempotency,
      ),

    listCustomers(afterId, limit) {
      if (limit <= 0) return [];
      const pending = [...overlay.customers()]
        .filter(([id]) => afterId === "" || compareCodePoints(id, afterId) > 0)
        .sort(([a], [b]) => compareCodePoints(a, b));
      const out: Customer[] = [];
      let p = 0;
      const takePendingBefore = (id: string | undefined): void => {
        while (out.length < limit && p < pending.length) {
          const [pid, c] = pending[p] as [string, Customer | undefined];
          if (id !== undefined && compareCodePoints(pid, id) > 0) return;
          p++;
          if (c) out.push(c);
        }
      };
      read("listing customers", () => {
        const range = afterId === "" ? {} : { start: afterId as Key, exclusiveStart: true };
        for (const { key, value } of tables.customers.getRange(range)) {
          if (out.length >= limit) break;
          const id = String(key);
          takePendingBefore(id);
          if (out.length >= limit) break;
          if (p > 0 && pending[p - 1]?.[0] === id) continue; // the pending entry replaced it
          if (overlay.customer(id).hit) continue;
          out.push(decodeCustomer(value));
        }
      });
      takePendingBefore(undefined);
      return out;
    },
  };
}
