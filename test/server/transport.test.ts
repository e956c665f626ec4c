/**
 * The transport itself: health, reflection, error → status mapping, oversized and malformed
 * requests, unix sockets, the health-only listener, lost-events marker and graceful shutdown.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { connect as connectHttp2 } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { AllowRequestSchema } from "../../src/gen/limitr/v1/decision_pb.js";
import type { Engine, EventLog } from "../../src/engine/index.js";
import { LimitrError } from "../../src/errors/index.js";
import type { ErrorCode } from "../../src/errors/index.js";
import { collect, loadClients, startHarness, statusOf, unary } from "./harness.js";
import type { Harness, Obj } from "./harness.js";

const open: Harness[] = [];
async function start(...args: Parameters<typeof startHarness>): Promise<Harness> {
  const h = await startHarness(...args);
  open.push(h);
  return h;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((h) => h.close()));
});

const ALLOW = { customer_id: "u1", items: [{ entitlement: "gpt_tokens", amount: 1 }] };

/** An engine whose every method throws `err` (or runs `allow`). */
function stubEngine(err: unknown, allow?: Engine["allow"]): Engine {
  const fail = () => Promise.reject(err);
  return {
    allow: allow ?? fail,
    check: fail,
    record: fail,
    reserve: fail,
    settle: fail,
    release: fail,
    getMeters: fail,
    upsertCustomer: fail,
    getCustomer: fail,
    deleteCustomer: fail,
    setCustomerPlan: fail,
    listCustomers: fail,
  };
}

const healthCheck = (h: Harness, service = "") => unary(h.health, "Check", { service });

describe("health", () => {
  it("is NOT_SERVING until the composition root says so, then SERVING, and NOT_SERVING from shutdown on", async () => {
    const h = await start({ serving: false });
    expect(await healthCheck(h)).toEqual({ status: "NOT_SERVING" });
    const watch = (h.health as unknown as { Watch(r: Obj): grpc.ClientReadableStream<Obj> }).Watch({ service: "limitr.v1.DecisionService" });
    const statuses: unknown[] = [];
    let waiter: (() => void) | undefined;
    watch.on("data", (m: Obj) => {
      statuses.push(m.status);
      waiter?.();
    });
    watch.on("error", () => {}); // cancelled by shutdown
    const until = (n: number) => new Promise<void>((r) => (statuses.length >= n ? r() : (waiter = () => statuses.length >= n && r())));
    await until(1);
    h.server.setServing(true);
    expect(await healthCheck(h)).toEqual({ status: "SERVING" });
    expect(await healthCheck(h, "limitr.v1.AdminService")).toEqual({ status: "SERVING" });
    const stopping = h.server.shutdown(2000);
    h.server.setServing(true); // too late: shutdown wins
    await until(3);
    expect(statuses).toEqual(["NOT_SERVING", "SERVING", "NOT_SERVING"]);
    await stopping;
  });

  it("an unknown service name is NOT_FOUND", async () => {
    const h = await start();
    expect((await statusOf(healthCheck(h, "nope.Service"))).code).toBe(grpc.status.NOT_FOUND);
  });

  it("the health-only listener serves Health and nothing else", async () => {
    const h = await start();
    const address = await h.server.listenHealth("127.0.0.1:0");
    const { Health, Decision } = loadClients();
    const health = new Health(address, grpc.credentials.createInsecure());
    const decision = new Decision(address, grpc.credentials.createInsecure());
    try {
      expect(await unary(health, "Check", { service: "" })).toEqual({ status: "SERVING" });
      expect((await statusOf(unary(decision, "Allow", ALLOW))).code).toBe(grpc.status.UNIMPLEMENTED);
    } finally {
      health.close();
      decision.close();
    }
  });
});

