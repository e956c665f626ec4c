/**
 * The HTTP endpoint over a real sidecar server (engine + memory store), on 127.0.0.1:0:
 * /readyz follows the gRPC health state (503 before SERVING and once shutdown began), in-flight
 * calls finish during shutdown while new connections are refused, streams end at shutdown, the
 * request size limit applies, and a binary message that does not decode is INVALID_ARGUMENT.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { create, toBinary } from "@bufbuild/protobuf";
import { createConnectTransport } from "@connectrpc/connect-node";
import { connect } from "node:net";
import { gzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { createEngine, type StateRecord } from "../../src/engine/index.js";
import { ImportStateRequestSchema } from "../../src/gen/limitr/v1/admin_pb.js";
import { AllowRequestSchema, DecisionService, WatchEventsRequestSchema } from "../../src/gen/limitr/v1/decision_pb.js";
import { createHttpEndpoint, createSidecarServer, type CallEnd, type HttpEndpoint, type SidecarServer, type StateAdmin } from "../../src/server/index.js";
import { createMemoryStore, type MemoryStore } from "../../src/store/memory-store.js";
import { examplePolicy } from "./harness.js";

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

interface Setup {
  readonly server: SidecarServer;
  readonly http: HttpEndpoint;
  readonly base: string;
  /** Holds every commit until `release()`; `reached` resolves when one is waiting. */
  readonly gate: { reached: Promise<void>; release(): void; close(): void };
}

let open: Setup | undefined;
afterEach(async () => {
  open?.gate.release();
  await Promise.all([open?.server.shutdown(0), open?.http.close(0)]);
  open = undefined;
});

async function setup(options: { maxMessageBytes?: number; importState?: StateAdmin["importState"]; calls?: CallEnd[] } = {}): Promise<Setup> {
  const store = createMemoryStore();
  let enabled = false;
  let reach!: () => void;
  let release!: () => void;
  const reached = new Promise<void>((r) => (reach = r));
  const released = new Promise<void>((r) => (release = r));
  const gated = new Proxy(store, {
    get(target, p, receiver) {
      if (p === "commit") {
        return async (...args: Parameters<MemoryStore["commit"]>) => {
          if (enabled) {
            reach();
            await released;
          }
          return target.commit(...args);
        };
      }
      return Reflect.get(target, p, receiver) as unknown;
    },
  });
  const policy = examplePolicy("combined.yaml");
  const engine = createEngine({ store: gated, policy: () => policy, clock: Date.now, newId: () => crypto.randomUUID() });
  const server = createSidecarServer({
    engine,
    events: store,
    policyStatus: () => ({ version: policy.version, appliedAt: 0, source: "test", lastErrors: [], lastRejectedAt: undefined, rejectionsSinceApplied: 0 }),
    state: { exportState: () => [], importState: options.importState ?? (async () => ({ count: 0 })) },
    logger: quiet,
    ...(options.maxMessageBytes === undefined ? {} : { maxMessageBytes: options.maxMessageBytes }),
  });
  const http = createHttpEndpoint({
    decisionService: server.decisionService,
    adminService: server.adminService,
    shutdownSignal: server.shutdownSignal,
    maxMessageBytes: server.maxMessageBytes,
    isServing: () => server.isServing(),
    logger: quiet,
    ...(options.calls ? { callObserver: { callEnded: (c: CallEnd) => options.calls?.push(c) } } : {}),
  });
  const base = `http://${await http.listen("127.0.0.1:0")}`;
  open = {
    server,
    http,
    base,
    gate: {
      reached,
      release,
      close: () => {
        enabled = true;
      },
    },
  };
  return open;
}

const status = async (url: string, init?: RequestInit): Promise<number> => {
  const res = await fetch(url, init);
  await res.arrayBuffer();
  return res.status;
};

const allowJson = (base: string, customerId: string, amount = 1): Promise<Response> =>
  fetch(`${base}/limitr.v1.DecisionService/Allow`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ customerId, items: [{ entitlement: "gpt_tokens", amount }] }),
  });

