/**
 * The customer admin operations (SPEC §3): upsert, get, delete, change plan, list. Each customer
 * write is mirrored by a `customer-set` (or `customer-removed`) event so the log tells the
 * whole story of a customer.
 */
import { LimitrError, invalidArgument } from "../errors/index.js";
import { initialPeriodStart, resetRuleKey, sameResetRule, type CompiledLimit, type CompiledPolicy } from "../policy/index.js";
import { NO_ATTRIBUTES, readOnly, type EngineContext } from "./context.js";
import { checkCustomerId, customerChanged, dedupe, validateCustomerLists, validateType } from "./customer-fields.js";
import { findCustomer, resolvePlan, type ResolvedPlan } from "./customer-graph.js";
import { checkId, checkIds } from "./id-rule.js";
import { pushResetEvents, type EventScope } from "./meter-events.js";
import type { Customer, CustomerView, EngineEvent, Meter, Outcome, SetCustomerPlanInput, StateReader, UpsertCustomerInput, Write } from "./types.js";
import { loadWorkMeter, putMeterWrites, unenforcedLimit, type WorkMeter } from "./work-meter.js";

/** A customer with its effective plan. */
export function customerView(policy: CompiledPolicy, state: StateReader, customer: Customer): CustomerView {
  return viewOf(customer, resolvePlan(policy, state, customer));
}

function viewOf(customer: Customer, plan: ResolvedPlan): CustomerView {
  const view: CustomerView = { customer, effectivePlan: plan.name, planSource: plan.source };
  return plan.missingPlan === undefined ? view : { ...view, missingPlan: plan.missingPlan };
}

/**
 * Creates or replaces a customer. Fields left undefined keep their stored value (or the
 * default for a new customer); lists and metadata given replace the stored ones.
 */
export function upsertCustomer(ctx: EngineContext, input: UpsertCustomerInput): Outcome<CustomerView> {
  const id = input.id;
  if (typeof id !== "string" || id === "") throw invalidArgument("id", "must not be empty");
  checkId("customer_id", id);
  checkIds("refs", input.refs);
  checkIds("alt_ids", input.altIds);
  checkPlan(ctx.policy, input.plan);
  const stored = ctx.state.getCustomer(id);
  checkCustomerId(ctx.state, "id", id);
  validateCustomerLists(ctx.state, "", id, input.refs, input.altIds);
  validateType("", input.type);
  const next: Customer = {
    id,
    plan: input.plan ?? stored?.plan ?? "",
    type: input.type !== undefined && input.type !== "" ? input.type : (stored?.type ?? "user"),
    refs: input.refs === undefined ? (stored?.refs ?? []) : dedupe(input.refs),
    altIds: input.altIds === undefined ? (stored?.altIds ?? []) : dedupe(input.altIds),
    metadata: input.metadata === undefined ? (stored?.metadata ?? {}) : { ...input.metadata },
    createdAt: stored?.createdAt ?? ctx.now,
    updatedAt: ctx.now,
  };
  if (stored !== undefined && !customerChanged(stored, next)) return readOnly(customerView(ctx.policy, ctx.state, stored));
  const events: EngineEvent[] = [{ type: "customer-set", time: ctx.now, customer: next }];
  if (stored !== undefined && stored.plan !== next.plan) events.push(planChanged(ctx, id, stored.plan, next.plan, false));
  const plan = resolvePlan(ctx.policy, ctx.state, next);
  const writes: Write[] = [{ kind: "customer-put", customer: next, previous: stored }];
  // A new plan here, or through new refs, is a plan change for this customer's meters too.
  if (stored !== undefined) carryPeriods(ctx, next, resolvePlan(ctx.policy, ctx.state, stored), plan, writes, events);
  return { result: viewOf(next, plan), writes, events };
}

/** A customer by id or alt id. */
export function getCustomer(ctx: EngineContext, id: string): Outcome<CustomerView> {
  return readOnly(customerView(ctx.policy, ctx.state, mustFind(ctx.state, id)));
}

