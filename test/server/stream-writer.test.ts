/**
 * The server-stream writer (src/server/stream-writer.ts) on a real grpc-js server, read by real
 * clients: a raw node:http2 client, which sees the DATA frames, and grpc-js's own client, which
 * sees the messages and the status. A turn's responses go out in one frame, in order; a client
 * that stops reading stops the producer; the status follows the last response; where grpc-js's
 * internals differ, responses go through `call.write` as before and the reason is reported. The
 * CPU this saves is measured, not asserted (docs/performance.md, "One write per turn").
 */
import * as http2 from "node:http2";
import { afterEach, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { DecisionService, WatchEventsRequestSchema, WatchEventsResponseSchema } from "../../src/gen/limitr/v1/decision_pb.js";
import type { WatchEventsResponse } from "../../src/gen/limitr/v1/decision_pb.js";
import { registerGrpcService } from "../../src/server/register-grpc-service.js";
import { EventType } from "../../src/gen/limitr/v1/events_pb.js";
import { createStreamWriter } from "../../src/server/stream-writer.js";
import type { StreamWriter } from "../../src/server/stream-writer.js";
import { startHarness, unary } from "./harness.js";
import type { Harness } from "./harness.js";

const raw = (b: Buffer): Buffer => b;
const PATH = "/test.Stream/Numbers";

/** Message `i`: its number, then `size - 4` bytes of filler. */
function numbered(i: number, size = 4): Buffer {
  const b = Buffer.alloc(size, 0x61);
  b.writeUInt32BE(i, 0);
  return b;
}

type Handler = (call: grpc.ServerWritableStream<Buffer, Buffer>) => void;

async function startServer(handler: Handler, options: grpc.ServerOptions = {}): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server(options);
  server.addService(
    { Numbers: { path: PATH, requestStream: false, responseStream: true, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } },
    { Numbers: handler },
  );
  return { server, port: await bind(server) };
}

/** Listens on a free loopback port. */
function bind(server: grpc.Server): Promise<number> {
  return new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
}

/** Writes `responses` as the bridge does: wait when told to, flush before ending. */
async function writeAll(writer: StreamWriter, call: grpc.ServerWritableStream<Buffer, Buffer>, responses: Iterable<Buffer>): Promise<void> {
  try {
    for (const r of responses) {
      if (call.cancelled) return;
      if (!writer.write(r)) await writer.drained();
    }
  } finally {
    writer.flush();
  }
}

/** A raw HTTP/2 gRPC call: every DATA chunk as it came, and the messages parsed out of them. */
function rawCall(port: number, path: string, body: Uint8Array) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  // The servers are shut down with the session still open, which it reports as an error.
  session.on("error", () => {});
  const framed = Buffer.alloc(5 + body.length);
  framed.writeUInt32BE(body.length, 1);
  framed.set(body, 5);
  const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
  stream.end(framed);
  const chunks: Buffer[] = [];
  const messages: Buffer[] = [];
  let pending = Buffer.alloc(0);
  let trailers: http2.IncomingHttpHeaders | undefined;
  let headers: http2.IncomingHttpHeaders | undefined;
  stream.on("response", (h) => void (headers = h));
  stream.on("data", (chunk: Buffer) => {
    chunks.push(chunk);
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
      const n = pending.readUInt32BE(1);
      messages.push(pending.subarray(5, 5 + n));
      pending = pending.subarray(5 + n);
    }
  });
  stream.on("trailers", (t) => void (trailers = t));
  const ended = new Promise<void>((resolve) => stream.on("close", resolve));
  return {
    stream,
    chunks,
    messages,
    ended,
    trailers: () => trailers,
    headers: () => headers,
    close: () => {
      stream.close();
      session.close();
    },
  };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
function onCleanup(f: () => unknown): void {
  cleanups.push(f);
}
function serving(server: grpc.Server): void {
  onCleanup(() => server.forceShutdown());
}

