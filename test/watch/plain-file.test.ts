/**
 * The watcher on a plain file: in-place writes, editor-style rename-over, deletion, a file that
 * does not exist yet, and failures inside the caller's or compiler's code.
 */
import { mkdir, rename, rm, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { contentVersion } from "../../src/watch/index.js";
import { compile, invalidPolicy, validPolicy } from "./fixtures.js";
import { createHarness, sleep, tempDir, waitFor, type Harness } from "./harness.js";

const v = (text: string | Uint8Array): string => contentVersion(typeof text === "string" ? Buffer.from(text) : text);

describe("policy watcher on a plain file", () => {
  let dir: string;
  let file: string;
  let cleanup: () => Promise<void>;
  let h: Harness | undefined;
  beforeEach(async () => {
    ({ dir, cleanup } = await tempDir());
    file = join(dir, "policy.yaml");
  });
  afterEach(async () => {
    await h?.watcher.close();
    h = undefined;
    await cleanup();
  });

  const started = async (options: object = {}): Promise<Harness> => {
    h = createHarness({ path: file, ...options });
    await h.watcher.start();
    return h;
  };

  it("applies an in-place write", async () => {
    await writeFile(file, validPolicy(100));
    const harness = await started();
    await writeFile(file, validPolicy(200));
    await waitFor("in-place write applied", () => harness.live() === v(validPolicy(200)));
  });

  it("applies a same-directory rename over the file (editors, docker cp)", async () => {
    await writeFile(file, validPolicy(100));
    const harness = await started();
    const tmp = join(dir, ".policy.yaml.swp");
    await writeFile(tmp, validPolicy(300));
    await rename(tmp, file);
    await waitFor("renamed-over file applied", () => harness.live() === v(validPolicy(300)));
  });

  it("keeps watching when the policy's directory is replaced by another, seeing later in-place writes at once", async () => {
    const conf = join(dir, "conf");
    await mkdir(conf);
    file = join(conf, "policy.yaml");
    await writeFile(file, validPolicy(100));
    const harness = await started(); // the default 30 s poll: only a re-armed watch sees the edit
    // A deploy tool swapping the whole directory: the watch was on the one now deleted.
    await mkdir(join(dir, "conf.new"));
    await writeFile(join(dir, "conf.new", "policy.yaml"), validPolicy(200));
    await rename(conf, join(dir, "conf.old"));
    await rename(join(dir, "conf.new"), conf);
    await rm(join(dir, "conf.old"), { recursive: true });
    await waitFor("replaced directory's policy applied", () => harness.live() === v(validPolicy(200)));
    await writeFile(file, validPolicy(300));
    await waitFor("in-place write in the new directory applied", () => harness.live() === v(validPolicy(300)));
  });

  it("keeps the last good policy when the file is deleted, and applies it when it comes back", async () => {
    await writeFile(file, validPolicy(100));
    const harness = await started();
    await unlink(file);
    await waitFor("source missing", () => harness.watcher.status().sourceMissing);
    expect(harness.watcher.status()).toMatchObject({ version: v(validPolicy(100)), lastError: { kind: "missing" } });
    await writeFile(file, validPolicy(400));
    await waitFor("recreated file applied", () => harness.live() === v(validPolicy(400)));
    expect(harness.watcher.status().sourceMissing).toBe(false);
  });

  it("reports a bad file again when it comes back after being deleted", async () => {
    await writeFile(file, validPolicy(100));
    const harness = await started();
    await writeFile(file, invalidPolicy(1));
    await waitFor("rejection", () => harness.rejected.length === 1);
    await unlink(file);
    await waitFor("source missing", () => harness.watcher.status().sourceMissing);
    await writeFile(file, invalidPolicy(1));
    await waitFor("second rejection", () => harness.rejected.length === 2);
    expect(harness.watcher.status()).toMatchObject({ sourceMissing: false, lastError: { kind: "rejected" }, version: v(validPolicy(100)) });
  });

  it("reports a missing file at start, and applies it once it appears", async () => {
    h = createHarness({ path: file });
    const outcome = await h.watcher.start();
    expect(outcome.kind).toBe("missing");
    expect(h.watcher.status()).toMatchObject({ version: undefined, sourceMissing: true, lastError: { kind: "missing" } });
    // There is no last good policy to keep yet, and the log must not claim one.
    expect(h.logs.map((l) => l.msg)).toContain("policy source missing");
    await writeFile(file, validPolicy(100));
    const harness = h;
    await waitFor("late file applied", () => harness.live() === v(validPolicy(100)));
  });

  it("reports an invalid initial policy so the caller can refuse to start", async () => {
    await writeFile(file, invalidPolicy(1));
    h = createHarness({ path: file });
    const outcome = await h.watcher.start();
    expect(outcome.kind).toBe("rejected");
    expect(h.applied).toHaveLength(0);
    expect(h.rejected[0]?.info.keptVersion).toBeUndefined();
    expect(h.watcher.status()).toMatchObject({ version: undefined, rejectedSinceLastSuccess: 1 });
    expect(h.logs.map((l) => l.msg)).toContain("policy rejected");
  });

  it("does not re-report an unchanged bad file on every periodic re-read, but reload() does", async () => {
    await writeFile(file, validPolicy(100));
    const harness = await started({ pollIntervalMs: 50 });
    await writeFile(file, invalidPolicy(1));
    await waitFor("rejection", () => harness.rejected.length === 1);
    const checked = harness.watcher.status().lastCheckedAt?.getTime() ?? 0;
    await waitFor("several polls", () => (harness.watcher.status().lastCheckedAt?.getTime() ?? 0) > checked + 150);
    expect(harness.rejected).toHaveLength(1);
    expect((await harness.watcher.reload("admin")).kind).toBe("rejected");
    expect(harness.rejected).toHaveLength(2);
    expect(harness.watcher.status().rejectedSinceLastSuccess).toBe(2);
  });

  it("rejects bytes that are not UTF-8; a compiler that throws is no rejection; both keep the old policy", async () => {
    await writeFile(file, validPolicy(100));
    let explode = false;
    const harness = await started({
      compile: (text: string, version: string) => {
        if (explode) throw new Error("boom");
        return compile(text, version);
      },
    });
    const latin1 = Buffer.from([0x70, 0x6f, 0x6c, 0x69, 0x63, 0x79, 0x3a, 0x20, 0xe9, 0x0a]);
    await writeFile(file, latin1);
    expect(await harness.watcher.reload("test")).toMatchObject({ kind: "rejected", issues: [{ message: "the file is not valid UTF-8" }] });

    explode = true;
    await writeFile(file, validPolicy(200));
    const outcome = await harness.watcher.reload("test");
    expect(outcome.kind).toBe("compile-failed");
    expect(harness.watcher.status().lastError).toMatchObject({ kind: "compile-failed", message: `the compiler failed on policy ${v(validPolicy(200))}: Error: boom` });
    // The compiler's failure is no rejection: the time stays the UTF-8 rejection's.
    expect(harness.watcher.status().lastRejectedAt).toEqual(harness.rejected[0]?.info.rejectedAt);
    expect(harness.rejected).toHaveLength(1); // the UTF-8 one only
    expect(harness.live()).toBe(v(validPolicy(100)));
  });

  it("waits for a compiler that answers later; after its failure the next re-read compiles the same bytes again", async () => {
    await writeFile(file, validPolicy(100));
    let fail = false;
    const harness = await started({
      // The shape of the sidecar's worker-thread compiler: a promise, answered after a turn.
      compile: async (text: string, version: string) => {
        await new Promise((r) => setTimeout(r, 5));
        if (fail) throw new Error("the compile worker exited (code 1)");
        return compile(text, version);
      },
    });
    await writeFile(file, validPolicy(200));
    expect(await harness.watcher.reload("test")).toMatchObject({ kind: "applied", version: v(validPolicy(200)) });
    expect(harness.live()).toBe(v(validPolicy(200)));
    fail = true;
    await writeFile(file, validPolicy(300));
    expect((await harness.watcher.reload("test")).kind).toBe("compile-failed");
    expect(harness.watcher.status().lastError?.message).toContain("Error: the compile worker exited (code 1)");
    expect(harness.live()).toBe(v(validPolicy(200)));
    // The worker recovers: the same bytes, read again on the next file event (not reload(),
    // which forces), are compiled again and applied; they were never remembered as bad.
    fail = false;
    await writeFile(file, validPolicy(300));
    await waitFor("the re-read to apply the same bytes", () => harness.live() === v(validPolicy(300)));
    expect(harness.rejected).toHaveLength(0);
  });

  it("treats a throwing onApplied as not applied and retries on the next re-read", async () => {
    await writeFile(file, validPolicy(100));
    let fail = false;
    let live: string | undefined;
    h = createHarness({
      path: file,
      onApplied: (policy) => {
        if (fail) throw new Error("swap failed");
        live = policy.version;
      },
    });
    await h.watcher.start();
    fail = true;
    await writeFile(file, validPolicy(200));
    expect((await h.watcher.reload("test")).kind).toBe("apply-failed");
    expect(h.watcher.status()).toMatchObject({ version: v(validPolicy(100)), lastError: { kind: "apply-failed" } });
    fail = false;
    expect((await h.watcher.reload("test")).kind).toBe("applied");
    expect(live).toBe(v(validPolicy(200)));
    expect(h.watcher.status().lastError).toBeUndefined();
  });

  it("stops reacting after close()", async () => {
    await writeFile(file, validPolicy(100));
    const harness = await started({ pollIntervalMs: 50 });
    await harness.watcher.close();
    await writeFile(file, validPolicy(200));
    await sleep(400);
    expect(harness.applied).toHaveLength(1);
    expect((await harness.watcher.reload("late")).kind).toBe("closed");
  });
});



