/**
 * Microbenchmark: decoding one AllowRequest (1 and 3 items, one attribute) with protobuf-es's
 * reflective `fromBinary`, as the sidecar used to, against the fast path of `decisionRequestDecoder`.
 * Prints ns per request (median of 7 rounds).
 *
 *   npx tsc -p bench/tsconfig.json && node build/bench/decode-decision.js
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AllowRequestSchema } from "../src/gen/limitr/v1/decision_pb.js";
import { decisionRequestDecoder } from "../src/server/decode-decision.js";
import { keepSink, medianNs } from "./median-ns.js";

const fast = decisionRequestDecoder(AllowRequestSchema);
if (fast === undefined) throw new Error("no fast decoder for AllowRequest");

const request = (n: number): Buffer =>
  Buffer.from(
    toBinary(
      AllowRequestSchema,
      create(AllowRequestSchema, {
        customerId: "bench_hot",
        items: [
          { entitlement: "input_tokens", amount: 1200 },
          { entitlement: "output_tokens", amount: 350 },
          { entitlement: "requests", amount: 1 },
        ].slice(0, n),
        attributes: { model: "gpt-4o" },
      }),
    ),
  );

const time = (f: () => { items: unknown[] } | undefined): number => medianNs(f, (r) => r?.items.length ?? 0);

for (const n of [1, 3]) {
  const buf = request(n);
  if (fast(buf) === undefined) throw new Error("the fast path did not answer");
  const reflective = time(() => fromBinary(AllowRequestSchema, buf));
  const direct = time(() => fast(buf));
  console.log(`${n} item(s), ${buf.length} B: fromBinary ${reflective.toFixed(0)} ns, fast ${direct.toFixed(0)} ns (${(reflective / direct).toFixed(2)}×)`);
}
keepSink();
