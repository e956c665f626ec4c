/**
 * settle and release (SPEC §4): a reservation's holds are removed; settle then records the
 * actual usage exactly as `record` does (the usage happened, so limits never deny it). Usage
 * reserved under a plan the customer has since left is still counted, on the meter it was
 * reserved on, as a meter the plan no longer enforces: the work was done while it was entitled.
 */
import { LimitrError, invalidArgument } from "../errors/index.js";
import type { CompiledLimit, Nanos } from "../policy/index.js";
import { NO_EVENTS, readOnly, replayOf, type EngineContext } from "./context.js";
import { resolvePlan, type ResolvedPlan } from "./customer-graph.js";
import { decide } from "./decide.js";
import { fingerprint, rememberWrite, replayed } from "./idempotency.js";
import { checkId } from "./id-rule.js";
import type { DecisionResult, Outcome, ReleaseRequest, Reservation, SettleRequest, UsageItem, Write } from "./types.js";
import { checkItemUnit, itemAmount } from "./validate-request.js";
import { findWork, takeHold, unenforcedLimit, type WorkMeter } from "./work-meter.js";

/** Removes the reservation's holds and records the actual amounts. */
export function settle(ctx: EngineContext, req: SettleRequest): Outcome<DecisionResult> {
  validateSettle(ctx, req);
  const key = req.idempotencyKey ?? "";
  checkId("reservation_id", req.reservationId);
  checkId("idempotency_key", key);
  let print = "";
  if (key !== "") {
    print = fingerprint("settle", req.reservationId, req.actual, undefined, req.attributes, "");
    const prior = replayed(ctx, key, print);
    if (prior !== undefined) return replayOf(prior, "settle");
  }
  const reservation = ctx.state.getReservation(req.reservationId);
  if (reservation === undefined) {
    throw new LimitrError("NOT_FOUND", `reservation "${req.reservationId}" does not exist (settled, released or never made)`, { field: "reservation_id" });
  }
  for (let i = 0; i < req.actual.length; i++) {
    const name = (req.actual[i] as UsageItem).entitlement;
    if (!reservation.items.some((r) => r.entitlement === name)) {
      throw invalidArgument(`actual[${i}].entitlement`, `"${name}" is not part of reservation "${reservation.id}"`);
    }
  }
  const caller = ctx.state.getCustomer(reservation.customerId);
  let result: DecisionResult;
  let writes: Write[];
  let events = NO_EVENTS;
  let works: readonly WorkMeter[] = [];
  if (caller === undefined) {
    // The customer was deleted meanwhile: nothing to record against, but the holds go.
    result = { allowed: false, reason: "UNKNOWN_CUSTOMER", deniedItem: 0, customerId: "", plan: "", policyVersion: ctx.policy.version, items: [] };
    writes = [];
  } else {
    const plan = resolvePlan(ctx.policy, ctx.state, caller);
    const items = reservation.items.map((r) => ({ entitlement: r.entitlement }));
    const d = decide(ctx, {
      op: "record",
      caller,
      plan,
      items,
      fixed: reservation.items.map((r) => {
        const keptLimit = limitLeft(ctx, plan, r.owner, r.entitlement);
        return { owner: r.owner, amount: actualAmount(req, r.entitlement, r.amount, plan.plan?.entitlements.get(r.entitlement)?.limit ?? keptLimit), keptLimit };
      }),
      dropReservation: reservation,
      scope: {
        time: ctx.now,
        customerId: caller.id,
        plan: plan.name,
        attributes: req.attributes ?? reservation.attributes,
        policyVersion: ctx.policy.version,
        idempotencyKey: key,
      },
    });
    const common = { customerId: caller.id, plan: plan.name, policyVersion: ctx.policy.version, items: d.views };
    result = d.allowed
      ? { ...common, allowed: true, reason: d.reason === "SOFT_LIMIT_EXCEEDED" ? "SOFT_LIMIT_EXCEEDED" : "OK" }
      : { ...common, allowed: false, reason: d.reason as Exclude<typeof d.reason, "OK" | "SOFT_LIMIT_EXCEEDED">, deniedItem: d.deniedItem };
    writes = d.writes;
    events = d.events;
    works = d.works;
  }
  writes.push(...holdRemovals(ctx, reservation, works), { kind: "reservation-delete", id: reservation.id });
  if (key !== "") writes.push(rememberWrite(ctx, key, print, result));
  return { result, writes, events };
}

