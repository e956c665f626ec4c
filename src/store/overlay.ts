/**
 * The overlay: state handed to `commit` but not yet committed to LMDB.
 *
 * Reads consult it before LMDB, so the next decision sees every earlier decision's writes at once,
 * even while their transaction is still being batched (no check-then-act race). Each entry
 * remembers the batch ("generation") that last wrote it; once that batch commits, the entry is
 * dropped, unless a later pending batch overwrote it. On a failed batch the whole overlay is
 * dropped: every pending commit is rejected then, so the overlay returns to committed state.
 */
import type { Customer, Hold, IdempotencyRecord, Meter, Reservation } from "../engine/index.js";

/** A pending value; `undefined` = deleted. */
interface Entry<V> {
  value: V | undefined;
  gen: number;
}

/** What the overlay knows about a key: `hit: false` means "ask LMDB". */
export type Lookup<V> = { readonly hit: false } | { readonly hit: true; readonly value: V | undefined };

const MISS: Lookup<never> = { hit: false };

class PendingMap<V> {
  readonly entries = new Map<string, Entry<V>>();

  get(key: string): Lookup<V> {
    const e = this.entries.get(key);
    return e ? { hit: true, value: e.value } : MISS;
  }

  set(key: string, value: V | undefined, gen: number): void {
    this.entries.set(key, { value, gen });
  }

  /** Drops `key` if no batch after `gen` wrote it. */
  drop(key: string, gen: number): void {
    const e = this.entries.get(key);
    if (e && e.gen <= gen) this.entries.delete(key);
  }
}

export interface Overlay {
  customer(id: string): Lookup<Customer>;
  altId(altId: string): Lookup<string>;
  meter(owner: string, entitlement: string): Lookup<Meter>;
  /** A pending hold of the meter whose `meterSlot` is `slot`, by `holdId`. */
  hold(slot: string, id: string): Lookup<Hold>;
  /** Pending holds of a meter (deleted ones as `undefined`), by `holdId`. */
  holdsOf(slot: string): ReadonlyMap<string, Hold | undefined>;
  /** Pending meters of one owner (deleted ones as `undefined`), by entitlement. */
  metersOf(owner: string): ReadonlyMap<string, Meter | undefined>;
  reservation(id: string): Lookup<Reservation>;
  idempotency(key: string): Lookup<IdempotencyRecord>;
  /** Pending customers (deleted as `undefined`), by id. */
  customers(): ReadonlyMap<string, Customer | undefined>;

  putCustomer(id: string, c: Customer | undefined, gen: number): void;
  putAltId(altId: string, id: string | undefined, gen: number): void;
  putMeter(owner: string, entitlement: string, m: Meter | undefined, gen: number): void;
  putHold(slot: string, id: string, hold: Hold | undefined, gen: number): void;
  putReservation(id: string, r: Reservation | undefined, gen: number): void;
  putIdempotency(key: string, r: IdempotencyRecord | undefined, gen: number): void;

  /** Forgets what batch `gen` (and earlier) wrote, now that LMDB has it. */
  committed(gen: number): void;
  /** Forgets everything pending (after a failed batch). */
  clear(): void;
  readonly size: number;
}

export function createOverlay(): Overlay {
  const customers = new PendingMap<Customer>();
  const altIds = new PendingMap<string>();
  const meters = new Map<string, PendingMap<Meter>>();
  const holds = new Map<string, PendingMap<Hold>>();
  const reservations = new PendingMap<Reservation>();
  const idempotency = new PendingMap<IdempotencyRecord>();
  // Keys written per generation, so `committed` touches only what that batch wrote.
  const touched = new Map<number, (() => void)[]>();

  function track(gen: number, undo: () => void): void {
    let list = touched.get(gen);
    if (!list) touched.set(gen, (list = []));
    list.push(undo);
  }

  /** Sets `outer[k1][k2]`; the inner map goes once the last of its entries is committed. */
  function setNested<V>(outer: Map<string, PendingMap<V>>, k1: string, k2: string, value: V | undefined, gen: number): void {
    let inner = outer.get(k1);
    if (!inner) outer.set(k1, (inner = new PendingMap()));
    inner.set(k2, value, gen);
    const map = inner;
    track(gen, () => {
      map.drop(k2, gen);
      if (map.entries.size === 0 && outer.get(k1) === map) outer.delete(k1);
    });
  }

  function values<V>(m: PendingMap<V>): Map<string, V | undefined> {
    return new Map([...m.entries].map(([k, e]) => [k, e.value]));
  }

  return {
    customer: (id) => customers.get(id),
    altId: (a) => altIds.get(a),
    meter: (owner, ent) => meters.get(owner)?.get(ent) ?? MISS,
    metersOf: (owner) => {
      const m = meters.get(owner);
      return m ? values(m) : new Map();
    },
    hold: (slot, id) => holds.get(slot)?.get(id) ?? MISS,
    holdsOf(slot) {
      const m = holds.get(slot);
      return m ? values(m) : new Map();
    },
    reservation: (id) => reservations.get(id),
    idempotency: (key) => idempotency.get(key),
    customers: () => values(customers),

    putCustomer(id, c, gen) {
      customers.set(id, c, gen);
      track(gen, () => customers.drop(id, gen));
    },
    putAltId(a, id, gen) {
      altIds.set(a, id, gen);
      track(gen, () => altIds.drop(a, gen));
    },
    putMeter: (owner, ent, m, gen) => setNested(meters, owner, ent, m, gen),
    putHold: (slot, id, h, gen) => setNested(holds, slot, id, h, gen),
    putReservation(id, r, gen) {
      reservations.set(id, r, gen);
      track(gen, () => reservations.drop(id, gen));
    },
    putIdempotency(key, r, gen) {
      idempotency.set(key, r, gen);
      track(gen, () => idempotency.drop(key, gen));
    },

    committed(gen) {
      for (const [g, undos] of touched) {
        if (g > gen) continue;
        for (const undo of undos) undo();
        touched.delete(g);
      }
    },
    clear() {
      customers.entries.clear();
      altIds.entries.clear();
      meters.clear();
      holds.clear();
      reservations.entries.clear();
      idempotency.entries.clear();
      touched.clear();
    },
    get size() {
      let n = customers.entries.size + altIds.entries.size + reservations.entries.size + idempotency.entries.size;
      for (const m of meters.values()) n += m.entries.size;
      for (const m of holds.values()) n += m.entries.size;
      return n;
    },
  };
}