describe("reflection", () => {
  const reflectionProto = fileURLToPath(new URL("../../node_modules/@grpc/reflection/build/proto", import.meta.url));
  for (const version of ["v1", "v1alpha"]) {
    it(`${version}: lists the services and returns a decodable descriptor for a symbol`, async () => {
      const h = await start();
      const def = loadSync(`grpc/reflection/${version}/reflection.proto`, { includeDirs: [reflectionProto], keepCase: true, defaults: true, oneofs: true });
      const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { reflection: Record<string, { ServerReflection: grpc.ServiceClientConstructor }> } };
      const Ctor = pkg.grpc.reflection[version]?.ServerReflection as grpc.ServiceClientConstructor;
      const client = new Ctor(h.address, grpc.credentials.createInsecure());
      try {
        const call = (client as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<Obj, Obj> }).ServerReflectionInfo();
        const replies = collect(call as unknown as grpc.ClientReadableStream<Obj>, 2);
        call.write({ list_services: "*" });
        call.write({ file_containing_symbol: "limitr.v1.DecisionService" });
        const [list, file] = (await replies).messages;
        const names = ((list?.list_services_response as Obj).service as Obj[]).map((s) => s.name);
        expect(names).toEqual(expect.arrayContaining(["limitr.v1.DecisionService", "limitr.v1.AdminService", "grpc.health.v1.Health"]));
        const protos = (file?.file_descriptor_response as Obj).file_descriptor_proto as Buffer[];
        const decoded = protos.map((b) => fromBinary(FileDescriptorProtoSchema, b));
        const service = decoded.flatMap((f) => f.service).find((s) => s.name === "DecisionService");
        expect(service?.method.map((m) => m.name)).toEqual(["Allow", "Check", "Record", "Reserve", "Settle", "Release", "GetMeters", "WatchEvents"]);
        // Dependencies come along, so a tool can resolve every message type.
        expect(decoded.flatMap((f) => f.messageType.map((m) => m.name))).toEqual(expect.arrayContaining(["AllowRequest", "MeterState", "Event", "Timestamp"]));
      } finally {
        client.close();
      }
    });
  }
});

describe("error → status", () => {
  const codes: [ErrorCode, grpc.status][] = [
    ["INVALID_ARGUMENT", grpc.status.INVALID_ARGUMENT],
    ["NOT_FOUND", grpc.status.NOT_FOUND],
    ["ALREADY_EXISTS", grpc.status.ALREADY_EXISTS],
    ["FAILED_PRECONDITION", grpc.status.FAILED_PRECONDITION],
    ["OUT_OF_RANGE", grpc.status.OUT_OF_RANGE],
    ["RESOURCE_EXHAUSTED", grpc.status.RESOURCE_EXHAUSTED],
    ["UNAVAILABLE", grpc.status.UNAVAILABLE],
    ["DEADLINE_EXCEEDED", grpc.status.DEADLINE_EXCEEDED],
    ["CANCELLED", grpc.status.CANCELLED],
    ["INTERNAL", grpc.status.INTERNAL],
  ];
  it.each(codes)("LimitrError %s → gRPC %i with its message", async (code, status) => {
    const h = await start({ engine: stubEngine(new LimitrError(code, "went wrong", { field: "items[0].unit" })) });
    const err = await statusOf(unary(h.decision, "Allow", ALLOW));
    expect(err.code).toBe(status);
    expect(err.details).toBe("items[0].unit: went wrong");
  });

  it("anything else is INTERNAL with a generic message; the details go to the log only", async () => {
    const h = await start({ engine: stubEngine(new Error("lmdb: secret /var/lib/path exploded")) });
    for (const [client, method, req] of [
      [h.decision, "Allow", ALLOW],
      [h.admin, "GetCustomer", { customer_id: "x" }],
    ] as const) {
      const err = await statusOf(unary(client, method, req));
      expect(err.code).toBe(grpc.status.INTERNAL);
      expect(err.details).toBe("internal error");
    }
    const logged = h.logs.filter((l) => l.level === "error");
    expect(logged).toHaveLength(2);
    expect(String(logged[0]?.fields?.error)).toMatch(/secret \/var\/lib\/path exploded/);
    expect(logged[0]?.fields?.rpc).toBe("limitr.v1.DecisionService/Allow");
  });

  it("a server-stream failure is a status too", async () => {
    const h = await start({ engine: stubEngine(new LimitrError("UNAVAILABLE", "store closed")) });
    const { error } = await collect((h.decision as unknown as { WatchEvents(r: Obj): grpc.ClientReadableStream<Obj> }).WatchEvents({ customer_id: "x" }));
    expect(error?.code).toBe(grpc.status.UNAVAILABLE);
    expect(error?.details).toBe("store closed");
  });
});

/**
 * Sends a framed AllowRequest over a raw HTTP/2 stream with `headers` added (grpc-js's client
 * never sends a deadline already over); resolves with the grpc-status the server answered.
 */
