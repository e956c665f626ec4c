/**
 * The watcher against a ConfigMap volume as kubelet writes it: timestamped directories, an atomic
 * `..data` rename, and `policy.yaml -> ..data/policy.yaml`.
 */
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { contentVersion } from "../../src/watch/index.js";
import { createKubeletWriter, type KubeletWriter } from "../helpers/kubelet-writer.js";
import { INVALID_PATH, invalidPolicy, validPolicy } from "./fixtures.js";
import { createHarness, sleep, tempDir, waitFor, type Harness } from "./harness.js";

const v = (text: string): string => contentVersion(Buffer.from(text));

describe("policy watcher on a kubelet-projected ConfigMap", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let kubelet: KubeletWriter;
  let h: Harness | undefined;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    kubelet = createKubeletWriter(dir);
    await kubelet.write({ "policy.yaml": validPolicy(100) });
  });
  afterEach(async () => {
    await h?.watcher.close();
    h = undefined;
    await cleanup();
  });

  const start = async (options: Parameters<typeof createHarness>[0] | object = {}): Promise<Harness> => {
    h = createHarness({ path: join(dir, "policy.yaml"), ...options });
    const outcome = await h.watcher.start();
    expect(outcome.kind).toBe("applied");
    return h;
  };

  it("loads the initial policy, versioned by the hash of its bytes", async () => {
    const t0 = new Date();
    const { watcher, applied } = await start();
    const version = v(validPolicy(100));
    expect(version).toMatch(/^[0-9a-f]{16}$/);
    expect(applied).toHaveLength(1);
    expect(applied[0]?.policy.version).toBe(version);
    expect(applied[0]?.info).toMatchObject({ version, previousVersion: undefined, reason: "initial" });
    const status = watcher.status();
    expect(status).toMatchObject({ source: join(dir, "policy.yaml"), version, lastError: undefined, rejectedSinceLastSuccess: 0, sourceMissing: false });
    expect(status.appliedAt?.getTime()).toBeGreaterThanOrEqual(t0.getTime());
  });

  it("picks up a kubelet swap within 2 s, and every later swap too", async () => {
    const harness = await start();
    for (const limit of [200, 300, 400]) {
      await kubelet.write({ "policy.yaml": validPolicy(limit) });
      await waitFor(`limit ${limit} applied`, () => harness.live() === v(validPolicy(limit)), 2_000);
    }
    expect(harness.applied.map((a) => a.info.previousVersion)).toEqual([undefined, v(validPolicy(100)), v(validPolicy(200)), v(validPolicy(300))]);
  });

  it("rejects an invalid policy with every issue, keeps the old one, and counts rejections", async () => {
    const harness = await start();
    const good = v(validPolicy(100));

    await kubelet.write({ "policy.yaml": invalidPolicy(1) });
    await waitFor("first rejection", () => harness.rejected.length === 1);
    expect(harness.live()).toBe(good);
    expect(harness.rejected[0]?.issues.map((i) => i.path)).toContain(INVALID_PATH);
    expect(harness.rejected[0]?.info).toMatchObject({ version: v(invalidPolicy(1)), keptVersion: good, rejectedSinceLastSuccess: 1 });
    let status = harness.watcher.status();
    expect(status.version).toBe(good);
    expect(status.rejectedSinceLastSuccess).toBe(1);
    expect(status.lastError?.kind).toBe("rejected");
    expect(status.lastError?.version).toBe(v(invalidPolicy(1)));
    expect(status.lastError?.issues.map((i) => i.path)).toContain(INVALID_PATH);
    expect(status.lastError?.message).toContain(INVALID_PATH);
    expect(status.lastRejectedAt).toEqual(status.lastError?.at);
    const logged = harness.logs.find((l) => l.msg.startsWith("policy rejected"));
    expect(logged?.level).toBe("error");
    expect(JSON.stringify(logged?.fields.issues)).toContain(INVALID_PATH);

    await kubelet.write({ "policy.yaml": invalidPolicy(2) });
    await waitFor("second rejection", () => harness.rejected.length === 2);
    expect(harness.watcher.status().rejectedSinceLastSuccess).toBe(2);
    const secondRejectedAt = harness.watcher.status().lastRejectedAt;
    expect(secondRejectedAt).toEqual(harness.rejected[1]?.info.rejectedAt);

    await kubelet.write({ "policy.yaml": validPolicy(500) });
    await waitFor("valid policy applied", () => harness.live() === v(validPolicy(500)));
    status = harness.watcher.status();
    expect(status.rejectedSinceLastSuccess).toBe(0);
    expect(status.lastError).toBeUndefined();
    // The time of the most recent rejection outlives the apply that followed it.
    expect(status.lastRejectedAt).toEqual(secondRejectedAt);
  });

  it("clears the error when a rejected edit is rolled back to the live content, without re-applying, and says so once", async () => {
    const harness = await start();
    await kubelet.write({ "policy.yaml": invalidPolicy(1) });
    await waitFor("rejection", () => harness.rejected.length === 1);
    await kubelet.write({ "policy.yaml": invalidPolicy(2) });
    await waitFor("second rejection", () => harness.rejected.length === 2);
    await kubelet.write({ "policy.yaml": validPolicy(100) });
    await waitFor("error cleared", () => harness.watcher.status().lastError === undefined);
    expect(harness.watcher.status().rejectedSinceLastSuccess).toBe(0);
    expect(harness.applied).toHaveLength(1);
    // The caller reported the rejections: it is told they no longer stand.
    expect(harness.restored).toMatchObject([{ version: v(validPolicy(100)), rejectedSinceLastSuccess: 2, source: join(dir, "policy.yaml") }]);
    // Later re-reads of the same bytes change nothing and say nothing.
    await harness.watcher.reload("SIGHUP");
    expect(harness.restored).toHaveLength(1);
  });

  it("a rejection, then the key gone, then the live content back: the rejection no longer stands either", async () => {
    const harness = await start();
    await kubelet.write({ "policy.yaml": invalidPolicy(1) });
    await waitFor("rejection", () => harness.rejected.length === 1);
    await kubelet.write({ "other.yaml": "x: 1\n" });
    await waitFor("source missing", () => harness.watcher.status().sourceMissing);
    await kubelet.write({ "policy.yaml": validPolicy(100) });
    await waitFor("restored", () => harness.restored.length === 1);
    expect(harness.watcher.status()).toMatchObject({ sourceMissing: false, lastError: undefined, rejectedSinceLastSuccess: 0 });
    expect(harness.applied).toHaveLength(1);
  });

  it("a deleted key restored as it was, with no rejection between, restores nothing", async () => {
    const harness = await start();
    await kubelet.write({ "other.yaml": "x: 1\n" });
    await waitFor("source missing", () => harness.watcher.status().sourceMissing);
    await kubelet.write({ "policy.yaml": validPolicy(100) });
    await waitFor("back", () => !harness.watcher.status().sourceMissing);
    await harness.watcher.reload("SIGHUP");
    expect(harness.watcher.status()).toMatchObject({ lastError: undefined, rejectedSinceLastSuccess: 0 });
    expect(harness.restored).toEqual([]);
    expect(harness.applied).toHaveLength(1);
  });

  it("keeps the last good policy when the key disappears, says so, and applies it when it is back", async () => {
    const harness = await start();
    const good = v(validPolicy(100));
    // The ConfigMap loses its policy.yaml key: kubelet swaps ..data and removes the visible link.
    await kubelet.write({ "other.yaml": "x: 1\n" });
    await waitFor("source missing", () => harness.watcher.status().sourceMissing);
    const status = harness.watcher.status();
    expect(status.version).toBe(good);
    expect(status.lastError?.kind).toBe("missing");
    // A missing file is reported in lastError, but nothing was rejected.
    expect(status.lastRejectedAt).toBeUndefined();
    expect(harness.live()).toBe(good);
    expect(harness.logs.some((l) => l.level === "warn" && l.msg.includes("missing") && l.fields.keptVersion === good)).toBe(true);

    await kubelet.write({ "policy.yaml": validPolicy(600) });
    await waitFor("reappeared policy applied", () => harness.live() === v(validPolicy(600)));
    expect(harness.watcher.status()).toMatchObject({ sourceMissing: false, lastError: undefined });
  });

  it("does not re-apply on a swap that leaves the policy bytes unchanged", async () => {
    const harness = await start();
    await kubelet.write({ "policy.yaml": validPolicy(200), "notes.txt": "a" });
    await waitFor("v200 applied", () => harness.live() === v(validPolicy(200)));

    // Another key of the ConfigMap changes: kubelet swaps ..data, policy.yaml has the same bytes.
    const before = new Date();
    expect(await kubelet.write({ "policy.yaml": validPolicy(200), "notes.txt": "b" })).toBe(true);
    await waitFor("the swap was looked at", () => (harness.watcher.status().lastCheckedAt?.getTime() ?? 0) >= before.getTime());
    expect(harness.applied).toHaveLength(2);

    await kubelet.write({ "policy.yaml": validPolicy(300), "notes.txt": "b" });
    await waitFor("v300 applied", () => harness.live() === v(validPolicy(300)));
    expect(harness.applied.map((a) => a.info.version)).toEqual([v(validPolicy(100)), v(validPolicy(200)), v(validPolicy(300))]);
  });

  it("reload() re-reads at once, whatever the debounce", async () => {
    const harness = await start({ debounceMs: 60_000, pollIntervalMs: 0 });
    await kubelet.write({ "policy.yaml": validPolicy(700) });
    await sleep(300);
    expect(harness.live()).toBe(v(validPolicy(100)));
    const outcome = await harness.watcher.reload("SIGHUP");
    expect(outcome).toMatchObject({ kind: "applied", version: v(validPolicy(700)) });
    expect(harness.live()).toBe(v(validPolicy(700)));
    expect(harness.applied.at(-1)?.info.reason).toBe("SIGHUP");
    expect(await harness.watcher.reload("SIGHUP")).toMatchObject({ kind: "unchanged" });
  });

  it("the periodic re-read catches a swap when no notification arrives", async () => {
    const harness = await start({ fsEvents: false, pollIntervalMs: 200 });
    await kubelet.write({ "policy.yaml": validPolicy(800) });
    await waitFor("poll applied the swap", () => harness.live() === v(validPolicy(800)), 2_000);
    expect(harness.applied.at(-1)?.info.reason).toBe("poll");
  });

  it("survives a storm of 50 swaps in 5 s, some invalid, and ends on the last valid policy", async () => {
    const harness = await start();
    const valid = new Set<string>([v(validPolicy(100))]);
    const invalid = new Set<string>();
    let last = "";
    for (let i = 1; i <= 50; i++) {
      // Every fourth is invalid; the 50th is valid, so it is the policy the storm must end on.
      const text = i % 4 === 3 ? invalidPolicy(i) : validPolicy(1_000 + i);
      (i % 4 === 3 ? invalid : valid).add(v(text));
      if (i % 4 !== 3) last = v(text);
      await kubelet.write({ "policy.yaml": text });
      await sleep(100);
    }
    await waitFor("last valid policy applied", () => harness.live() === last, 2_000);

    const order = (version: string): number => [...valid].indexOf(version);
    const appliedVersions = harness.applied.map((a) => a.info.version);
    expect(appliedVersions.every((x) => valid.has(x))).toBe(true);
    expect(harness.rejected.every((r) => invalid.has(r.info.version))).toBe(true);
    // Applies only move forward: never back to an older document of the storm.
    expect(appliedVersions.map(order)).toEqual([...appliedVersions.map(order)].sort((a, b) => a - b));
    expect(harness.watcher.status()).toMatchObject({ version: last, lastError: undefined, rejectedSinceLastSuccess: 0 });
  });
});
