/**
 * The WatchEvents response carrying a meter event, encoded straight from the stored event without
 * protobuf-es reflection. Meter events are nearly every event (one per metered decision), and with
 * subscribers following the log their reflective `create()` + `toBinary()` was about a fifth of
 * the sidecar's CPU: a large message (19 fields, a map, two timestamps) at about 20 µs each.
 *
 * Other events (customers, plans, policies: rare) are left to protobuf-es. The bytes equal
 * `toBinary(WatchEventsResponseSchema, create(..., { kind: { case: "event", value: toEventPb(stored) } }))`,
 * proved over random events by test/server/encode-event.test.ts.
 */
import { ScalarType } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import type { EngineEvent, MeterEventFields, StoredEvent } from "../engine/index.js";
import { WatchEventsResponseSchema } from "../gen/limitr/v1/decision_pb.js";
import { EventSchema, MeterEventSchema } from "../gen/limitr/v1/events_pb.js";
import { num, toLimitModePb } from "./map-common.js";
import { toEventTypePb } from "./map-events.js";
import {
  double,
  doublePresent,
  end,
  enumField,
  finish,
  int64Field,
  message,
  NESTED,
  start,
  STRING,
  string,
  stringMapEntry,
  TAG,
  tagOf,
  timestamp,
  TIMESTAMP,
  VARINT,
  STRING_FIELD as str,
  DOUBLE_FIELD as dbl,
} from "./wire-writer.js";

const R = { event: tagOf(WatchEventsResponseSchema, "event", { message: EventSchema }) };
const E = {
  sequence: tagOf(EventSchema, "sequence", { scalar: ScalarType.UINT64 }),
  type: tagOf(EventSchema, "type", { enum: true }),
  time: tagOf(EventSchema, "time", { message: TimestampSchema }),
  meter: tagOf(EventSchema, "meter", { message: MeterEventSchema }),
};
const M = {
  customerId: tagOf(MeterEventSchema, "customerId", str),
  owner: tagOf(MeterEventSchema, "owner", str),
  entitlement: tagOf(MeterEventSchema, "entitlement", str),
  plan: tagOf(MeterEventSchema, "plan", str),
  credit: tagOf(MeterEventSchema, "credit", str),
  unit: tagOf(MeterEventSchema, "unit", str),
  mode: tagOf(MeterEventSchema, "mode", { enum: true }),
  oldValue: tagOf(MeterEventSchema, "oldValue", dbl),
  newValue: tagOf(MeterEventSchema, "newValue", dbl),
  limit: tagOf(MeterEventSchema, "limit", dbl),
  diff: tagOf(MeterEventSchema, "diff", dbl),
  remaining: tagOf(MeterEventSchema, "remaining", dbl),
  overage: tagOf(MeterEventSchema, "overage", dbl),
  overagePrice: tagOf(MeterEventSchema, "overagePrice", { scalar: ScalarType.DOUBLE, optional: true }),
  periodStart: tagOf(MeterEventSchema, "periodStart", { message: TimestampSchema }),
  attributes: tagOf(MeterEventSchema, "attributes", { stringMap: true }),
  policyVersion: tagOf(MeterEventSchema, "policyVersion", str),
  idempotencyKey: tagOf(MeterEventSchema, "idempotencyKey", str),
  threshold: tagOf(MeterEventSchema, "threshold", { scalar: ScalarType.DOUBLE, optional: true }),
};

type MeterEvent = Extract<EngineEvent, MeterEventFields>;

/** Response and Event: two nested headers, sequence, type, time. */
const HEAD = 2 * NESTED + 2 * (TAG + VARINT) + TIMESTAMP;
/** MeterEvent: its header, 8 strings, mode, 8 doubles, period start. */
const METER = NESTED + 8 * STRING + (TAG + VARINT) + 8 * (TAG + 8) + TIMESTAMP;
/** A map entry: its header and two length-prefixed strings (contents counted separately). */
const ENTRY = NESTED + 2 * (1 + 5);

function bound(e: MeterEvent): number {
  let n =
    HEAD +
    METER +
    3 *
      (e.customerId.length +
        e.owner.length +
        e.entitlement.length +
        e.plan.length +
        e.credit.length +
        e.unit.length +
        e.policyVersion.length +
        e.idempotencyKey.length);
  for (const k in e.attributes) n += ENTRY + 3 * (k.length + (e.attributes[k] as string).length);
  return n;
}

function isMeterEvent(e: EngineEvent): e is MeterEvent {
  switch (e.type) {
    case "meter-changed":
    case "meter-overage":
    case "meter-limit":
    case "meter-reset":
    case "meter-threshold":
    case "meter-threshold-cleared":
      return true;
    default:
      return false;
  }
}

/**
 * The binary WatchEventsResponse for `stored` when it is a meter event; undefined for any other
 * event (the caller encodes those with protobuf-es). The result is the caller's own.
 */
export function encodeMeterEventResponse(stored: StoredEvent): Uint8Array | undefined {
  const e = stored.event;
  if (!isMeterEvent(e)) return undefined;
  start(bound(e));
  const response = message(R.event);
  int64Field(E.sequence, stored.seq);
  enumField(E.type, toEventTypePb(e.type));
  timestamp(E.time, e.time);
  const meter = message(E.meter);
  string(M.customerId, e.customerId);
  string(M.owner, e.owner);
  string(M.entitlement, e.entitlement);
  string(M.plan, e.plan);
  string(M.credit, e.credit);
  string(M.unit, e.unit);
  enumField(M.mode, toLimitModePb(e.mode));
  double(M.oldValue, num(e.oldValue));
  double(M.newValue, num(e.newValue));
  double(M.limit, num(e.limit));
  double(M.diff, num(e.diff));
  double(M.remaining, num(e.remaining));
  double(M.overage, num(e.overage));
  if (e.overagePrice !== undefined) doublePresent(M.overagePrice, num(e.overagePrice));
  timestamp(M.periodStart, e.periodStart);
  for (const k in e.attributes) stringMapEntry(M.attributes, k, e.attributes[k] as string);
  string(M.policyVersion, e.policyVersion);
  string(M.idempotencyKey, e.idempotencyKey);
  if (e.type === "meter-threshold" || e.type === "meter-threshold-cleared") doublePresent(M.threshold, e.threshold);
  end(meter);
  end(response);
  return finish();
}