async function rawAllow(h: Harness, headers: Record<string, string>): Promise<string | undefined> {
  const session = connectHttp2(`http://${h.address}`);
  session.on("error", () => undefined);
  try {
    const msg = toBinary(AllowRequestSchema, create(AllowRequestSchema, { customerId: ALLOW.customer_id, items: [{ entitlement: "gpt_tokens", amount: 1 }] }));
    const body = Buffer.alloc(5 + msg.length);
    body.writeUInt32BE(msg.length, 1);
    body.set(msg, 5);
    const stream = session.request({ ":method": "POST", ":path": "/limitr.v1.DecisionService/Allow", "content-type": "application/grpc+proto", te: "trailers", ...headers });
    let status: string | undefined;
    stream.on("response", (hs) => (status = (hs["grpc-status"] as string | undefined) ?? status));
    stream.on("trailers", (ts) => (status = ts["grpc-status"] as string | undefined));
    stream.on("error", () => undefined);
    stream.resume();
    stream.end(body);
    await new Promise((resolve) => stream.on("close", resolve));
    return status;
  } finally {
    session.close();
  }
}

describe("a call past its deadline", () => {
  it("before its handler runs is DEADLINE_EXCEEDED and is not decided", async () => {
    const decided: unknown[] = [];
    const h = await start({ engine: stubEngine(new Error("not reached"), async (req) => (decided.push(req), Promise.reject(new Error("decided")))) });
    // grpc-timeout 0: the deadline is over as the request arrives.
    expect(await rawAllow(h, { "grpc-timeout": "0m" })).toBe(String(grpc.status.DEADLINE_EXCEEDED));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(decided).toEqual([]);
    // With time left it is decided.
    expect(await rawAllow(h, { "grpc-timeout": "5S" })).toBe(String(grpc.status.INTERNAL));
    expect(decided).toHaveLength(1);
  });
});

describe("request size and shape", () => {
  it("an oversized request is INVALID_ARGUMENT naming its size and the limit, and changes nothing", async () => {
    const h = await start({ maxMessageBytes: 2048 });
    const err = await statusOf(unary(h.decision, "Allow", { ...ALLOW, attributes: { blob: "x".repeat(4000) } }));
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/^request message is \d{4} bytes, over the limit of 2048 bytes$/);
    expect(h.store.lastSequence()).toBe(0);
    expect(h.store.getCustomer("u1")).toBeUndefined();
    // Far beyond our limit grpc-js's own cap answers; still not a crash.
    const huge = await statusOf(unary(h.decision, "Allow", { ...ALLOW, attributes: { blob: "x".repeat(2 * 1024 * 1024) } }));
    expect([grpc.status.INVALID_ARGUMENT, grpc.status.RESOURCE_EXHAUSTED]).toContain(huge.code);
    expect((await unary(h.decision, "Allow", ALLOW)).allowed).toBe(true);
  });

  it("the default limit is 1 MiB", async () => {
    const h = await start();
    const err = await statusOf(unary(h.decision, "Allow", { ...ALLOW, attributes: { blob: "x".repeat(1024 * 1024) } }));
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/over the limit of 1048576 bytes/);
  });

  it("bytes that are not a valid message are INVALID_ARGUMENT", async () => {
    const h = await start();
    const raw = new grpc.Client(h.address, grpc.credentials.createInsecure());
    try {
      const err = await statusOf(
        new Promise((resolve, reject) =>
          raw.makeUnaryRequest(
            "/limitr.v1.DecisionService/Allow",
            (b: Buffer) => b,
            (b: Buffer) => b,
            Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            (e, r) => (e ? reject(e) : resolve(r)),
          ),
        ),
      );
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/^request: not a valid limitr\.v1\.AllowRequest/);
    } finally {
      raw.close();
    }
  });
});

