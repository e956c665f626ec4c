/**
 * The WatchEvents subscribers of the bench's subscriber scenarios, in a process of their own, as
 * billing or alerting would be: N streams on one channel, each opened with its own request (hex
 * on argv; one hex serves them all), counting messages without decoding them. Prints
 * `{"msg":"listening","grpc":ADDRESS}` once the streams are open, the line the bench's
 * `startChild` waits for, and on SIGTERM `{"msg":"subscribers-done","received":N}` before it
 * exits.
 *
 *   node build/bench/grpc/subscribers.js ADDRESS N HEX [HEX…]
 */
import * as grpc from "@grpc/grpc-js";

const [address, count, ...requests] = process.argv.slice(2);
const n = Number(count);
if (address === undefined || !(n > 0) || requests.length === 0) {
  throw new Error("usage: subscribers.js ADDRESS N HEX [HEX…]");
}
const identity = (b: Buffer): Buffer => b;
const client = new grpc.Client(address, grpc.credentials.createInsecure());
let received = 0;
const calls = Array.from({ length: n }, (_, i) => {
  const call = client.makeServerStreamRequest(
    "/limitr.v1.DecisionService/WatchEvents",
    identity,
    identity,
    Buffer.from(requests[i % requests.length] as string, "hex"),
  );
  call.on("data", () => received++);
  call.on("error", () => {});
  return call;
});
// The sidecar registers a stream once its handler ran; give them a moment, as the bench did.
setTimeout(() => process.stderr.write(JSON.stringify({ msg: "listening", grpc: address }) + "\n"), 300);
process.once("SIGTERM", () => {
  for (const c of calls) c.cancel();
  client.close();
  process.stderr.write(JSON.stringify({ msg: "subscribers-done", received }) + "\n", () => process.exit(0));
});
