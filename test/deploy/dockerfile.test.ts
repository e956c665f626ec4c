/**
 * deploy/Dockerfile cannot be built here (no Docker engine), so its essentials are checked by
 * parsing it: stages, base image, dependency installs, user, entrypoint and what gets copied.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

interface Instruction {
  readonly op: string;
  readonly args: string;
}
interface Stage {
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

/** Dockerfile → stages of instructions; comments dropped, `\` continuations joined, ARGs expanded in FROM. */
function parseDockerfile(text: string): Stage[] {
  const lines = text.replace(/\\\r?\n/g, " ").split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const op = (m[1] ?? "").toUpperCase();
    const rest = (m[2] ?? "").replace(/\s+/g, " ");
    if (op === "ARG" && stages.length === 0) {
      const [k, v] = rest.split("=");
      if (k && v) args.set(k, v);
    } else if (op === "FROM") {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      const image = (f?.[1] ?? "").replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => args.get(a ?? b ?? "") ?? "");
      stages.push({ from: image, name: f?.[2], instructions: [] });
    } else {
      stages.at(-1)?.instructions.push({ op, args: rest });
    }
  }
  return stages;
}

/** glibc of the Debian releases Node's official images are built on. */
const DEBIAN_GLIBC: Record<string, number> = { bullseye: 2.31, bookworm: 2.36, trixie: 2.41 };

describe("deploy/Dockerfile", () => {
  const text = readFileSync("deploy/Dockerfile", "utf8");
  const stages = parseDockerfile(text);
  const runtime = stages.at(-1) as Stage;
  const ops = (stage: Stage, op: string): string[] => stage.instructions.filter((i) => i.op === op).map((i) => i.args);

  it("is multi-stage: a build stage that compiles, a runtime stage that does not", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const build = stages.find((s) => ops(s, "RUN").some((r) => r.includes("npm run build")));
    expect(build).toBeDefined();
    expect(build).not.toBe(runtime);
    expect(ops(runtime, "RUN").some((r) => r.includes("npm run build"))).toBe(false);
    expect(ops(runtime, "COPY").some((c) => c.startsWith(`--from=${build?.name ?? "?"} `) && /\bdist\b/.test(c))).toBe(true);
  });

  it("installs production dependencies only in the runtime stage, and never omits optional ones", () => {
    const installs = ops(runtime, "RUN").filter((r) => /\bnpm (ci|install)\b/.test(r));
    expect(installs).toHaveLength(1);
    expect(installs[0]).toMatch(/\bnpm ci\b.*--omit=dev\b/);
    // lmdb (and buf) ship their native binaries as optional packages.
    const everyRun = stages.flatMap((s) => ops(s, "RUN")).join("\n");
    expect(everyRun).not.toMatch(/--omit[= ]optional|--no-optional/);
  });

  it("uses a current Node LTS base on glibc >= 2.34 in every stage", () => {
    for (const s of stages) {
      const m = /^node:(\d+)(?:\.\d+)*-(\w+)(?:-slim)?(?:@sha256:[0-9a-f]+)?$/.exec(s.from);
      expect(m, `base image ${s.from}`).not.toBeNull();
      const major = Number(m?.[1]);
      expect(major % 2, "LTS lines are even").toBe(0);
      expect(major).toBeGreaterThanOrEqual(22);
      expect(DEBIAN_GLIBC[m?.[2] ?? ""] ?? 0, `glibc of ${m?.[2]}`).toBeGreaterThanOrEqual(2.34);
    }
  });

  it("runs as a fixed non-root user", () => {
    const user = ops(runtime, "USER").at(-1);
    expect(user).toMatch(/^\d+(:\d+)?$/);
    expect(Number(user?.split(":")[0])).toBeGreaterThan(0);
  });

  it("starts Node under tini so signals reach it", () => {
    expect(ops(runtime, "RUN").some((r) => /apt-get install\b.*\btini\b/.test(r))).toBe(true);
    const entrypoint = JSON.parse(ops(runtime, "ENTRYPOINT").at(-1) ?? "null") as unknown;
    expect(entrypoint).toEqual(["tini", "--", "node", "dist/cli/main.js"]);
    const cmd = JSON.parse(ops(runtime, "CMD").at(-1) ?? "null") as string[];
    expect(cmd[0]).toBe("serve");
  });

  it("ships what the sidecar reads at run time: dist, proto (server reflection) and the example policies", () => {
    const copies = ops(runtime, "COPY").join("\n");
    expect(copies).toMatch(/\bdist\b/);
    expect(copies).toMatch(/^proto \.\/proto$/m);
    expect(copies).toMatch(/^examples\/policies \.\/examples\/policies$/m);
    // The example policy comes from the environment, not a flag, so `docker run -e LIMITR_POLICY=…`
    // replaces it (a flag would win over the variable).
    expect(JSON.parse(ops(runtime, "CMD").at(-1) ?? "[]")).toEqual(["serve"]);
    const env = ops(runtime, "ENV").join(" ");
    expect(env).toMatch(/\bLIMITR_POLICY=examples\/policies\/\S+\.yaml\b/);
  });
});
