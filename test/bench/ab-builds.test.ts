/**
 * `npm run bench:ab` builds a revision from git: that commit's src/ and proto/, compiled against
 * this checkout's node_modules. Built for real here (HEAD, ~10 s), and started.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { resolveBuild, workingTreeBuild } from "../../bench/grpc/ab-builds.js";
import { UsageError } from "../../bench/grpc/ab-options.js";

const ROOT = process.cwd();
const cache = mkdtempSync(join(tmpdir(), "limitr-ab-builds-test-"));
afterAll(() => rmSync(cache, { recursive: true, force: true }));

const head = execFileSync("git", ["rev-parse", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
const logged: string[] = [];
const log = (line: string): void => void logged.push(line);
/** What was built (a checkout with a changed package-lock.json also hears a note). */
const builds = (): string[] => logged.filter((l) => l.startsWith("building "));

describe("bench:ab builds", () => {
  it("builds a git revision once into the cache, runnable, and reuses it", () => {
    const build = resolveBuild(ROOT, "HEAD", cache, log);
    expect(builds()).toEqual([`building HEAD (${head.slice(0, 12)}) in ${join(cache, head.slice(0, 12))}…`]);
    expect(build.commit).toBe(head);
    expect(build.dist).toBe(join(cache, head.slice(0, 12), "dist"));
    const help = execFileSync(process.execPath, [join(build.dist, "cli", "main.js"), "--help"], { encoding: "utf8" });
    expect(help).toMatch(/limitr-sidecar serve --policy FILE/);
    // The server reads its .proto files from ../../proto at start-up.
    expect(existsSync(join(build.dist, "..", "proto", "limitr", "v1", "decision.proto"))).toBe(true);
    const marker = join(cache, head.slice(0, 12), "complete");
    expect(readFileSync(marker, "utf8").trim()).toBe(head);
    const built = statSync(join(build.dist, "cli", "main.js")).mtimeMs;
    resolveBuild(ROOT, head, cache, log);
    expect(builds()).toHaveLength(1);
    expect(statSync(join(build.dist, "cli", "main.js")).mtimeMs).toBe(built);
  });

  it("builds again what an interrupted build left (no completion marker)", () => {
    const dir = join(cache, head.slice(0, 12));
    rmSync(join(dir, "complete"));
    writeFileSync(join(dir, "dist", "cli", "main.js"), "throw new Error('half-written');\n");
    const build = resolveBuild(ROOT, "HEAD", cache, log);
    expect(builds()).toHaveLength(2);
    expect(execFileSync(process.execPath, [join(build.dist, "cli", "main.js"), "--help"], { encoding: "utf8" })).toMatch(/limitr-sidecar/);
  });

  it("takes a directory holding cli/main.js as it is", () => {
    const dir = mkdtempSync(join(tmpdir(), "limitr-ab-dist-"));
    try {
      mkdirSync(join(dir, "cli"));
      writeFileSync(join(dir, "cli", "main.js"), "");
      expect(resolveBuild(ROOT, dir, cache, log)).toEqual({ label: dir, commit: undefined, dist: dir });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("refuses what is neither, naming it, and builds nothing", () => {
    expect(() => resolveBuild(ROOT, "no-such-revision-xyz", cache, log)).toThrow(UsageError);
    expect(() => resolveBuild(ROOT, "no-such-revision-xyz", cache, log)).toThrow(/no-such-revision-xyz is neither a directory holding cli\/main.js nor a git revision/);
  });

  it("names this checkout's build by its commit", () => {
    const build = workingTreeBuild(ROOT);
    expect(build.dist).toBe(join(ROOT, "dist"));
    expect(build.label).toContain(head.slice(0, 7));
  });
});
