/**
 * `startSidecar` in-process: a start-up that fails part-way, for whatever reason, closes what it
 * had opened, so the store's files are not held by a process that serves nothing.
 */
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { parseServeConfig } from "../../src/cli/config.js";
import { createLogger } from "../../src/cli/logger.js";
import { startSidecar } from "../../src/cli/start-sidecar.js";
import { createLmdbStore } from "../../src/store/index.js";

const POLICY = "policy:\n  credits: { token: { label: Token } }\n  plans:\n    free: { default: true, entitlements: { chat: { limit: { credit: token, value: 10 } } } }\n";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Files under `dir` this process holds open (Linux: /proc/self/fd). */
function openFilesUnder(dir: string): string[] {
  const held: string[] = [];
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir)) held.push(target);
    } catch {
      // The fd readdir itself used, closed by now.
    }
  }
  return held;
}

it("closes the store when start-up fails with an error it did not expect", async () => {
  const dir = mkdtempSync(join(tmpdir(), "limitr-start-"));
  dirs.push(dir);
  const policy = join(dir, "policy.yaml");
  writeFileSync(policy, POLICY);
  const dataDir = join(dir, "data");
  const config = parseServeConfig(["--policy", policy, "--data-dir", dataDir, "--grpc-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0"], {});
  // Past what config validation lets through: connect-node throws while the HTTP port is set up,
  // after the store is open and the policy applied.
  const failing = { ...config, maxMessageBytes: Number.MAX_SAFE_INTEGER };
  await expect(startSidecar(failing, createLogger({ level: "error", write: () => undefined }))).rejects.toThrow(/readMaxBytes/);
  expect(openFilesUnder(dataDir)).toEqual([]);
  // Closed cleanly: the dir opens again, and holds nothing of the failed start (its policy event
  // waited for the claim, which comes only once every port is bound).
  const store = createLmdbStore({ path: dataDir, readOnly: true });
  try {
    expect(store.readEvents(1, 10)).toEqual([]);
  } finally {
    await store.close();
  }
});
