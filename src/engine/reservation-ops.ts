/**
 * settle and release (SPEC §4): a reservation's holds are removed; settle then records the
 * actual usage exactly as `record` does (the usage happened, so limits never deny it). Usage
 * reserved under a plan the customer has since left is still counted, on the meter it was
 * reserved on, as a meter the plan no longer enforces: the work was done while it was entitled.
 * Deletions are judged per item, by the meter's owner: usage on a meter whose owner remains is
 * counted even if the caller was deleted; on a meter whose owner was deleted, nothing is.
 */
import { LimitrError, invalidArgument } from "../errors/index.js";
import type { CompiledLimit, Nanos } from "../policy/index.js";
import { NO_EVENTS, readOnly, replayOf, type EngineContext } from "./context.js";
import { resolvePlan, type ResolvedPlan } from "./customer-graph.js";
import { decide } from "./decide.js";
import { fingerprint, rememberWrite, replayed } from "./idempotency.js";
import { checkId } from "./id-rule.js";
import type { Customer, DecisionResult, DeniedReason, ItemView, Outcome, ReleaseRequest, Reservation, ReservationItem, SettleRequest, UsageItem, Write } from "./types.js";
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
  // Each item counts on its meter's owner, whatever became of the caller: a deleted member's
  // usage on its org's meter still happened there, and a deleted org's meter (and its holds) went
  // with it, so nothing is counted on a meter whose owner no longer exists.
  const caller = sameCustomer(ctx, reservation, reservation.customerId);
  const plan = caller === undefined ? NO_PLAN : resolvePlan(ctx.policy, ctx.state, caller);
  const counted: number[] = [];
  let gone = -1;
  const fixed: { owner: string; amount: Nanos; keptLimit: CompiledLimit | undefined }[] = [];
  for (let i = 0; i < reservation.items.length; i++) {
    const r = reservation.items[i] as ReservationItem;
    const owner = r.owner === reservation.customerId ? caller : sameCustomer(ctx, reservation, r.owner);
    if (owner === undefined) {
      if (gone < 0) gone = i;
      continue;
    }
    counted.push(i);
    const keptLimit = caller === undefined ? ownerLimit(ctx, owner, r.entitlement) : limitLeft(ctx, plan, r.owner, r.entitlement);
    fixed.push({ owner: r.owner, amount: actualAmount(req, r.entitlement, r.amount, plan.plan?.entitlements.get(r.entitlement)?.limit ?? keptLimit), keptLimit });
  }
  const d = decide(ctx, {
    op: "record",
    // Stands in for a deleted caller: with no plan, the core resolves nothing from it.
    caller: caller ?? formerCaller(reservation),
    plan,
    items: counted.map((i) => ({ entitlement: (reservation.items[i] as ReservationItem).entitlement })),
    fixed,
    dropReservation: reservation,
    scope: {
      time: ctx.now,
      customerId: reservation.customerId,
      plan: plan.name,
      attributes: req.attributes ?? reservation.attributes,
      policyVersion: ctx.policy.version,
      idempotencyKey: key,
    },
  });
  const items: ItemView[] = reservation.items.map((r) => ({ kind: "feature", entitlement: r.entitlement, granted: false }));
  for (let j = 0; j < counted.length; j++) items[counted[j] as number] = d.views[j] as ItemView;
  let denied = gone;
  let reason: DeniedReason = "UNKNOWN_CUSTOMER";
  if (!d.allowed && (denied < 0 || (counted[d.deniedItem] as number) < denied)) {
    denied = counted[d.deniedItem] as number;
    reason = d.reason as DeniedReason;
  }
  const common = { customerId: reservation.customerId, plan: plan.name, policyVersion: ctx.policy.version, items };
  // An item whose owner is gone is reported as refused (UNKNOWN_CUSTOMER, like a caller that does
  // not exist), while the others are still counted: the usage happened, and nothing can settle it
  // later.
  const result: DecisionResult =
    denied < 0
      ? { ...common, allowed: true, reason: d.reason === "SOFT_LIMIT_EXCEEDED" ? "SOFT_LIMIT_EXCEEDED" : "OK" }
      : { ...common, allowed: false, reason, deniedItem: denied };
  const writes = d.writes;
  const events = d.events;
  const works = d.works;
  writes.push(...holdRemovals(ctx, reservation, works), { kind: "reservation-delete", id: reservation.id });
  if (key !== "") writes.push(rememberWrite(ctx, key, print, result));
  return { result, writes, events };
}

