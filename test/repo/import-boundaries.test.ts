/**
 * Imports point inward (docs: ARCHITECTURE): the engine never imports the server, the server
 * never holds business rules or touches storage directly, nothing imports the composition root.
 * Read from the import statements of src/, so a wrong import fails here, not in review.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, dirname, normalize } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = "src";

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** Every `from "…"` / `import("…")` specifier of a file. */
function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1] ?? "");
}

/** The src module (`engine`, `server`, …) a file or relative import lands in; undefined outside src. */
function moduleOf(path: string): string | undefined {
  const rel = relative(SRC, path);
  return rel.startsWith("..") ? undefined : rel.split("/")[0];
}

/** What each module may import from other src modules, and which packages it must not use. */
const RULES: Record<string, { modules: string[]; forbiddenPackages?: RegExp }> = {
  errors: { modules: [] },
  policy: { modules: ["errors"], forbiddenPackages: /^(node:|lmdb|@grpc|@connectrpc|@bufbuild)/ },
  engine: { modules: ["policy", "errors"], forbiddenPackages: /^(node:|lmdb|@grpc|@connectrpc|@bufbuild|zod|yaml)/ },
  store: { modules: ["engine", "policy", "errors"], forbiddenPackages: /^(@grpc|@connectrpc|@bufbuild)/ },
  watch: { modules: ["policy", "errors"], forbiddenPackages: /^(lmdb|@grpc|@connectrpc|@bufbuild)/ },
  server: { modules: ["engine", "policy", "errors", "gen"], forbiddenPackages: /^lmdb/ },
  metrics: { modules: ["engine", "policy", "store", "errors"] },
  client: { modules: ["gen"], forbiddenPackages: /^(lmdb|@grpc\/grpc-js)/ },
  gen: { modules: [] },
  cli: { modules: ["errors", "policy", "engine", "store", "server", "watch", "metrics", "gen"] },
};

describe("module boundaries", () => {
  const all = files(SRC);

  it("every src module has a rule", () => {
    expect(new Set(all.map((f) => moduleOf(f)))).toEqual(new Set(Object.keys(RULES)));
  });

  it("imports only point inward", () => {
    const violations: string[] = [];
    for (const file of all) {
      const from = moduleOf(file);
      if (from === undefined || from === "gen") continue;
      const rule = RULES[from];
      if (!rule) continue;
      for (const spec of imports(file)) {
        if (spec.startsWith(".")) {
          const target = moduleOf(normalize(join(dirname(file), spec)));
          if (target !== from && (target === undefined || !rule.modules.includes(target))) {
            violations.push(`${file} imports ${spec} (${from} → ${target ?? "outside src"})`);
          }
        } else if (rule.forbiddenPackages?.test(spec)) {
          violations.push(`${file} imports package ${spec}`);
        }
      }
    }
    expect(violations).toEqual([]);
  });

  it("other modules import a module only through its index.ts", () => {
    const deep: string[] = [];
    for (const file of all) {
      const from = moduleOf(file);
      for (const spec of imports(file).filter((s) => s.startsWith("."))) {
        const target = normalize(join(dirname(file), spec));
        const to = moduleOf(target);
        if (to === undefined || to === from || to === "gen") continue;
        if (!/\/index\.js$/.test(target)) deep.push(`${file} imports ${spec}`);
      }
    }
    expect(deep).toEqual([]);
  });
});