const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * A server that writes messages 0…n-1 in one turn through a stream writer and ends the call, read
 * to its end by a raw client, which must get them all, in order, and an OK status. Returns how
 * many DATA chunks they came in and what the writer reported.
 */
async function writeNumbers(
  n: number,
  options: { readonly prepare?: (call: grpc.ServerWritableStream<Buffer, Buffer>) => void; readonly server?: grpc.ServerOptions } = {},
): Promise<{ chunks: number; reasons: string[] }> {
  const reasons: string[] = [];
  const { server, port } = await startServer((call) => {
    options.prepare?.(call);
    const writer = createStreamWriter(call as grpc.ServerWritableStream<unknown, unknown>, (b) => b as Buffer, (r) => reasons.push(r));
    void writeAll(writer, call, upTo(n).map((i) => numbered(i))).then(() => call.end());
  }, options.server);
  serving(server);
  const c = rawCall(port, PATH, new Uint8Array());
  onCleanup(c.close);
  await c.ended;
  expect(c.messages.map((m) => m.readUInt32BE(0))).toEqual(upTo(n));
  expect(c.trailers()?.["grpc-status"]).toBe("0");
  return { chunks: c.chunks.length, reasons };
}

describe("createStreamWriter", () => {
  it("writes the responses of one turn in one DATA frame, in order, then the status", async () => {
    const { chunks, reasons } = await writeNumbers(200);
    // grpc-js on its own sends each message in a frame of its own: 200 here.
    expect(chunks).toBe(1);
    expect(reasons).toEqual([]);
  });

  it("tells the producer to wait once its queue and the stream's buffer reach the high-water mark, and loses nothing", async () => {
    const size = 2000;
    const count = 200;
    let firstRefusal: number | undefined;
    let highWaterMark = 0;
    const { server, port } = await startServer((call) => {
      highWaterMark = (call as unknown as { call: { stream: http2.Http2Stream } }).call.stream.writableHighWaterMark;
      const writer = createStreamWriter(call as grpc.ServerWritableStream<unknown, unknown>, (b) => b as Buffer, () => {});
      void (async () => {
        for (let i = 0; i < count; i++) {
          if (writer.write(numbered(i, size))) continue;
          firstRefusal ??= i;
          await writer.drained();
        }
        writer.flush();
        call.end();
      })();
    });
    serving(server);
    const c = rawCall(port, PATH, new Uint8Array());
    onCleanup(c.close);
    await c.ended;
    // Not a turn's worth (400 KB here): no more than the stream's own buffer would hold.
    expect(highWaterMark).toBeGreaterThan(0);
    expect(firstRefusal).toBe(Math.ceil(highWaterMark / (size + 5)) - 1);
    expect(c.messages.map((m) => m.readUInt32BE(0))).toEqual(upTo(count));
    expect(c.messages.every((m) => m.length === size && m.subarray(4).every((x) => x === 0x61))).toBe(true);
    expect(c.trailers()?.["grpc-status"]).toBe("0");
  });

  it("stops taking responses while the client does not read, and delivers them all once it does", async () => {
    let produced = 0;
    function* forever(): Generator<Buffer> {
      for (;;) yield numbered(produced++, 100);
    }
    let cancelled = false;
    const { server, port } = await startServer((call) => {
      call.on("cancelled", () => (cancelled = true));
      const writer = createStreamWriter(call as grpc.ServerWritableStream<unknown, unknown>, (b) => b as Buffer, () => {});
      void writeAll(writer, call, forever());
    });
    serving(server);
    const c = rawCall(port, PATH, new Uint8Array());
    onCleanup(c.close);
    c.stream.pause();
    await until(() => produced > 0);
    await new Promise((r) => setTimeout(r, 200));
    const stalledAt = produced;
    await new Promise((r) => setTimeout(r, 200));
    // Held by HTTP/2 flow control (64 KiB windows) plus the buffers on each side.
    expect(produced).toBe(stalledAt);
    expect(stalledAt).toBeLessThan(20_000);
    c.stream.resume();
    await until(() => c.messages.length >= stalledAt + 1000);
    expect(c.messages.slice(0, stalledAt + 1000).map((m) => m.readUInt32BE(0))).toEqual(Array.from({ length: stalledAt + 1000 }, (_, i) => i));
    c.close();
    await until(() => cancelled);
  });

  it("ends an errored stream with its status after the responses written before the error", async () => {
    const { server, port } = await startServer((call) => {
      const writer = createStreamWriter(call as grpc.ServerWritableStream<unknown, unknown>, (b) => b as Buffer, () => {});
      function* thenFail(): Generator<Buffer> {
        yield numbered(1);
        yield numbered(2);
        throw new Error("boom");
      }
      writeAll(writer, call, thenFail()).catch(() => call.emit("error", { code: grpc.status.FAILED_PRECONDITION, details: "boom" }));
    });
    serving(server);
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    onCleanup(() => client.close());
    const got: number[] = [];
    const status = await new Promise<grpc.StatusObject | grpc.ServiceError>((resolve) => {
      const call = client.makeServerStreamRequest(PATH, raw, raw, Buffer.alloc(0));
      call.on("data", (b: Buffer) => got.push(b.readUInt32BE(0)));
      call.on("error", resolve);
    });
    expect(got).toEqual([1, 2]);
    expect(status).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: "boom" });
  });

  it("takes nothing once the client has cancelled, and reports nothing", async () => {
    const reasons: string[] = [];
    let writer: StreamWriter | undefined;
    let theCall: grpc.ServerWritableStream<Buffer, Buffer> | undefined;
    const { server, port } = await startServer((call) => {
      theCall = call;
      writer = createStreamWriter(call as grpc.ServerWritableStream<unknown, unknown>, (b) => b as Buffer, (r) => reasons.push(r));
    });
    serving(server);
    const c = rawCall(port, PATH, new Uint8Array());
    onCleanup(c.close);
    await until(() => writer !== undefined);
    c.stream.close(http2.constants.NGHTTP2_CANCEL);
    await until(() => theCall?.cancelled === true);
    expect(writer?.write(numbered(1))).toBe(true);
    writer?.flush();
    await expect(writer?.drained()).resolves.toBeUndefined();
    expect(reasons).toEqual([]);
  });

  it("drops a queue the call ended before (as its deadline does), and the status still reaches the client", async () => {
    const { server, port } = await startServer((call) => {
      const writer = createStreamWriter(call as grpc.ServerWritableStream<unknown, unknown>, (b) => b as Buffer, () => {});
      writer.write(numbered(0));
      writer.flush();
      writer.write(numbered(1));
      call.end();
    });
    serving(server);
    const c = rawCall(port, PATH, new Uint8Array());
    onCleanup(c.close);
    await c.ended;
    expect(c.messages.map((m) => m.readUInt32BE(0))).toEqual([0]);
    expect(c.trailers()?.["grpc-status"]).toBe("0");
  });

  it("goes through call.write, and says why, where grpc-js's call has no HTTP/2 stream inside (a server interceptor)", async () => {
    const passThrough: grpc.ServerInterceptor = (_method, call) => new grpc.ServerInterceptingCall(call);
    const { chunks, reasons } = await writeNumbers(50, { server: { interceptors: [passThrough] } });
    expect(chunks).toBeGreaterThan(1);
    expect(reasons).toEqual(["grpc-js's server call has no call.stream HTTP/2 stream"]);
  });

  it("goes through call.write, and says why, where sending the call's metadata does not send the HTTP/2 headers", async () => {
    const { reasons } = await writeNumbers(20, {
      // As if grpc-js sent its headers later than on sendMetadata: grpc-js's own write still sends them.
      prepare: (call) => (call.sendMetadata = () => {}),
    });
    expect(reasons).toEqual(["grpc-js did not send the response headers on sendMetadata"]);
  });
});

