/**
 * The HTTP port of a real sidecar (started in-process by the `serve` composition root, LMDB in a
 * temp dir, both ports on 127.0.0.1:0): curl-style Connect JSON, Connect binary and gRPC-Web
 * clients, the same engine state on both ports, the operator endpoints, and /metrics.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseServeConfig } from "../../src/cli/config.js";
import { createLogger } from "../../src/cli/logger.js";
import { startSidecar, type RunningSidecar } from "../../src/cli/start-sidecar.js";
import { AdminService } from "../../src/gen/limitr/v1/admin_pb.js";
import { Reason } from "../../src/gen/limitr/v1/common_pb.js";
import { DecisionService } from "../../src/gen/limitr/v1/decision_pb.js";
import { allowOne, connectClients, unary, type Obj, type SidecarClients } from "./helpers/clients.js";

const POLICY = (hardLimit: number): string => `
policy:
  credits:
    token:
      label: Token
      unit: token
      price:
        amount: 0.01
  plans:
    free:
      label: Free
      default: true
      entitlements:
        gpt_tokens:
          limit: { credit: token, mode: hard, value: ${hardLimit} }
    pro:
      label: Pro
      entitlements:
        gpt_tokens:
          limit: { credit: token, mode: soft, value: 100 }
`;

let dir: string;
let policyFile: string;
let running: RunningSidecar;
let base: string;
let grpc: SidecarClients;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "limitr-http-"));
  policyFile = join(dir, "policy.yaml");
  writeFileSync(policyFile, POLICY(1000));
  const config = parseServeConfig(
    ["--policy", policyFile, "--data-dir", join(dir, "data"), "--grpc-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0", "--policy-poll-interval", "1hr"],
    {},
  );
  running = await startSidecar(config, createLogger({ level: "error", write: () => undefined }));
  expect(running.httpAddress).toMatch(/^127\.0\.0\.1:\d+$/);
  base = `http://${running.httpAddress}`;
  grpc = connectClients(running.grpcAddress);
});

afterAll(async () => {
  grpc?.close();
  await running?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** POSTs a Connect JSON request the way curl does; returns status, content type and parsed body. */
async function postJson(path: string, body: unknown): Promise<{ status: number; type: string | null; json: Obj }> {
  const res = await fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, type: res.headers.get("content-type"), json: (await res.json()) as Obj };
}

