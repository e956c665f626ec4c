/**
 * The client's hand-written gRPC unary call against a real HTTP/2 server on a loopback port that
 * answers the way a test tells it to: what it sends (path, content type, deadline, the framed
 * request), and how it reads every answer a server or a dying connection can give. The sidecar
 * itself only gives the well-formed ones (test/client/limitr-client.test.ts, retries.test.ts).
 */
import { connect as connectSocket, createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { constants, createServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Code, type ConnectError } from "@connectrpc/connect";
import { Http2SessionManager } from "@connectrpc/connect-node";
import { DeleteCustomerResponseSchema } from "../../src/gen/limitr/v1/admin_pb.js";
import { DecisionService, ReleaseRequestSchema, ReleaseResponseSchema } from "../../src/gen/limitr/v1/decision_pb.js";
import { createUnaryCaller } from "../../src/client/grpc-unary.js";
import { createLimitrClient, LimitrError, type LimitrClient } from "../../src/client/index.js";

type Answer = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;

let server: Http2Server;
let address: string;
let answer: Answer;
/** The TCP connection the server accepted last (http2 hides it behind a proxy that refuses to close). */
let lastSocket: Socket | undefined;
/** What the server saw of each request: its headers, its body, and how its stream ended. */
let seen: { headers: IncomingHttpHeaders; body: Promise<Buffer>; rstCode: Promise<number> }[] = [];
const clients: LimitrClient[] = [];

beforeAll(async () => {
  server = createServer();
  server.on("connection", (socket: Socket) => (lastSocket = socket));
  // Resets and GOAWAYs are what these tests make happen; the server side only records them.
  server.on("session", (session) => session.on("error", () => undefined));
  server.on("stream", (stream, headers) => {
    stream.on("error", () => undefined);
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    seen.push({
      headers,
      body: new Promise((resolve) => stream.on("end", () => resolve(Buffer.concat(chunks)))),
      rstCode: new Promise((resolve) => stream.on("close", () => resolve(stream.rstCode))),
    });
    answer(stream, headers);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  seen = [];
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

function client(options: { timeoutMs?: number; retries?: number; at?: string } = {}): LimitrClient {
  const c = createLimitrClient({ address: options.at ?? address, retries: options.retries ?? 0, timeoutMs: options.timeoutMs ?? 2_000, initialBackoffMs: 1, maxBackoffMs: 5 });
  clients.push(c);
  return c;
}

const GRPC = { ":status": 200, "content-type": "application/grpc+proto" };

/** A length-prefixed gRPC message. */
function framed(bytes: Uint8Array, flag = 0): Buffer {
  const out = Buffer.alloc(5 + bytes.length);
  out[0] = flag;
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

const released = (value: boolean): Uint8Array => toBinary(ReleaseResponseSchema, create(ReleaseResponseSchema, { released: value }));

/** Headers, `body`, then trailers with `status` (a normal gRPC response). */
function reply(body: Buffer, status = "0"): Answer {
  return (stream) => {
    stream.respond(GRPC, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": status }));
    stream.end(body);
  };
}

/** The call's failure, which must be a LimitrError. */
async function failure(p: Promise<unknown>): Promise<LimitrError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(LimitrError);
  return e as LimitrError;
}

describe("the request", () => {
  it("is one framed message on the method's path, with the gRPC content type and the deadline", async () => {
    answer = reply(framed(released(true)));
    expect(await client({ timeoutMs: 250 }).release("res-1")).toBe(true);
    const [req] = seen;
    expect(req?.headers[":method"]).toBe("POST");
    expect(req?.headers[":path"]).toBe("/limitr.v1.DecisionService/Release");
    expect(req?.headers["content-type"]).toBe("application/grpc+proto");
    expect(req?.headers.te).toBe("trailers");
    expect(req?.headers["grpc-timeout"]).toBe("250m");
    const body = await req!.body;
    expect(body[0]).toBe(0);
    expect(body.readUInt32BE(1)).toBe(body.length - 5);
    expect(fromBinary(ReleaseRequestSchema, body.subarray(5)).reservationId).toBe("res-1");
  });

  it("with timeoutMs Infinity carries no deadline and waits (no timer overflow firing at once)", async () => {
    answer = (stream) => setTimeout(() => reply(framed(released(false)))(stream, {}), 30);
    const warnings: Error[] = [];
    const onWarning = (w: Error): number => warnings.push(w);
    process.on("warning", onWarning);
    try {
      expect(await client({ timeoutMs: Infinity }).release("res-2")).toBe(false);
    } finally {
      process.off("warning", onWarning);
    }
    expect(seen[0]?.headers["grpc-timeout"]).toBeUndefined();
    expect(warnings).toEqual([]);
  });

  it("with timeoutMs 0 fails with DEADLINE_EXCEEDED without sending anything", async () => {
    answer = reply(framed(released(true)));
    const c = client();
    const e = await failure(c.release("res-3", { timeoutMs: 0 }));
    expect(e.code).toBe("DEADLINE_EXCEEDED");
    // A call after it, on the same connection, is the first the server sees.
    expect(await c.release("res-3b")).toBe(true);
    expect(seen.map((s) => s.headers[":path"])).toHaveLength(1);
  });

  it("with timeoutMs NaN is a TypeError, not a call without a deadline", async () => {
    answer = reply(framed(released(true)));
    await expect(client().release("res-3c", { timeoutMs: Number.NaN })).rejects.toThrow(TypeError);
    expect(seen).toHaveLength(0);
  });
});

describe("the answer", () => {
  it("a trailers-only error is its status, with the percent-encoded message decoded", async () => {
    answer = (stream) => stream.respond({ ...GRPC, "grpc-status": "5", "grpc-message": "r%C3%A9servation 100%25 gone" }, { endStream: true });
    const e = await failure(client().release("res-4"));
    expect(e.code).toBe("NOT_FOUND");
    expect(e.message).toBe("Release: NOT_FOUND: réservation 100% gone");
  });

  it("a grpc-message that is not valid percent-encoding is shown as sent", async () => {
    answer = (stream) => stream.respond({ ...GRPC, "grpc-status": "3", "grpc-message": "bad %E0%A4%A field" }, { endStream: true });
    const e = await failure(client().release("res-5"));
    expect(e.code).toBe("INVALID_ARGUMENT");
    expect(e.message).toBe("Release: INVALID_ARGUMENT: bad %E0%A4%A field");
  });

  it("an HTTP error without a gRPC status maps as gRPC says (503 UNAVAILABLE and retried, 404 UNIMPLEMENTED)", async () => {
    answer = (stream) => stream.respond({ ":status": 503 }, { endStream: true });
    expect((await failure(client({ retries: 1 }).release("res-6"))).code).toBe("UNAVAILABLE");
    expect(seen).toHaveLength(2);
    answer = (stream) => stream.respond({ ":status": 404 }, { endStream: true });
    expect((await failure(client({ retries: 1 }).release("res-7"))).code).toBe("UNIMPLEMENTED");
    expect(seen).toHaveLength(3);
  });

  it.each([
    ["no message", Buffer.alloc(0), /carries no message/],
    ["a truncated message", framed(released(true)).subarray(0, 5 + 1), /expected one response message of 2 bytes, got 1/],
    ["two messages", Buffer.concat([framed(released(true)), framed(released(true))]), /expected one response message/],
    ["a compressed message", framed(released(true), 1), /compressed response/],
    ["bytes that are not the response message", framed(Buffer.from([0x0a, 0xff])), /does not parse/],
  ])("status OK with %s is INTERNAL, not a result", async (_, body, why) => {
    answer = reply(body);
    const e = await failure(client().release("res-8"));
    expect(e.code).toBe("INTERNAL");
    expect(e.message).toMatch(why);
  });

  it.each(["42", "", "0x5", "1.0"])("a grpc-status %j, which is no gRPC code, is INTERNAL", async (status) => {
    answer = reply(framed(released(true)), status);
    const e = await failure(client().release("res-9"));
    expect(e.code).toBe("INTERNAL");
    expect(e.message).toMatch(/invalid grpc-status/);
  });

  it("a response that is not gRPC (an HTML error page with status 200) is UNKNOWN, even with a grpc-status", async () => {
    answer = (stream) => {
      stream.respond({ ":status": 200, "content-type": "text/html" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(framed(released(true)));
    };
    const e = await failure(client().release("res-9b"));
    expect(e.code).toBe("UNKNOWN");
    expect(e.message).toMatch(/content type "text\/html", not a gRPC response/);
  });

  it("a stream that ends without trailers is INTERNAL", async () => {
    answer = (stream) => {
      stream.respond(GRPC);
      stream.end(framed(released(true)));
    };
    const e = await failure(client().release("res-10"));
    expect(e.code).toBe("INTERNAL");
    expect(e.message).toMatch(/without a gRPC status/);
  });

  it.each([
    // What a server going away answers a stream it will not process (a gRPC server shutting down).
    ["REFUSED_STREAM", "UNAVAILABLE", constants.NGHTTP2_REFUSED_STREAM],
    // What Node's HTTP/2 server answers a stream it has no memory for, before any handler runs.
    ["ENHANCE_YOUR_CALM", "RESOURCE_EXHAUSTED", constants.NGHTTP2_ENHANCE_YOUR_CALM],
    ["INTERNAL_ERROR", "INTERNAL", constants.NGHTTP2_INTERNAL_ERROR],
    // Not the caller's cancellation: the server's, or a connection going away under the stream.
    ["CANCEL", "UNAVAILABLE", constants.NGHTTP2_CANCEL],
  ])("a stream the server resets with %s is retried as a lost connection, then fails with %s", async (name, status, code) => {
    answer = (stream) => stream.close(code);
    const e = await failure(client({ retries: 2 }).release("res-11"));
    expect(seen).toHaveLength(3);
    expect(e.code).toBe(status);
    expect(e.message).toContain(name);
  });

  it("a refused stream was never processed: even a call that must not run twice is retried", async () => {
    // deleteCustomer is retried only when the request provably never reached the sidecar.
    const deleted = toBinary(DeleteCustomerResponseSchema, create(DeleteCustomerResponseSchema, { customer: { id: "cu-1" } }));
    answer = (stream, headers) => (seen.length === 1 ? stream.close(constants.NGHTTP2_REFUSED_STREAM) : reply(framed(deleted))(stream, headers));
    expect(await client({ retries: 1 }).deleteCustomer("cu-1")).toMatchObject({ id: "cu-1" });
    expect(seen).toHaveLength(2);
  });
});

describe("a connection lost under the call", () => {
  it.each([
    ["reset (TCP RST, as a crashed host's)", (socket: Socket) => socket.resetAndDestroy()],
    ["closed (FIN, as a killed process's)", (socket: Socket) => socket.destroy()],
  ])("%s is retried on a new connection and the retry's answer is the result", async (_, cut) => {
    answer = (stream) => {
      if (seen.length === 1) cut(lastSocket!);
      else reply(framed(released(true)))(stream, {});
    };
    expect(await client({ retries: 1 }).release("res-17")).toBe(true);
    expect(seen).toHaveLength(2);
  });

  it.each([
    ["reset (TCP RST)", (socket: Socket) => socket.resetAndDestroy()],
    ["closed (FIN)", (socket: Socket) => socket.destroy()],
  ])("%s with no retry left fails with UNAVAILABLE, not CANCELLED or ABORTED", async (_, cut) => {
    answer = () => cut(lastSocket!);
    const e = await failure(client({ retries: 0 }).release("res-19"));
    expect(e.code).toBe("UNAVAILABLE");
  });

  it.each([
    // grpc-js's forceShutdown, at the end of a sidecar's shutdown grace, destroys its sessions so.
    ["destroyed with CANCEL", (stream: ServerHttp2Stream) => stream.session?.destroy(undefined, constants.NGHTTP2_CANCEL)],
    ["sent a GOAWAY with INTERNAL_ERROR", (stream: ServerHttp2Stream) => stream.session?.goaway(constants.NGHTTP2_INTERNAL_ERROR)],
  ])("a session the server %s under the call is UNAVAILABLE, not INTERNAL", async (_, end) => {
    answer = (stream) => end(stream);
    const e = await failure(client({ retries: 0 }).release("res-20"));
    expect(e.code).toBe("UNAVAILABLE");
  });
});

describe("a connection that cannot be opened", () => {
  it("to a unix socket that does not exist is UNAVAILABLE, and retried even for a call that must not run twice", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "limitr-unix-")), "gone.sock");
    const attempts: unknown[] = [];
    const c = createLimitrClient({ address: `unix:${path}`, retries: 2, initialBackoffMs: 1, maxBackoffMs: 5, onRetry: (i) => attempts.push(i) });
    clients.push(c);
    const e = await failure(c.deleteCustomer("cu-2"));
    expect(e).toMatchObject({ code: "UNAVAILABLE", attempts: 3 });
    expect(((e.cause as Error).cause as { code?: string }).code).toBe("ENOENT");
    expect(attempts).toHaveLength(2);
  });
});

describe("a call given up on", () => {
  /** The server never answers; the test ends the stream from the client side. */
  const silent: Answer = () => undefined;

  it("past its deadline fails with DEADLINE_EXCEEDED and resets its stream on the server", async () => {
    answer = silent;
    const e = await failure(client({ timeoutMs: 100 }).release("res-13"));
    expect(e.code).toBe("DEADLINE_EXCEEDED");
    expect(await seen[0]!.rstCode).toBe(constants.NGHTTP2_CANCEL);
  });

  it("cancelled by the caller's signal fails with CANCELLED and resets its stream", async () => {
    answer = silent;
    const ctl = new AbortController();
    const call = client().release("res-14", { signal: ctl.signal });
    await waitFor(() => seen.length === 1);
    ctl.abort(new Error("user went away"));
    const e = await failure(call);
    expect(e.code).toBe("CANCELLED");
    expect(e.message).toMatch(/user went away/);
    expect(await seen[0]!.rstCode).toBe(constants.NGHTTP2_CANCEL);
  });

  it("in flight when the client closes fails with CANCELLED", async () => {
    answer = silent;
    const c = client({ retries: 5 });
    const call = c.release("res-15");
    await waitFor(() => seen.length === 1);
    c.close();
    expect((await failure(call)).code).toBe("CANCELLED");
    expect(seen).toHaveLength(1);
  });

  it("to a peer that accepts TCP and never speaks HTTP/2 fails at its deadline", async () => {
    const sockets: Socket[] = [];
    const mute: NetServer = createNetServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => mute.listen(0, "127.0.0.1", resolve));
    try {
      const at = `127.0.0.1:${(mute.address() as AddressInfo).port}`;
      // Without the deadline the call would wait for an answer for ever: the test times out.
      const e = await failure(client({ at, timeoutMs: 150 }).release("res-16"));
      expect(e.code).toBe("DEADLINE_EXCEEDED");
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => mute.close(resolve));
    }
  });

  it("while the connection is still being opened fails at its deadline, and the stream opened later is reset unanswered", async () => {
    // The address is looked up slowly, so the connection opens after the deadline.
    const port = (server.address() as AddressInfo).port;
    let socket: Socket | undefined;
    const session = new Http2SessionManager("http://slow.test", {}, {
      createConnection: () =>
        (socket = connectSocket({ port, host: "slow.test", autoSelectFamily: false, lookup: (_host, _options, done) => setTimeout(() => done(null, "127.0.0.1", 4), 300) })),
    });
    const unary = createUnaryCaller(session);
    answer = reply(framed(released(true)));
    const uncaught: unknown[] = [];
    const onUncaught = (e: unknown): number => uncaught.push(e);
    process.on("uncaughtException", onUncaught);
    try {
      const e = await unary(DecisionService.method.release, { reservationId: "res-18" }, { timeoutMs: 100, signal: new AbortController().signal }).then(
        () => undefined,
        (err: unknown) => err as ConnectError,
      );
      expect(e?.code).toBe(Code.DeadlineExceeded);
      // Once connected, the stream the call no longer wants is reset at once: the server never
      // answers it, and nothing is thrown on the way.
      await waitFor(() => socket !== undefined && !socket.connecting);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(uncaught).toEqual([]);
      for (const s of seen) expect(await s.rstCode).toBe(constants.NGHTTP2_CANCEL);
    } finally {
      process.off("uncaughtException", onUncaught);
      session.abort();
    }
  });
});

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  expect(condition()).toBe(true);
}
