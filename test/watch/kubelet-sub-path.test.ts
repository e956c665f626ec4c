/**
 * A ConfigMap projected with `items: [{ key: policy.yaml, path: conf/policy.yaml }]`: kubelet's
 * AtomicWriter makes the user-visible entry `conf -> ..data/conf`, a symlinked DIRECTORY, so the
 * policy's directory resolves into the timestamped directory of the moment, which the next swap
 * deletes. Every swap must still be picked up within about a second (SPEC §7), not at the 30 s
 * periodic re-read.
 */
import { mkdir, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { contentVersion } from "../../src/watch/index.js";
import { validPolicy } from "./fixtures.js";
import { createHarness, tempDir, waitFor, type Harness } from "./harness.js";

let h: Harness | undefined;
let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await h?.watcher.close();
  h = undefined;
  await cleanup?.();
  cleanup = undefined;
});

const v = (text: string): string => contentVersion(Buffer.from(text));

/**
 * AtomicWriter for a ConfigMap whose only item is `conf/policy.yaml` (test/helpers/kubelet-writer.ts
 * takes top-level keys only), step for step: (3) write the new timestamped directory, (4) create
 * the visible `conf -> ..data/conf` if missing, (5) rename `..data` over to the new directory,
 * (6) remove `conf` when the item left, (7) delete the old directory. `text` undefined: the
 * ConfigMap lost the item (another key keeps the directory non-empty). Returns the new directory.
 */
async function project(dir: string, n: number, text: string | undefined, old: string | undefined): Promise<string> {
  const ts = `..2026_01_15_12_00_${String(n).padStart(2, "0")}.${1000 + n}`;
  await mkdir(join(dir, ts), { recursive: true });
  if (text === undefined) {
    await writeFile(join(dir, ts, "other.yaml"), "x: 1\n");
  } else {
    await mkdir(join(dir, ts, "conf"));
    await writeFile(join(dir, ts, "conf", "policy.yaml"), text);
    await symlink(join("..data", "conf"), join(dir, "conf")).catch((err: unknown) => {
      if ((err as { code?: unknown }).code !== "EEXIST") throw err;
    });
  }
  await symlink(ts, join(dir, "..data_tmp"));
  await rename(join(dir, "..data_tmp"), join(dir, "..data"));
  if (text === undefined) await rm(join(dir, "conf"));
  if (old !== undefined) await rm(join(dir, old), { recursive: true, force: true });
  return ts;
}

async function started(dir: string): Promise<Harness> {
  h = createHarness({ path: join(dir, "conf", "policy.yaml") }); // the default 30 s poll
  expect((await h.watcher.start()).kind).toBe("applied");
  return h;
}

it("picks up every kubelet swap of a policy projected under a sub-path, within 2 s", async () => {
  const t = await tempDir();
  cleanup = t.cleanup;
  let ts = await project(t.dir, 0, validPolicy(100), undefined);
  const harness = await started(t.dir);
  for (const [i, limit] of [200, 300, 400].entries()) {
    ts = await project(t.dir, i + 1, validPolicy(limit), ts);
    await waitFor(`swap ${i + 1} (limit ${limit}) applied`, () => harness.live() === v(validPolicy(limit)), 2_000);
  }
  expect(harness.applied.map((a) => a.info.reason)).toEqual(["initial", "fs-event", "fs-event", "fs-event"]);
});

it("applies the policy within 2 s when its sub-path item comes back after leaving the ConfigMap", async () => {
  const t = await tempDir();
  cleanup = t.cleanup;
  let ts = await project(t.dir, 0, validPolicy(100), undefined);
  const harness = await started(t.dir);
  ts = await project(t.dir, 1, undefined, ts);
  await waitFor("source missing", () => harness.watcher.status().sourceMissing, 2_000);
  expect(harness.live()).toBe(v(validPolicy(100)));
  // With `conf` gone there is no policy directory left to watch; the volume holding it remains.
  await project(t.dir, 2, validPolicy(200), ts);
  await waitFor("returned policy applied", () => harness.live() === v(validPolicy(200)), 2_000);
  expect(harness.watcher.status()).toMatchObject({ sourceMissing: false, lastError: undefined });
});
