/**
 * The renewal of the HTTP/2 sessions' stream Maps (src/server/young-stream-maps.ts), on a real
 * grpc-js server with a real client and real garbage collections: after each GC every open
 * session has a new Map holding the same streams, the streams keep working, closed sessions are
 * forgotten, and missing internals are reported once and change nothing. Whether the tables then
 * stay young is measured, not asserted: bench/ prints the sidecar's scavenge pauses.
 */
import type * as http2 from "node:http2";
import { createRequire } from "node:module";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { createYoungStreamMaps, sessionStreamMap } from "../../src/server/young-stream-maps.js";
import type { YoungStreamMaps } from "../../src/server/young-stream-maps.js";
import { startHarness, unary } from "./harness.js";
import type { Harness } from "./harness.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as (options?: { type: "major" | "minor" }) => void;

/** Collects, then waits for the PerformanceObserver's callback (delivered on a later turn). */
async function collectGarbage(type: "major" | "minor"): Promise<void> {
  gc({ type });
  await new Promise((r) => setTimeout(r, 20));
}

const raw = (b: Buffer): Buffer => b;
const HOLD = "/test.Hold/Hold";
const ECHO = "/test.Hold/Echo";

/** A grpc-js server whose Hold streams stay open until the test writes to or ends them; Echo answers at once. */
async function startServer(): Promise<{ server: grpc.Server; port: number; holds: grpc.ServerWritableStream<Buffer, Buffer>[] }> {
  const server = new grpc.Server();
  const holds: grpc.ServerWritableStream<Buffer, Buffer>[] = [];
  server.addService(
    {
      Hold: { path: HOLD, requestStream: false, responseStream: true, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
      Echo: { path: ECHO, requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
    },
    {
      Hold: (call: grpc.ServerWritableStream<Buffer, Buffer>) => void holds.push(call),
      Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request),
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { server, port, holds };
}

/** The one HTTP/2 server a grpc-js server listens with (grpc-js's private map, as the module reads it). */
function http2ServerOf(server: grpc.Server): http2.Http2Server {
  const [only] = (server as unknown as { http2Servers: Map<http2.Http2Server, unknown> }).http2Servers.keys();
  if (!only) throw new Error("not listening");
  return only;
}

function nextSession(h2: http2.Http2Server): Promise<http2.ServerHttp2Session> {
  return new Promise((resolve) => h2.once("session", resolve));
}

function echo(client: grpc.Client, body: string): Promise<string> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(ECHO, raw, raw, Buffer.from(body), (e, r) => (e ? reject(e) : resolve(r!.toString()))),
  );
}

function until(cond: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 5_000;
    const poll = (): void => {
      if (cond()) resolve();
      else if (Date.now() > deadline) reject(new Error("condition not met in 5 s"));
      else setTimeout(poll, 5);
    };
    poll();
  });
}

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function setup(): Promise<{
  maps: YoungStreamMaps;
  client: grpc.Client;
  session: http2.ServerHttp2Session;
  holds: grpc.ServerWritableStream<Buffer, Buffer>[];
  server: grpc.Server;
  port: number;
}> {
  const { server, port, holds } = await startServer();
  cleanup.push(() => server.forceShutdown());
  const maps = createYoungStreamMaps((reason) => {
    throw new Error(`unexpectedly unsupported: ${reason}`);
  });
  cleanup.push(() => maps.close());
  expect(maps.watch(server)).toBe(true);
  const sessionArrives = nextSession(http2ServerOf(server));
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  cleanup.push(() => client.close());
  expect(await echo(client, "hello")).toBe("hello");
  return { maps, client, session: await sessionArrives, holds, server, port };
}

