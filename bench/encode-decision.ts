/**
 * Microbenchmark: encoding one AllowResponse (1 and 3 metered items) the reflective way the
 * sidecar used to (`toBinary(schema, create(schema, toDecisionFields(result)))`) against the
 * hand-written `encodeDecision`. Prints ns per response (median of 7 rounds).
 *
 *   npx tsc -p bench/tsconfig.json && node build/bench/encode-decision.js
 */
import { create, toBinary } from "@bufbuild/protobuf";
import type { DecisionResult, MeterView } from "../src/engine/index.js";
import { AllowResponseSchema } from "../src/gen/limitr/v1/decision_pb.js";
import { encodeDecision, LAYOUTS } from "../src/server/encode-decision.js";
import { toDecisionFields } from "../src/server/map-decision.js";
import { keepSink, medianNs } from "./median-ns.js";

const item = (entitlement: string, value: bigint): MeterView => ({
  kind: "metered",
  entitlement,
  owner: "bench_hot",
  credit: "token",
  unit: "token",
  mode: "hard",
  value,
  limit: 1_000_000_000_000_000_000n,
  remaining: 1_000_000_000_000_000_000n - value,
  held: 0n,
  overage: 0n,
  periodStart: Date.UTC(2026, 10, 1),
  nextReset: Date.UTC(2026, 11, 1),
});
const result = (n: number): DecisionResult => ({
  allowed: true,
  reason: "OK",
  customerId: "bench_hot",
  plan: "bench",
  policyVersion: "7a67fbe908e89a43",
  items: ["input_tokens", "output_tokens", "requests"].slice(0, n).map((e, i) => item(e, BigInt(12345 + i) * 1_000_000_000n)),
});

const time = (f: () => Uint8Array): number => medianNs(f, (b) => b.length);

for (const n of [1, 3]) {
  const r = result(n);
  const reflective = time(() => toBinary(AllowResponseSchema, create(AllowResponseSchema, toDecisionFields(r))));
  const direct = time(() => encodeDecision(r, LAYOUTS.allow));
  console.log(`${n} item(s): reflective ${reflective.toFixed(0)} ns, encodeDecision ${direct.toFixed(0)} ns (${(reflective / direct).toFixed(2)}×)`);
}
keepSink();
