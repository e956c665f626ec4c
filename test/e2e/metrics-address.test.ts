/**
 * The operator-only listener: Prometheus and kubelet reach /metrics, /healthz and /readyz on the
 * pod IP while the decision and admin APIs stay on loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allowOne, connectClients } from "./helpers/clients.js";
import { startSidecar, stopSidecar, type SidecarProcess } from "./helpers/sidecar-process.js";
import { makeTestDir } from "./helpers/test-policy.js";

describe("--metrics-address", () => {
  const t = makeTestDir();
  let s: SidecarProcess;
  beforeAll(async () => {
    s = await startSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir, "--metrics-address", "127.0.0.1:0"]);
  });
  afterAll(async () => {
    await stopSidecar(s);
    t.cleanup();
  });

  it("serves /metrics, /healthz and /readyz, and none of the APIs", async () => {
    const base = `http://${s.metricsAddress}`;
    const c = connectClients(s.grpcAddress);
    await allowOne(c, "m1", "limited", 3);
    c.close();

    const metrics = await fetch(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    const body = await metrics.text();
    expect(body).toMatch(/limitr_policy_info\{version="[0-9a-f]{16}"\} 1/);
    expect(body).toMatch(/limitr_decisions_total\{rpc="Allow",reason="OK"\} 1/);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);

    const api = await fetch(`${base}/limitr.v1.DecisionService/Allow`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ customerId: "m1", items: [{ entitlement: "limited", amount: 1 }] }),
    });
    expect(api.status).toBe(404);
  });

  it("stops with the sidecar on SIGTERM", async () => {
    const exit = await stopSidecar(s);
    expect(exit.code).toBe(0);
    expect(s.logs.some((l) => l["msg"] === "metrics server stopped")).toBe(true);
  });
});
