/**
 * Credits whose `stof_units` changed from one applied policy to the next. Meters store plain
 * numbers in their credit's units and are not converted when those units change (SPEC §2 converts
 * request values, not stored ones), so 800 kept in MB reads as 800 GB after `MB` becomes `GB`.
 * Such a policy is valid and is applied; the operator must hear about it.
 */
import { joinPath } from "./policy-issues.js";
import type { CompiledPolicy, PolicyIssue } from "./types.js";

export function creditUnitChanges(previous: CompiledPolicy, next: CompiledPolicy): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  for (const [name, credit] of next.credits) {
    const before = previous.credits.get(name);
    if (before === undefined || before.stofUnits === credit.stofUnits) continue;
    const from = before.stofUnits ?? "plain numbers";
    const to = credit.stofUnits ?? "plain numbers";
    issues.push({
      kind: "warning",
      path: joinPath("policy.credits", name, "stof_units"),
      message: `changed from ${from} to ${to}: stored meters of credit "${name}" keep their numbers and now read them in ${to}; reset them or re-import them converted`,
    });
  }
  return issues;
}
