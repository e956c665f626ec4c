/**
 * The HTTP endpoint over a real sidecar server (engine + memory store), on 127.0.0.1:0:
 * /readyz follows the gRPC health state (503 before SERVING and once shutdown began), in-flight
 * calls finish during shutdown while new connections are refused, streams end at shutdown, and
 * the request size limit applies.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { create, toBinary } from "@bufbuild/protobuf";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterEach, describe, expect, it } from "vitest";
import { createEngine } from "../../src/engine/index.js";
import { AllowRequestSchema, DecisionService } from "../../src/gen/limitr/v1/decision_pb.js";
import { createHttpEndpoint, createSidecarServer, type HttpEndpoint, type SidecarServer } from "../../src/server/index.js";
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

async function setup(options: { maxMessageBytes?: number } = {}): Promise<Setup> {
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
    state: { exportState: () => [], importState: async () => ({ count: 0 }) },
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
});