describe("HTTP endpoint", () => {
  it("/readyz is 503 until SERVING, 200 while serving, 503 once shutdown began; /healthz is 200 throughout", async () => {
    const { server, base } = await setup();
    expect(await status(`${base}/readyz`)).toBe(503);
    expect(await status(`${base}/healthz`)).toBe(200);
    server.setServing(true);
    expect(await status(`${base}/readyz`)).toBe(200);
    const stopping = server.shutdown(10_000); // the gRPC side only: this HTTP port stays open
    expect(await status(`${base}/readyz`)).toBe(503);
    expect(await status(`${base}/healthz`)).toBe(200);
    server.setServing(true); // never SERVING again once shutdown began
    expect(await status(`${base}/readyz`)).toBe(503);
    await stopping;
  });

  it("without a metrics source /metrics is 404; HEAD works on the probes", async () => {
    const { base } = await setup();
    expect(await status(`${base}/metrics`)).toBe(404);
    expect(await status(`${base}/healthz`, { method: "HEAD" })).toBe(200);
  });

  it("shutdown lets an in-flight call finish and answer, and refuses new connections", async () => {
    const { server, http, base, gate } = await setup();
    server.setServing(true);
    gate.close();
    const inFlight = allowJson(base, "drain-1", 5);
    await gate.reached; // the call is inside the engine, waiting for its commit
    const closed = Promise.all([server.shutdown(60_000), http.close(60_000)]);
    await expect(fetch(`${base}/healthz`)).rejects.toThrow(); // not accepting any more
    gate.release();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ allowed: true, customerId: "drain-1", items: [{ value: 5 }] });
    await closed;
  });

  it("a WatchEvents stream over HTTP ends with unavailable at shutdown, and close does not wait for the grace period", async () => {
    const { server, http, base } = await setup();
    server.setServing(true);
    const client = createClient(DecisionService, createConnectTransport({ baseUrl: base, httpVersion: "1.1" }));
    expect((await (await allowJson(base, "w-1")).json()) as object).toMatchObject({ allowed: true });
    const stream = client.watchEvents({ fromSequence: 1n })[Symbol.asyncIterator]();
    expect((await stream.next()).done).toBe(false);
    const closed = Promise.all([server.shutdown(600_000), http.close(600_000)]);
    const ended = await (async () => {
      try {
        while (!(await stream.next()).done);
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    expect(ended).toBeInstanceOf(ConnectError);
    expect((ended as ConnectError).code).toBe(Code.Unavailable);
    await closed; // a 600 s grace would time the test out: the stream's end let close finish
  });

  it("a request above the size limit is INVALID_ARGUMENT in Connect and gRPC-Web, and changes nothing", async () => {
    const { server, base } = await setup({ maxMessageBytes: 512 });
    server.setServing(true);
    const big = await fetch(`${base}/limitr.v1.DecisionService/Allow`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ customerId: "big", items: [{ entitlement: "gpt_tokens", amount: 1 }], attributes: { pad: "x".repeat(600) } }),
    });
    // As on the gRPC port (SPEC §6): INVALID_ARGUMENT naming the size and the limit.
    expect(big.status).toBe(400);
    expect(await big.json()).toMatchObject({ code: "invalid_argument", message: expect.stringMatching(/^request message is \d+ bytes, over the limit of 512 bytes$/) });
    // gRPC-Web as a browser sends it (a framed body with its length): a trailers-only status.
    const message = toBinary(AllowRequestSchema, create(AllowRequestSchema, { customerId: "big", items: [{ entitlement: "gpt_tokens", amount: 1 }], attributes: { pad: "x".repeat(600) } }));
    const frame = new Uint8Array(5 + message.length);
    new DataView(frame.buffer).setUint32(1, message.length);
    frame.set(message, 5);
    const web = await fetch(`${base}/limitr.v1.DecisionService/Allow`, { method: "POST", headers: { "content-type": "application/grpc-web+proto" }, body: frame });
    expect(web.headers.get("grpc-status")).toBe(String(Code.InvalidArgument));
    expect(decodeURIComponent(web.headers.get("grpc-message") ?? "")).toMatch(/over the limit of 512 bytes/);
    const meters = await fetch(`${base}/limitr.v1.DecisionService/GetMeters`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ customerId: "big", entitlements: ["gpt_tokens"] }),
    });
    expect(await meters.json()).toMatchObject({ meters: [{ value: 0 }] });
  });

  it("gRPC-Web: the limit counts the message, not its 5-byte frame prefix", async () => {
    const { server, base } = await setup({ maxMessageBytes: 512 });
    server.setServing(true);
    /** A gRPC-Web Allow whose message is exactly `size` bytes. */
    const framed = (size: number): Uint8Array => {
      let pad = size;
      let message = new Uint8Array();
      while (message.length !== size) {
        message = toBinary(AllowRequestSchema, create(AllowRequestSchema, { customerId: "edge", items: [{ entitlement: "gpt_tokens", amount: 1 }], attributes: { pad: "x".repeat(pad) } }));
        pad += size - message.length;
      }
      const frame = new Uint8Array(5 + message.length);
      new DataView(frame.buffer).setUint32(1, message.length);
      frame.set(message, 5);
      return frame;
    };
    const send = (body: Uint8Array) => fetch(`${base}/limitr.v1.DecisionService/Allow`, { method: "POST", headers: { "content-type": "application/grpc-web+proto" }, body });
    const atLimit = await send(framed(512));
    // Decided: the status is in the trailer frame at the end of the body, not a refusal's header.
    expect(atLimit.headers.get("grpc-status")).toBeNull();
    expect(Buffer.from(await atLimit.arrayBuffer()).toString("latin1")).toMatch(/grpc-status: ?0/);
    const over = await send(framed(513));
    expect(over.headers.get("grpc-status")).toBe(String(Code.InvalidArgument));
    expect(decodeURIComponent(over.headers.get("grpc-message") ?? "")).toBe("request message is 513 bytes, over the limit of 512 bytes");
  });

  // --max-message-bytes is a per-MESSAGE limit (as on the gRPC port); a client stream's body holds
  // many messages, so its declared length must not be judged as one message.
  const importProtocols = [
    ["Connect JSON", "application/connect+json"],
    ["Connect binary", "application/connect+proto"],
    ["gRPC-Web", "application/grpc-web+proto"],
  ] as const;
  /** A serving endpoint with a 512-byte limit whose ImportState keeps what it is given, and a way to post to it. */
  async function importEndpoint(contentType: string) {
    const imported: StateRecord[] = [];
    const { server, base } = await setup({
      maxMessageBytes: 512,
      importState: async (records) => {
        for await (const r of records) imported.push(r);
        return { count: imported.length };
      },
    });
    server.setServing(true);
    const post = (body: Buffer) =>
      fetch(`${base}/limitr.v1.AdminService/ImportState`, {
        method: "POST",
        headers: { "content-type": contentType, "content-length": String(body.length) },
        body,
      });
    return { imported, post };
  }

  it.each(importProtocols)("ImportState over %s: a body of many small messages, over the limit in total, is imported", async (_name, contentType) => {
    const { imported, post } = await importEndpoint(contentType);
    const messages = Array.from({ length: 40 }, (_, i) => importMessage(contentType, `customer-${i}`, ""));
    for (const m of messages) expect(m.length).toBeLessThan(100);
    const body = Buffer.concat(messages);
    expect(body.length).toBeGreaterThan(512);
    const res = await post(body);
    expect(res.status).toBe(200);
    expect(streamOutcome(contentType, res.headers, Buffer.from(await res.arrayBuffer()))).toBe("ok");
    expect(imported.map((r) => (r.kind === "customer" ? r.customer.id : r.kind))).toEqual(messages.map((_, i) => `customer-${i}`));
  });

  it.each(importProtocols)("ImportState over %s: one message over the limit is still refused", async (_name, contentType) => {
    const { imported, post } = await importEndpoint(contentType);
    const res = await post(importMessage(contentType, "big", "x".repeat(600)));
    expect(streamOutcome(contentType, res.headers, Buffer.from(await res.arrayBuffer()))).toMatch(/512/);
    expect(imported).toEqual([]);
  });

  it.each(importProtocols)("WatchEvents over %s: the response headers go out as the stream starts, before any event", async (_name, contentType) => {
    const { server, base } = await setup();
    server.setServing(true);
    const watch = (fields: { customerId: string; fromSequence?: bigint }, signal?: AbortSignal): Promise<Response> => {
      const message = contentType.endsWith("+json")
        ? Buffer.from(JSON.stringify({ ...fields, fromSequence: fields.fromSequence?.toString() }))
        : Buffer.from(toBinary(WatchEventsRequestSchema, create(WatchEventsRequestSchema, fields)));
      const head = Buffer.alloc(5);
      head.writeUInt32BE(message.length, 1);
      return fetch(`${base}/limitr.v1.DecisionService/WatchEvents`, {
        method: "POST",
        headers: { "content-type": contentType },
        body: Buffer.concat([head, message]),
        ...(signal ? { signal } : {}),
      });
    };
    // Live only, no send_position, nothing matching yet: fetch resolves on the headers alone.
    const stop = new AbortController();
    const noHeaders = setTimeout(() => stop.abort(new Error("no response headers within 5 s")), 5000);
    const res = await watch({ customerId: "quiet" }, stop.signal);
    clearTimeout(noHeaders);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe(contentType);
    // The events still follow.
    const reader = res.body!.getReader();
    expect((await allowJson(base, "quiet")).status).toBe(200);
    const { value } = await reader.read();
    expect(value!.length).toBeGreaterThan(5);
    stop.abort();
    // An error of the handler's own still ends the stream, in its body.
    const bad = await watch({ customerId: "quiet", fromSequence: 1_000_000n });
    expect(bad.status).toBe(200);
    expect(streamOutcome(contentType, bad.headers, Buffer.from(await bad.arrayBuffer()))).toMatch(/from_sequence: 1000000 is past the newest event/);
  });

  it("an HTTP/1.0 request without a Host header is 400, and the port keeps serving", async () => {
    const { base } = await setup();
    const { hostname, port } = new URL(base);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => {
        socket.end("POST /limitr.v1.DecisionService/Allow HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}");
      });
      let text = "";
      socket.setEncoding("latin1");
      socket.on("data", (d: string) => (text += d));
      socket.on("close", () => resolve(text));
      socket.on("error", reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(await status(`${base}/healthz`)).toBe(200);
  });

  // connect-node answers a binary message it cannot parse with INTERNAL (HTTP 500, grpc-status 13);
  // the gRPC port says INVALID_ARGUMENT for the same bytes (SPEC §6), and so must this port.
  describe("a binary message that does not decode", () => {
    /** A length-delimited field: tag, one-byte length, bytes. */
    const field = (tag: number, bytes: Uint8Array | string): Buffer => {
      const b = Buffer.from(bytes);
      return Buffer.concat([Buffer.from([tag, b.length]), b]);
    };
    const amountOne = Buffer.from([0x11, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]); // UsageItem.amount = 1.0
    const item = (entitlement: Uint8Array | string, rest: Buffer = Buffer.alloc(0)): Buffer => field(0x12, Buffer.concat([field(0x0a, entitlement), rest]));
    const valid = Buffer.concat([field(0x0a, "bin-1"), item("gpt_tokens", amountOne)]);
    // What the gRPC port answers for each of these (protobuf-es's reason, behind the request type).
    const undecodable = [
      ["a customer_id that is not UTF-8", Buffer.concat([field(0x0a, Buffer.from([0x61, 0xff, 0x62])), item("gpt_tokens", amountOne)]), "The encoded data was not valid for encoding utf-8"],
      ["an entitlement that is not UTF-8", Buffer.concat([field(0x0a, "bin-1"), item(Buffer.from([0xc3]))]), "The encoded data was not valid for encoding utf-8"],
      ["an amount sent as a varint", Buffer.concat([field(0x0a, "bin-1"), item("gpt_tokens", Buffer.from([0x10, 0x05]))]), "Offset is outside the bounds of the DataView"],
      ["a truncated message", valid.subarray(0, 12), "premature EOF"],
    ] as const;
    const frame = (message: Uint8Array, flags = 0): Buffer => {
      const head = Buffer.alloc(5);
      head.writeUInt8(flags, 0);
      head.writeUInt32BE(message.length, 1);
      return Buffer.concat([head, message]);
    };
    const post = (base: string, path: string, contentType: string, body: Buffer, headers: Record<string, string> = {}) =>
      fetch(`${base}/limitr.v1.${path}`, { method: "POST", headers: { "content-type": contentType, ...headers }, body });
    /** The outcome of a unary call in any of the port's protocols: "ok", or the code and message. */
    async function outcome(res: Response, contentType: string): Promise<string> {
      const body = Buffer.from(await res.arrayBuffer());
      if (contentType.startsWith("application/grpc-web") || contentType.startsWith("application/connect+")) return streamOutcome(contentType, res.headers, body);
      if (res.status === 200) return "ok";
      const error = JSON.parse(body.toString("utf8")) as { code: string; message?: string };
      return `${error.code} ${error.message ?? ""}`;
    }
    const meterOf = async (base: string, customerId: string): Promise<unknown> => {
      const res = await post(base, "DecisionService/GetMeters", "application/json", Buffer.from(JSON.stringify({ customerId, entitlements: ["gpt_tokens"] })));
      return ((await res.json()) as { meters: { value: number }[] }).meters[0]?.value;
    };

    const protocols = [
      ["Connect", "application/proto", (m: Buffer) => m, "invalid_argument"],
      ["gRPC-Web", "application/grpc-web+proto", (m: Buffer) => frame(m), String(Code.InvalidArgument)],
    ] as const;

    it.each(protocols)("over %s: INVALID_ARGUMENT with the gRPC port's message, counted, and nothing changes", async (name, contentType, wrap, code) => {
      const calls: CallEnd[] = [];
      const { server, base } = await setup({ calls });
      server.setServing(true);
      for (const [what, message, reason] of undecodable) {
        const res = await post(base, "DecisionService/Allow", contentType, wrap(message));
        expect(await outcome(res, contentType), what).toBe(`${code} request: not a valid limitr.v1.AllowRequest: ${reason}`);
      }
      expect(calls.map((c) => `${c.rpc} ${c.protocol} ${c.code}`)).toEqual(undecodable.map(() => `Allow ${name === "Connect" ? "connect" : "grpc-web"} invalid_argument`));
      expect(await meterOf(base, "bin-1")).toBe(0);
      // The same body, decodable, still goes through.
      expect(await outcome(await post(base, "DecisionService/Allow", contentType, wrap(valid)), contentType)).toBe("ok");
      expect(await meterOf(base, "bin-1")).toBe(1);
    });

    it("a compressed body is judged once inflated, as connect-node reads it", async () => {
      const { server, base } = await setup();
      server.setServing(true);
      const [, bad, reason] = undecodable[0];
      const connect = await post(base, "DecisionService/Allow", "application/proto", gzipSync(bad), { "content-encoding": "gzip" });
      expect(await outcome(connect, "application/proto")).toBe(`invalid_argument request: not a valid limitr.v1.AllowRequest: ${reason}`);
      const web = await post(base, "DecisionService/Allow", "application/grpc-web+proto", frame(gzipSync(bad), 1), { "grpc-encoding": "gzip" });
      expect(await outcome(web, "application/grpc-web+proto")).toBe(`${Code.InvalidArgument} request: not a valid limitr.v1.AllowRequest: ${reason}`);
      expect(await outcome(await post(base, "DecisionService/Allow", "application/proto", gzipSync(valid), { "content-encoding": "gzip" }), "application/proto")).toBe("ok");
      expect(await meterOf(base, "bin-1")).toBe(1);
    });

    it("a server stream's request over streaming Connect is INVALID_ARGUMENT", async () => {
      const { server, base } = await setup();
      server.setServing(true);
      // An unknown length-delimited field that claims more bytes than follow.
      const res = await post(base, "AdminService/ExportState", "application/connect+proto", frame(Buffer.from([0x7a, 0x05, 0x61])));
      expect(await outcome(res, "application/connect+proto")).toBe("invalid_argument request: not a valid limitr.v1.ExportStateRequest: premature EOF");
    });

    it.each(importProtocols.filter(([, t]) => t.endsWith("+proto")))("ImportState over %s: the messages before one that does not decode are imported, then INVALID_ARGUMENT", async (_name, contentType) => {
      const { imported, post: postImport } = await importEndpoint(contentType);
      const good = importMessage(contentType, "before-bad", "");
      const res = await postImport(Buffer.concat([good, frame(Buffer.from([0x0a, 0x7f, 0x0a])), importMessage(contentType, "after-bad", "")]));
      const code = contentType.startsWith("application/grpc-web") ? String(Code.InvalidArgument) : "invalid_argument";
      expect(streamOutcome(contentType, res.headers, Buffer.from(await res.arrayBuffer()))).toBe(`${code} request: not a valid limitr.v1.ImportStateRequest: premature EOF`);
      expect(imported.map((r) => (r.kind === "customer" ? r.customer.id : r.kind))).toEqual(["before-bad"]);
    });

    it("Connect JSON is left as connect-node answers it", async () => {
      const { server, base } = await setup();
      server.setServing(true);
      const res = await post(base, "DecisionService/Allow", "application/json", Buffer.from(JSON.stringify({ customerId: 5, items: [{ entitlement: "gpt_tokens" }] })));
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ code: "invalid_argument", message: "cannot decode field limitr.v1.AllowRequest.customer_id from JSON: expected string, got 5" });
    });
  });
});

