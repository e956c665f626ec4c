/**
 * WatchEvents responses: the bytes the grpc-js bridge sends are those of the reflective encoding,
 * shared by every subscriber of one stored event, and connect-node still reads a plain init shape.
 */
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import type { StoredEvent } from "../../src/engine/index.js";
import { WatchEventsResponseSchema } from "../../src/gen/limitr/v1/decision_pb.js";
import { batchResponse, batchResponses, eventResponse } from "../../src/server/event-response.js";
import { toEventPb } from "../../src/server/map-events.js";
import { encodesAs, toWire } from "../../src/server/wire-encodable.js";
import { customer, HUGE, meterEvent } from "../store/fixtures.js";

const stored: StoredEvent[] = [
  { seq: 1, event: meterEvent("c1", "chat", 5n, { overage: 2n, overagePrice: 3n, attributes: { model: "gpt-4o", "ü": "☃" } }) },
  { seq: 2 ** 40, event: meterEvent("c2", "chat", -HUGE) },
  { seq: 3, event: { type: "customer-set", time: 1, customer: customer("c3", { altIds: ["a"], metadata: { k: "v" } }) } },
];

const reflective = (s: StoredEvent): Uint8Array =>
  toBinary(WatchEventsResponseSchema, create(WatchEventsResponseSchema, { kind: { case: "event", value: toEventPb(s) } }));

describe("eventResponse", () => {
  it.each(stored.map((s) => [s.event.type, s] as const))("encodes a %s event as the reflective encoding does", (_, s) => {
    const res = eventResponse(s);
    expect(encodesAs(res, WatchEventsResponseSchema)).toBe(true);
    if (!encodesAs(res, WatchEventsResponseSchema)) return;
    expect(res[toWire]()).toEqual(reflective(s));
    // What connect-node does with it: an init shape copied by create().
    const viaInit = create(WatchEventsResponseSchema, eventResponse(s));
    expect(equals(WatchEventsResponseSchema, viaInit, fromBinary(WatchEventsResponseSchema, reflective(s)))).toBe(true);
  });

  it("encodes a batch as the reflective encoding does, from the events' shared bytes", () => {
    for (const events of [stored, stored.slice(0, 1), [...stored, ...stored]]) {
      const res = batchResponse(events);
      const expected = toBinary(
        WatchEventsResponseSchema,
        create(WatchEventsResponseSchema, { kind: { case: "batch", value: { events: events.map(toEventPb) } } }),
      );
      if (!encodesAs(res, WatchEventsResponseSchema)) return expect.fail("not self-encoding");
      expect(res[toWire]()).toEqual(expected);
      const viaInit = create(WatchEventsResponseSchema, batchResponse(events));
      expect(equals(WatchEventsResponseSchema, viaInit, fromBinary(WatchEventsResponseSchema, expected))).toBe(true);
    }
    // Past a one-byte length: 200 meter events in one message.
    const many = Array.from({ length: 200 }, (_, i) => ({ seq: i + 1, event: meterEvent(`c${i}`, "chat", BigInt(i)) }));
    const res = batchResponse(many);
    if (!encodesAs(res, WatchEventsResponseSchema)) return expect.fail("not self-encoding");
    const decoded = fromBinary(WatchEventsResponseSchema, res[toWire]());
    expect(decoded.kind.case === "batch" && decoded.kind.value.events.map((e) => Number(e.sequence))).toEqual(many.map((e) => e.seq));
  });

  it("splits a batch so that no message carries more than the byte cap (a larger event goes alone)", () => {
    const big = (seq: number, kb: number): StoredEvent => ({ seq, event: meterEvent("c", "chat", 1n, { attributes: { blob: "x".repeat(kb * 1024) } }) });
    const events = [big(1, 300), big(2, 300), big(3, 300), big(4, 1500), big(5, 10), big(6, 10)];
    const batches = batchResponses(events, 1024 * 1024);
    const seqsOf = (r: unknown): number[] => {
      if (!encodesAs(r, WatchEventsResponseSchema)) return expect.fail("not self-encoding");
      const d = fromBinary(WatchEventsResponseSchema, r[toWire]());
      return d.kind.case === "batch" ? d.kind.value.events.map((e) => Number(e.sequence)) : [];
    };
    expect(batches.map(seqsOf)).toEqual([[1, 2, 3], [4], [5, 6]]);
    expect(batchResponses(events.slice(4)).map(seqsOf)).toEqual([[5, 6]]);
    expect(batchResponses([])).toEqual([]);
  });

  it("encodes a stored event once, whatever the number of subscribers", () => {
    const s = stored[0] as StoredEvent;
    const a = eventResponse(s);
    const b = eventResponse(s);
    if (!encodesAs(a, WatchEventsResponseSchema) || !encodesAs(b, WatchEventsResponseSchema)) return expect.fail("not self-encoding");
    expect(a[toWire]()).toBe(b[toWire]());
    // A different object with the same content is encoded on its own.
    const copy = eventResponse({ ...s });
    if (!encodesAs(copy, WatchEventsResponseSchema)) return expect.fail("not self-encoding");
    expect(copy[toWire]()).not.toBe(a[toWire]());
    expect(copy[toWire]()).toEqual(a[toWire]());
  });
});
