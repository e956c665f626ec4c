/**
 * Turns the engine's `Write`s into table operations, applying them to the overlay as it goes.
 * The same operations are later replayed in one LMDB transaction, so what readers saw before the
 * commit is exactly what LMDB holds after it. Derived rows (the alt-id index, the idempotency
 * expiry index) are computed here, against the state the commit was decided on.
 */
import type { Key } from "lmdb";
import { idLengthProblem, idProblem, type Customer, type Hold, type IdempotencyRecord, type StateReader, type Write } from "../engine/index.js";
import { invalidArgument } from "../errors/index.js";
import { RESET_RULE_HISTORY, type Tables } from "./lmdb-layout.js";
import type { Overlay } from "./overlay.js";
import { compareCodePoints } from "./code-point-order.js";
import { encodeCustomer, encodeHold, encodeIdempotency, encodeMeter, encodeReservation } from "./row-codecs.js";

/**
 * One put (`value` defined) or delete (`value` undefined) in one table. The row is encoded only
 * when the batch is written, and only for the last op on its `slot`: a hot meter written by 64
 * decisions of one batch is encoded and put once (the overlay already holds every step).
 */
export interface Op {
  /** A data table, or the meta table (the reset-rule history). */
  readonly table: keyof Tables | "meta";
  readonly key: Key;
  /** Identity of (table, key) within a batch; undefined for keys never written twice (events). */
  readonly slot: string | undefined;
  readonly value: unknown;
  /** Domain value → stored row; receives `value` (typed by `op()`, called through `rowOf`). */
  readonly encode: (value: never) => unknown;
}

/** The stored row of a put op. */
export function rowOf(op: Op): unknown {
  return (op.encode as (value: unknown) => unknown)(op.value);
}

const asIs = <T>(v: T): T => v;

function op<T>(table: Op["table"], key: Key, slot: string | undefined, value: T | undefined, encode: (value: T) => unknown): Op {
  return { table, key, slot, value, encode };
}

/**
 * The identity of a row across a batch (deduplication) and the row cache. A table name never
 * contains \0, so the first \0 ends it; a meter's owner is length-prefixed because ids may
 * contain \0 too (("a\0b", "c") and ("a", "b\0c") must not meet).
 */
export const slotOf = (table: Op["table"], key: string): string => `${table}\0${key}`;
/** An expiry index key is (time, key); the time is a number, so its first \0 ends it. */
const expirySlot = (expiresAt: number, key: string): string => `idempotencyExpiry\0${expiresAt}\0${key}`;
export const meterSlot = (owner: string, entitlement: string): string => `meters\0${owner.length}\0${owner}${entitlement}`;
/** A hold's identity within its meter: the time is a number, so its first \0 ends it. */
export const holdId = (expiresAt: number, reservationId: string): string => `${expiresAt}\0${reservationId}`;
/** A hold row's identity across a batch: both lengths, so that owner, entitlement and `holdId` cannot run into each other. */
const holdSlot = (owner: string, entitlement: string, id: string): string => `holds\0${owner.length}\0${entitlement.length}\0${owner}${entitlement}${id}`;
/** A hold's row key: its meter's, then the expiry, so that a meter's expired holds are a range. */
export const holdKey = (owner: string, entitlement: string, expiresAt: number, reservationId: string): Key => [owner, entitlement, expiresAt, reservationId];

/** The order of a meter's hold rows (and so of every list of holds a store returns). */
export function byExpiry(a: Hold, b: Hold): number {
  return a.expiresAt - b.expiresAt || compareCodePoints(a.reservationId, b.reservationId);
}

// The id rule is the engine's (it refuses such ids in requests, naming the proto field); it is
// checked again here for every write, however made, before any of a commit is applied, so one bad
// id fails its own commit, never a shared batch. Deletes are checked for length only: whatever is
// stored can still be removed.
function checkId(write: number, path: string, id: string): void {
  if (id.length === 0) throw invalidArgument(`writes[${write}].${path}`, "must not be empty");
  const problem = idLengthProblem(id);
  if (problem !== undefined) throw invalidArgument(`writes[${write}].${path}`, problem);
}

function checkKeyId(write: number, path: string, id: string): void {
  if (id.length === 0) throw invalidArgument(`writes[${write}].${path}`, "must not be empty");
  const problem = idProblem(id);
  if (problem !== undefined) throw invalidArgument(`writes[${write}].${path}`, problem);
}

/** Rejects a commit whose keys LMDB could not store, before any of it is applied. */
export function validateWrites(writes: readonly Write[]): void {
  for (let i = 0; i < writes.length; i++) validateWrite(writes[i] as Write, i);
}

// Field paths are built only for an id that fails: this runs for every write of every decision.
function validateWrite(w: Write, i: number): void {
  switch (w.kind) {
    case "customer-put":
      checkKeyId(i, "customer.id", w.customer.id);
      w.customer.altIds.forEach((a, j) => checkKeyId(i, `customer.altIds[${j}]`, a));
      return;
    case "customer-delete":
      checkId(i, "customer.id", w.customer.id);
      w.customer.altIds.forEach((a, j) => checkId(i, `customer.altIds[${j}]`, a));
      return;
    case "meter-put":
      checkKeyId(i, "meter.owner", w.meter.owner);
      checkKeyId(i, "meter.entitlement", w.meter.entitlement);
      return;
    case "meter-delete":
      checkId(i, "owner", w.owner);
      checkId(i, "entitlement", w.entitlement);
      return;
    case "hold-put":
    case "hold-delete": {
      const check = w.kind === "hold-put" ? checkKeyId : checkId;
      check(i, "owner", w.owner);
      check(i, "entitlement", w.entitlement);
      check(i, "hold.reservationId", w.hold.reservationId);
      if (!Number.isFinite(w.hold.expiresAt)) throw invalidArgument(`writes[${i}].hold.expiresAt`, `must be a finite time, got ${w.hold.expiresAt}`);
      return;
    }
    case "reservation-put":
      checkKeyId(i, "reservation.id", w.reservation.id);
      return;
    case "reservation-delete":
      checkId(i, "id", w.id);
      return;
    case "idempotency-put":
      checkKeyId(i, "record.key", w.record.key);
      return;
    case "reset-rule-history":
      return;
  }
}

