/**
 * A configuration that is valid but will fail later is said at start: `serve` logs it as a
 * warning and serves anyway.
 */
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { startSidecar, stopSidecar, type SidecarProcess } from "./helpers/sidecar-process.js";
import { makeTestDir } from "./helpers/test-policy.js";

describe("configuration warnings", () => {
  const t = makeTestDir();
  let s: SidecarProcess | undefined;
  afterEach(async () => {
    if (s) await stopSidecar(s);
    s = undefined;
  });
  afterAll(() => t.cleanup());

  const warningsOf = (p: SidecarProcess): unknown[] => p.logs.filter((l) => l["msg"] === "configuration warning").map((l) => l["issue"]);

  it("logs an event retention that outgrows the data budget, and serves", async () => {
    s = await startSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir, "--max-data-bytes", "900000000"]);
    expect(warningsOf(s)).toEqual([expect.stringMatching(/^--event-retention-count keeps up to 10000000 events/)]);
    const warning = s.logs.find((l) => l["msg"] === "configuration warning");
    expect(warning?.["level"]).toBe("warn");
  });

  it("logs nothing when the two agree", async () => {
    s = await startSidecar(["--policy", t.policyPath, "--data-dir", t.dataDir, "--max-data-bytes", "900000000", "--event-retention-count", "3000000"]);
    expect(warningsOf(s)).toEqual([]);
  });
});
