/**
 * Event log ↔ proto: stored events → `Event` messages, and event-type filters both ways.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { EventType, MeterEventFields, StoredEvent } from "../engine/index.js";
import { invalidArgument } from "../errors/index.js";
import type { EventSchema, MeterEventSchema } from "../gen/limitr/v1/events_pb.js";
import { EventType as EventTypePb } from "../gen/limitr/v1/events_pb.js";
import { num, toCustomerPb, toLimitModePb, toTimestamp } from "./map-common.js";

const TYPE: Record<EventType, EventTypePb> = {
  "meter-changed": EventTypePb.METER_CHANGED,
  "meter-overage": EventTypePb.METER_OVERAGE,
  "meter-limit": EventTypePb.METER_LIMIT,
  "meter-reset": EventTypePb.METER_RESET,
  "meter-threshold": EventTypePb.METER_THRESHOLD,
  "meter-threshold-cleared": EventTypePb.METER_THRESHOLD_CLEARED,
  "customer-set": EventTypePb.CUSTOMER_SET,
  "customer-removed": EventTypePb.CUSTOMER_REMOVED,
  "customer-plan-changed": EventTypePb.CUSTOMER_PLAN_CHANGED,
  "policy-applied": EventTypePb.POLICY_APPLIED,
  "policy-rejected": EventTypePb.POLICY_REJECTED,
};

/** A domain event type → its proto enum value. */
export function toEventTypePb(type: EventType): EventTypePb {
  return TYPE[type];
}

const FROM_PB = new Map<EventTypePb, EventType>(
  Object.entries(TYPE).map(([name, pb]) => [pb, name as EventType]),
);

/** Proto event-type filters → domain names; UNSPECIFIED or an unknown number names its index. */
export function toEventTypes(types: readonly EventTypePb[], field: string): EventType[] {
  return types.map((t, i) => {
    const name = FROM_PB.get(t);
    if (name === undefined) throw invalidArgument(`${field}[${i}]`, `is not a known event type (${t})`);
    return name;
  });
}

function meterPb(e: MeterEventFields, threshold: number | undefined): MessageInitShape<typeof MeterEventSchema> {
  return {
    customerId: e.customerId,
    owner: e.owner,
    entitlement: e.entitlement,
    plan: e.plan,
    credit: e.credit,
    unit: e.unit,
    mode: toLimitModePb(e.mode),
    oldValue: num(e.oldValue),
    newValue: num(e.newValue),
    limit: num(e.limit),
    diff: num(e.diff),
    remaining: num(e.remaining),
    overage: num(e.overage),
    ...(e.overagePrice !== undefined ? { overagePrice: num(e.overagePrice) } : {}),
    periodStart: toTimestamp(e.periodStart),
    attributes: { ...e.attributes },
    policyVersion: e.policyVersion,
    idempotencyKey: e.idempotencyKey,
    ...(threshold !== undefined ? { threshold } : {}),
  };
}

type Payload = MessageInitShape<typeof EventSchema>["payload"];

/** A stored event → `Event`. */
export function toEventPb({ seq, event: e }: StoredEvent): MessageInitShape<typeof EventSchema> {
  let payload: Payload;
  switch (e.type) {
    case "meter-changed":
    case "meter-overage":
    case "meter-limit":
    case "meter-reset":
      payload = { case: "meter", value: meterPb(e, undefined) };
      break;
    case "meter-threshold":
    case "meter-threshold-cleared":
      payload = { case: "meter", value: meterPb(e, e.threshold) };
      break;
    case "customer-set":
      payload = { case: "customerSet", value: { customer: toCustomerPb(e.customer) } };
      break;
    case "customer-removed":
      payload = { case: "customerRemoved", value: { customer: toCustomerPb(e.customer) } };
      break;
    case "customer-plan-changed":
      payload = {
        case: "customerPlanChanged",
        value: { customerId: e.customerId, previousPlan: e.previousPlan, newPlan: e.newPlan, metersReset: e.metersReset },
      };
      break;
    case "policy-applied":
      payload = {
        case: "policyApplied",
        value: { policyVersion: e.policyVersion, source: e.source, removedPlans: [...e.removedPlans] },
      };
      break;
    case "policy-rejected":
      payload = {
        case: "policyRejected",
        value: { policyVersion: e.policyVersion, source: e.source, errors: [...e.errors] },
      };
      break;
  }
  return { sequence: BigInt(seq), type: toEventTypePb(e.type), time: toTimestamp(e.time), payload };
}
