/**
 * README "Metrics": `limitr_rpc_requests_total` counts answered RPCs by protocol and code, and
 * `limitr_rpc_duration_seconds` each unary RPC, `error` included. A request answered
 * INVALID_ARGUMENT before any handler ran (it does not decode, or it is over
 * --max-message-bytes) is answered too, so a client sending such requests shows on the error rate.
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, expect, it } from "vitest";
import { connectClients, statusOf, unary } from "./helpers/clients.js";
import { startSidecar, stopSidecar, type SidecarProcess } from "./helpers/sidecar-process.js";
import { makeTestDir } from "./helpers/test-policy.js";

const t = makeTestDir();
let s: SidecarProcess;
beforeAll(async () => {
  s = await startSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir, "--http-address", "127.0.0.1:0", "--max-message-bytes", "2048"]);
});
afterAll(async () => {
  await stopSidecar(s);
  t.cleanup();
});

async function sample(series: string): Promise<number> {
  const text = await (await fetch(`http://${s.httpAddress}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

it("counts gRPC calls refused before their handler: oversized and undecodable", async () => {
  const c = connectClients(s.grpcAddress);
  try {
    const big = await statusOf(unary(c.decision, "Allow", { customer_id: "u", items: [{ entitlement: "limited", amount: 1 }], attributes: { pad: "x".repeat(4096) } }));
    expect(big.code).toBe(grpc.status.INVALID_ARGUMENT);
    // Field 1 (customer_id) as a length-delimited string that claims more bytes than follow.
    const garbage = Buffer.from([0x0a, 0x7f, 0x61]);
    const undecodable = await new Promise<grpc.ServiceError | null>((resolve) =>
      c.decision.makeUnaryRequest("/limitr.v1.DecisionService/Allow", (b: Buffer) => b, (b: Buffer) => b, garbage, (e) => resolve(e)),
    );
    expect(undecodable?.code).toBe(grpc.status.INVALID_ARGUMENT);
  } finally {
    c.close();
  }
  expect(await sample('limitr_rpc_requests_total{rpc="Allow",protocol="grpc",code="invalid_argument"}')).toBe(2);
  expect(await sample('limitr_rpc_duration_seconds_count{rpc="Allow",outcome="error"}')).toBe(2);
});

it("counts a Connect call the HTTP port refuses by its declared size", async () => {
  const res = await fetch(`http://${s.httpAddress}/limitr.v1.DecisionService/Check`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ customerId: "u", items: [{ entitlement: "limited", amount: 1 }], attributes: { pad: "x".repeat(4096) } }),
  });
  expect(res.status).toBe(400);
  expect(await sample('limitr_rpc_requests_total{rpc="Check",protocol="connect",code="invalid_argument"}')).toBe(1);
});

it("labels no series after a request path: an oversized body on a path that is no RPC is not counted, and is 404", async () => {
  const before = (await (await fetch(`http://${s.httpAddress}/metrics`)).text()).split("\n").length;
  for (let i = 0; i < 20; i++) {
    const res = await fetch(`http://${s.httpAddress}/x/customer_${i}`, { method: "POST", headers: { "content-type": "application/json" }, body: "x".repeat(4096) });
    expect(res.status).toBe(404);
  }
  const text = await (await fetch(`http://${s.httpAddress}/metrics`)).text();
  expect(text).not.toContain("customer_");
  expect(text.split("\n").length).toBe(before);
});
