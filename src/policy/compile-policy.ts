/**
 * Document → validated, compiled policy. Every node is checked independently and reports into
 * one issue list, so a bad policy is rejected with all of its errors at once; unknown fields are
 * warnings, so upstream Limitr policies load unchanged. The one exception: limit fields that never
 * reach an entitlement's `limit` (see `checkEntitlementFields`), which would lift the limit.
 */
import { compileCredit, type CreditEntry } from "./compile-credit.js";
import { compilePlan } from "./compile-plan.js";
import { sameResetRule } from "./periods.js";
import { parsePolicyText } from "./parse-policy-text.js";
import { createIssueSink, describeValue, isRawObject, joinPath, type IssueSink, type RawObject } from "./policy-issues.js";
import { warnUnknownFields } from "./policy-schema.js";
import type { CompiledCredit, CompiledLimit, CompiledPlan, CompileResult } from "./types.js";

export { parsePolicyText, type ParseResult } from "./parse-policy-text.js";

/**
 * Validates a parsed document and compiles it; every error is listed, unknown fields are
 * warnings. `planOrder`: the plan names in document order, as `parsePolicyText` found them.
 */
export function compilePolicy(doc: unknown, options: { readonly version: string; readonly planOrder?: readonly string[] | undefined }): CompileResult {
  const sink = createIssueSink();
  const compiled = compileRoot(doc, options.version, options.planOrder, sink);
  if (compiled === undefined || sink.hasErrors()) {
    return { ok: false, issues: sink.issues };
  }
  return { ok: true, policy: compiled, warnings: sink.issues };
}

/** Parse + compile in one step. */
export function loadPolicy(text: string, options: { readonly version: string; readonly format?: "yaml" | "json" | "auto" }): CompileResult {
  const parsed = parsePolicyText(text, options.format ?? "auto");
  if (!parsed.ok) return { ok: false, issues: parsed.issues };
  return compilePolicy(parsed.doc, { version: options.version, planOrder: parsed.planOrder });
}

type Compiled = Extract<CompileResult, { ok: true }>["policy"];

function compileRoot(doc: unknown, version: string, planOrder: readonly string[] | undefined, sink: IssueSink): Compiled | undefined {
  if (!isRawObject(doc) || !("policy" in doc)) {
    const misplaced = isRawObject(doc) ? Object.keys(doc).filter((k) => k === "credits" || k === "plans") : [];
    const hint = misplaced.length > 0 ? ` (found ${misplaced.map((k) => `"${k}"`).join(" and ")} at the top level: indent them under policy:)` : "";
    sink.error("policy", `the document must have a root key "policy"${hint}`);
    return undefined;
  }
  warnUnknownFields(doc, "root", "", sink);
  const policy = doc["policy"];
  if (!isRawObject(policy)) {
    sink.error("policy", `policy must be a mapping with credits and plans, got ${describeValue(policy)}`);
    return undefined;
  }
  warnUnknownFields(policy, "policy", "policy", sink);

  const credits = new Map<string, CreditEntry>();
  const rawCredits = policy["credits"];
  if (rawCredits !== undefined && rawCredits !== null) {
    if (!isRawObject(rawCredits)) {
      sink.error("policy.credits", `credits must be a mapping of credit names to credits, got ${describeValue(rawCredits)}`);
    } else {
      for (const [name, raw] of Object.entries(rawCredits)) {
        const path = joinPath("policy.credits", name);
        if (name.trim() === "") sink.error(path, "a credit name must not be empty");
        credits.set(name, compileCredit(name, raw, path, sink));
      }
    }
  }

  const plans = new Map<string, CompiledPlan>();
  let defaultPlan: string | undefined;
  const rawPlans = policy["plans"];
  if (!isRawObject(rawPlans) || Object.keys(rawPlans).length === 0) {
    // An empty policy would deny everything as UNKNOWN_ENTITLEMENT: far more likely a mistake
    // (a truncated ConfigMap) than intent, so it never replaces a good policy.
    sink.error("policy.plans", rawPlans === undefined || rawPlans === null || isRawObject(rawPlans) ? "policy must define at least one plan" : `plans must be a mapping of plan names to plans, got ${describeValue(rawPlans)}`);
  } else {
    for (const name of inDocumentOrder(rawPlans, planOrder)) {
      const raw = rawPlans[name];
      const path = joinPath("policy.plans", name);
      if (name.trim() === "") sink.error(path, "a plan name must not be empty");
      const plan = compilePlan(name, raw, path, credits, sink);
      if (plan === undefined) continue;
      if (plan.isDefault) {
        if (defaultPlan === undefined) defaultPlan = name;
        // SPEC: "the first default wins". A warning, not an error, so that a ConfigMap edit that
        // leaves two defaults still applies, and says which plan new customers get.
        else sink.warning(joinPath(path, "default"), `plans "${defaultPlan}" and "${name}" are both default: true; "${defaultPlan}", the first, is the default plan`);
      }
      plans.set(name, plan);
    }
  }

  warnCreditMismatches(plans, sink);
  warnScopedResetMismatches(plans, sink);
  if (sink.hasErrors()) return undefined;
  const compiledCredits = new Map<string, CompiledCredit>();
  for (const [name, entry] of credits) if (entry.compiled) compiledCredits.set(name, entry.compiled);
  const entitlementNames = new Set<string>();
  for (const plan of plans.values()) for (const name of plan.entitlements.keys()) entitlementNames.add(name);
  return { version, credits: compiledCredits, plans, defaultPlan, entitlementNames };
}

