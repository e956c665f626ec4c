import { describe, expect, it } from "vitest";
import { loadPolicy } from "../../src/policy/compile-policy.js";
import { summarizePolicy } from "../../src/policy/summarize-policy.js";

describe("summarizePolicy", () => {
  it("prints plans × entitlements × limits, then the credits", () => {
    const r = loadPolicy(
      `policy:
  credits:
    token: { unit: token, price: { amount: 0.00002 }, overhead_cost: 0.000008 }
    storage: { stof_units: MB }
  plans:
    free:
      default: true
      entitlements:
        chat: { limit: { credit: token, mode: soft, value: 1000, resets: true, reset_sch: monthly:1 } }
        disk: { scope: org, limit: { credit: storage, value: 1GB, hard_trailing: true, resets: true } }
    pro:
      entitlements:
        sso: {}
    empty: {}
`,
      { version: "abc123" },
    );
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(summarizePolicy(r.policy)).toBe(
      [
        "policy abc123: 3 plans, 2 credits, default plan: free",
        "",
        "PLAN            ENTITLEMENT  MODE             LIMIT       RESET      SCOPE",
        "free (default)  chat         soft             1000 token  monthly:1  caller",
        "free (default)  disk         hard (trailing)  1000 MB     30days     org",
        "pro             sso          flag             -           -          caller",
        "empty           (none)",
        "",
        "CREDIT   UNIT   KEPT IN  PRICE (USD/unit)  COST (USD/unit)",
        "token    token  number   0.00002           0.000008",
        "storage  MB     MB       -                 0",
        "",
      ].join("\n"),
    );
  });

  it("marks only the plan that is the default when several say default: true", () => {
    const r = loadPolicy("policy: { plans: { a: {}, b: { default: true }, c: { default: true } } }", { version: "v" });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(summarizePolicy(r.policy).split("\n").slice(2, 6)).toEqual(["PLAN         ENTITLEMENT  MODE  LIMIT  RESET  SCOPE", "a            (none)", "b (default)  (none)", "c            (none)"]);
  });

  it("says when there is no default plan", () => {
    const r = loadPolicy("policy: { plans: { p: {} } }", { version: "v" });
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(summarizePolicy(r.policy).split("\n")[0]).toBe("policy v: 1 plan, 0 credits, default plan: (none: unknown customers are denied)");
  });
});