describe("registerGrpcService's server streams", () => {
  it("fall back to grpc-js's writes behind a server interceptor: the same messages, and one warning however many calls", async () => {
    const server = new grpc.Server({ interceptors: [(_method, call) => new grpc.ServerInterceptingCall(call)] });
    serving(server);
    const warnings: Readonly<Record<string, unknown>>[] = [];
    const logger = { info: () => {}, warn: (msg: string, fields?: Readonly<Record<string, unknown>>) => void warnings.push({ msg, ...fields }), error: () => {} };
    const impl: Partial<ServiceImpl<typeof DecisionService>> = {
      // Plain message init shapes (not self-encoding), as most handlers return.
      async *watchEvents() {
        for (let i = 1; i <= 3; i++) yield { kind: { case: "event", value: { sequence: BigInt(i), type: EventType.METER_CHANGED } } };
      },
    };
    registerGrpcService(server, DecisionService, impl as ServiceImpl<typeof DecisionService>, { maxMessageBytes: 1024, logger });
    const port = await bind(server);
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    onCleanup(() => client.close());
    const watch = () =>
      new Promise<bigint[]>((resolve, reject) => {
        const got: bigint[] = [];
        const body = Buffer.from(toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, {})));
        const call = client.makeServerStreamRequest("/limitr.v1.DecisionService/WatchEvents", raw, (b: Buffer) => fromBinary(WatchEventsResponseSchema, b), body);
        call.on("data", (r: WatchEventsResponse) => got.push(r.kind.case === "event" ? r.kind.value.sequence : -1n));
        call.on("error", reject);
        call.on("end", () => resolve(got));
      });
    expect(await watch()).toEqual([1n, 2n, 3n]);
    expect(await watch()).toEqual([1n, 2n, 3n]);
    expect(warnings).toEqual([
      { msg: "cannot write a turn's stream responses together; writing them one by one", service: "limitr.v1.DecisionService", reason: "grpc-js's server call has no call.stream HTTP/2 stream" },
    ]);
  });
});

