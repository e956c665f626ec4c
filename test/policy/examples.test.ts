import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadPolicy } from "../../src/policy/compile-policy.js";
import type { CompiledPolicy, PolicyIssue } from "../../src/policy/types.js";

const DIR = join(import.meta.dirname, "../../examples/policies");

function load(file: string): { policy: CompiledPolicy; warnings: readonly PolicyIssue[] } {
  const r = loadPolicy(readFileSync(join(DIR, file), "utf8"), { version: file });
  if (!r.ok) throw new Error(`${file} was rejected:\n${r.issues.map((i) => `${i.kind} ${i.path}: ${i.message}`).join("\n")}`);
  return r;
}

/** Every example and the plans it must compile to (default plan first). */
const EXPECTED_PLANS: Readonly<Record<string, readonly string[]>> = {
  "ai-tokens.yaml": ["free", "pro"],
  "ai-tokens.json": ["free", "pro"],
  "combined.yaml": ["free", "pro"],
  "limitr-compat.yaml": ["starter", "team", "internal"],
};

/** A compact, comparable view of a plan's entitlements: name → "mode value reset scope". */
function shape(policy: CompiledPolicy, plan: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of policy.plans.get(plan)?.entitlements.values() ?? []) {
    const l = e.limit;
    out[e.name] = l === undefined ? "flag" : `${l.mode} ${l.value / 1_000_000_000n}${l.credit.stofUnits ?? ""} ${l.reset?.text ?? "never"}${e.scope ? ` scope=${e.scope}` : ""}`;
  }
  return out;
}

describe("examples/policies", () => {
  const files = readdirSync(DIR).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();

  it("has exactly the examples this test knows about", () => {
    expect(files).toEqual(Object.keys(EXPECTED_PLANS).sort());
  });

  it.each(files)("%s compiles with the expected plans", (file) => {
    const { policy } = load(file);
    expect([...policy.plans.keys()]).toEqual(EXPECTED_PLANS[file]);
    expect(policy.defaultPlan).toBe(EXPECTED_PLANS[file]?.[0]);
  });

  it("ai-tokens: free is soft 1000 tokens a month per model, pro hard 10000, plus requests and streaming", () => {
    const { policy, warnings } = load("ai-tokens.yaml");
    expect(warnings).toEqual([]);
    expect(shape(policy, "free")).toEqual({ gpt_tokens: "soft 1000 monthly:1", claude_tokens: "soft 1000 monthly:1", requests: "observe 0 never" });
    expect(shape(policy, "pro")).toEqual({ gpt_tokens: "hard 10000 monthly:1", claude_tokens: "hard 10000 monthly:1", requests: "hard 1000 daily", streaming: "flag" });
    const token = policy.credits.get("token");
    expect(token).toMatchObject({ unit: "token", price: 20_000_000_000_000n, overheadCost: 8_000_000_000_000n });
  });

  it("ai-tokens.json says exactly what ai-tokens.yaml says", () => {
    const yaml = load("ai-tokens.yaml").policy;
    const json = load("ai-tokens.json").policy;
    expect({ ...json, version: "" }).toEqual({ ...yaml, version: "" });
  });

  it("combined: org seats, daily storage written as GB and kept in MB, per-user model caps", () => {
    const { policy, warnings } = load("combined.yaml");
    expect(warnings).toEqual([]);
    expect(shape(policy, "free")).toEqual({
      seats: "hard 3 never scope=org",
      storage_mb: "hard 1000MB daily scope=org",
      gpt_tokens: "hard 2000 30days",
      claude_tokens: "hard 2000 30days",
    });
    expect(shape(policy, "pro")).toEqual({
      seats: "hard 10 never scope=org",
      storage_mb: "soft 10000MB daily scope=org",
      gpt_tokens: "soft 50000 monthly:1",
      claude_tokens: "soft 50000 monthly:1",
      priority_support: "flag",
    });
    expect(policy.plans.get("pro")?.entitlements.get("gpt_tokens")?.limit?.thresholds).toEqual([80, 100]);
  });

  it("limitr-compat loads with warnings only, each saying the field is not enforced", () => {
    const { policy, warnings } = load("limitr-compat.yaml");
    expect(warnings.length).toBeGreaterThanOrEqual(10);
    expect(warnings.every((w) => w.kind === "warning" && w.message.endsWith("is not enforced by limitr-sidecar; it is ignored"))).toBe(true);
    expect(warnings.map((w) => w.path)).toEqual(
      expect.arrayContaining(["policy.exchange", "policy.credits.token.price.id", "policy.plans.team.topups", "policy.plans.team.pricing_model", "policy.plans.internal.hidden"]),
    );
    expect(policy.plans.get("team")?.entitlements.get("gpu_time")?.limit).toMatchObject({ value: 7200n * 1_000_000_000n, hardTrailing: true });
  });
});
