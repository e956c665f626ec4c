/**
 * Turns the engine's `Write`s into table operations, applying them to the overlay as it goes.
 * The same operations are later replayed in one LMDB transaction, so what readers saw before the
 * commit is exactly what LMDB holds after it. Derived rows (the alt-id index, the idempotency
 * expiry index) are computed here, against the state the commit was decided on.
 */
import type { Key } from "lmdb";
import type { Customer, IdempotencyRecord, StateReader, Write } from "../engine/index.js";
import { invalidArgument } from "../errors/index.js";
import type { Tables } from "./lmdb-layout.js";
import type { Overlay } from "./overlay.js";
import { encodeCustomer, encodeIdempotency, encodeMeter, encodeReservation } from "./row-codecs.js";

/** One put (`row` defined) or delete (`row` undefined) in one table. */
export interface Op {
  readonly table: keyof Tables;
  readonly key: Key;
  readonly row: unknown;
}

/**
 * LMDB keys are at most 1978 bytes; ids are capped well below so that composite keys fit. Checked
 * before anything is applied, so one oversized id fails its own commit, never a shared batch.
 */
export const MAX_ID_BYTES = 512;

function checkId(field: string, id: string): void {
  if (id.length === 0) throw invalidArgument(field, "must not be empty");
  if (Buffer.byteLength(id, "utf8") > MAX_ID_BYTES) {
    throw invalidArgument(field, `must be at most ${MAX_ID_BYTES} bytes (UTF-8)`);
  }
}

/** Rejects a commit whose keys LMDB could not store, before any of it is applied. */
export function validateWrites(writes: readonly Write[]): void {
  writes.forEach((w, i) => {
    const at = `writes[${i}]`;
    switch (w.kind) {
      case "customer-put":
      case "customer-delete":
        checkId(`${at}.customer.id`, w.customer.id);
        w.customer.altIds.forEach((a, j) => checkId(`${at}.customer.altIds[${j}]`, a));
        return;
      case "meter-put":
        checkId(`${at}.meter.owner`, w.meter.owner);
        checkId(`${at}.meter.entitlement`, w.meter.entitlement);
        return;
      case "meter-delete":
        checkId(`${at}.owner`, w.owner);
        checkId(`${at}.entitlement`, w.entitlement);
        return;
      case "reservation-put":
        checkId(`${at}.reservation.id`, w.reservation.id);
        return;
      case "reservation-delete":
        checkId(`${at}.id`, w.id);
        return;
      case "idempotency-put":
        checkId(`${at}.record.key`, w.record.key);
        return;
    }
  });
}

/** Applies validated `writes` to the overlay under generation `gen` and returns their ops. */
export function applyWrites(writes: readonly Write[], view: StateReader, overlay: Overlay, gen: number): Op[] {
  const ops: Op[] = [];
  const altIdOwnedBy = (altId: string, id: string): boolean => view.resolveAltId(altId) === id;
  const dropAltId = (altId: string): void => {
    overlay.putAltId(altId, undefined, gen);
    ops.push({ table: "altIds", key: altId, row: undefined });
  };

  for (const w of writes) {
    switch (w.kind) {
      case "customer-put": {
        const c: Customer = w.customer;
        const keep = new Set(c.altIds);
        // An alt id is removed only while it still points here: it may have moved to another
        // customer since `previous` was read.
        // The stored record is the truth for the index; `previous` is what the engine saw.
        const before = new Set([...(view.getCustomer(c.id)?.altIds ?? []), ...(w.previous?.altIds ?? [])]);
        for (const a of before) if (!keep.has(a) && altIdOwnedBy(a, c.id)) dropAltId(a);
        for (const a of c.altIds) {
          overlay.putAltId(a, c.id, gen);
          ops.push({ table: "altIds", key: a, row: c.id });
        }
        overlay.putCustomer(c.id, c, gen);
        ops.push({ table: "customers", key: c.id, row: encodeCustomer(c) });
        break;
      }
      case "customer-delete": {
        const c = w.customer;
        const stored = view.getCustomer(c.id);
        const altIds = new Set([...c.altIds, ...(stored?.altIds ?? [])]);
        for (const a of altIds) if (altIdOwnedBy(a, c.id)) dropAltId(a);
        overlay.putCustomer(c.id, undefined, gen);
        ops.push({ table: "customers", key: c.id, row: undefined });
        break;
      }
      case "meter-put":
        overlay.putMeter(w.meter.owner, w.meter.entitlement, w.meter, gen);
        ops.push({ table: "meters", key: [w.meter.owner, w.meter.entitlement], row: encodeMeter(w.meter) });
        break;
      case "meter-delete":
        overlay.putMeter(w.owner, w.entitlement, undefined, gen);
        ops.push({ table: "meters", key: [w.owner, w.entitlement], row: undefined });
        break;
      case "reservation-put":
        overlay.putReservation(w.reservation.id, w.reservation, gen);
        ops.push({ table: "reservations", key: w.reservation.id, row: encodeReservation(w.reservation) });
        break;
      case "reservation-delete":
        overlay.putReservation(w.id, undefined, gen);
        ops.push({ table: "reservations", key: w.id, row: undefined });
        break;
      case "idempotency-put": {
        const r: IdempotencyRecord = w.record;
        const old = view.getIdempotency(r.key);
        if (old && old.expiresAt !== r.expiresAt) {
          ops.push({ table: "idempotencyExpiry", key: [old.expiresAt, r.key], row: undefined });
        }
        overlay.putIdempotency(r.key, r, gen);
        ops.push({ table: "idempotency", key: r.key, row: encodeIdempotency(r) });
        ops.push({ table: "idempotencyExpiry", key: [r.expiresAt, r.key], row: null });
        break;
      }
    }
  }
  return ops;
}