describe("the sidecar's WatchEvents", () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it("replays stored events several to a DATA frame, and warns of nothing", async () => {
    h = await startHarness();
    const from = h.store.lastSequence() + 1;
    for (let i = 1; i <= 30; i++) await unary(h.decision, "Allow", { customer_id: "sw", items: [{ entitlement: "gpt_tokens", amount: i }] });
    const port = Number(h.address.slice(h.address.lastIndexOf(":") + 1));
    const req = toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, { fromSequence: BigInt(from), customerId: "sw", types: [EventType.METER_CHANGED] }));
    const c = rawCall(port, "/limitr.v1.DecisionService/WatchEvents", req);
    onCleanup(c.close);
    await until(() => c.messages.length >= 30);
    expect(c.messages.length).toBe(30);
    // One frame per message before; the 30 are read from the log in one turn.
    expect(c.chunks.length).toBeLessThanOrEqual(3);
    expect(h.logs.filter((l) => l.level === "warn")).toEqual([]);
  });

  it("sends the response headers as a live stream starts, before any event matches", async () => {
    h = await startHarness();
    const port = Number(h.address.slice(h.address.lastIndexOf(":") + 1));
    // Live only, no send_position, a filter nothing matches: no message for as long as it lasts.
    const req = toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, { customerId: "nobody-yet" }));
    const c = rawCall(port, "/limitr.v1.DecisionService/WatchEvents", req);
    onCleanup(c.close);
    await until(() => c.headers() !== undefined);
    expect(c.headers()).toMatchObject({ ":status": 200, "content-type": "application/grpc+proto" });
    expect(c.messages).toEqual([]);
    // The events still come after them, each its own message.
    await unary(h.decision, "Allow", { customer_id: "nobody-yet", items: [{ entitlement: "gpt_tokens", amount: 1 }] });
    await until(() => c.messages.length >= 1);
    expect(fromBinary(WatchEventsResponseSchema, c.messages[0]!).kind.case).toBe("event");
  });
});
