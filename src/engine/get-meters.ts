/**
 * getMeters (SPEC §4 GetMeters): the caller's meters in their current period, read-only (a
 * period that ended shows as the new one at zero without being written).
 */
import { LimitrError, invalidArgument } from "../errors/index.js";
import type { CompiledEntitlement } from "../policy/index.js";
import { readOnly, type EngineContext } from "./context.js";
import { findCustomer, resolvePlan, resolveScopeOwner } from "./customer-graph.js";
import { checkId } from "./id-rule.js";
import type { Customer, ItemView, Outcome } from "./types.js";
import { loadWorkMeter, meterView } from "./work-meter.js";

/**
 * The named entitlements, or every entitlement of the effective plan when none is named (scoped
 * ones from their owner). An entitlement the caller cannot use (not in its plan, unknown, or a
 * scope that does not resolve) is reported as a feature that is not granted. An unknown caller
 * is shown as it would be created (on the default plan); without a default plan, NOT_FOUND.
 */
export function getMeters(ctx: EngineContext, customerId: string, entitlements: readonly string[]): Outcome<readonly ItemView[]> {
  if (typeof customerId !== "string" || customerId === "") throw invalidArgument("customer_id", "must not be empty");
  checkId("customer_id", customerId);
  for (let i = 0; i < entitlements.length; i++) {
    if (entitlements[i] === "") throw invalidArgument(`entitlements[${i}]`, "must not be empty");
  }
  const caller = findCustomer(ctx.state, customerId) ?? virtualCustomer(ctx, customerId);
  const plan = resolvePlan(ctx.policy, ctx.state, caller).plan;
  const names = entitlements.length > 0 ? entitlements : plan === undefined ? [] : [...plan.entitlements.keys()];
  const views: ItemView[] = [];
  for (const name of names) views.push(currentItemView(ctx, caller, name, plan?.entitlements.get(name)));
  return readOnly(views);
}

/** One entitlement as it stands now, read without writing (also a denied decision's later items). */
export function currentItemView(ctx: EngineContext, caller: Customer, name: string, ent: CompiledEntitlement | undefined): ItemView {
  if (ent === undefined) return { kind: "feature", entitlement: name, granted: false };
  if (ent.limit === undefined) return { kind: "feature", entitlement: name, granted: true };
  const owner = ent.scope === undefined ? caller : resolveScopeOwner(ctx.state, caller, ent.scope);
  if (owner === undefined) return { kind: "feature", entitlement: name, granted: false };
  return meterView(loadWorkMeter(ctx.state, owner.id, name, ent.limit, ctx.now, ctx.resetRuleChanges));
}

function virtualCustomer(ctx: EngineContext, id: string): Customer {
  if (ctx.policy.defaultPlan === undefined) throw new LimitrError("NOT_FOUND", `customer "${id}" does not exist`, { field: "customer_id" });
  return { id, plan: "", type: "user", refs: [], altIds: [], metadata: {}, createdAt: ctx.now, updatedAt: ctx.now };
}
