/**
 * What users build instead of the sidecar: a grpc-js DecisionService whose Allow does the
 * check-and-increment in Redis with one Lua script (the envoy-ratelimit pattern), all items
 * all-or-nothing, same protobuf-es messages as the sidecar. Check reads, Record increments.
 * Prints `{"msg":"listening","grpc":ADDR}` on stderr; stops on SIGTERM.
 *
 *   node build/bench/grpc/redis-service.js REDIS_PORT
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage } from "@bufbuild/protobuf";
import { Reason } from "../../src/gen/limitr/v1/common_pb.js";
import {
  type AllowRequest,
  AllowRequestSchema,
  AllowResponseSchema,
  CheckRequestSchema,
  CheckResponseSchema,
  RecordRequestSchema,
  RecordResponseSchema,
} from "../../src/gen/limitr/v1/decision_pb.js";
import { BENCH_LIMIT } from "./policy.js";
import { connectResp, type Reply } from "./resp-client.js";

/** KEYS = meters; ARGV = mode ("allow" | "check" | "record"), limit, then one amount per key. */
const SCRIPT = `
local mode = ARGV[1]
local limit = tonumber(ARGV[2])
local values = {}
for i, key in ipairs(KEYS) do
  local v = tonumber(redis.call('GET', key) or '0') + tonumber(ARGV[i + 2])
  if mode == 'allow' and v > limit then return {0, i - 1} end
  values[i] = v
end
if mode ~= 'check' then
  for i, key in ipairs(KEYS) do redis.call('INCRBYFLOAT', key, ARGV[i + 2]) end
end
local out = {1, -1}
for i = 1, #values do out[i + 2] = tostring(values[i]) end
return out
`;

const redis = await connectResp(Number(process.argv[2] ?? 6379));
const sha = await redis.send(["SCRIPT", "LOAD", SCRIPT]);
if (typeof sha !== "string") throw new Error(`SCRIPT LOAD failed: ${String(sha)}`);

const identity = (b: Buffer): Buffer => b;
type Mode = "allow" | "check" | "record";
const rpcs: readonly (readonly [string, Mode, DescMessage, DescMessage])[] = [
  ["Allow", "allow", AllowRequestSchema, AllowResponseSchema],
  ["Check", "check", CheckRequestSchema, CheckResponseSchema],
  ["Record", "record", RecordRequestSchema, RecordResponseSchema],
];

const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
const handlers: grpc.UntypedServiceImplementation = {};
for (const [name, mode, input, output] of rpcs) {
  definition[name] = {
    path: `/limitr.v1.DecisionService/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
  handlers[name] = (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
    // Allow, Check and Record requests share their field numbers and shapes.
    const req = fromBinary(input, call.request) as unknown as AllowRequest;
    const args: (string | number)[] = ["EVALSHA", sha, req.items.length];
    for (const item of req.items) args.push(`meter:${req.customerId}:${item.entitlement}`);
    args.push(mode, BENCH_LIMIT);
    for (const item of req.items) args.push(item.amount ?? 1);
    redis.send(args).then((reply: Reply) => {
      if (!Array.isArray(reply)) return callback({ code: grpc.status.UNAVAILABLE, details: String(reply) });
      const allowed = reply[0] === 1;
      const res = create(output, {
        allowed,
        reason: allowed ? Reason.OK : Reason.HARD_LIMIT,
        ...(allowed ? {} : { deniedItem: Number(reply[1]) }),
        items: req.items.map((item, i) => ({ entitlement: item.entitlement, value: Number(reply[i + 2] ?? 0), limit: BENCH_LIMIT })),
        customerId: req.customerId,
      } as never);
      callback(null, Buffer.from(toBinary(output, res)));
    }, (e: unknown) => callback({ code: grpc.status.UNAVAILABLE, details: String(e) }));
  };
}

const server = new grpc.Server();
server.addService(definition, handlers);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stderr.write(JSON.stringify({ msg: "listening", grpc: `127.0.0.1:${port}` }) + "\n");
});
process.once("SIGTERM", () => server.tryShutdown(() => {
  redis.close();
  process.exit(0);
}));
