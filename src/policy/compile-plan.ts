/**
 * One entry of `policy.plans` → a `CompiledPlan` with its entitlements, or errors.
 */
import type { CreditEntry } from "./compile-credit.js";
import { compileLimit } from "./compile-limit.js";
import { checkWith, describeValue, isRawObject, joinPath, type IssueSink } from "./policy-issues.js";
import { checkEntitlementFields, flagSchema, scopeSchema, textSchema, warnUnknownFields } from "./policy-schema.js";
import type { CompiledEntitlement, CompiledPlan } from "./types.js";

/** Compiles one plan; reports every problem under `path` (e.g. `policy.plans.pro`). */
export function compilePlan(name: string, raw: unknown, path: string, credits: ReadonlyMap<string, CreditEntry>, sink: IssueSink): CompiledPlan | undefined {
  const fields = raw === null || raw === undefined ? {} : raw;
  if (!isRawObject(fields)) {
    sink.error(path, `plan "${name}" must be a mapping (label, default, entitlements), got ${describeValue(raw)}`);
    return undefined;
  }
  warnUnknownFields(fields, "plan", path, sink);
  const label = checkWith(textSchema("label"), fields["label"], joinPath(path, "label"), sink);
  const isDefault = checkWith(flagSchema("default"), fields["default"], joinPath(path, "default"), sink);

  const entitlements = new Map<string, CompiledEntitlement>();
  const rawEntitlements = fields["entitlements"];
  const entPath = joinPath(path, "entitlements");
  if (rawEntitlements !== undefined && rawEntitlements !== null) {
    if (!isRawObject(rawEntitlements)) {
      sink.error(entPath, `entitlements must be a mapping of entitlement names to entitlements, got ${describeValue(rawEntitlements)}`);
    } else {
      for (const [entName, rawEnt] of Object.entries(rawEntitlements)) {
        const entitlement = compileEntitlement(entName, rawEnt, joinPath(entPath, entName), credits, sink);
        if (entitlement) entitlements.set(entName, entitlement);
      }
    }
  }
  return { name, label: label ?? name, isDefault: isDefault ?? false, entitlements };
}

/** `{}`, `null` and `true` are feature flags; a mapping may carry a limit, a scope, a description. */
function compileEntitlement(name: string, raw: unknown, path: string, credits: ReadonlyMap<string, CreditEntry>, sink: IssueSink): CompiledEntitlement | undefined {
  if (name.trim() === "") sink.error(path, "an entitlement name must not be empty");
  if (raw === null || raw === undefined || raw === true) return { name, description: "", scope: undefined, limit: undefined };
  if (raw === false) {
    // `false` reads like "disabled", but listing an entitlement grants it: refuse the ambiguity.
    sink.error(path, `entitlement "${name}" is false; remove it from the plan to withhold it`);
    return undefined;
  }
  if (!isRawObject(raw)) {
    sink.error(path, `entitlement "${name}" must be a mapping (limit, scope, description), true, or empty, got ${describeValue(raw)}`);
    return undefined;
  }
  checkEntitlementFields(raw, path, sink);
  const description = checkWith(textSchema("description"), raw["description"], joinPath(path, "description"), sink);
  const scope = checkWith(scopeSchema, raw["scope"], joinPath(path, "scope"), sink);
  const hasLimit = "limit" in raw;
  const limit = hasLimit ? compileLimit(raw["limit"], joinPath(path, "limit"), credits, sink) : undefined;
  if (hasLimit && limit === undefined) return undefined;
  return { name, description: description ?? "", scope, limit };
}