describe("young stream maps", () => {
  it("gives each open session a new stream Map with the same streams after every GC, minor or major", async () => {
    const { client, session, holds } = await setup();
    const received: string[][] = [[], []];
    const calls = [0, 1].map((i) => {
      const call = client.makeServerStreamRequest(HOLD, raw, raw, Buffer.alloc(0));
      call.on("data", (b: Buffer) => received[i]!.push(b.toString()));
      call.on("error", () => {}); // the cancel below ends it with CANCELLED
      return call;
    });
    await until(() => holds.length === 2);
    const before = sessionStreamMap(session)!;
    const ids = [...before.keys()];
    expect(ids).toHaveLength(2);

    await collectGarbage("minor");
    const afterMinor = sessionStreamMap(session)!;
    expect(afterMinor).not.toBe(before);
    expect(afterMinor.constructor).toBe(before.constructor); // node's SafeMap, not a plain Map
    expect([...afterMinor.keys()]).toEqual(ids);
    expect([...afterMinor.values()]).toEqual([...before.values()]);

    await collectGarbage("major");
    const afterMajor = sessionStreamMap(session)!;
    expect(afterMajor).not.toBe(afterMinor);
    expect([...afterMajor.keys()]).toEqual(ids);

    // The renewed Map is the one node uses: streams write, cancel and open through it.
    holds[0]!.write(Buffer.from("a"));
    holds[1]!.write(Buffer.from("b"));
    await until(() => received[0]!.length === 1 && received[1]!.length === 1);
    expect(received).toEqual([["a"], ["b"]]);
    calls[0]!.cancel();
    await until(() => sessionStreamMap(session)!.size === 1);
    expect([...sessionStreamMap(session)!.keys()]).toEqual([ids[1]]);
    expect(await echo(client, "after")).toBe("after");
    holds[1]!.end();
    await until(() => sessionStreamMap(session)!.size === 0);
  });

  it("forgets a session once it closes, and renews the sessions of servers watched later", async () => {
    const { maps, client, session } = await setup();
    const closed = new Promise((r) => session.once("close", r));
    client.close();
    await closed;
    const stale = sessionStreamMap(session);
    await collectGarbage("minor");
    expect(sessionStreamMap(session)).toBe(stale);

    const second = await startServer();
    cleanup.push(() => second.server.forceShutdown());
    expect(maps.watch(second.server)).toBe(true);
    const arrives = nextSession(http2ServerOf(second.server));
    const other = new grpc.Client(`127.0.0.1:${second.port}`, grpc.credentials.createInsecure());
    cleanup.push(() => other.close());
    expect(await echo(other, "x")).toBe("x");
    const s2 = await arrives;
    const m = sessionStreamMap(s2);
    await collectGarbage("minor");
    expect(sessionStreamMap(s2)).not.toBe(m);
  });

  it("stops renewing once closed", async () => {
    const { maps, session } = await setup();
    maps.close();
    const m = sessionStreamMap(session);
    await collectGarbage("minor");
    expect(sessionStreamMap(session)).toBe(m);
  });

  it("reports once, and changes nothing, when grpc-js has no http2Servers map", () => {
    const reasons: string[] = [];
    const maps = createYoungStreamMaps((r) => reasons.push(r));
    cleanup.push(() => maps.close());
    expect(maps.watch({})).toBe(false);
    expect(maps.watch({ http2Servers: [] })).toBe(false);
    expect(reasons).toEqual(["grpc-js's Server has no http2Servers Map"]);
  });

  it("reports once, and serves as before, when a session has no stream Map where node keeps it", async () => {
    const { server, port } = await startServer();
    cleanup.push(() => server.forceShutdown());
    const reasons: string[] = [];
    const maps = createYoungStreamMaps((r) => reasons.push(r));
    cleanup.push(() => maps.close());
    const h2 = http2ServerOf(server);
    expect(maps.watch(server)).toBe(true);
    // Hands ours a session whose state it cannot see as an own property, as on a node that
    // keeps its streams elsewhere.
    const ours = h2.listeners("session").at(-1) as (s: unknown) => void;
    h2.removeListener("session", ours);
    h2.on("session", (s: http2.ServerHttp2Session) => ours(Object.create(s)));
    for (const name of ["a", "b"]) {
      const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      cleanup.push(() => client.close());
      expect(await echo(client, name)).toBe(name);
    }
    expect(reasons).toEqual(["node's Http2Session has no state.streams Map"]);
  });
});

describe("the sidecar's gRPC server", () => {
  it("renews the stream Maps of the sessions on the port it listens on", async () => {
    // Observe (not replace) node's http2.createServer to catch the server grpc-js makes; the
    // module object grpc-js requires, not an ESM namespace, which cannot be assigned to.
    const node2 = createRequire(import.meta.url)("node:http2") as { createServer: typeof http2.createServer };
    const made: http2.Http2Server[] = [];
    const original = node2.createServer;
    node2.createServer = ((...args: Parameters<typeof original>) => {
      const s = original(...args);
      made.push(s);
      return s;
    }) as typeof original;
    let h: Harness;
    try {
      h = await startHarness();
    } finally {
      node2.createServer = original;
    }
    cleanup.push(() => h.close());
    expect(made).toHaveLength(1);
    const arrives = nextSession(made[0]!);
    await unary(h.health, "Check", { service: "" });
    const session = await arrives;
    const m = sessionStreamMap(session);
    expect(m).toBeDefined();
    await collectGarbage("minor");
    expect(sessionStreamMap(session)).not.toBe(m);
  });
});
