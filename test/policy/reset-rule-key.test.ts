import { describe, expect, it } from "vitest";
import { loadPolicy, resetRuleKey, resetRuleOfKey, sameResetRule, type ResetRule } from "../../src/policy/index.js";

/** The reset rules a policy compiles for `limit` fields (one plan, one entitlement each). */
function rulesOf(...limits: string[]): (ResetRule | undefined)[] {
  const text =
    "policy:\n  credits:\n    t: { label: T, unit: t }\n  plans:\n" +
    limits.map((l, i) => `    p${i}:\n      entitlements:\n        e:\n          limit: { credit: t, value: 1${l === "" ? "" : `, ${l}`} }\n`).join("");
  const r = loadPolicy(text, { version: "v" });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return limits.map((_, i) => r.policy.plans.get(`p${i}`)?.entitlements.get("e")?.limit?.reset);
}

describe("reset rule keys", () => {
  it("name a rule by its meaning: spellings of one period share a key, and the key reads back as the same rule", () => {
    const rules = rulesOf("", "resets: true", "resets: true, reset_inc: 1day", "resets: true, reset_inc: 24hr", "resets: true, reset_sch: 'Monthly:01'", "resets: true, reset_sch: weekly:monday", "resets: true, reset_sch: monthly:last", "resets: true, reset_sch: 'yearly:02-29'", "resets: true, reset_sch: quarterly:15", "resets: true, reset_sch: hourly");
    const keys = rules.map(resetRuleKey);
    expect(keys).toEqual(["never", "2592000000ms", "86400000ms", "86400000ms", "monthly:1", "weekly:mon", "monthly:last", "yearly:2-29", "quarterly:15", "hourly"]);
    rules.forEach((rule, i) => {
      const back = resetRuleOfKey(keys[i] as string);
      expect(back.ok).toBe(true);
      if (back.ok) expect(sameResetRule(back.rule, rule)).toBe(true);
    });
  });

  it("refuses what no rule is, and spellings a policy accepts but a key never has", () => {
    for (const key of ["", "fortnightly", "1day", "0ms", "-5ms", "1.5ms", "99999999999999999ms", "Monthly:1", "monthly:01", "weekly:monday", "monthly:32", "Never"]) {
      const r = resetRuleOfKey(key);
      expect(r.ok, key).toBe(false);
      if (!r.ok) expect(r.message).toContain(`"${key}" is not a reset rule`);
    }
  });
});
