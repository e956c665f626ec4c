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

const ROUNDS = 7;
const N = 100_000;
let sink = 0;
function time(f: () => { items: unknown[] } | undefined): number {
  for (let i = 0; i < N; i++) sink += f()?.items.length ?? 0; // warm-up
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) sink += f()?.items.length ?? 0;
    rounds.push(Number(process.hrtime.bigint() - t0) / N);
  }
  return rounds.sort((a, b) => a - b)[ROUNDS >> 1] ?? NaN;
}

for (const n of [1, 3]) {
  const buf = request(n);
  if (fast(buf) === undefined) throw new Error("the fast path did not answer");
  const reflective = time(() => fromBinary(AllowRequestSchema, buf));
  const direct = time(() => fast(buf));
  console.log(`${n} item(s), ${buf.length} B: fromBinary ${reflective.toFixed(0)} ns, fast ${direct.toFixed(0)} ns (${(reflective / direct).toFixed(2)}×)`);
}
if (sink === 0) console.log("");
