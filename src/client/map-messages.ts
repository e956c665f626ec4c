/**
 * Generated messages ↔ the client's plain types: enums to readable names, Timestamps to Dates,
 * uint64 sequences to numbers (exact up to 2^53, far beyond any retained log).
 */
import { create } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { GetPolicyStatusResponse } from "../gen/limitr/v1/admin_pb.js";
import { CustomerHintSchema, LimitMode, MeterKind, PlanSource, Reason, UsageItemSchema } from "../gen/limitr/v1/common_pb.js";
import type { Customer as CustomerMsg, CustomerHint, MeterState as MeterStateMsg, UsageItem } from "../gen/limitr/v1/common_pb.js";
import type { WatchEventsResponse } from "../gen/limitr/v1/decision_pb.js";
import { EventType } from "../gen/limitr/v1/events_pb.js";
import type { Event as EventMsg, MeterEvent } from "../gen/limitr/v1/events_pb.js";
import type { Amount, Customer, CustomerHintInput, Decision, EventTypeName, MeterEventData, MeterState, PolicyStatus, ReasonName, UsageInput, WatchItem } from "./types.js";

/** A Timestamp as a Date (undefined stays undefined). */
export const date = (t: Timestamp | undefined): Date | undefined => (t === undefined ? undefined : timestampDate(t));

