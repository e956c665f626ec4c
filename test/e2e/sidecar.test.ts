/**
 * The sidecar as an operator runs it (issue 3): the built binary on a loopback port with LMDB in
 * a temp dir, called by a real grpc-js client.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { open } from "lmdb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allowOne, connectClients, statusOf, unary, type Obj, type SidecarClients } from "./helpers/clients.js";
import { runCli, startSidecar, stopSidecar, type SidecarProcess } from "./helpers/sidecar-process.js";
import { makeTestDir } from "./helpers/test-policy.js";

describe("a running sidecar", () => {
  const t = makeTestDir();
  let s: SidecarProcess;
  let c: SidecarClients;

  beforeAll(async () => {
    s = await startSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir]);
    c = connectClients(s.grpcAddress);
  });
  afterAll(async () => {
    c.close();
    await stopSidecar(s);
    t.cleanup();
  });

  it("reports SERVING on grpc.health.v1 once listening", async () => {
    expect(await unary(c.health, "Check", { service: "" })).toEqual({ status: "SERVING" });
  });

  it("admits exactly 100 of 200 concurrent Allow(1) against a hard limit of 100", async () => {
    const results = await Promise.all(Array.from({ length: 200 }, () => allowOne(c, "race", "limited", 1)));
    const allowed = results.filter((r) => r["allowed"] === true);
    expect(allowed).toHaveLength(100);
    expect(new Set(results.filter((r) => r["allowed"] !== true).map((r) => r["reason"]))).toEqual(new Set(["REASON_HARD_LIMIT"]));
    const meters = await unary<{ meters: Obj[] }>(c.decision, "GetMeters", { customer_id: "race", entitlements: ["limited"] });
    expect(meters.meters[0]).toMatchObject({ value: 100, limit: 100, remaining: 0 });
  });

  it("answers bad input with INVALID_ARGUMENT naming the field, and changes nothing", async () => {
    const err = await statusOf(unary(c.decision, "Allow", { customer_id: "bad", items: [{ entitlement: "limited", amount: Number.NaN }] }));
    expect(err.code).toBe(3);
    expect(err.details).toMatch(/^items\[0\]\.amount/);
    const meters = await unary<{ meters: Obj[] }>(c.decision, "GetMeters", { customer_id: "bad", entitlements: ["limited"] });
    expect(meters.meters[0]?.["value"] ?? 0).toBe(0);
  });

  it("counts a Record whose hint names an alt id another customer took first, and warns once", async () => {
    const record = (customerId: string, extra: Obj = {}) => unary<Obj>(c.decision, "Record", { customer_id: customerId, items: [{ entitlement: "counter", amount: 1 }], ...extra });
    await record("sk_live_1");
    const hint = { customer_hint: { alt_ids: ["sk_live_1"] } };
    for (let i = 0; i < 2; i++) expect(await record("alice", hint)).toMatchObject({ allowed: true, customer_id: "alice", items: [{ owner: "alice", value: i + 1 }] });
    const warnings = s.logs.filter((l) => l["altId"] === "sk_live_1");
    expect(warnings).toEqual([expect.objectContaining({ level: "warn", customerId: "alice", heldBy: "sk_live_1" })]);
  });
});

describe("idempotency across a restart", () => {
  const t = makeTestDir();
  afterAll(() => t.cleanup());

  it("returns the first answer for a repeated key and counts nothing again, also after SIGTERM and restart", async () => {
    const flags = ["--policy", t.policyPath, "--data-dir", t.dataDir];
    let s = await startSidecar(flags);
    let c = connectClients(s.grpcAddress);
    const first = await allowOne(c, "idem", "limited", 7, { idempotency_key: "order-42" });
    expect(first).toMatchObject({ allowed: true, reason: "REASON_OK" });
    expect(await allowOne(c, "idem", "limited", 7, { idempotency_key: "order-42" })).toEqual(first);
    c.close();
    const exit = await stopSidecar(s);
    expect(exit.code).toBe(0);
    expect(s.logs.some((l) => l["msg"] === "stopped")).toBe(true);

    s = await startSidecar(flags);
    c = connectClients(s.grpcAddress);
    try {
      expect(await allowOne(c, "idem", "limited", 7, { idempotency_key: "order-42" })).toEqual(first);
      const meters = await unary<{ meters: Obj[] }>(c.decision, "GetMeters", { customer_id: "idem", entitlements: ["limited"] });
      expect(meters.meters[0]).toMatchObject({ value: 7 });
      const reused = await statusOf(allowOne(c, "idem", "limited", 8, { idempotency_key: "order-42" }));
      expect(reused.code).toBe(3);
      expect(reused.details).toMatch(/idempotency_key/);
    } finally {
      c.close();
      await stopSidecar(s);
    }
  });
});

describe("start-up refusals", () => {
  const t = makeTestDir();
  afterAll(() => t.cleanup());

  it("exits 2 naming a wrong flag", () => {
    const r = runCli(["serve", "--policy", t.policyPath, "--grpc-adress", "x"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/Unknown option '--grpc-adress'/);
  });

  it("exits 1 listing every error of an invalid policy, and serves nothing", () => {
    const bad = join(t.dir, "bad.yaml");
    writeFileSync(bad, "policy:\n  plans:\n    p:\n      entitlements:\n        e: { limit: { credit: nope, mode: loud, value: 1 } }\n");
    const r = runCli(["serve", "--policy", bad, "--data-dir", t.dataDir, "--grpc-address", "127.0.0.1:0", "--http-address", "off"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("policy.plans.p.entitlements.e.limit.credit");
    expect(r.stderr).toContain("policy.plans.p.entitlements.e.limit.mode");
    expect(r.stderr).not.toContain('"msg":"listening"');
  });

  it("refuses a data dir written by a future storage format, without touching it", async () => {
    const dataDir = join(t.dir, "future");
    const s = await startSidecar(["--policy", t.policyPath, "--data-dir", dataDir]);
    await stopSidecar(s);
    const env = open({ path: join(dataDir, "limitr.mdb") });
    await env.openDB({ name: "meta" }).put("format", 99);
    await env.close();
    const r = runCli(["serve", "--policy", t.policyPath, "--data-dir", dataDir, "--grpc-address", "127.0.0.1:0", "--http-address", "off"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/storage format 99/);
  });
});
