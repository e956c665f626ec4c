/**
 * The builds `npm run bench:ab` compares: a directory holding a built sidecar as it is, or a git
 * revision compiled once into a cache directory (that commit's src/ and proto/, with this
 * checkout's TypeScript and node_modules).
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { UsageError } from "./ab-options.js";

export interface Build {
  /** What was asked for (a revision or a directory), as the report names it. */
  readonly label: string;
  /** The commit the build was made from, when known. */
  readonly commit: string | undefined;
  /** Directory holding `cli/main.js`. */
  readonly dist: string;
}

function git(root: string, args: readonly string[]): string {
  return execFileSync("git", args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** Whether `git args` exits 0 (for `--quiet` comparisons). */
function gitSucceeds(root: string, args: readonly string[]): boolean {
  try {
    git(root, args);
    return true;
  } catch {
    return false;
  }
}

/**
 * `spec` in the repository at `root` as a runnable build; revisions are built under `cacheDir`.
 * `log` hears what is being built and any lockfile mismatch.
 */
export function resolveBuild(root: string, spec: string, cacheDir: string, log: (line: string) => void = console.error): Build {
  if (existsSync(join(spec, "cli", "main.js"))) return { label: spec, commit: undefined, dist: resolve(spec) };
  let commit: string;
  try {
    commit = git(root, ["rev-parse", "--verify", "--quiet", `${spec}^{commit}`]);
  } catch {
    throw new UsageError(`${spec} is neither a directory holding cli/main.js nor a git revision`);
  }
  const dir = join(cacheDir, commit.slice(0, 12));
  if (!existsSync(join(dir, "complete"))) {
    log(`building ${spec} (${commit.slice(0, 12)}) in ${dir}…`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    // proto/ too: the server reads the .proto files at start-up (reflection).
    const tar = execFileSync("git", ["archive", commit, "src", "proto", "tsconfig.json", "tsconfig.build.json", "package.json"], { cwd: root, maxBuffer: 1 << 28 });
    execFileSync("tar", ["-x", "-C", dir], { input: tar });
    symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
    execFileSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(dir, "tsconfig.build.json")], { stdio: ["ignore", "inherit", "inherit"] });
    // Written last: a build that failed or was interrupted is made again next time.
    writeFileSync(join(dir, "complete"), commit + "\n");
  }
  if (!gitSucceeds(root, ["diff", "--quiet", commit, "--", "package-lock.json"])) {
    log(`note: ${spec}'s package-lock.json differs from this checkout's; its build runs on this checkout's node_modules`);
  }
  return { label: spec, commit, dist: join(dir, "dist") };
}

/** This checkout's dist/ (built by `npm run build`), named by its commit and whether src/ or proto/ changed since. */
export function workingTreeBuild(root: string): Build {
  const dist = join(root, "dist");
  if (!existsSync(join(dist, "cli", "main.js"))) throw new UsageError(`no build in ${dist}: run \`npm run build\` (npm run bench:ab does)`);
  const head = git(root, ["rev-parse", "HEAD"]);
  // Untracked files count too: a new module under src/ is part of what dist/ was built from.
  const clean = git(root, ["status", "--porcelain", "--", "src", "proto"]) === "";
  return { label: `working tree (${head.slice(0, 7)}${clean ? "" : " + changes"})`, commit: clean ? head : undefined, dist };
}
