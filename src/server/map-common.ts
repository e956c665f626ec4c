/**
 * Proto ↔ domain mapping shared by every service: times, enums, customers, meter states.
 * Pure functions; shape errors are `LimitrError` INVALID_ARGUMENT naming the proto field.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { Customer, CustomerView, ItemView, Reason } from "../engine/index.js";
import { invalidArgument } from "../errors/index.js";
import type { LimitMode, Nanos } from "../policy/index.js";
import { nanosToNumber } from "../policy/index.js";
import type { CustomerSchema, MeterStateSchema } from "../gen/limitr/v1/common_pb.js";
import {
  LimitMode as LimitModePb,
  MeterKind,
  PlanSource,
  Reason as ReasonPb,
} from "../gen/limitr/v1/common_pb.js";

/** Epoch ms → Timestamp. */
export function toTimestamp(ms: number): Timestamp {
  return timestampFromMs(ms);
}

/** The range google.protobuf.Timestamp allows: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z. */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;

/** Timestamp → epoch ms (sub-millisecond precision is dropped). */
export function fromTimestamp(ts: Timestamp, field: string): number {
  // The binary form carries any int64 and int32: nanos out of range would shift the time silently.
  if (ts.nanos < 0 || ts.nanos > 999_999_999 || ts.seconds < MIN_TIMESTAMP_SECONDS || ts.seconds > MAX_TIMESTAMP_SECONDS) {
    throw invalidArgument(field, `is not a valid timestamp (seconds ${ts.seconds}, nanos ${ts.nanos})`);
  }
  const ms = timestampMs(ts);
  if (!Number.isFinite(ms)) throw invalidArgument(field, "is not a valid timestamp");
  return ms;
}

/** bigint nanos → the nearest double, for the wire. */
export function num(n: Nanos): number {
  return nanosToNumber(n);
}

const REASON: Record<Reason, ReasonPb> = {
  OK: ReasonPb.OK,
  SOFT_LIMIT_EXCEEDED: ReasonPb.SOFT_LIMIT_EXCEEDED,
  HARD_LIMIT: ReasonPb.HARD_LIMIT,
  NOT_ENTITLED: ReasonPb.NOT_ENTITLED,
  UNKNOWN_CUSTOMER: ReasonPb.UNKNOWN_CUSTOMER,
  UNKNOWN_ENTITLEMENT: ReasonPb.UNKNOWN_ENTITLEMENT,
  SCOPE_UNRESOLVED: ReasonPb.SCOPE_UNRESOLVED,
};

export function toReasonPb(reason: Reason): ReasonPb {
  return REASON[reason];
}

const MODE: Record<LimitMode, LimitModePb> = {
  hard: LimitModePb.HARD,
  soft: LimitModePb.SOFT,
  observe: LimitModePb.OBSERVE,
};

export function toLimitModePb(mode: LimitMode): LimitModePb {
  return MODE[mode];
}

/** A decision's per-item view → MeterState. */
export function toMeterState(view: ItemView): MessageInitShape<typeof MeterStateSchema> {
  if (view.kind === "feature") {
    return { entitlement: view.entitlement, kind: MeterKind.FEATURE, granted: view.granted };
  }
  return {
    entitlement: view.entitlement,
    kind: MeterKind.METERED,
    granted: true,
    owner: view.owner,
    credit: view.credit,
    unit: view.unit,
    mode: toLimitModePb(view.mode),
    value: num(view.value),
    limit: num(view.limit),
    remaining: num(view.remaining),
    held: num(view.held),
    overage: num(view.overage),
    periodStart: toTimestamp(view.periodStart),
    ...(view.nextReset !== undefined ? { nextReset: toTimestamp(view.nextReset) } : {}),
  };
}

/** A stored customer record → Customer (output-only fields left empty). */
export function toCustomerPb(c: Customer): MessageInitShape<typeof CustomerSchema> {
  return {
    id: c.id,
    plan: c.plan,
    type: c.type,
    refs: [...c.refs],
    altIds: [...c.altIds],
    metadata: { ...c.metadata },
    createdAt: toTimestamp(c.createdAt),
    updatedAt: toTimestamp(c.updatedAt),
  };
}

const PLAN_SOURCE: Record<CustomerView["planSource"], PlanSource> = {
  own: PlanSource.OWN,
  inherited: PlanSource.INHERITED,
  default: PlanSource.DEFAULT,
  none: PlanSource.NONE,
};

/** A customer with its resolved plan → Customer with the output-only fields set. */
export function toCustomerViewPb(v: CustomerView): MessageInitShape<typeof CustomerSchema> {
  return {
    ...toCustomerPb(v.customer),
    effectivePlan: v.effectivePlan,
    planSource: PLAN_SOURCE[v.planSource],
    missingPlan: v.missingPlan ?? "",
  };
}

/** Rejects an empty (or blank) id, naming the field. */
export function requireId(value: string, field: string): string {
  if (value.trim() === "") throw invalidArgument(field, "is required");
  return value;
}
