/**
 * Who is calling: the stored customer (by id or alt id), created or updated from the request's
 * hint, or created on the default plan (SPEC §3). Returns the customer as it will be after the
 * call plus the writes and events that make it so; `check` simply drops them (virtual customer).
 * A hint that changes the caller's plan keeps its meters' values and periods as SetCustomerPlan
 * does (SPEC §3), and the decision then reads the meters as that left them.
 */
import { NO_EVENTS, NO_WRITES, type EngineContext } from "./context.js";
import { customerChanged, dedupe, mergeList, mergeMetadata, validateCustomerLists } from "./customer-fields.js";
import { findCustomer, resolvePlan } from "./customer-graph.js";
import { carryPeriods } from "./customer-ops.js";
import { withPendingWrites } from "./pending-state.js";
import type { Customer, CustomerHint, EngineEvent, StateReader, Write } from "./types.js";

/** Errors name the field as the client wrote it: the requests' proto field is `customer_hint`. */
const HINT_FIELD = "customer_hint.";

export interface CallerResolution {
  /** The caller after the call; undefined = unknown and not creatable (UNKNOWN_CUSTOMER). */
  readonly caller: Customer | undefined;
  readonly writes: readonly Write[];
  readonly events: readonly EngineEvent[];
  /** The state the decision reads, when these writes changed meters (a plan change's carry). */
  readonly state?: StateReader;
}

export function resolveCaller(ctx: EngineContext, customerId: string, given: CustomerHint | undefined): CallerResolution {
  // A hint that sets nothing (`customer_hint: {}`) is no hint: it must not create a customer
  // where the policy has no default plan for one (UNKNOWN_CUSTOMER).
  const hint = given === undefined || isEmptyHint(given) ? undefined : given;
  const stored = findCustomer(ctx.state, customerId);
  if (stored !== undefined) {
    if (hint === undefined) return { caller: stored, writes: NO_WRITES, events: NO_EVENTS };
    return updateFromHint(ctx, stored, hint);
  }
  if (hint !== undefined) return createCustomer(ctx, fromHint(ctx, customerId, hint));
  if (ctx.policy.defaultPlan !== undefined) {
    // Stored with an empty plan: it follows whichever plan is the default, now and after reloads.
    return createCustomer(ctx, {
      id: customerId,
      plan: "",
      type: "user",
      refs: [],
      altIds: [],
      metadata: {},
      createdAt: ctx.now,
      updatedAt: ctx.now,
    });
  }
  return { caller: undefined, writes: NO_WRITES, events: NO_EVENTS };
}

function isEmptyHint(h: CustomerHint): boolean {
  return (
    (h.plan === undefined || h.plan === "") &&
    (h.type === undefined || h.type === "") &&
    (h.refs === undefined || h.refs.length === 0) &&
    (h.altIds === undefined || h.altIds.length === 0) &&
    (h.metadata === undefined || Object.keys(h.metadata).length === 0)
  );
}

function fromHint(ctx: EngineContext, id: string, hint: CustomerHint): Customer {
  validateCustomerLists(ctx.state, HINT_FIELD, id, hint.refs, hint.altIds);
  return {
    id,
    plan: hint.plan ?? "",
    type: hint.type !== undefined && hint.type !== "" ? hint.type : "user",
    refs: dedupe(hint.refs),
    altIds: dedupe(hint.altIds),
    metadata: { ...hint.metadata },
    createdAt: ctx.now,
    updatedAt: ctx.now,
  };
}

function createCustomer(ctx: EngineContext, customer: Customer): CallerResolution {
  return {
    caller: customer,
    writes: [{ kind: "customer-put", customer, previous: undefined }],
    events: [{ type: "customer-set", time: ctx.now, customer }],
  };
}

/** Scalars replaced when the hint gives them non-empty; lists and metadata only ever grow. */
function updateFromHint(ctx: EngineContext, stored: Customer, hint: CustomerHint): CallerResolution {
  validateCustomerLists(ctx.state, HINT_FIELD, stored.id, hint.refs, hint.altIds);
  const merged: Customer = {
    ...stored,
    plan: hint.plan !== undefined && hint.plan !== "" ? hint.plan : stored.plan,
    type: hint.type !== undefined && hint.type !== "" ? hint.type : stored.type,
    refs: mergeList(stored.refs, hint.refs),
    altIds: mergeList(stored.altIds, hint.altIds),
    metadata: mergeMetadata(stored.metadata, hint.metadata),
    updatedAt: ctx.now,
  };
  if (!customerChanged(stored, merged)) return { caller: stored, writes: NO_WRITES, events: NO_EVENTS };
  const events: EngineEvent[] = [{ type: "customer-set", time: ctx.now, customer: merged }];
  if (merged.plan !== stored.plan) {
    events.push({
      type: "customer-plan-changed",
      time: ctx.now,
      customerId: stored.id,
      previousPlan: stored.plan,
      newPlan: merged.plan,
      metersReset: false,
    });
  }
  const writes: Write[] = [{ kind: "customer-put", customer: merged, previous: stored }];
  // A new plan, or new refs reaching one: the caller's own meters move into its periods. Only
  // those can change the effective plan (refs only ever grow here), so a hint that changes the
  // type or metadata alone resolves no plan.
  if (merged.plan !== stored.plan || merged.refs.length !== stored.refs.length) {
    carryPeriods(ctx, merged, resolvePlan(ctx.policy, ctx.state, stored), resolvePlan(ctx.policy, ctx.state, merged), writes, events);
  }
  if (writes.length === 1) return { caller: merged, writes, events };
  return { caller: merged, writes, events, state: withPendingWrites(ctx.state, writes) };
}
