/**
 * `npm ci` (the README's first command) refuses a lock whose entries name optional dependencies
 * the lock does not contain. The registry these machines reach lacks some other-platform
 * binaries, so an `npm install` here can write exactly such a lock: catch it before CI does.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

interface LockEntry {
  readonly optionalDependencies?: Readonly<Record<string, string>>;
  readonly dependencies?: Readonly<Record<string, string>>;
}

describe("package-lock.json", () => {
  const lock = JSON.parse(readFileSync("package-lock.json", "utf8")) as { packages: Record<string, LockEntry> };
  const packages = lock.packages;

  /** Where npm would find `name` for the package at `path`: nested, then each ancestor, then the root. */
  function resolves(path: string, name: string): boolean {
    let dir = path;
    for (;;) {
      if (packages[`${dir ? `${dir}/` : ""}node_modules/${name}`] !== undefined) return true;
      if (dir === "") return false;
      const cut = dir.lastIndexOf("/node_modules/");
      dir = cut < 0 ? "" : dir.slice(0, cut);
    }
  }

  it("contains every optional dependency its entries name, so npm ci accepts it", () => {
    const dangling = Object.entries(packages).flatMap(([path, entry]) =>
      Object.keys(entry.optionalDependencies ?? {})
        .filter((name) => !resolves(path, name))
        .map((name) => `${path || "<root>"} -> ${name}`),
    );
    expect(dangling, "drop these edges from the lock (see the commit that added this test)").toEqual([]);
  });

  it("has the linux-x64 native binaries the sidecar and its tools need", () => {
    for (const name of ["@lmdb/lmdb-linux-x64", "@bufbuild/buf-linux-x64", "@msgpackr-extract/msgpackr-extract-linux-x64"]) {
      expect(packages[`node_modules/${name}`], name).toBeDefined();
    }
  });
});
