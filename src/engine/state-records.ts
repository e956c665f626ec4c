/**
 * The rules an imported state record keeps (ImportState, `limitr-sidecar import`): the ones the
 * admin API and the decisions keep for what they write, so that an import cannot store what no
 * call could have made (an alt id two customers list, a negative hold, a meter past any double).
 */
import { LimitrError, invalidArgument, isLimitrError } from "../errors/index.js";
import { nanosToNumber, nextResetAfter, resetRuleOfKey, type Nanos } from "../policy/index.js";
import { checkCustomerId, validateCustomerLists, type CustomerLookup } from "./customer-fields.js";
import { idProblem } from "./id-rule.js";
import { fingerprintProblem } from "./idempotency.js";
import type { StateRecord } from "./types.js";

/**
 * Throws INVALID_ARGUMENT naming the field (`${at}.customer.alt_ids[0]`, proto names) when `r`
 * breaks a rule; `now` is the time of the import. `state` is what is stored as of this record, earlier records of the same import
 * included: a customer may keep the alt ids it holds (a restore over the same data), not take
 * another's.
 */
export function validateStateRecord(state: CustomerLookup, r: StateRecord, at: string, now: number): void {
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
      if (m.judgedAt !== undefined) time(m.judgedAt, `${p}judged_at`);
      quantity(m.value, `${p}value`);
      quantity(m.overhead, `${p}overhead`);
      if (m.billedOverage !== undefined) notNegative(m.billedOverage, `${p}billed_overage`);
      if (m.resetRule !== undefined) {
        const rule = resetRuleOfKey(m.resetRule);
        if (!rule.ok) throw invalidArgument(`${p}reset_rule`, rule.message);
        // A decision judges a meter within the period it writes: a time past its end is no
        // judgement any call made (a skewed clock, an edited export).
        const end = rule.rule === undefined ? Infinity : nextResetAfter(rule.rule, m.periodStart);
        if (m.judgedAt !== undefined && m.judgedAt >= end) {
          throw invalidArgument(`${p}judged_at`, `must be before the end of the period that period_start starts under reset_rule "${m.resetRule}" (${new Date(end).toISOString()})`);
        }
        if (m.judgedAt !== undefined && m.judgedAt > now) throw invalidArgument(`${p}judged_at`, "must not be later than now: no decision can have judged the meter then");
      }
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
      const { expiresAt, result, fingerprint } = r.record;
      const p = `${at}.idempotency.`;
      const badPrint = fingerprintProblem(fingerprint);
      if (badPrint !== undefined) throw invalidArgument(`${p}fingerprint`, badPrint);
      time(expiresAt, `${p}expires_at`);
      // Only an unknown caller's denial has no customer (and no items): the others name the caller.
      if (result.reason !== "UNKNOWN_CUSTOMER" || result.customerId !== "") id(result.customerId, `${p}answer.customer_id`);
      if (result.reservationId !== undefined) id(result.reservationId, `${p}answer.reservation_id`);
      if (result.reservationExpiresAt !== undefined) time(result.reservationExpiresAt, `${p}answer.reservation_expires_at`);
      // A retry's answer points at the item that was denied; a request has at least one item.
      if (!result.allowed && !(Number.isSafeInteger(result.deniedItem) && result.deniedItem >= 0 && result.deniedItem < Math.max(1, result.items.length))) {
        throw invalidArgument(`${p}answer.denied_item`, `must be the index of one of the answer's ${result.items.length} item(s), got ${result.deniedItem}`);
      }
      result.items.forEach((item, i) => {
        if (item.kind === "feature") return;
        const q = `${p}answer.items[${i}].`;
        // Remaining may be negative (past the limit, or holds over it); held and overage never are.
        for (const k of ["value", "limit", "remaining"] as const) quantity(item[k], `${q}${k}`);
        notNegative(item.held, `${q}held`);
        notNegative(item.overage, `${q}overage`);
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

/** An id the answer names, as a request's would have been checked: not blank, and one the storage can key. */
function id(value: string, field: string): void {
  if (value.trim() === "") throw invalidArgument(field, value === "" ? "is required" : "must not be blank");
  const problem = idProblem(value);
  if (problem !== undefined) throw invalidArgument(field, problem);
}

function time(ms: number, field: string): void {
  if (!Number.isFinite(ms)) throw invalidArgument(field, "is not a valid time");
}
