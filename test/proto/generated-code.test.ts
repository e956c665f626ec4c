/**
 * The proto contract: `buf lint` (STANDARD) passes, and regenerating with the committed
 * buf.gen.yaml reproduces the committed src/gen byte for byte (generated code is never edited).
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BUF = join(ROOT, "node_modules", ".bin", "buf");

async function files(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const e of entries) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out.set(relative(dir, p), await readFile(p));
  }
  return out;
}

const temps: string[] = [];
afterAll(async () => {
  await Promise.all(temps.map((t) => rm(t, { recursive: true, force: true })));
});

describe("proto", () => {
  it("passes buf lint", async () => {
    // execFile rejects on a non-zero exit, with buf's findings in the message.
    const { stdout, stderr } = await run(BUF, ["lint"], { cwd: ROOT });
    expect(stdout + stderr).toBe("");
  });

  it("regenerates exactly the committed src/gen", async () => {
    const out = await mkdtemp(join(tmpdir(), "limitr-gen-"));
    temps.push(out);
    // --output re-roots the template's `out: src/gen` under the temp dir.
    await run(BUF, ["generate", "--output", out], { cwd: ROOT });
    const fresh = await files(join(out, "src", "gen"));
    const committed = await files(join(ROOT, "src", "gen"));
    expect([...fresh.keys()].sort()).toEqual([...committed.keys()].sort());
    expect(fresh.size).toBeGreaterThan(0);
    for (const [name, bytes] of fresh) {
      expect(committed.get(name)?.equals(bytes), `${name} differs from a fresh buf generate`).toBe(true);
    }
  });
});