/** Deletes a customer and its meters. Customers referring to it simply stop reaching it. */
export function deleteCustomer(ctx: EngineContext, id: string): Outcome<Customer> {
  const customer = mustFind(ctx.state, id);
  const writes: Write[] = [{ kind: "customer-delete", customer }];
  for (const m of ctx.state.metersOf(customer.id)) writes.push({ kind: "meter-delete", owner: m.owner, entitlement: m.entitlement });
  return { result: customer, writes, events: [{ type: "customer-removed", time: ctx.now, customer }] };
}

/**
 * Changes a customer's own plan (empty = inherit / default). Meters keep value and period unless
 * `resetMeters`, which starts every meter of the customer afresh at zero (open holds kept).
 */
export function setCustomerPlan(ctx: EngineContext, input: SetCustomerPlanInput): Outcome<CustomerView> {
  if (typeof input.customerId !== "string" || input.customerId === "") throw invalidArgument("customer_id", "must not be empty");
  checkPlan(ctx.policy, input.plan);
  const stored = mustFind(ctx.state, input.customerId);
  const planChange = stored.plan !== input.plan;
  if (!planChange && !input.resetMeters) return readOnly(customerView(ctx.policy, ctx.state, stored));
  const next: Customer = planChange ? { ...stored, plan: input.plan, updatedAt: ctx.now } : stored;
  const plan = resolvePlan(ctx.policy, ctx.state, next);
  const writes: Write[] = [];
  const events: EngineEvent[] = [];
  if (planChange) {
    writes.push({ kind: "customer-put", customer: next, previous: stored });
    events.push({ type: "customer-set", time: ctx.now, customer: next });
  }
  events.push(planChanged(ctx, stored.id, stored.plan, input.plan, input.resetMeters));
  if (input.resetMeters) resetMeters(ctx, next, plan, writes, events);
  else carryPeriods(ctx, next, resolvePlan(ctx.policy, ctx.state, stored), plan, writes, events);
  return { result: viewOf(next, plan), writes, events };
}

/** Up to `limit` customers after `afterId`, in id order, with their effective plans. */
export function listCustomers(ctx: EngineContext, afterId: string, limit: number): Outcome<readonly CustomerView[]> {
  if (!Number.isSafeInteger(limit) || limit <= 0) throw invalidArgument("page_size", `must be a positive integer, got ${limit}`);
  const out: CustomerView[] = [];
  for (const c of ctx.state.listCustomers(afterId, limit)) out.push(customerView(ctx.policy, ctx.state, c));
  return readOnly(out);
}

function mustFind(state: StateReader, id: string): Customer {
  if (typeof id !== "string" || id === "") throw invalidArgument("customer_id", "must not be empty");
  const c = findCustomer(state, id);
  if (c === undefined) throw new LimitrError("NOT_FOUND", `customer "${id}" does not exist`, { field: "customer_id" });
  return c;
}

function checkPlan(policy: CompiledPolicy, plan: string | undefined): void {
  if (plan !== undefined && plan !== "" && !policy.plans.has(plan)) {
    throw invalidArgument("plan", `plan "${plan}" does not exist in policy ${policy.version}`);
  }
}

function planChanged(ctx: EngineContext, customerId: string, previousPlan: string, newPlan: string, metersReset: boolean): EngineEvent {
  return { type: "customer-plan-changed", time: ctx.now, customerId, previousPlan, newPlan, metersReset };
}

/**
 * A plan change, written into each of the customer's own meters both plans meter, with the time
 * of the change (`Meter.judgedAt`), so that no swap of the new plan's rule before it is read as
 * one the meter lived through. Where it changes a limit's reset rule it is judged as a policy
 * swap's rule change is (reset-rule-changes.ts), not by the new plan's rule alone: that would bring a daily count from
 * an earlier day back to life under `monthly:1`, and zero a month still running under `daily`.
 * A meter whose period had ended under the old plan's rule starts afresh now (with the meter-reset
 * event a lazy reset gives); one still running carries its count into the new rule's period that
 * contains the change (a limit that never resets keeps the meter's own start). Only the customer's
 * own meters, now: the meters of customers inheriting its plan through refs name the rule they were
 * written under, and are carried when next used (`judgedPeriod`).
 */
