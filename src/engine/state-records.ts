/**
 * The rules an imported state record keeps (ImportState, `limitr-sidecar import`): the ones the
 * admin API and the decisions keep for what they write, so that an import cannot store what no
 * call could have made (an alt id two customers list, a negative hold, a meter past any double).
 */
import { LimitrError, invalidArgument, isLimitrError } from "../errors/index.js";
import { nanosToNumber, type Nanos } from "../policy/index.js";
import { checkCustomerId, validateCustomerLists, type CustomerLookup } from "./customer-fields.js";
import type { StateRecord } from "./types.js";

/**
 * Throws INVALID_ARGUMENT naming the field (`${at}.customer.alt_ids[0]`, proto names) when `r`
 * breaks a rule. `state` is what is stored as of this record, earlier records of the same import
 * included: a customer may keep the alt ids it holds (a restore over the same data), not take
 * another's.
 */
export function validateStateRecord(state: CustomerLookup, r: StateRecord, at: string): void {
  switch (r.kind) {
    case "customer": {
      const c = r.customer;
      const p = `${at}.customer.`;
      try {
        checkCustomerId(state, `${p}id`, c.id);
        validateCustomerLists(state, p, c.id, c.refs, c.altIds);
      } catch (e) {
        // The admin API says ALREADY_EXISTS; an import refuses any record with INVALID_ARGUMENT.
        if (isLimitrError(e, "ALREADY_EXISTS")) throw new LimitrError("INVALID_ARGUMENT", e.message.slice(e.field.length + 2), { field: e.field, cause: e });
        throw e;
      }
      time(c.createdAt, `${p}created_at`);
      time(c.updatedAt, `${p}updated_at`);
      return;
    }
    case "meter": {
      const m = r.meter;
      const p = `${at}.meter.`;
      time(m.periodStart, `${p}period_start`);
      quantity(m.value, `${p}value`);
      quantity(m.overhead, `${p}overhead`);
      if (m.billedOverage !== undefined) notNegative(m.billedOverage, `${p}billed_overage`);
      r.holds.forEach((h, i) => {
        notNegative(h.amount, `${p}holds[${i}].amount`);
        time(h.expiresAt, `${p}holds[${i}].expires_at`);
      });
      m.thresholdsReached.forEach((t, i) => {
        if (!Number.isFinite(t) || t < 0) throw invalidArgument(`${p}thresholds_reached[${i}]`, `must be a percent (a finite number, not negative), got ${t}`);
      });
      return;
    }
    case "reservation": {
      const v = r.reservation;
      const p = `${at}.reservation.`;
      v.items.forEach((item, i) => notNegative(item.amount, `${p}items[${i}].amount`));
      time(v.createdAt, `${p}created_at`);
      time(v.expiresAt, `${p}expires_at`);
      if (v.expiresAt < v.createdAt) throw invalidArgument(`${p}expires_at`, "must not be before created_at");
      return;
    }
    case "idempotency": {
      const { expiresAt, result } = r.record;
      const p = `${at}.idempotency.`;
      time(expiresAt, `${p}expires_at`);
      if (result.reservationExpiresAt !== undefined) time(result.reservationExpiresAt, `${p}answer.reservation_expires_at`);
      result.items.forEach((item, i) => {
        if (item.kind === "feature") return;
        const q = `${p}answer.items[${i}].`;
        for (const k of ["value", "limit", "remaining", "held", "overage"] as const) quantity(item[k], `${q}${k}`);
        time(item.periodStart, `${q}period_start`);
        if (item.nextReset !== undefined) time(item.nextReset, `${q}next_reset`);
      });
      return;
    }
    case "event-log":
      // Sequences are doubles in memory: past 2^53 the next one would not be one more.
      if (!Number.isSafeInteger(r.lastSequence) || r.lastSequence < 0) {
        throw invalidArgument(`${at}.event_log.last_sequence`, `must be at most ${Number.MAX_SAFE_INTEGER}, got ${r.lastSequence}`);
      }
      return;
  }
}

/** Meters are read out as doubles: a quantity no double holds would read as ±Infinity. */
function quantity(n: Nanos, field: string): void {
  if (!Number.isFinite(nanosToNumber(n))) throw invalidArgument(field, "is too large");
}

/** Reservations hold room: a negative hold would make room instead (Reserve refuses negative amounts). */
function notNegative(n: Nanos, field: string): void {
  quantity(n, field);
  if (n < 0n) throw invalidArgument(field, "must not be negative");
}

function time(ms: number, field: string): void {
  if (!Number.isFinite(ms)) throw invalidArgument(field, "is not a valid time");
}
