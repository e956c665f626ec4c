/**
 * The kubelet helper must lay files out exactly as kubelet does, or the watcher tests prove
 * nothing about a real ConfigMap volume.
 */
import { lstat, readFile, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createKubeletWriter } from "../helpers/kubelet-writer.js";
import { tempDir } from "./harness.js";

describe("kubelet writer", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  beforeEach(async () => ({ dir, cleanup } = await tempDir()));
  afterEach(() => cleanup());

  it("projects files through a timestamped directory, ..data and user-visible symlinks", async () => {
    const w = createKubeletWriter(dir);
    expect(await w.write({ "policy.yaml": "one" })).toBe(true);

    const ts = await readlink(join(dir, "..data"));
    expect(ts).toMatch(/^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d+$/);
    expect((await lstat(join(dir, "policy.yaml"))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(dir, "policy.yaml"))).toBe("..data/policy.yaml");
    expect(((await lstat(join(dir, ts))).mode & 0o777).toString(8)).toBe("755");
    expect(((await lstat(join(dir, ts, "policy.yaml"))).mode & 0o777).toString(8)).toBe("644");
    expect(await readFile(join(dir, "policy.yaml"), "utf8")).toBe("one");
    expect((await readdir(dir)).sort()).toEqual([ts, "..data", "policy.yaml"].sort());
  });

  it("swaps ..data by rename, keeps the visible link, removes the old directory and ..data_tmp", async () => {
    const w = createKubeletWriter(dir);
    await w.write({ "policy.yaml": "one" });
    const first = await w.currentDataDir();
    await w.write({ "policy.yaml": "two" });
    const second = await w.currentDataDir();

    expect(second).not.toBe(first);
    expect(await readFile(join(dir, "policy.yaml"), "utf8")).toBe("two");
    expect((await readdir(dir)).sort()).toEqual([second, "..data", "policy.yaml"].sort());
  });

  it("writes nothing when no byte changed, and drops the visible link of a removed key", async () => {
    const w = createKubeletWriter(dir);
    await w.write({ "policy.yaml": "one", "notes.txt": "a" });
    const before = await w.currentDataDir();
    expect(await w.write({ "policy.yaml": "one", "notes.txt": "a" })).toBe(false);
    expect(await w.currentDataDir()).toBe(before);

    expect(await w.write({ "notes.txt": "a" })).toBe(true);
    expect((await readdir(dir)).includes("policy.yaml")).toBe(false);
  });
});
