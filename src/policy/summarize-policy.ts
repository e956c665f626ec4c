/**
 * A compiled policy as a readable plain-text table, for `check-policy` and logs: what each plan
 * allows, in the units a human wrote, so a reviewer can check a pricing change at a glance.
 */
import { formatAttos, formatNanos } from "./fixed.js";
import type { CompiledCredit, CompiledEntitlement, CompiledPolicy } from "./types.js";

/** Plans × entitlements × limits (mode, value with unit, reset, scope), then the credits. */
export function summarizePolicy(policy: CompiledPolicy): string {
  const lines: string[] = [];
  const plans = [...policy.plans.values()];
  lines.push(`policy ${policy.version}: ${plans.length} plan${plans.length === 1 ? "" : "s"}, ${policy.credits.size} credit${policy.credits.size === 1 ? "" : "s"}, default plan: ${policy.defaultPlan ?? "(none: unknown customers are denied)"}`);
  lines.push("");

  const rows: string[][] = [["PLAN", "ENTITLEMENT", "MODE", "LIMIT", "RESET", "SCOPE"]];
  for (const plan of plans) {
    const planName = plan.name === policy.defaultPlan ? `${plan.name} (default)` : plan.name;
    if (plan.entitlements.size === 0) rows.push([planName, "(none)", "", "", "", ""]);
    for (const ent of plan.entitlements.values()) rows.push([planName, ent.name, ...limitColumns(ent), ent.scope ?? "caller"]);
  }
  lines.push(...table(rows));

  if (policy.credits.size > 0) {
    lines.push("");
    const creditRows: string[][] = [["CREDIT", "UNIT", "KEPT IN", "PRICE (USD/unit)", "COST (USD/unit)"]];
    for (const c of policy.credits.values()) {
      creditRows.push([c.name, c.unit, c.stofUnits ?? "number", c.price === undefined ? "-" : formatAttos(c.price), formatAttos(c.overheadCost)]);
    }
    lines.push(...table(creditRows));
  }
  return lines.join("\n") + "\n";
}

function limitColumns(ent: CompiledEntitlement): [string, string, string] {
  const limit = ent.limit;
  if (limit === undefined) return ["flag", "-", "-"];
  const mode = limit.hardTrailing ? "hard (trailing)" : limit.mode;
  return [mode, `${formatNanos(limit.value)} ${unitOf(limit.credit)}`, limit.reset?.text ?? "never"];
}

function unitOf(credit: CompiledCredit): string {
  return credit.stofUnits ?? credit.unit;
}

/** Left-aligned columns separated by two spaces, without trailing blanks. */
function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join("  ").trimEnd());
}
