/**
 * The hand-written WatchEvents encoder for meter events writes exactly the bytes protobuf-es's
 * reflective encoding writes, for any meter event; other events are left to protobuf-es.
 */
import fc from "fast-check";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import type { StoredEvent } from "../../src/engine/index.js";
import { WatchEventsResponseSchema } from "../../src/gen/limitr/v1/decision_pb.js";
import { encodeMeterEventResponse } from "../../src/server/encode-event.js";
import { toEventPb } from "../../src/server/map-events.js";
import { meterEvents } from "../helpers/event-arbitraries.js";
import { customer, meterEvent } from "../store/fixtures.js";

const reflective = (s: StoredEvent): Uint8Array =>
  toBinary(WatchEventsResponseSchema, create(WatchEventsResponseSchema, { kind: { case: "event", value: toEventPb(s) } }));

// Short strings of any code points, and long ones of any code units (lone surrogates become
// U+FFFD, as with protobuf-es's TextEncoder) around the 1-byte length prefix's limits.
const codeUnit = fc.oneof(
  fc.string({ unit: "binary-ascii", minLength: 1, maxLength: 1 }),
  fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
  fc.constantFrom("é", "€", "😀", "\uD800", "\uDFFF"),
);
const text = fc.oneof(
  fc.constant(""),
  fc.string({ unit: "grapheme", maxLength: 12 }),
  fc.string({ unit: codeUnit, maxLength: 200 }),
  fc.string({ unit: "binary-ascii", minLength: 120, maxLength: 140 }),
);
const seq = fc.oneof(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 2 ** 32 + 5 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }));

describe("encodeMeterEventResponse", () => {
  it("writes the bytes protobuf-es writes, for any meter event", () => {
    fc.assert(
      fc.property(seq, meterEvents(text), (s, event) => {
        const stored: StoredEvent = { seq: s, event };
        expect(encodeMeterEventResponse(stored)).toEqual(reflective(stored));
      }),
      { numRuns: 1000 },
    );
  });

  it("survives a message past the scratch buffer's first size, then small ones again", () => {
    const big = "x".repeat(40_000);
    const events: StoredEvent[] = [
      { seq: 1, event: meterEvent("c", "chat", 1n, { attributes: { prompt: big, ü: "☃" } }) },
      { seq: 2, event: meterEvent("c", "chat", 2n) },
    ];
    for (const e of events) expect(encodeMeterEventResponse(e)).toEqual(reflective(e));
    const decoded = fromBinary(WatchEventsResponseSchema, encodeMeterEventResponse(events[0] as StoredEvent) as Uint8Array);
    expect(decoded.kind.case === "event" && decoded.kind.value.payload.case === "meter" && decoded.kind.value.payload.value.attributes["prompt"]).toBe(big);
  });

  it("returns a copy the next call does not touch", () => {
    const a = { seq: 7, event: meterEvent("a", "chat", 1n) };
    const first = encodeMeterEventResponse(a) as Uint8Array;
    const copy = Uint8Array.from(first);
    encodeMeterEventResponse({ seq: 8, event: meterEvent("zzzz", "other", 99n) });
    expect(first).toEqual(copy);
  });

  it("leaves events other than meter events to protobuf-es", () => {
    expect(encodeMeterEventResponse({ seq: 1, event: { type: "customer-set", time: 1, customer: customer("c") } })).toBeUndefined();
    expect(
      encodeMeterEventResponse({ seq: 2, event: { type: "policy-applied", time: 1, policyVersion: "v", source: "s", removedPlans: [] } }),
    ).toBeUndefined();
  });
});
