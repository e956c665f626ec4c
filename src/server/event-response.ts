/**
 * WatchEvents responses for stored events, encoded once per event however many subscribers it
 * reaches. Every live subscriber is handed the same `StoredEvent` objects by the store, so the
 * bytes are kept per object (weakly: they go when the event does). With ten subscribers following
 * every decision, the reflective `create()` + `toBinary()` of each event was paid ten times. Meter
 * events (nearly all) are encoded by hand (`encode-event.ts`), the rest by protobuf-es.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import type { StoredEvent } from "../engine/index.js";
import { WatchEventsResponseSchema } from "../gen/limitr/v1/decision_pb.js";
import type { EventSchema } from "../gen/limitr/v1/events_pb.js";
import { encodeMeterEventResponse } from "./encode-event.js";
import { toEventPb } from "./map-events.js";
import { toWire, wireSchema, type WireEncodable } from "./wire-encodable.js";

type Init = MessageInitShape<typeof WatchEventsResponseSchema>;
type EventKind = { readonly case: "event"; readonly value: MessageInitShape<typeof EventSchema> };

const encoded = new WeakMap<StoredEvent, Uint8Array>();

/**
 * To connect-node a message init shape (`kind` computed when read); to the grpc-js bridge an
 * object that encodes itself, with the bytes shared between subscribers.
 */
class EventResponse implements WireEncodable {
  constructor(private readonly stored: StoredEvent) {}
  get kind(): EventKind {
    return { case: "event", value: toEventPb(this.stored) };
  }
  get [wireSchema](): DescMessage {
    return WatchEventsResponseSchema;
  }
  [toWire](): Uint8Array {
    let bytes = encoded.get(this.stored);
    if (bytes === undefined) {
      bytes =
        encodeMeterEventResponse(this.stored) ??
        toBinary(WatchEventsResponseSchema, create(WatchEventsResponseSchema, { kind: this.kind }));
      encoded.set(this.stored, bytes);
    }
    return bytes;
  }
}

/** The WatchEvents response carrying `stored`. */
export function eventResponse(stored: StoredEvent): Init {
  // A getter reads like the `kind` field (create() copies it as usual).
  return new EventResponse(stored) as unknown as Init;
}
