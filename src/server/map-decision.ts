/**
 * DecisionService proto ↔ engine requests and results. Validates the request's shape (required
 * ids, finite amounts) so that bad input is rejected before the engine runs and changes nothing.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { durationMs } from "@bufbuild/protobuf/wkt";
import type {
  CustomerHint as DomainHint,
  DecisionRequest,
  DecisionResult,
  ReserveRequest as DomainReserve,
  SettleRequest as DomainSettle,
  UsageItem as DomainItem,
} from "../engine/index.js";
import { invalidArgument } from "../errors/index.js";
import type { CustomerHint, UsageItem } from "../gen/limitr/v1/common_pb.js";
import type { AllowResponseSchema, ReserveRequest, SettleRequest } from "../gen/limitr/v1/decision_pb.js";
import { requireId, toMeterState, toReasonPb, toTimestamp } from "./map-common.js";

/** The fields Allow, Check, Record and Reserve requests share. */
export interface DecisionRequestPb {
  readonly customerId: string;
  readonly items: readonly UsageItem[];
  readonly customerHint?: CustomerHint | undefined;
  readonly attributes: Readonly<Record<string, string>>;
  readonly idempotencyKey: string;
}

/** The flattened decision every decision response carries. */
export type DecisionFieldsPb = Omit<MessageInitShape<typeof AllowResponseSchema>, "$typeName">;

/** Validated usage items; `field` is the repeated field's proto name (`items`, `actual`). */
export function toUsageItems(items: readonly UsageItem[], field: string): DomainItem[] {
  // A loop and plain assignments rather than map() and spreads: this runs on every decision.
  const out = new Array<DomainItem>(items.length);
  for (let i = 0; i < items.length; i++) out[i] = toUsageItem(items[i] as UsageItem, field, i);
  return out;
}

function toUsageItem(item: UsageItem, field: string, i: number): DomainItem {
  if (item.entitlement.trim() === "") throw invalidArgument(`${field}[${i}].entitlement`, "is required");
  const out: { entitlement: string; amount?: number; unit?: string } = { entitlement: item.entitlement };
  if (item.amount !== undefined) {
    if (!Number.isFinite(item.amount)) throw invalidArgument(`${field}[${i}].amount`, `must be a finite number, got ${item.amount}`);
    out.amount = item.amount;
  }
  const unit = item.unit.trim();
  if (unit !== "") out.unit = unit;
  return out;
}

/** Whether `record` has an own enumerable key (without listing them). */
function hasKeys(record: Readonly<Record<string, unknown>>): boolean {
  for (const key in record) if (Object.hasOwn(record, key)) return true;
  return false;
}

function toHint(h: CustomerHint): DomainHint {
  return {
    ...(h.plan !== undefined ? { plan: h.plan } : {}),
    ...(h.type !== undefined ? { type: h.type } : {}),
    ...(h.refs.length > 0 ? { refs: [...h.refs] } : {}),
    ...(h.altIds.length > 0 ? { altIds: [...h.altIds] } : {}),
    ...(Object.keys(h.metadata).length > 0 ? { metadata: { ...h.metadata } } : {}),
  };
}

/** Allow / Check / Record request → engine request. */
export function toDecisionRequest(req: DecisionRequestPb): DecisionRequest {
  requireId(req.customerId, "customer_id");
  if (req.items.length === 0) throw invalidArgument("items", "at least one usage item is required");
  const out: { -readonly [K in keyof DecisionRequest]: DecisionRequest[K] } = { customerId: req.customerId, items: toUsageItems(req.items, "items") };
  if (req.customerHint) out.hint = toHint(req.customerHint);
  if (hasKeys(req.attributes)) out.attributes = { ...req.attributes };
  if (req.idempotencyKey !== "") out.idempotencyKey = req.idempotencyKey;
  return out;
}

/** A positive Duration → ms, naming `field` when it is not. */
export function toPositiveMs(d: Duration, field: string): number {
  if (d.nanos < -999_999_999 || d.nanos > 999_999_999 || (d.seconds > 0n && d.nanos < 0) || (d.seconds < 0n && d.nanos > 0)) {
    throw invalidArgument(field, "is not a valid duration");
  }
  const ms = durationMs(d);
  if (!(ms > 0) || !Number.isSafeInteger(Math.ceil(ms))) throw invalidArgument(field, "must be a positive duration");
  // A hold shorter than 1 ms still lasts 1 ms: rounding it to zero would make it never count.
  return Math.ceil(ms);
}

export function toReserveRequest(req: ReserveRequest): DomainReserve {
  return { ...toDecisionRequest(req), ...(req.ttl ? { ttlMs: toPositiveMs(req.ttl, "ttl") } : {}) };
}

export function toSettleRequest(req: SettleRequest): DomainSettle {
  requireId(req.reservationId, "reservation_id");
  return {
    reservationId: req.reservationId,
    actual: toUsageItems(req.actual, "actual"),
    ...(hasKeys(req.attributes) ? { attributes: { ...req.attributes } } : {}),
    ...(req.idempotencyKey !== "" ? { idempotencyKey: req.idempotencyKey } : {}),
  };
}

/** Engine decision → the flattened response fields. */
export function toDecisionFields(r: DecisionResult): DecisionFieldsPb {
  return {
    allowed: r.allowed,
    reason: toReasonPb(r.reason),
    ...(r.allowed ? {} : { deniedItem: r.deniedItem }),
    items: r.items.map(toMeterState),
    customerId: r.customerId,
    plan: r.plan,
    policyVersion: r.policyVersion,
  };
}

/** Reserve's response: the decision plus the reservation. */
export function toReserveFields(r: DecisionResult) {
  return {
    ...toDecisionFields(r),
    reservationId: r.reservationId ?? "",
    ...(r.reservationExpiresAt !== undefined ? { reservationExpiresAt: toTimestamp(r.reservationExpiresAt) } : {}),
  };
}