export function carryPeriods(ctx: EngineContext, customer: Customer, before: ResolvedPlan, after: ResolvedPlan, writes: Write[], events: EngineEvent[]): void {
  if (before.plan === after.plan) return;
  let scope: EventScope | undefined;
  for (const m of ctx.state.metersOf(customer.id)) {
    const oldLimit = before.plan?.entitlements.get(m.entitlement)?.limit;
    const newLimit = after.plan?.entitlements.get(m.entitlement)?.limit;
    if (oldLimit === undefined || newLimit === undefined) continue;
    const old = loadWorkMeter(ctx.state, m.owner, m.entitlement, oldLimit, ctx.now, ctx.resetRuleChanges);
    if (sameResetRule(oldLimit.reset, newLimit.reset)) {
      // Same rule: the period stays, but the row is set again now, under the new plan, so that a
      // swap of the new plan's rule before the move is not read as one the meter lived through
      // (`judgedPeriod`). A period the old plan had ended starts afresh now, for the same reason
      // (the new plan's swaps would carry it on). A count carried across an unseen change keeps
      // its row's rule and start and gets the move's time: under a calendar rule (or none) the
      // period containing now is the one that contained its last judgement, so its end stays.
      // (Under a rolling rule the time would move its end: such a row is left as it is.)
      if (old.rolled) {
        // In the period the lazy reset gives (a rolling rule keeps the meter's own cadence).
        scope ??= resetScope(ctx, customer, after);
        restartMeter(ctx, m, newLimit, scope, writes, events, old.periodStart);
      } else if (!old.keepsRow) {
        writes.push({ kind: "meter-put", meter: { ...m, periodStart: old.periodStart, resetRule: resetRuleKey(newLimit.reset), judgedAt: ctx.now } });
      } else if (newLimit.reset?.kind !== "rolling") {
        writes.push({ kind: "meter-put", meter: { ...m, judgedAt: ctx.now } });
      }
      continue;
    }
    if (!old.rolled) {
      const periodStart = newLimit.reset === undefined ? old.periodStart : initialPeriodStart(newLimit.reset, ctx.now);
      const resetRule = resetRuleKey(newLimit.reset);
      // Written even when start and rule are what the row holds: it is set under this plan now.
      writes.push({ kind: "meter-put", meter: { ...m, periodStart, resetRule, judgedAt: ctx.now } });
      continue;
    }
    scope ??= resetScope(ctx, customer, after);
    restartMeter(ctx, m, newLimit, scope, writes, events);
  }
}

/** Every meter of the customer restarts at zero in a fresh period, with the events of a reset. */
function resetMeters(ctx: EngineContext, customer: Customer, plan: ResolvedPlan, writes: Write[], events: EngineEvent[]): void {
  const scope = resetScope(ctx, customer, plan);
  for (const m of ctx.state.metersOf(customer.id)) {
    restartMeter(ctx, m, plan.plan?.entitlements.get(m.entitlement)?.limit ?? unenforcedLimit(ctx.policy, m), scope, writes, events);
  }
}

/** The event fields of resets an admin operation makes (no request attributes, no key). */
function resetScope(ctx: EngineContext, customer: Customer, plan: ResolvedPlan): EventScope {
  return { time: ctx.now, customerId: customer.id, plan: plan.name, attributes: NO_ATTRIBUTES, policyVersion: ctx.policy.version, idempotencyKey: "" };
}

/**
 * `m` starts afresh now under `limit`: zero in a new period (`periodStart`: by default one that
 * starts now), open holds kept. With the events of
 * a lazy reset: subscribers that saw a threshold reached learn it no longer is.
 */
function restartMeter(ctx: EngineContext, m: Meter, limit: CompiledLimit, scope: EventScope, writes: Write[], events: EngineEvent[], periodStart = initialPeriodStart(limit.reset, ctx.now)): void {
  // Expired holds are dropped on the way (`storedHeld` in work-meter.ts); open ones stay.
  const work = loadWorkMeter(ctx.state, m.owner, m.entitlement, limit, ctx.now);
  const restarted: WorkMeter = {
    ...work,
    rolled: true,
    periodStart,
    nextReset: undefined,
    base: 0n,
    value: 0n,
    overhead: 0n,
    billed: 0n,
    billedGuess: undefined,
    thresholdsReached: [],
    changed: true,
    keepsRow: false,
  };
  pushResetEvents(events, scope, restarted, m.value, m.thresholdsReached);
  putMeterWrites(writes, writes.length, restarted);
}
