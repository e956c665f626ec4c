/**
 * Export/import records ↔ proto `StateRecord`. Quantities travel as exact decimal strings, so an
 * export followed by an import restores every meter to the nano.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { summarizeHolds, type Customer, type DecisionResult, type ItemView, type Reason, type StateRecord } from "../engine/index.js";
import { invalidArgument } from "../errors/index.js";
import type { LimitMode, Nanos } from "../policy/index.js";
import { formatNanos, parseDecimalNanos } from "../policy/index.js";
import type { StateRecord as StateRecordPb, StateRecordSchema, StoredDecision as StoredDecisionPb, StoredDecisionSchema } from "../gen/limitr/v1/admin_pb.js";
import { MeterKind, type Customer as CustomerPb } from "../gen/limitr/v1/common_pb.js";
import { fromTimestamp, requireId, toCustomerPb, toLimitModePb, toReasonPb, toTimestamp } from "./map-common.js";

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
            billedOverage: m.billedOverage === undefined ? "" : formatNanos(m.billedOverage),
            resetRule: m.resetRule ?? "",
            ...(m.judgedAt === undefined ? {} : { judgedAt: toTimestamp(m.judgedAt) }),
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
    case "idempotency": {
      const { key, fingerprint, expiresAt, result } = r.record;
      return { kind: { case: "idempotency", value: { key, fingerprint, expiresAt: toTimestamp(expiresAt), answer: toStoredDecisionPb(result) } } };
    }
    case "event-log":
      return { kind: { case: "eventLog", value: { lastSequence: BigInt(r.lastSequence) } } };
  }
}

function toStoredDecisionPb(d: DecisionResult): MessageInitShape<typeof StoredDecisionSchema> {
  return {
    allowed: d.allowed,
    reason: toReasonPb(d.reason),
    ...(d.allowed ? {} : { deniedItem: d.deniedItem }),
    items: d.items.map((i) =>
      i.kind === "feature"
        ? { entitlement: i.entitlement, kind: MeterKind.FEATURE, granted: i.granted }
        : {
            entitlement: i.entitlement,
            kind: MeterKind.METERED,
            granted: true,
            owner: i.owner,
            credit: i.credit,
            unit: i.unit,
            mode: toLimitModePb(i.mode),
            value: formatNanos(i.value),
            limit: formatNanos(i.limit),
            remaining: formatNanos(i.remaining),
            held: formatNanos(i.held),
            overage: formatNanos(i.overage),
            periodStart: toTimestamp(i.periodStart),
            ...(i.nextReset === undefined ? {} : { nextReset: toTimestamp(i.nextReset) }),
          },
    ),
    customerId: d.customerId,
    plan: d.plan,
    policyVersion: d.policyVersion,
    ...(d.reservationId === undefined ? {} : { reservationId: d.reservationId }),
    ...(d.reservationExpiresAt === undefined ? {} : { reservationExpiresAt: toTimestamp(d.reservationExpiresAt) }),
  };
}

const REASONS: readonly Reason[] = ["OK", "SOFT_LIMIT_EXCEEDED", "HARD_LIMIT", "NOT_ENTITLED", "UNKNOWN_CUSTOMER", "UNKNOWN_ENTITLEMENT", "SCOPE_UNRESOLVED"];
const MODES: readonly LimitMode[] = ["hard", "soft", "observe"];

function fromStoredDecisionPb(d: StoredDecisionPb | undefined, at: string): DecisionResult {
  if (d === undefined) throw invalidArgument(at, "is required");
  const items = d.items.map((i, n): ItemView => {
    const p = `${at}.items[${n}]`;
    const entitlement = requireId(i.entitlement, `${p}.entitlement`);
    if (i.kind === MeterKind.FEATURE) return { kind: "feature", entitlement, granted: i.granted };
    if (i.kind !== MeterKind.METERED) throw invalidArgument(`${p}.kind`, "must be METERED or FEATURE");
    const mode = MODES.find((m) => toLimitModePb(m) === i.mode);
    if (mode === undefined) throw invalidArgument(`${p}.mode`, "must be HARD, SOFT or OBSERVE");
    return {
      kind: "metered",
      entitlement,
      owner: requireId(i.owner, `${p}.owner`),
      credit: i.credit,
      unit: i.unit,
      mode,
      value: decimal(i.value, `${p}.value`),
      limit: decimal(i.limit, `${p}.limit`),
      remaining: decimal(i.remaining, `${p}.remaining`),
      held: decimal(i.held, `${p}.held`),
      overage: decimal(i.overage, `${p}.overage`),
      periodStart: time(i.periodStart, `${p}.period_start`),
      nextReset: i.nextReset === undefined ? undefined : fromTimestamp(i.nextReset, `${p}.next_reset`),
    };
  });
  const reason = REASONS.find((r) => toReasonPb(r) === d.reason);
  if (reason === undefined) throw invalidArgument(`${at}.reason`, "must be a reason a decision gives");
  const common = {
    customerId: d.customerId,
    plan: d.plan,
    policyVersion: d.policyVersion,
    items,
    ...(d.reservationId === "" ? {} : { reservationId: d.reservationId }),
    ...(d.reservationExpiresAt === undefined ? {} : { reservationExpiresAt: fromTimestamp(d.reservationExpiresAt, `${at}.reservation_expires_at`) }),
  };
  if (d.allowed) {
    if (reason !== "OK" && reason !== "SOFT_LIMIT_EXCEEDED") throw invalidArgument(`${at}.reason`, `${reason} is not a reason to allow`);
    return { ...common, allowed: true, reason };
  }
  if (reason === "OK" || reason === "SOFT_LIMIT_EXCEEDED") throw invalidArgument(`${at}.reason`, `${reason} is not a reason to deny`);
  if (d.deniedItem === undefined || d.deniedItem < 0) throw invalidArgument(`${at}.denied_item`, "is required when not allowed");
  return { ...common, allowed: false, reason, deniedItem: d.deniedItem };
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
      return {
        kind: "meter",
        meter: {
          owner: requireId(m.owner, `${p}.owner`),
          entitlement: requireId(m.entitlement, `${p}.entitlement`),
          credit: m.credit,
          periodStart: time(m.periodStart, `${p}.period_start`),
          value: decimal(m.value, `${p}.value`),
          overhead: m.overhead === "" ? 0n : decimal(m.overhead, `${p}.overhead`),
          // Files exported before it was kept have none: as much as the value is over its limit.
          billedOverage: m.billedOverage === "" ? undefined : decimal(m.billedOverage, `${p}.billed_overage`),
          resetRule: m.resetRule === "" ? undefined : m.resetRule,
          judgedAt: m.judgedAt === undefined ? undefined : time(m.judgedAt, `${p}.judged_at`),
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
    case "idempotency": {
      const v = k.value;
      const p = `${at}.idempotency`;
      return {
        kind: "idempotency",
        record: {
          key: requireId(v.key, `${p}.key`),
          fingerprint: v.fingerprint,
          expiresAt: time(v.expiresAt, `${p}.expires_at`),
          result: fromStoredDecisionPb(v.answer, `${p}.answer`),
        },
      };
    }
    case "eventLog": {
      const last = k.value.lastSequence;
      if (last > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument(`${at}.event_log.last_sequence`, `must be at most ${Number.MAX_SAFE_INTEGER}, got ${last}`);
      return { kind: "event-log", lastSequence: Number(last) };
    }
    default:
      throw invalidArgument(at, "must be a customer, meter, reservation, idempotency key or event log position");
  }
}