/** `'250MB'` → { amount: 250, unit: 'MB' }; numbers pass through. */
export function parseAmount(amount: Amount, unit = ""): { amount: number; unit: string } {
  if (typeof amount === "number") return { amount, unit };
  const m = /^\s*([+-]?(?:\d[\d_]*)?(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*$/.exec(amount);
  const num = m?.[1] ? Number(m[1].replaceAll("_", "")) : NaN;
  if (!m || !Number.isFinite(num)) throw new TypeError(`amount "${amount}" is not a number with an optional unit (e.g. 250, '250MB', '1.5GB')`);
  return { amount: num, unit: m[2] || unit };
}

export function toUsageItems(items: readonly UsageInput[]): UsageItem[] {
  return items.map((it) => {
    if (it.amount === undefined) return create(UsageItemSchema, { entitlement: it.entitlement, unit: it.unit ?? "" });
    const { amount, unit } = parseAmount(it.amount, it.unit);
    return create(UsageItemSchema, { entitlement: it.entitlement, amount, unit });
  });
}

export function toCustomerHint(h: CustomerHintInput | undefined): CustomerHint | undefined {
  if (h === undefined) return undefined;
  return create(CustomerHintSchema, {
    ...(h.plan === undefined ? {} : { plan: h.plan }),
    ...(h.type === undefined ? {} : { type: h.type }),
    refs: [...(h.refs ?? [])],
    altIds: [...(h.altIds ?? [])],
    metadata: { ...h.metadata },
  });
}

export function reasonName(r: Reason): ReasonName {
  return (Reason[r] as ReasonName | undefined) ?? "UNSPECIFIED";
}

const MODES = { [LimitMode.HARD]: "hard", [LimitMode.SOFT]: "soft", [LimitMode.OBSERVE]: "observe" } as const;
const modeName = (m: LimitMode): MeterState["mode"] => (m in MODES ? MODES[m as keyof typeof MODES] : "unspecified");

export function toMeterState(m: MeterStateMsg): MeterState {
  return {
    entitlement: m.entitlement,
    kind: m.kind === MeterKind.METERED ? "metered" : m.kind === MeterKind.FEATURE ? "feature" : "unspecified",
    granted: m.granted,
    owner: m.owner,
    credit: m.credit,
    unit: m.unit,
    mode: modeName(m.mode),
    value: m.value,
    limit: m.limit,
    remaining: m.remaining,
    held: m.held,
    overage: m.overage,
    periodStart: date(m.periodStart),
    nextReset: date(m.nextReset),
  };
}

/** The fields shared by every decision response. */
interface DecisionMsg {
  allowed: boolean;
  reason: Reason;
  deniedItem?: number | undefined;
  items: MeterStateMsg[];
  customerId: string;
  plan: string;
  policyVersion: string;
}

export function toDecision(r: DecisionMsg): Decision {
  const items = r.items.map(toMeterState);
  const main = items[r.deniedItem ?? 0];
  return {
    allowed: r.allowed,
    reason: reasonName(r.reason),
    deniedItem: r.deniedItem,
    items,
    customerId: r.customerId,
    plan: r.plan,
    policyVersion: r.policyVersion,
    entitlement: main?.entitlement,
    value: main?.value,
    limit: main?.limit,
    remaining: main?.remaining,
    overage: main?.overage,
    unit: main?.unit,
    nextReset: main?.nextReset,
  };
}

const PLAN_SOURCES = { [PlanSource.OWN]: "own", [PlanSource.INHERITED]: "inherited", [PlanSource.DEFAULT]: "default", [PlanSource.NONE]: "none" } as const;

export function toCustomer(c: CustomerMsg): Customer {
  return {
    id: c.id,
    plan: c.plan,
    type: c.type,
    refs: c.refs,
    altIds: c.altIds,
    metadata: c.metadata,
    createdAt: date(c.createdAt),
    updatedAt: date(c.updatedAt),
    effectivePlan: c.effectivePlan,
    planSource: c.planSource in PLAN_SOURCES ? PLAN_SOURCES[c.planSource as keyof typeof PLAN_SOURCES] : "unspecified",
    missingPlan: c.missingPlan,
  };
}

export function toPolicyStatus(s: GetPolicyStatusResponse): PolicyStatus {
  return {
    version: s.version,
    appliedAt: date(s.appliedAt),
    source: s.source,
    lastErrors: s.lastErrors,
    lastRejectedAt: date(s.lastRejectedAt),
    rejectionsSinceApplied: s.rejectionsSinceApplied,
  };
}

/** `meter-overage` ↔ EventType.METER_OVERAGE. */
export function eventTypeName(t: EventType): EventTypeName {
  const name = EventType[t] as string | undefined;
  return (name ?? "UNSPECIFIED").toLowerCase().replaceAll("_", "-") as EventTypeName;
}

export function eventTypeValue(name: EventTypeName): EventType {
  const v = (EventType as unknown as Record<string, number | undefined>)[name.toUpperCase().replaceAll("-", "_")];
  if (v === undefined || v === EventType.UNSPECIFIED) throw new TypeError(`unknown event type "${name}"`);
  return v;
}

function toMeterEvent(m: MeterEvent): MeterEventData {
  return {
    customerId: m.customerId,
    owner: m.owner,
    entitlement: m.entitlement,
    plan: m.plan,
    credit: m.credit,
    unit: m.unit,
    mode: modeName(m.mode),
    oldValue: m.oldValue,
    newValue: m.newValue,
    limit: m.limit,
    diff: m.diff,
    remaining: m.remaining,
    overage: m.overage,
    overagePrice: m.overagePrice,
    periodStart: date(m.periodStart),
    attributes: m.attributes,
    policyVersion: m.policyVersion,
    idempotencyKey: m.idempotencyKey,
    threshold: m.threshold,
  };
}

export function toEvent(e: EventMsg): WatchItem {
  const base = { kind: "event", sequence: Number(e.sequence), type: eventTypeName(e.type), time: date(e.time) } as const;
  const p = e.payload;
  switch (p.case) {
    case "meter":
      return { ...base, meter: toMeterEvent(p.value) };
    case "customerSet":
    case "customerRemoved":
      return p.value.customer ? { ...base, customer: toCustomer(p.value.customer) } : base;
    case "customerPlanChanged":
      return { ...base, planChanged: { customerId: p.value.customerId, previousPlan: p.value.previousPlan, newPlan: p.value.newPlan, metersReset: p.value.metersReset } };
    case "policyApplied":
      return { ...base, policyApplied: { policyVersion: p.value.policyVersion, source: p.value.source, removedPlans: p.value.removedPlans } };
    case "policyRejected":
      return { ...base, policyRejected: { policyVersion: p.value.policyVersion, source: p.value.source, errors: p.value.errors } };
    default:
      return base;
  }
}

/** One stream message: an event, a batch of them, or the events-lost marker (none for an empty message). */
export function toWatchItems(r: WatchEventsResponse): WatchItem[] {
  switch (r.kind.case) {
    case "event":
      return [toEvent(r.kind.value)];
    case "batch":
      return r.kind.value.events.map(toEvent);
    case "eventsLost":
      return [{ kind: "events-lost", requestedSequence: Number(r.kind.value.requestedSequence), firstAvailableSequence: Number(r.kind.value.firstAvailableSequence) }];
    default:
      return [];
  }
}
