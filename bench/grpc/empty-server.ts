/**
 * The floor: a grpc-js server whose DecisionService handlers do nothing (raw bytes in, empty
 * message out, no protobuf decoding), bound the way the sidecar binds (insecure, 127.0.0.1:0).
 * Prints `{"msg":"listening","grpc":ADDR}` on stderr, like the sidecar; stops on SIGTERM.
 * `--young-stream-maps` gives it the sidecar's renewal of the HTTP/2 sessions' stream Maps
 * (src/server/young-stream-maps.ts), to show what that alone does to a plain grpc-js server.
 *
 *   node build/bench/grpc/empty-server.js [--young-stream-maps] [ADDRESS]
 */
import * as grpc from "@grpc/grpc-js";
import { createYoungStreamMaps } from "../../src/server/young-stream-maps.js";

const identity = (b: Buffer): Buffer => b;
const EMPTY = Buffer.alloc(0);
const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
const handlers: grpc.UntypedServiceImplementation = {};
for (const name of ["Allow", "Check", "Record", "GetMeters"]) {
  definition[name] = {
    path: `/limitr.v1.DecisionService/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
  handlers[name] = (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, EMPTY);
}

const args = process.argv.slice(2);
const server = new grpc.Server();
server.addService(definition, handlers);
server.bindAsync(args.find((a) => !a.startsWith("--")) ?? "127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  if (args.includes("--young-stream-maps")) {
    createYoungStreamMaps((reason) => {
      throw new Error(`--young-stream-maps: ${reason}`);
    }).watch(server);
  }
  process.stderr.write(JSON.stringify({ msg: "listening", grpc: `127.0.0.1:${port}` }) + "\n");
});
process.once("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
