/**
 * WatchEvents responses for stored events, encoded once per event however many subscribers it
 * reaches. Every live subscriber is handed the same `StoredEvent` objects by the store, so the
 * bytes are kept per object (weakly: they go when the event does). With ten subscribers following
 * every decision, the reflective `create()` + `toBinary()` of each event was paid ten times. Meter
 * events (nearly all) are encoded by hand (`encode-event.ts`), the rest by protobuf-es.
 *
 * A batch (`max_batch_events`) reuses those bytes as they are: a response carrying one event is
 * `event` (field 1) holding the Event, and an EventBatch is `events` (field 1) repeated, so the
 * batch's contents are the single-event responses end to end. Both tags are checked at load.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import type { StoredEvent } from "../engine/index.js";
import { EventBatchSchema, WatchEventsResponseSchema } from "../gen/limitr/v1/decision_pb.js";
import { EventSchema } from "../gen/limitr/v1/events_pb.js";
import { encodeMeterEventResponse } from "./encode-event.js";
import { toEventPb } from "./map-events.js";
import { toWire, wireSchema, type WireEncodable } from "./wire-encodable.js";
import { finish, raw, start, TAG, tagOf, varint } from "./wire-writer.js";

type Init = MessageInitShape<typeof WatchEventsResponseSchema>;
type EventKind = { readonly case: "event"; readonly value: MessageInitShape<typeof EventSchema> };
type BatchKind = { readonly case: "batch"; readonly value: MessageInitShape<typeof EventBatchSchema> };

const EVENT_TAG = tagOf(WatchEventsResponseSchema, "event", { message: EventSchema });
const BATCH_TAG = tagOf(WatchEventsResponseSchema, "batch", { message: EventBatchSchema });
if (tagOf(EventBatchSchema, "events", { message: EventSchema, list: true }) !== EVENT_TAG) {
  throw new Error("EventBatch.events and WatchEventsResponse.event no longer share a tag; update src/server/event-response.ts");
}

const encoded = new WeakMap<StoredEvent, Uint8Array>();

/** The response carrying `stored` alone, encoded once per event. */
function eventBytes(stored: StoredEvent): Uint8Array {
  let bytes = encoded.get(stored);
  if (bytes === undefined) {
    bytes =
      encodeMeterEventResponse(stored) ??
      toBinary(WatchEventsResponseSchema, create(WatchEventsResponseSchema, { kind: { case: "event", value: toEventPb(stored) } }));
    encoded.set(stored, bytes);
  }
  return bytes;
}

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
    return eventBytes(this.stored);
  }
}

/** The same for a batch. */
class BatchResponse implements WireEncodable {
  constructor(private readonly events: readonly StoredEvent[]) {}
  get kind(): BatchKind {
    return { case: "batch", value: { events: this.events.map(toEventPb) } };
  }
  get [wireSchema](): DescMessage {
    return WatchEventsResponseSchema;
  }
  [toWire](): Uint8Array {
    const parts = this.events.map(eventBytes);
    let size = 0;
    for (const p of parts) size += p.length;
    start(TAG + 5 + size);
    varint(BATCH_TAG);
    varint(size);
    for (const p of parts) raw(p);
    return finish();
  }
}

/** The WatchEvents response carrying `stored`. */
export function eventResponse(stored: StoredEvent): Init {
  // A getter reads like the `kind` field (create() copies it as usual).
  return new EventResponse(stored) as unknown as Init;
}

/** The WatchEvents response carrying `events` as one batch. */
export function batchResponse(events: readonly StoredEvent[]): Init {
  return new BatchResponse(events) as unknown as Init;
}

/**
 * Bytes of events per batch message at most: well under the 4 MiB that gRPC clients accept by
 * default, since one event may carry up to a request's worth of attributes.
 */
export const MAX_BATCH_BYTES = 1024 * 1024;

/**
 * `events` as batch responses of at most `maxBytes` of events each (an event larger than that
 * goes alone), in order.
 */
export function batchResponses(events: readonly StoredEvent[], maxBytes = MAX_BATCH_BYTES): Init[] {
  const out: Init[] = [];
  let from = 0;
  let bytes = 0;
  for (let i = 0; i < events.length; i++) {
    const size = eventBytes(events[i] as StoredEvent).length;
    if (i > from && bytes + size > maxBytes) {
      out.push(batchResponse(events.slice(from, i)));
      from = i;
      bytes = 0;
    }
    bytes += size;
  }
  if (from < events.length) out.push(batchResponse(from === 0 ? events : events.slice(from)));
  return out;
}