async function scrape(): Promise<string> {
  const res = await fetch(`${base}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return res.text();
}

/** The value of one sample line (`name{labels} value`), or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("Connect JSON (curl)", () => {
  it("Allow answers allowed, reason and items with proto JSON (camelCase) names", async () => {
    const r = await postJson("/limitr.v1.DecisionService/Allow", { customerId: "u1", items: [{ entitlement: "gpt_tokens", amount: 500 }] });
    expect(r.status).toBe(200);
    expect(r.type).toBe("application/json");
    expect(r.json).toMatchObject({
      allowed: true,
      reason: "REASON_OK",
      customerId: "u1",
      plan: "free",
      policyVersion: running.policyVersion,
      items: [{ entitlement: "gpt_tokens", owner: "u1", value: 500, limit: 1000, remaining: 500, unit: "token", mode: "LIMIT_MODE_HARD" }],
    });
  });

  it("a denial says allowed: false explicitly (default values are written)", async () => {
    const r = await postJson("/limitr.v1.DecisionService/Allow", { customerId: "u1", items: [{ entitlement: "gpt_tokens", amount: 5000 }] });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ allowed: false, reason: "REASON_HARD_LIMIT", items: [{ value: 500, remaining: 500 }] });
  });

  it("bad input is HTTP 400 with code invalid_argument naming the field, and changes nothing", async () => {
    const empty = await postJson("/limitr.v1.DecisionService/Allow", { customerId: "", items: [{ entitlement: "gpt_tokens", amount: 1 }] });
    expect(empty.status).toBe(400);
    expect(empty.json).toMatchObject({ code: "invalid_argument" });
    expect(String(empty.json["message"])).toContain("customer_id");

    const nan = await postJson("/limitr.v1.DecisionService/Allow", { customerId: "u1", items: [{ entitlement: "gpt_tokens", amount: "NaN" }] });
    expect(nan.status).toBe(400);
    expect(nan.json).toMatchObject({ code: "invalid_argument" });
    expect(String(nan.json["message"])).toContain("items[0].amount");

    // The longest JSON Duration: its expiry could not be written as a Timestamp. It used to be
    // held, then answered 500, with no reservation id to release it by.
    const forever = await postJson("/limitr.v1.DecisionService/Reserve", { customerId: "u1", items: [{ entitlement: "gpt_tokens", amount: 1 }], ttl: "315576000000s" });
    expect(forever.status).toBe(400);
    expect(forever.json).toMatchObject({ code: "invalid_argument" });
    expect(String(forever.json["message"])).toMatch(/^ttl: must be at most 30 days/);

    const meters = await postJson("/limitr.v1.DecisionService/GetMeters", { customerId: "u1", entitlements: ["gpt_tokens"] });
    expect(meters.json).toMatchObject({ meters: [{ value: 500, held: 0, remaining: 500 }] });
  });

  it("an unknown RPC is 404 and a JSON body that is not the message is 400", async () => {
    expect((await fetch(`${base}/limitr.v1.DecisionService/Nope`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status).toBe(404);
    const bad = await postJson("/limitr.v1.DecisionService/Allow", { customerId: "u1", notAField: 1 });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ code: "invalid_argument" });
  });

  it("an unknown field or enum name is 400 and changes nothing: a typo must not drop a key or widen a filter", async () => {
    const typo = await postJson("/limitr.v1.DecisionService/Allow", { customerId: "typo", items: [{ entitlement: "gpt_tokens", amount: 1 }], idempotencyKeys: "k1" });
    expect(typo.status).toBe(400);
    expect(typo.json).toMatchObject({ code: "invalid_argument", message: expect.stringContaining('"idempotencyKeys" is unknown') });
    expect((await postJson("/limitr.v1.AdminService/GetCustomer", { customerId: "typo" })).status).toBe(404);

    // Before, the unknown name was dropped, the filter was empty, and every event type came back.
    const filter = await postJson("/limitr.v1.AdminService/ListEvents", { types: ["meter-overage"] });
    expect(filter.status).toBe(400);
    expect(filter.json).toMatchObject({ code: "invalid_argument", message: expect.stringContaining('"meter-overage"') });
  });
});

describe("Connect binary and gRPC-Web clients", () => {
  it("Connect binary: Allow, and an error as a ConnectError with its code", async () => {
    const client = createClient(DecisionService, createConnectTransport({ baseUrl: base, httpVersion: "1.1", useBinaryFormat: true }));
    const res = await client.allow({ customerId: "u2", items: [{ entitlement: "gpt_tokens", amount: 10 }] });
    expect(res).toMatchObject({ allowed: true, reason: Reason.OK, customerId: "u2" });
    expect(res.items[0]).toMatchObject({ value: 10, remaining: 990 });
    const err = await client.allow({ customerId: "", items: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.InvalidArgument);
    expect((err as ConnectError).rawMessage).toContain("customer_id");
  });

  it("gRPC-Web: GetMeters and an AdminService call", async () => {
    const transport = createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" });
    const meters = await createClient(DecisionService, transport).getMeters({ customerId: "u2", entitlements: ["gpt_tokens"] });
    expect(meters.meters.map((m) => [m.entitlement, m.value])).toEqual([["gpt_tokens", 10]]);
    const status = await createClient(AdminService, transport).getPolicyStatus({});
    expect(status.version).toBe(running.policyVersion);
  });
});

describe("one engine behind both ports", () => {
  it("usage counted over HTTP is seen over gRPC, and the other way round", async () => {
    await postJson("/limitr.v1.DecisionService/Allow", { customerId: "both", items: [{ entitlement: "gpt_tokens", amount: 300 }] });
    const overGrpc = await unary<{ meters: Obj[] }>(grpc.decision, "GetMeters", { customer_id: "both", entitlements: ["gpt_tokens"] });
    expect(overGrpc.meters[0]).toMatchObject({ value: 300 });

    await allowOne(grpc, "both", "gpt_tokens", 200);
    const overHttp = await postJson("/limitr.v1.DecisionService/GetMeters", { customerId: "both", entitlements: ["gpt_tokens"] });
    expect(overHttp.json).toMatchObject({ meters: [{ value: 500, remaining: 500 }] });
  });
});

describe("operator endpoints", () => {
  it("/healthz and /readyz are 200 while serving; other methods are 405, other paths 404", async () => {
    for (const path of ["/healthz", "/readyz"]) {
      const res = await fetch(`${base}${path}`);
      expect(res.status).toBe(200);
      await res.text();
    }
    expect((await fetch(`${base}/readyz`, { method: "POST" })).status).toBe(405);
    expect((await fetch(`${base}/nothing-here`)).status).toBe(404);
  });
});

describe("/metrics", () => {
  it("has every family after calls on both ports, with the live policy version", async () => {
    const soft = { customerId: "pro-1", customerHint: { plan: "pro" }, items: [{ entitlement: "gpt_tokens", amount: 130 }] };
    expect((await postJson("/limitr.v1.DecisionService/Allow", soft)).json).toMatchObject({ allowed: true, reason: "REASON_SOFT_LIMIT_EXCEEDED" });
    const keyed = { customerId: "idem", items: [{ entitlement: "gpt_tokens", amount: 1 }], idempotencyKey: "k-1" };
    await postJson("/limitr.v1.DecisionService/Allow", keyed);
    await postJson("/limitr.v1.DecisionService/Allow", keyed);
    await allowOne(grpc, "u9", "gpt_tokens", 999_999); // denied over gRPC

    const text = await scrape();
    expect(sample(text, 'limitr_rpc_duration_seconds_count{rpc="Allow",outcome="allowed"}')).toBeGreaterThanOrEqual(4);
    expect(sample(text, 'limitr_rpc_duration_seconds_count{rpc="Allow",outcome="denied"}')).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'limitr_rpc_duration_seconds_count{rpc="Allow",outcome="error"}')).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'limitr_rpc_duration_seconds_count{rpc="GetMeters",outcome="ok"}')).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^limitr_rpc_duration_seconds_bucket\{le="0.001",rpc="Allow",outcome="allowed"\} \d+$/m);
    expect(sample(text, 'limitr_rpc_requests_total{rpc="Allow",protocol="connect",code="ok"}')).toBeGreaterThanOrEqual(4);
    expect(sample(text, 'limitr_rpc_requests_total{rpc="Allow",protocol="grpc",code="ok"}')).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'limitr_rpc_requests_total{rpc="GetMeters",protocol="grpc-web",code="ok"}')).toBe(1);
    expect(sample(text, 'limitr_rpc_requests_total{rpc="GetPolicyStatus",protocol="grpc-web",code="ok"}')).toBe(1);
    expect(sample(text, 'limitr_rpc_requests_total{rpc="Allow",protocol="connect",code="invalid_argument"}')).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'limitr_decisions_total{rpc="Allow",reason="HARD_LIMIT"}')).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'limitr_decisions_total{rpc="Allow",reason="SOFT_LIMIT_EXCEEDED"}')).toBe(1);
    expect(sample(text, 'limitr_idempotent_replays_total{operation="allow"}')).toBe(1);
    // 130 against a soft limit of 100: 30 tokens over, at $0.01 each.
    expect(sample(text, 'limitr_overages_total{entitlement="gpt_tokens"}')).toBe(1);
    expect(sample(text, 'limitr_overage_amount_total{entitlement="gpt_tokens",unit="token"}')).toBe(30);
    expect(sample(text, 'limitr_overage_price_usd_total{entitlement="gpt_tokens"}')).toBeCloseTo(0.3, 9);
    expect(sample(text, 'limitr_policy_reloads_total{result="applied"}')).toBe(1);
    expect(sample(text, 'limitr_policy_reloads_total{result="rejected"}')).toBe(0);
    expect(sample(text, `limitr_policy_info{version="${running.policyVersion}"}`)).toBe(1);
    for (const gauge of ["limitr_store_file_bytes", "limitr_store_map_bytes", "limitr_store_map_used_bytes", "limitr_store_data_bytes", "limitr_event_log_events", "limitr_event_log_last_sequence"]) {
      expect(sample(text, gauge), gauge).toBeGreaterThan(0);
    }
    const usage = sample(text, "limitr_store_map_usage_ratio") ?? NaN;
    expect(usage > 0 && usage <= 1).toBe(true);
    expect(sample(text, "limitr_watch_subscribers")).toBe(0);
    expect(sample(text, "limitr_watch_max_lag_events")).toBe(0);
    expect(sample(text, "limitr_watch_lag_events")).toBe(0);
    expect(text).toMatch(/^process_cpu_user_seconds_total \d/m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes \d/m);
  });

  it("counts open WatchEvents streams of either port", async () => {
    const ctl = new AbortController();
    const client = createClient(DecisionService, createConnectTransport({ baseUrl: base, httpVersion: "1.1" }));
    const stream = client.watchEvents({ fromSequence: 1n }, { signal: ctl.signal })[Symbol.asyncIterator]();
    await stream.next(); // the subscriber is registered once the first event arrived
    expect(sample(await scrape(), "limitr_watch_subscribers")).toBe(1);
    ctl.abort();
    await stream.next().catch(() => undefined);
    // The server notices the closed stream on its own schedule: wait for it, bounded by the test timeout.
    while (sample(await scrape(), "limitr_watch_subscribers") !== 0) await new Promise((r) => setTimeout(r, 20));
  });

  it("sends a WatchEvents stream's position before any event arrives (Connect and gRPC-Web alike)", async () => {
    const transports = [createConnectTransport({ baseUrl: base, httpVersion: "1.1" }), createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" })];
    for (const [i, transport] of transports.entries()) {
      const ctl = new AbortController();
      const client = createClient(DecisionService, transport);
      const customerId = `pos-http-${i}`;
      const stream = client.watchEvents({ sendPosition: true, customerId }, { signal: ctl.signal })[Symbol.asyncIterator]();
      const first = (await stream.next()).value;
      if (first?.kind.case !== "position") throw new Error(`expected the position first, got ${first?.kind.case}`);
      // Nothing else commits meanwhile: the next event takes exactly the announced sequence.
      await client.allow({ customerId, items: [{ entitlement: "gpt_tokens", amount: 1 }] });
      const next = (await stream.next()).value;
      expect(next?.kind.case === "event" ? next.kind.value.sequence : undefined).toBe(first.kind.value.nextSequence);
      ctl.abort();
      await stream.next().catch(() => undefined);
    }
  });

  it("never names a customer, however many there are", async () => {
    const ids = Array.from({ length: 60 }, (_, i) => `secret-cust-${i}`);
    await Promise.all(ids.map((id, i) => (i % 2 === 0 ? postJson("/limitr.v1.DecisionService/Allow", { customerId: id, items: [{ entitlement: "gpt_tokens", amount: 1 }] }) : allowOne(grpc, id, "gpt_tokens", 1))));
    await postJson("/limitr.v1.DecisionService/Allow", { customerId: "secret-cust-pro", customerHint: { plan: "pro" }, items: [{ entitlement: "gpt_tokens", amount: 500 }] });
    const text = await scrape();
    expect(text).not.toContain("secret-cust");
    expect(text).not.toContain("k-1"); // nor an idempotency key
  });

  it("follows policy reloads: applied/rejected counters and the version label moves", async () => {
    const before = running.policyVersion;
    writeFileSync(policyFile, POLICY(2000));
    await running.reloadPolicy("test");
    const status = await postJson("/limitr.v1.AdminService/GetPolicyStatus", {});
    const after = String(status.json["version"]);
    expect(after).not.toBe(before);
    writeFileSync(policyFile, "policy: { credits: {}, plans: { free: { entitlements: { x: { limit: { credit: nope } } } } } }\n");
    await running.reloadPolicy("test");

    const text = await scrape();
    expect(sample(text, 'limitr_policy_reloads_total{result="applied"}')).toBe(2);
    expect(sample(text, 'limitr_policy_reloads_total{result="rejected"}')).toBe(1);
    expect(sample(text, `limitr_policy_info{version="${after}"}`)).toBe(1);
    expect(text).not.toContain(`version="${before}"`);
  });
});
