/**
 * The floor: a grpc-js server whose DecisionService handlers do nothing (raw bytes in, empty
 * message out, no protobuf decoding), bound the way the sidecar binds (insecure, 127.0.0.1:0).
 * Prints `{"msg":"listening","grpc":ADDR}` on stderr, like the sidecar; stops on SIGTERM.
 *
 *   node build/bench/grpc/empty-server.js
 */
import * as grpc from "@grpc/grpc-js";

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

const server = new grpc.Server();
server.addService(definition, handlers);
server.bindAsync(process.argv[2] ?? "127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  process.stderr.write(JSON.stringify({ msg: "listening", grpc: `127.0.0.1:${port}` }) + "\n");
});
process.once("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