describe("listening", () => {
  it("serves on a unix socket", async () => {
    const dir = await mkdtemp(join(tmpdir(), "limitr-sock-"));
    try {
      const h = await start();
      const address = await h.server.listen(`unix:${join(dir, "grpc.sock")}`);
      expect(address).toBe(`unix:${join(dir, "grpc.sock")}`);
      const { Decision } = loadClients();
      const c = new Decision(address, grpc.credentials.createInsecure());
      try {
        expect((await unary(c, "Allow", ALLOW)).allowed).toBe(true);
      } finally {
        c.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("WatchEvents lost marker", () => {
  it("the first message says events were lost when from_sequence is older than retention", async () => {
    // A log whose oldest retained event is 3: events 1 and 2 were pruned.
    const ref: { log?: EventLog } = {};
    const log = (): EventLog => ref.log as EventLog;
    const pruned: EventLog = {
      readEvents: (from, limit) => log().readEvents(Math.max(from, 3), limit),
      lastSequence: () => log().lastSequence(),
      firstSequence: () => 3,
      subscribe: (l) => log().subscribe(l),
      keepRecent: () => log().keepRecent(),
    };
    const h = await start({ events: pruned });
    ref.log = h.store;
    for (let i = 0; i < 4; i++) await unary(h.decision, "Allow", ALLOW);
    const { messages } = await collect((h.decision as unknown as { WatchEvents(r: Obj): grpc.ClientReadableStream<Obj> }).WatchEvents({ from_sequence: 1 }), 2);
    expect(messages[0]).toMatchObject({ events_lost: { requested_sequence: "1", first_available_sequence: "3" } });
    expect(messages[0]?.event ?? undefined).toBeUndefined();
    expect((messages[1]?.event as Obj).sequence).toBe("3");
  });
});

describe("graceful shutdown", () => {
  it("lets an in-flight call finish, refuses new ones, and ends event streams with UNAVAILABLE", async () => {
    let release: () => void = () => {};
    let entered: () => void = () => {};
    const inEngine = new Promise<void>((r) => (entered = r));
    const slowAllow: Engine["allow"] = () => {
      entered();
      return new Promise((resolve) => {
        release = () =>
          resolve({ allowed: true, reason: "OK", customerId: "u1", plan: "free", policyVersion: "v", items: [] });
      });
    };
    const h = await start({ engine: stubEngine(new Error("unused"), slowAllow) });
    const watch = collect((h.decision as unknown as { WatchEvents(r: Obj): grpc.ClientReadableStream<Obj> }).WatchEvents({}));
    const inFlight = unary(h.decision, "Allow", ALLOW);
    await inEngine;
    let stopped = false;
    const stopping = h.server.shutdown(30_000).then(() => (stopped = true));
    expect((await healthCheck(h).catch((e: grpc.ServiceError) => ({ status: `error ${e.code}` }))).status).not.toBe("SERVING");
    const { error } = await watch;
    expect(error?.code).toBe(grpc.status.UNAVAILABLE);
    expect(stopped).toBe(false); // still waiting for the Allow
    release();
    expect(await inFlight).toMatchObject({ allowed: true, reason: "REASON_OK" });
    await stopping;
    const late = await statusOf(unary(h.decision, "Allow", ALLOW, { deadline: Date.now() + 2000 }));
    expect([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]).toContain(late.code);
  });

  it("ends Health Watch and reflection streams with OK, so the shutdown need not wait out its grace", async () => {
    const h = await start();
    const reflectionProto = fileURLToPath(new URL("../../node_modules/@grpc/reflection/build/proto", import.meta.url));
    const def = loadSync("grpc/reflection/v1/reflection.proto", { includeDirs: [reflectionProto], keepCase: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } } };
    const reflection = new pkg.grpc.reflection.v1.ServerReflection(h.address, grpc.credentials.createInsecure());
    try {
      const watch = (h.health as unknown as { Watch(r: Obj): grpc.ClientReadableStream<Obj> }).Watch({ service: "" });
      const info = (reflection as unknown as { ServerReflectionInfo(): grpc.ClientDuplexStream<Obj, Obj> }).ServerReflectionInfo();
      const ended = (call: grpc.ClientReadableStream<Obj> | grpc.ClientDuplexStream<Obj, Obj>) =>
        new Promise<number>((resolve) => {
          call.on("data", () => {});
          call.on("error", (e: grpc.ServiceError) => resolve(e.code));
          call.on("status", (st: grpc.StatusObject) => resolve(st.code));
        });
      const watchEnded = ended(watch);
      const infoEnded = ended(info);
      const firstStatus = new Promise((r) => watch.once("data", r));
      const firstReply = new Promise((r) => info.once("data", r));
      info.write({ list_services: "*" });
      await Promise.all([firstStatus, firstReply]); // both streams are open on the server
      // Were they left open, the grace period's end would cancel them (not OK) after 20 s.
      const stopping = h.server.shutdown(20_000);
      expect(await watchEnded).toBe(grpc.status.OK);
      expect(await infoEnded).toBe(grpc.status.OK);
      await stopping;
    } finally {
      reflection.close();
    }
  });

  it("cancels calls still running when the grace period is over", async () => {
    const never: Engine["allow"] = () => new Promise(() => {});
    const h = await start({ engine: stubEngine(new Error("unused"), never) });
    const stuck = statusOf(unary(h.decision, "Allow", ALLOW));
    await new Promise((r) => setTimeout(r, 50)); // let the call reach the server
    await h.server.shutdown(100);
    expect([grpc.status.UNAVAILABLE, grpc.status.CANCELLED, grpc.status.INTERNAL]).toContain((await stuck).code);
  });
});