/**
 * Removes `altId` from the index (the caller checked it still points at the customer). Not a
 * closure inside applyWrites, which would make it on every commit for the rare customer write.
 */
function dropAltId(ops: Op[], overlay: Overlay, gen: number, altId: string): void {
  overlay.putAltId(altId, undefined, gen);
  ops.push(op("altIds", altId, slotOf("altIds", altId), undefined, asIs));
}

/** Puts (or, `put` false, deletes) one hold row of the meter whose `meterSlot` is `slot`. */
function putHold(ops: Op[], overlay: Overlay, gen: number, owner: string, entitlement: string, slot: string, hold: Hold, put: boolean): void {
  const id = holdId(hold.expiresAt, hold.reservationId);
  overlay.putHold(slot, id, put ? hold : undefined, gen);
  ops.push(op("holds", holdKey(owner, entitlement, hold.expiresAt, hold.reservationId), holdSlot(owner, entitlement, id), put ? hold : undefined, encodeHold));
}

/** Applies validated `writes` to the overlay under generation `gen` and returns their ops. */
export function applyWrites(writes: readonly Write[], view: StateReader, overlay: Overlay, gen: number): Op[] {
  const ops: Op[] = [];
  for (const w of writes) {
    switch (w.kind) {
      case "customer-put": {
        const c: Customer = w.customer;
        const keep = new Set(c.altIds);
        // An alt id is removed only while it still points here: it may have moved to another
        // customer since `previous` was read.
        // The stored record is the truth for the index; `previous` is what the engine saw.
        const before = new Set([...(view.getCustomer(c.id)?.altIds ?? []), ...(w.previous?.altIds ?? [])]);
        for (const a of before) if (!keep.has(a) && view.resolveAltId(a) === c.id) dropAltId(ops, overlay, gen, a);
        for (const a of c.altIds) {
          overlay.putAltId(a, c.id, gen);
          ops.push(op("altIds", a, slotOf("altIds", a), c.id, asIs));
        }
        overlay.putCustomer(c.id, c, gen);
        ops.push(op("customers", c.id, slotOf("customers", c.id), c, encodeCustomer));
        break;
      }
      case "customer-delete": {
        const c = w.customer;
        const stored = view.getCustomer(c.id);
        const altIds = new Set([...c.altIds, ...(stored?.altIds ?? [])]);
        for (const a of altIds) if (view.resolveAltId(a) === c.id) dropAltId(ops, overlay, gen, a);
        overlay.putCustomer(c.id, undefined, gen);
        ops.push(op("customers", c.id, slotOf("customers", c.id), undefined, encodeCustomer));
        break;
      }
      case "meter-put": {
        const m = w.meter;
        const slot = meterSlot(m.owner, m.entitlement);
        overlay.putMeter(m.owner, m.entitlement, m, gen);
        ops.push(op("meters", [m.owner, m.entitlement], slot, m, encodeMeter));
        break;
      }
      case "hold-put":
      case "hold-delete":
        putHold(ops, overlay, gen, w.owner, w.entitlement, meterSlot(w.owner, w.entitlement), w.hold, w.kind === "hold-put");
        break;
      case "meter-delete": {
        const slot = meterSlot(w.owner, w.entitlement);
        // Every hold row of the meter, pending ones included (the view reads through the overlay).
        for (const h of view.getHolds(w.owner, w.entitlement)) putHold(ops, overlay, gen, w.owner, w.entitlement, slot, h, false);
        overlay.putMeter(w.owner, w.entitlement, undefined, gen);
        ops.push(op("meters", [w.owner, w.entitlement], slot, undefined, encodeMeter));
        break;
      }
      case "reservation-put":
        overlay.putReservation(w.reservation.id, w.reservation, gen);
        ops.push(op("reservations", w.reservation.id, slotOf("reservations", w.reservation.id), w.reservation, encodeReservation));
        break;
      case "reservation-delete":
        overlay.putReservation(w.id, undefined, gen);
        ops.push(op("reservations", w.id, slotOf("reservations", w.id), undefined, encodeReservation));
        break;
      case "idempotency-put": {
        const r: IdempotencyRecord = w.record;
        const old = view.getIdempotency(r.key);
        if (old && old.expiresAt !== r.expiresAt) {
          ops.push(op("idempotencyExpiry", [old.expiresAt, r.key], expirySlot(old.expiresAt, r.key), undefined, asIs));
        }
        overlay.putIdempotency(r.key, r, gen);
        ops.push(op("idempotency", r.key, slotOf("idempotency", r.key), r, encodeIdempotency));
        ops.push(op("idempotencyExpiry", [r.expiresAt, r.key], expirySlot(r.expiresAt, r.key), null, asIs));
        break;
      }
      case "reset-rule-history":
        // Read once, at the engine's first operation: the overlay need not hold it.
        ops.push(op("meta", RESET_RULE_HISTORY, slotOf("meta", RESET_RULE_HISTORY), w.history, asIs));
        break;
    }
  }
  return ops;
}
