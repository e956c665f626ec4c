/**
 * The built binary with its HTTP port: the `listening` line names the bound HTTP address, the
 * curl call from the README works against it, `off` disables the port, and SIGTERM still exits 0
 * with the HTTP server closed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runCli, startSidecar, stopSidecar, type SidecarProcess } from "./helpers/sidecar-process.js";

let dir: string | undefined;
let sidecar: SidecarProcess | undefined;

afterEach(async () => {
  if (sidecar) await stopSidecar(sidecar);
  sidecar = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const flags = (httpAddress: string): string[] => {
  dir = mkdtempSync(join(tmpdir(), "limitr-http-proc-"));
  return ["--policy", "examples/policies/combined.yaml", "--data-dir", join(dir, "data"), "--http-address", httpAddress];
};

describe("serve --http-address", () => {
  it("announces the bound HTTP address, answers the README's curl call, and stops cleanly on SIGTERM", async () => {
    sidecar = await startSidecar(flags("127.0.0.1:0"));
    expect(sidecar.httpAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    const res = await fetch(`http://${sidecar.httpAddress}/limitr.v1.DecisionService/Allow`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ customerId: "u1", items: [{ entitlement: "gpt_tokens", amount: 500 }] }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ allowed: true, reason: "REASON_OK", items: [{ entitlement: "gpt_tokens", value: 500, remaining: 1500 }] });
    const ready = await fetch(`http://${sidecar.httpAddress}/readyz`);
    expect(ready.status).toBe(200);
    await ready.text();

    const exit = await stopSidecar(sidecar);
    const s = sidecar;
    sidecar = undefined;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(s.logs.some((l) => l["msg"] === "http server stopped")).toBe(true);
  });

  it("'off' serves no HTTP port", async () => {
    sidecar = await startSidecar(flags("off"));
    expect(sidecar.httpAddress).toBeUndefined();
    expect(sidecar.logs.find((l) => l["msg"] === "listening")).not.toHaveProperty("http");
  });

  it("a busy gRPC port is a start-up failure (exit 1) logged in JSON lines only, grpc-js's own message too", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    try {
      const address = `127.0.0.1:${(taken.address() as AddressInfo).port}`;
      const r = runCli(["serve", ...flags("off"), "--grpc-address", address]);
      expect(r.status).toBe(1);
      const lines = r.stderr.trimEnd().split("\n");
      for (const line of lines) expect(() => JSON.parse(line) as unknown, line).not.toThrow();
      const logs = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(logs).toContainEqual(expect.objectContaining({ level: "error", component: "grpc-js", msg: expect.stringMatching(/No address added/) }));
      expect(logs.at(-1)).toMatchObject({ level: "error", msg: expect.stringMatching(/^cannot listen: .*EADDRINUSE/) });
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it("a busy HTTP port is a start-up failure (exit 1) naming the cause", async () => {
    const first = await startSidecar(flags("127.0.0.1:0"));
    sidecar = first;
    const firstDir = dir;
    dir = undefined;
    try {
      await expect(startSidecar(flags(first.httpAddress ?? ""))).rejects.toThrow(/exited \(1\)[\s\S]*cannot listen[\s\S]*EADDRINUSE/);
    } finally {
      await stopSidecar(first);
      sidecar = undefined;
      if (firstDir) rmSync(firstDir, { recursive: true, force: true });
    }
  });
});
