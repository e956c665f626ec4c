/**
 * Before `--max-data-bytes` refuses writes, the maintenance round says the data is nearing it,
 * and which tables hold it; /metrics shows the same split.
 */
import { afterAll, describe, expect, it } from "vitest";
import { allowOne, connectClients } from "./helpers/clients.js";
import { startSidecar, stopSidecar, type SidecarProcess } from "./helpers/sidecar-process.js";
import { makeTestDir } from "./helpers/test-policy.js";

describe("data budget warning", () => {
  const t = makeTestDir();
  let s: SidecarProcess | undefined;
  afterAll(async () => {
    if (s) await stopSidecar(s);
    t.cleanup();
  });

  it("logs once the data passes 80% of --max-data-bytes, largest table first", async () => {
    const budget = 400 * 1024;
    s = await startSidecar([
      "--policy", t.policyPath, "--data-dir", t.dataDir, "--max-data-bytes", String(budget),
      "--event-retention-count", "1000", "--maintenance-interval", "100ms", "--http-address", "127.0.0.1:0",
    ]);
    const nearing = (): Record<string, unknown> | undefined => s?.logs.find((l) => String(l["msg"]).startsWith("data nearing --max-data-bytes"));
    const address = s.httpAddress;
    const dataBytes = async (): Promise<number> => {
      const text = await (await fetch(`http://${address}/metrics`)).text();
      return Number(/^limitr_store_data_bytes (\d+)$/m.exec(text)?.[1]);
    };
    const c = connectClients(s.grpcAddress);
    try {
      // Each Allow appends an event (~200 bytes) and, with its key, an idempotency record (~600):
      // 25 of them take ~20 KB, so a batch never jumps from under 80% to the limit.
      for (let i = 0; i < 1000 && (await dataBytes()) < 0.8 * budget; i += 25) {
        for (let j = i; j < i + 25; j++) await allowOne(c, `c${j % 10}`, "counter", 1, { idempotency_key: `k${j}` });
      }
      // Past 80%: the next maintenance round (every 100 ms) says so, however slow the host.
      const deadline = Date.now() + 10_000;
      while (nearing() === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    } finally {
      c.close();
    }
    const w = nearing();
    expect(w?.["level"]).toBe("warn");
    expect(w?.["maxDataBytes"]).toBe(budget);
    expect(w?.["percent"]).toBeGreaterThanOrEqual(80);
    const tables = w?.["tables"] as Record<string, number>;
    expect(Object.keys(tables)[0]).toBe("idempotency");
    expect(Object.values(tables).reduce((a, b) => a + b, 0)).toBe(w?.["dataBytes"]);

    const metrics = await (await fetch(`http://${s.httpAddress}/metrics`)).text();
    expect(metrics).toMatch(/^limitr_store_table_bytes\{table="idempotency"\} [1-9]\d*$/m);
    expect(metrics).toMatch(/^limitr_store_table_bytes\{table="events"\} [1-9]\d*$/m);
  });
});
