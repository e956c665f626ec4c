/**
 * Export records through their proto JSON form (what `limitr-sidecar export` writes) and back:
 * idempotency answers and the event log's position come back exactly, and a record no call could
 * have stored is refused naming its field.
 */
import { create, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import type { StateRecord } from "../../src/engine/index.js";
import { StateRecordSchema } from "../../src/gen/limitr/v1/admin_pb.js";
import { fromStateRecordPb, toStateRecordPb } from "../../src/server/map-state.js";
import { idempotency } from "../store/fixtures.js";

const viaJson = (r: StateRecord): StateRecord =>
  fromStateRecordPb(fromJsonString(StateRecordSchema, toJsonString(StateRecordSchema, create(StateRecordSchema, toStateRecordPb(r)))), "line 1");

describe("state records ↔ proto", () => {
  it("an idempotency record's answer comes back exactly: denied, allowed, a reservation's, with feature and metered items", () => {
    const denied = idempotency("k1", 1_800_000_000_000);
    const meteredItem = denied.result.items[1];
    if (meteredItem?.kind !== "metered") throw new Error("the fixture's second item is metered");
    const reserved: StateRecord = {
      kind: "idempotency",
      record: {
        key: "k2",
        fingerprint: 'a:["reserve","acme"]',
        expiresAt: 1_800_000_000_001,
        result: {
          allowed: true,
          reason: "SOFT_LIMIT_EXCEEDED",
          customerId: "acme",
          plan: "",
          policyVersion: "v2",
          items: [{ ...meteredItem, mode: "soft", value: 123_456_789_123_456_789n, nextReset: 1_800_000_100_000 }],
          reservationId: "res_1",
          reservationExpiresAt: 1_800_000_003_600,
        },
      },
    };
    for (const r of [{ kind: "idempotency", record: denied } as const, reserved]) expect(viaJson(r)).toEqual(r);
  });

  it("the event log's position comes back; one past 2^53 is refused", () => {
    expect(viaJson({ kind: "event-log", lastSequence: 42 })).toEqual({ kind: "event-log", lastSequence: 42 });
    const pb = fromJsonString(StateRecordSchema, '{"eventLog":{"lastSequence":"9007199254740993"}}');
    expect(() => fromStateRecordPb(pb, "line 3")).toThrow("line 3.event_log.last_sequence: must be at most 9007199254740991, got 9007199254740993");
  });

  it("an answer no decision gives is refused naming its field", () => {
    const line = (answer: object): string => JSON.stringify({ idempotency: { key: "k", expiresAt: "2030-01-01T00:00:00Z", answer } });
    const cases: [string, string][] = [
      [line({ allowed: true, reason: "REASON_HARD_LIMIT" }), "line 1.idempotency.answer.reason: HARD_LIMIT is not a reason to allow"],
      [line({ allowed: false, reason: "REASON_HARD_LIMIT" }), "line 1.idempotency.answer.denied_item: is required when not allowed"],
      [line({ allowed: true, reason: "REASON_OK", items: [{ entitlement: "chat", kind: "METER_KIND_METERED", owner: "o", mode: "LIMIT_MODE_HARD", value: "x" }] }), 'line 1.idempotency.answer.items[0].value: must be a decimal number, got "x"'],
      [JSON.stringify({ idempotency: { key: "k", expiresAt: "2030-01-01T00:00:00Z" } }), "line 1.idempotency.answer: is required"],
    ];
    for (const [json, message] of cases) expect(() => fromStateRecordPb(fromJsonString(StateRecordSchema, json), "line 1"), message).toThrow(message);
  });
});
