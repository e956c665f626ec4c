/**
 * allow, check, record and reserve (SPEC §4): validation, idempotency, caller resolution, then
 * the shared decision core; the outcome carries customer writes, meter writes, the reservation
 * and the idempotency record, to be committed together.
 */
import { invalidArgument } from "../errors/index.js";
import { NO_ATTRIBUTES, readOnly, replayOf, type EngineContext } from "./context.js";
import { resolvePlan } from "./customer-graph.js";
import { decide, type DecideOp, type Decided } from "./decide.js";
import { checkDecisionIds } from "./id-rule.js";
import { fingerprint, rememberWrite, replayed } from "./idempotency.js";
import { resolveCaller } from "./resolve-caller.js";
import type { DecisionRequest, DecisionResult, Outcome, ReplayedOperation, Reservation, ReservationItem, ReserveRequest, UsageItem, Write } from "./types.js";
import { checkItemUnit, validateDecisionRequest } from "./validate-request.js";
import { placedHold } from "./work-meter.js";

/** Decides and counts (all-or-nothing across items). */
export function allow(ctx: EngineContext, req: DecisionRequest): Outcome<DecisionResult> {
  return decideRequest(ctx, "allow", req, 0);
}

/** The same decision as `allow`, with no writes and no events (a new caller is virtual). */
export function check(ctx: EngineContext, req: DecisionRequest): Outcome<DecisionResult> {
  return decideRequest(ctx, "check", req, 0);
}

/** Counts usage that already happened: never denied by a limit, overage reported as soft. */
export function record(ctx: EngineContext, req: DecisionRequest): Outcome<DecisionResult> {
  return decideRequest(ctx, "record", req, 0);
}

/**
 * The longest a hold may count unsettled. A reservation covers work in flight; a ttl of years is a
 * unit mistake, and one past the year 9999 could not even be reported (protobuf Timestamps end
 * there), so the hold would be committed behind an error answer and never released.
 */
const MAX_HOLD_TTL_MS = 30 * 24 * 60 * 60 * 1000;

/** Holds room for the items for `ttlMs` if a check of them passes. */
export function reserve(ctx: EngineContext, req: ReserveRequest): Outcome<DecisionResult> {
  const ttl = req.ttlMs ?? ctx.options.defaultHoldTtlMs;
  if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl <= 0) throw invalidArgument("ttl", `must be a positive duration, got ${String(ttl)}`);
  if (ttl > MAX_HOLD_TTL_MS) throw invalidArgument("ttl", `must be at most 30 days (${MAX_HOLD_TTL_MS / 1000}s), got ${ttl / 1000}s`);
  return decideRequest(ctx, "reserve", req, ttl);
}

function decideRequest(ctx: EngineContext, op: DecideOp, req: DecisionRequest, ttl: number): Outcome<DecisionResult> {
  validateDecisionRequest(req, ctx.options, op === "reserve");
  const key = op === "check" ? "" : (req.idempotencyKey ?? "");
  checkDecisionIds(req, key);
  let print = "";
  if (key !== "") {
    print = fingerprint(op, req.customerId, req.items, req.hint, req.attributes ?? NO_ATTRIBUTES, op === "reserve" ? String(ttl) : "");
    const prior = replayed(ctx, key, print);
    // `check` never gets here: its key is always "" (above).
    if (prior !== undefined) return replayOf(prior, op as ReplayedOperation);
  }
  const resolution = resolveCaller(ctx, req.customerId, req.hint);
  // The hint moved the caller's meters into a new plan's periods: decide on them as moved.
  if (resolution.state !== undefined) ctx = { ...ctx, state: resolution.state };
  const caller = resolution.caller;
  if (caller === undefined) {
    // No plan, so no credit: only an unknown unit can be judged, and it is still an error.
    for (let i = 0; i < req.items.length; i++) checkItemUnit(req.items[i] as UsageItem, i, ctx.policy);
    const result: DecisionResult = {
      allowed: false,
      reason: "UNKNOWN_CUSTOMER",
      deniedItem: 0,
      customerId: "",
      plan: "",
      policyVersion: ctx.policy.version,
      items: [],
    };
    if (op === "check") return readOnly(result);
    return { result, writes: key === "" ? [] : [rememberWrite(ctx, key, print, result)], events: [] };
  }
  const plan = resolvePlan(ctx.policy, ctx.state, caller);
  const attributes = req.attributes ?? NO_ATTRIBUTES;
  const hold = op === "reserve" ? { reservationId: ctx.newId(), expiresAt: ctx.now + ttl } : undefined;
  const d = decide(ctx, {
    op,
    caller,
    plan,
    items: req.items,
    scope: { time: ctx.now, customerId: caller.id, plan: plan.name, attributes, policyVersion: ctx.policy.version, idempotencyKey: key },
    ...(hold === undefined ? {} : { hold }),
  });
  let result: DecisionResult = d.allowed
    ? { allowed: true, reason: d.reason === "SOFT_LIMIT_EXCEEDED" ? "SOFT_LIMIT_EXCEEDED" : "OK", customerId: caller.id, plan: plan.name, policyVersion: ctx.policy.version, items: d.views }
    : { allowed: false, reason: d.reason as Exclude<typeof d.reason, "OK" | "SOFT_LIMIT_EXCEEDED">, deniedItem: d.deniedItem, customerId: caller.id, plan: plan.name, policyVersion: ctx.policy.version, items: d.views };
  const conflicts = resolution.altIdConflicts;
  if (op === "check") return conflicts === undefined ? readOnly(result) : { ...readOnly(result), altIdConflicts: conflicts };

  const writes: Write[] = resolution.writes.length === 0 ? d.writes : [...resolution.writes, ...d.writes];
  if (hold !== undefined && d.allowed) {
    result = { ...result, reservationId: hold.reservationId, reservationExpiresAt: hold.expiresAt };
    const reservation: Reservation = {
      id: hold.reservationId,
      customerId: caller.id,
      items: reservationItems(req.items, d, caller.id, hold.reservationId),
      createdAt: ctx.now,
      expiresAt: hold.expiresAt,
      attributes,
    };
    writes.push({ kind: "reservation-put", reservation });
  }
  if (key !== "") writes.push(rememberWrite(ctx, key, print, result));
  const events = resolution.events.length === 0 ? d.events : [...resolution.events, ...d.events];
  return conflicts === undefined ? { result, writes, events } : { result, writes, events, altIdConflicts: conflicts };
}

/** One line per distinct entitlement (and owner), with the amount held on its meter. */
function reservationItems(items: readonly UsageItem[], d: Decided, callerId: string, reservationId: string): ReservationItem[] {
  const out: ReservationItem[] = [];
  for (let i = 0; i < items.length; i++) {
    const entitlement = (items[i] as UsageItem).entitlement;
    const w = d.itemWorks[i];
    const owner = w === undefined ? callerId : w.owner;
    if (out.some((r) => r.entitlement === entitlement && r.owner === owner)) continue;
    const held = w === undefined ? undefined : placedHold(w, reservationId);
    out.push({ entitlement, owner, amount: held === undefined ? 0n : held.amount });
  }
  return out;
}