/**
 * Removes the reservation and its holds; `released: false` when there is no such reservation, or
 * when its ttl had already run out (its holds no longer counted: this release freed nothing). An
 * expired one is still removed, as the maintenance prune would remove it.
 */
export function release(ctx: EngineContext, req: ReleaseRequest): Outcome<{ readonly released: boolean }> {
  if (typeof req.reservationId !== "string" || req.reservationId === "") throw invalidArgument("reservation_id", "must not be empty");
  checkId("reservation_id", req.reservationId);
  const reservation = ctx.state.getReservation(req.reservationId);
  if (reservation === undefined) return readOnly({ released: false });
  const writes: Write[] = holdRemovals(ctx, reservation, []);
  writes.push({ kind: "reservation-delete", id: reservation.id });
  return { result: { released: reservation.expiresAt > ctx.now }, writes, events: NO_EVENTS };
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
  // A line without an amount settles an entitlement at what was reserved; a second line naming it
  // would count that again (or add to it), which no caller means.
  for (let i = 1; i < req.actual.length; i++) {
    const item = req.actual[i] as UsageItem;
    for (let j = 0; j < i; j++) {
      const other = req.actual[j] as UsageItem;
      if (other.entitlement !== item.entitlement || (other.amount !== undefined && item.amount !== undefined)) continue;
      throw invalidArgument(
        `actual[${i}].entitlement`,
        `"${item.entitlement}" is also in actual[${j}], and a line without an amount settles it at what was reserved: give every line an amount, or one line`,
      );
    }
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

/** No plan: the caller was deleted. */
const NO_PLAN: ResolvedPlan = { plan: undefined, name: "", source: "none", missingPlan: undefined };

/**
 * The customer `id` as it was when the reservation was made: undefined when it was deleted since,
 * or deleted and created again (a new customer that merely reuses the id owes nothing of it).
 */
function sameCustomer(ctx: EngineContext, reservation: Reservation, id: string): Customer | undefined {
  const c = ctx.state.getCustomer(id);
  return c === undefined || c.createdAt > reservation.createdAt ? undefined : c;
}

/**
 * The limit usage of a deleted caller is counted under on a meter whose owner remains: the one the
 * owner's own plan puts on the entitlement (what its members inheriting that plan are held to),
 * else the meter's credit, enforcing nothing.
 */
function ownerLimit(ctx: EngineContext, owner: Customer, entitlement: string): CompiledLimit | undefined {
  return resolvePlan(ctx.policy, ctx.state, owner).plan?.entitlements.get(entitlement)?.limit ?? limitLeft(ctx, NO_PLAN, owner.id, entitlement);
}

/** Stands in for a deleted caller in the decision core, which reads no customer for fixed items. */
function formerCaller(reservation: Reservation): Customer {
  const at = reservation.createdAt;
  return { id: reservation.customerId, plan: "", type: "user", refs: [], altIds: [], metadata: {}, createdAt: at, updatedAt: at };
}

/**
 * The limit a reserved meter is counted under when the customer's plan no longer meters its
 * entitlement (left the plan, or it became a feature flag): none when it still does, or when the
 * meter is gone.
 */
function limitLeft(ctx: EngineContext, plan: ResolvedPlan, owner: string, entitlement: string): CompiledLimit | undefined {
  if (plan.plan?.entitlements.get(entitlement)?.limit !== undefined) return undefined;
  const meter = ctx.state.getMeter(owner, entitlement);
  return meter === undefined ? undefined : unenforcedLimit(ctx.policy, meter);
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

