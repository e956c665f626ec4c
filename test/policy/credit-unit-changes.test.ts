import { describe, expect, it } from "vitest";
import { creditUnitChanges, loadPolicy, type CompiledPolicy } from "../../src/policy/index.js";

function policy(credits: string): CompiledPolicy {
  const r = loadPolicy(`policy: { credits: { ${credits} }, plans: { p: {} } }`, { version: "v" });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.policy;
}

describe("creditUnitChanges", () => {
  it("names each credit whose stof_units changed, and no other", () => {
    const before = policy("disk: { stof_units: MB }, time: { stof_units: s }, n: {}, gone: { stof_units: GB }");
    const after = policy("disk: { stof_units: GB }, time: { stof_units: s }, n: { stof_units: KB }, added: { stof_units: MB }");
    expect(creditUnitChanges(before, after)).toEqual([
      {
        kind: "warning",
        path: "policy.credits.disk.stof_units",
        message: 'changed from MB to GB: stored meters of credit "disk" keep their numbers and now read them in GB; reset them or re-import them converted',
      },
      {
        kind: "warning",
        path: "policy.credits.n.stof_units",
        message: 'changed from plain numbers to KB: stored meters of credit "n" keep their numbers and now read them in KB; reset them or re-import them converted',
      },
    ]);
    expect(creditUnitChanges(after, after)).toEqual([]);
  });
});