/**
 * The mapping's keys in `order` when that lists exactly them; else the object's own order, which
 * puts integer-like keys first and would make plan "2" the first default ahead of an earlier "pro".
 */
function inDocumentOrder(mapping: RawObject, order: readonly string[] | undefined): readonly string[] {
  const keys = Object.keys(mapping);
  if (order === undefined || order.length !== keys.length) return keys;
  return order.every((k) => Object.hasOwn(mapping, k)) ? order : keys;
}

/**
 * A meter is keyed by (owner, entitlement) and keeps its value across plan changes, so an
 * entitlement counted in different credits by different plans would carry, say, MB into seats.
 */
function warnCreditMismatches(plans: ReadonlyMap<string, CompiledPlan>, sink: IssueSink): void {
  const first = new Map<string, { plan: string; credit: string }>();
  for (const plan of plans.values()) {
    for (const ent of plan.entitlements.values()) {
      if (ent.limit === undefined) continue;
      const seen = first.get(ent.name);
      if (seen === undefined) first.set(ent.name, { plan: plan.name, credit: ent.limit.credit.name });
      else if (seen.credit !== ent.limit.credit.name) {
        sink.warning(
          joinPath("policy.plans", plan.name, "entitlements", ent.name, "limit", "credit"),
          `entitlement "${ent.name}" counts credit "${ent.limit.credit.name}" here but "${seen.credit}" in plan "${seen.plan}"; a customer who changes plan keeps the meter's value unconverted`,
        );
      }
    }
  }
}

/**
 * A scoped meter (`scope: org`) is shared by every caller that reaches its owner, and each call
 * judges its period by the caller's plan. Where two plans reset it differently, a count one plan
 * wrote is kept under the other's only until either rule would reset it: each plan's callers see
 * it reset at the other's boundaries too.
 */
function warnScopedResetMismatches(plans: ReadonlyMap<string, CompiledPlan>, sink: IssueSink): void {
  const first = new Map<string, { plan: string; limit: CompiledLimit }>();
  for (const plan of plans.values()) {
    for (const ent of plan.entitlements.values()) {
      if (ent.limit === undefined || ent.scope === undefined) continue;
      const key = `${ent.scope}\u0000${ent.name}`;
      const seen = first.get(key);
      if (seen === undefined) first.set(key, { plan: plan.name, limit: ent.limit });
      else if (!sameResetRule(seen.limit.reset, ent.limit.reset)) {
        sink.warning(
          joinPath("policy.plans", plan.name, "entitlements", ent.name, "limit"),
          `entitlement "${ent.name}" is shared through scope "${ent.scope}" and resets ${describeReset(ent.limit)} here but ${describeReset(seen.limit)} in plan "${seen.plan}"; ` +
            `each call judges the shared meter by its caller's plan, so a count one plan wrote is kept under the other's only until either rule would reset it: give it one reset rule`,
        );
      }
    }
  }
}

function describeReset(limit: CompiledLimit): string {
  return limit.reset === undefined ? "never" : `"${limit.reset.text}"`;
}
