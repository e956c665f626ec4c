/**
 * Microbenchmark: encoding one WatchEvents response carrying a meter event (as every Allow logs
 * it) the reflective way (`toBinary(schema, create(schema, { kind: toEventPb(stored) }))`) against
 * the hand-written `encodeMeterEventResponse`. Prints ns per event (median of 7 rounds).
 *
 *   npx tsc -p bench/tsconfig.json && node build/bench/encode-event.js
 */
import { create, toBinary } from "@bufbuild/protobuf";
import type { StoredEvent } from "../src/engine/index.js";
import { WatchEventsResponseSchema } from "../src/gen/limitr/v1/decision_pb.js";
import { encodeMeterEventResponse } from "../src/server/encode-event.js";
import { toEventPb } from "../src/server/map-events.js";
import { keepSink, medianNs } from "./median-ns.js";

const stored: StoredEvent = {
  seq: 1_234_567,
  event: {
    type: "meter-changed",
    time: Date.UTC(2026, 10, 21, 12, 0, 0, 123),
    customerId: "bench_hot",
    owner: "bench_hot",
    entitlement: "requests",
    plan: "bench",
    credit: "requests",
    unit: "requests",
    mode: "hard",
    oldValue: 41_000_000_000n,
    newValue: 42_000_000_000n,
    limit: 1_000_000_000_000_000_000n,
    diff: 1_000_000_000n,
    remaining: 1_000_000_000_000_000_000n - 42_000_000_000n,
    overage: 0n,
    overagePrice: undefined,
    periodStart: Date.UTC(2026, 10, 1),
    attributes: { model: "gpt-4o" },
    policyVersion: "7a67fbe908e89a43",
    idempotencyKey: "",
  },
};

const time = (f: () => Uint8Array): number => medianNs(f, (b) => b.length);

const reflective = time(() =>
  toBinary(WatchEventsResponseSchema, create(WatchEventsResponseSchema, { kind: { case: "event", value: toEventPb(stored) } })),
);
const direct = time(() => encodeMeterEventResponse(stored) as Uint8Array);
console.log(`meter event: reflective ${reflective.toFixed(0)} ns, encodeMeterEventResponse ${direct.toFixed(0)} ns (${(reflective / direct).toFixed(2)}×)`);
keepSink();