/** Removes the reservation and its holds; `released: false` when there is no such reservation. */
export function release(ctx: EngineContext, req: ReleaseRequest): Outcome<{ readonly released: boolean }> {
  if (typeof req.reservationId !== "string" || req.reservationId === "") throw invalidArgument("reservation_id", "must not be empty");
  checkId("reservation_id", req.reservationId);
  const reservation = ctx.state.getReservation(req.reservationId);
  if (reservation === undefined) return readOnly({ released: false });
  const writes: Write[] = holdRemovals(ctx, reservation, []);
  writes.push({ kind: "reservation-delete", id: reservation.id });
  return { result: { released: true }, writes, events: NO_EVENTS };
}

function validateSettle(ctx: EngineContext, req: SettleRequest): void {
  if (typeof req.reservationId !== "string" || req.reservationId === "") throw invalidArgument("reservation_id", "must not be empty");
  if (req.actual.length > ctx.options.maxItems) throw invalidArgument("actual", `at most ${ctx.options.maxItems} items are allowed, got ${req.actual.length}`);
  for (let i = 0; i < req.actual.length; i++) {
    const item = req.actual[i] as UsageItem;
    if (typeof item.entitlement !== "string" || item.entitlement === "") throw invalidArgument(`actual[${i}].entitlement`, "must not be empty");
    const a = item.amount;
    if (a !== undefined && (typeof a !== "number" || !Number.isFinite(a))) throw invalidArgument(`actual[${i}].amount`, `must be a finite number, got ${String(a)}`);
    if (a !== undefined && a < 0) throw invalidArgument(`actual[${i}].amount`, `must not be negative, got ${a}`);
    // Not every line's unit is converted later (no amount: what was reserved; a feature flag: not
    // counted); an unknown one is still an error (SPEC §6), as in every other request.
    checkItemUnit(item, i, ctx.policy, "actual");
  }
}

/**
 * The actual amount of one reserved entitlement: the sum of the `actual` lines naming it
 * (converted into the credit's units), 0 when none does; a line without an amount settles at
 * exactly what was reserved.
 */
function actualAmount(req: SettleRequest, entitlement: string, reserved: Nanos, limit: CompiledLimit | undefined): Nanos {
  let sum = 0n;
  for (let i = 0; i < req.actual.length; i++) {
    const item = req.actual[i] as UsageItem;
    if (item.entitlement !== entitlement) continue;
    if (item.amount === undefined) sum += reserved;
    else if (limit !== undefined) sum += itemAmount(item, i, limit, "actual");
  }
  return sum;
}

/**
 * The limit a reserved meter is counted under when the customer's plan no longer meters its
 * entitlement (left the plan, or it became a feature flag): none when it still does, or when the
 * meter is gone.
 */
function limitLeft(ctx: EngineContext, plan: ResolvedPlan, owner: string, entitlement: string): CompiledLimit | undefined {
  if (plan.plan?.entitlements.get(entitlement)?.limit !== undefined) return undefined;
  const meter = ctx.state.getMeter(owner, entitlement);
  return meter === undefined ? undefined : unenforcedLimit(ctx.policy, meter.credit);
}

/** Meter writes removing the reservation's holds from meters the decision did not already touch. */
function holdRemovals(ctx: EngineContext, reservation: Reservation, touched: readonly WorkMeter[]): Write[] {
  const writes: Write[] = [];
  for (const r of reservation.items) {
    if (findWork(touched, touched.length, r.owner, r.entitlement) !== undefined) continue;
    const meter = ctx.state.getMeter(r.owner, r.entitlement);
    if (meter === undefined) continue;
    // Expired or not: the summary counts it until it is removed. Expired others stay until the
    // meter's next decision drops them (this is not one: the meter's period is not looked at).
    const taken = takeHold(ctx.state, r.owner, r.entitlement, meter.holdSummary, reservation);
    if (taken === undefined) continue;
    writes.push({ kind: "meter-put", meter: { ...meter, holdSummary: taken.summary } }, taken.write);
  }
  return writes;
}