/** One ImportState request (a customer record) in a streaming envelope: flags 0, length, message. */
function importMessage(contentType: string, id: string, pad: string): Buffer {
  const fields = pad ? { id, metadata: { pad } } : { id };
  const message = contentType.endsWith("+json")
    ? Buffer.from(JSON.stringify({ record: { customer: fields } }))
    : Buffer.from(toBinary(ImportStateRequestSchema, create(ImportStateRequestSchema, { record: { kind: { case: "customer", value: fields } } })));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** "ok", or the error message, from a Connect end-of-stream message or gRPC-Web trailers. */
function streamOutcome(contentType: string, headers: Headers, body: Buffer): string {
  const frames: { flags: number; data: Buffer }[] = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const length = body.readUInt32BE(at + 1);
    frames.push({ flags: body.readUInt8(at), data: body.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  if (contentType.startsWith("application/grpc-web")) {
    // A trailers-only answer carries the status in the headers; otherwise it is the 0x80 frame.
    const trailers = frames.find((f) => f.flags & 0x80)?.data.toString("utf8") ?? "";
    const status = headers.get("grpc-status") ?? /grpc-status:\s*(\d+)/.exec(trailers)?.[1];
    const message = headers.get("grpc-message") ?? /grpc-message:\s*(.*)/.exec(trailers)?.[1] ?? "";
    return status === "0" ? "ok" : `${status ?? "?"} ${decodeURIComponent(message.trim())}`;
  }
  // A refusal before the stream began is a unary-style JSON error, not an envelope.
  if (headers.get("content-type") === "application/json") {
    const error = JSON.parse(body.toString("utf8")) as { code: string; message?: string };
    return `${error.code} ${error.message ?? ""}`;
  }
  const end = frames.find((f) => f.flags & 0x02);
  if (!end) return `no end-of-stream message: ${body.toString("utf8")}`;
  const { error } = JSON.parse(end.data.toString("utf8")) as { error?: { code: string; message?: string } };
  return error ? `${error.code} ${error.message ?? ""}` : "ok";
}
