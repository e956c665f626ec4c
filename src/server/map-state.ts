/**
 * Export/import records ↔ proto `StateRecord`. Quantities travel as exact decimal strings, so an
 * export followed by an import restores every meter to the nano.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { summarizeHolds, type Customer, type StateRecord } from "../engine/index.js";
import { invalidArgument } from "../errors/index.js";
import type { Nanos } from "../policy/index.js";
import { formatNanos, parseDecimalNanos } from "../policy/index.js";
import type { StateRecord as StateRecordPb, StateRecordSchema } from "../gen/limitr/v1/admin_pb.js";
import type { Customer as CustomerPb } from "../gen/limitr/v1/common_pb.js";
import { fromTimestamp, requireId, toCustomerPb, toTimestamp } from "./map-common.js";

/** A stored record → proto. */
export function toStateRecordPb(r: StateRecord): MessageInitShape<typeof StateRecordSchema> {
  switch (r.kind) {
    case "customer":
      return { kind: { case: "customer", value: toCustomerPb(r.customer) } };
    case "meter": {
      const m = r.meter;
      return {
        kind: {
          case: "meter",
          value: {
            owner: m.owner,
            entitlement: m.entitlement,
            credit: m.credit,
            periodStart: toTimestamp(m.periodStart),
            value: formatNanos(m.value),
            overhead: formatNanos(m.overhead),
            holds: r.holds.map((h) => ({
              reservationId: h.reservationId,
              amount: formatNanos(h.amount),
              expiresAt: toTimestamp(h.expiresAt),
            })),
            thresholdsReached: [...m.thresholdsReached],
            peak: m.peak === m.value ? "" : formatNanos(m.peak),
          },
        },
      };
    }
    case "reservation": {
      const v = r.reservation;
      return {
        kind: {
          case: "reservation",
          value: {
            id: v.id,
            customerId: v.customerId,
            items: v.items.map((i) => ({ entitlement: i.entitlement, owner: i.owner, amount: formatNanos(i.amount) })),
            createdAt: toTimestamp(v.createdAt),
            expiresAt: toTimestamp(v.expiresAt),
            attributes: { ...v.attributes },
          },
        },
      };
    }
  }
}

function decimal(text: string, field: string): Nanos {
  const n = parseDecimalNanos(text);
  if (n === undefined) throw invalidArgument(field, `must be a decimal number, got ${JSON.stringify(text)}`);
  return n;
}

function time(ts: Timestamp | undefined, field: string): number {
  if (!ts) throw invalidArgument(field, "is required");
  return fromTimestamp(ts, field);
}

function customerFromPb(c: CustomerPb, at: string): Customer {
  return {
    id: requireId(c.id, `${at}.id`),
    plan: c.plan,
    type: c.type === "" ? "user" : c.type,
    refs: [...c.refs],
    altIds: [...c.altIds],
    metadata: { ...c.metadata },
    // Hand-written imports (e.g. migrating from limits.ts) may not know when a customer was made.
    createdAt: c.createdAt ? fromTimestamp(c.createdAt, `${at}.created_at`) : 0,
    updatedAt: c.updatedAt ? fromTimestamp(c.updatedAt, `${at}.updated_at`) : 0,
  };
}

/** Proto → a stored record; `at` prefixes field names in errors (e.g. `requests[3].record`). */
export function fromStateRecordPb(r: StateRecordPb | undefined, at: string): StateRecord {
  const k = r?.kind;
  switch (k?.case) {
    case "customer":
      return { kind: "customer", customer: customerFromPb(k.value, `${at}.customer`) };
    case "meter": {
      const m = k.value;
      const p = `${at}.meter`;
      const holds = m.holds.map((h, i) => ({
        reservationId: requireId(h.reservationId, `${p}.holds[${i}].reservation_id`),
        amount: decimal(h.amount, `${p}.holds[${i}].amount`),
        expiresAt: time(h.expiresAt, `${p}.holds[${i}].expires_at`),
      }));
      const value = decimal(m.value, `${p}.value`);
      return {
        kind: "meter",
        meter: {
          owner: requireId(m.owner, `${p}.owner`),
          entitlement: requireId(m.entitlement, `${p}.entitlement`),
          credit: m.credit,
          periodStart: time(m.periodStart, `${p}.period_start`),
          value,
          overhead: m.overhead === "" ? 0n : decimal(m.overhead, `${p}.overhead`),
          // Files exported before the peak was kept have none: what their events billed ends at the value.
          peak: m.peak === "" ? value : decimal(m.peak, `${p}.peak`),
          holdSummary: summarizeHolds(holds),
          thresholdsReached: [...m.thresholdsReached],
        },
        holds,
      };
    }
    case "reservation": {
      const v = k.value;
      const p = `${at}.reservation`;
      return {
        kind: "reservation",
        reservation: {
          id: requireId(v.id, `${p}.id`),
          customerId: requireId(v.customerId, `${p}.customer_id`),
          items: v.items.map((i, n) => ({
            entitlement: requireId(i.entitlement, `${p}.items[${n}].entitlement`),
            owner: requireId(i.owner, `${p}.items[${n}].owner`),
            amount: decimal(i.amount, `${p}.items[${n}].amount`),
          })),
          createdAt: time(v.createdAt, `${p}.created_at`),
          expiresAt: time(v.expiresAt, `${p}.expires_at`),
          attributes: { ...v.attributes },
        },
      };
    }
    default:
      throw invalidArgument(at, "must be a customer, meter or reservation");
  }
}
