/**
 * Who is calling: the stored customer (by id or alt id), created or updated from the request's
 * hint, or created on the default plan (SPEC §3). Returns the customer as it will be after the
 * call plus the writes and events that make it so; `check` simply drops them (virtual customer).
 * A hint that changes the caller's plan keeps its meters' values and periods as SetCustomerPlan
 * does (SPEC §3), and the decision then reads the meters as that left them. A hint's alt id that
 * another customer has is skipped and reported (`altIdConflicts`), never an error.
 */
import { NO_EVENTS, NO_WRITES, type EngineContext } from "./context.js";
import { altIdHolder, customerChanged, dedupe, mergeList, mergeMetadata, validateCustomerLists, validateType } from "./customer-fields.js";
import { findCustomer, resolvePlan } from "./customer-graph.js";
import { carryPeriods } from "./customer-ops.js";
import { withPendingWrites } from "./pending-state.js";
import type { AltIdConflict, Customer, CustomerHint, EngineEvent, StateReader, Write } from "./types.js";

/** Errors name the field as the client wrote it: the requests' proto field is `customer_hint`. */
const HINT_FIELD = "customer_hint.";

export interface CallerResolution {
  /** The caller after the call; undefined = unknown and not creatable (UNKNOWN_CUSTOMER). */
  readonly caller: Customer | undefined;
  readonly writes: readonly Write[];
  readonly events: readonly EngineEvent[];
  /** The state the decision reads, when these writes changed meters (a plan change's carry). */
  readonly state?: StateReader;
  /** The hint's alt ids that were skipped because another customer has them. */
  readonly altIdConflicts?: readonly AltIdConflict[];
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
  if (hint !== undefined) {
    const lists = checkHint(ctx, customerId, hint);
    return withConflicts(createCustomer(ctx, fromHint(ctx, customerId, hint, lists.altIds)), lists.conflicts);
  }
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

/**
 * The hint's alt ids without those another customer has, and those skipped. A malformed hint (a
 * blank ref, alt id or type, the caller's own id in a list) is still INVALID_ARGUMENT: it is the
 * application's bug on every call, not a race, and fails where it is written. An alt id another customer has may be
 * a race (two code paths registering an API key at once) that no retry resolves; failing the call
 * would drop its usage (a Record's already happened) on every call that carries the hint.
 */
function checkHint(ctx: EngineContext, id: string, hint: CustomerHint): { readonly altIds: readonly string[] | undefined; readonly conflicts: AltIdConflict[] | undefined } {
  validateCustomerLists(ctx.state, HINT_FIELD, id, hint.refs, hint.altIds, "allowed");
  validateType(HINT_FIELD, hint.type);
  const given = hint.altIds;
  if (given === undefined) return { altIds: given, conflicts: undefined };
  let conflicts: AltIdConflict[] | undefined;
  for (const altId of given) {
    const holder = altIdHolder(ctx.state, id, altId);
    if (holder !== undefined) (conflicts ??= []).push({ customerId: id, altId, heldBy: holder.id });
  }
  if (conflicts === undefined) return { altIds: given, conflicts };
  const skipped = conflicts;
  return { altIds: given.filter((a) => !skipped.some((c) => c.altId === a)), conflicts };
}

function withConflicts(resolution: CallerResolution, conflicts: readonly AltIdConflict[] | undefined): CallerResolution {
  return conflicts === undefined ? resolution : { ...resolution, altIdConflicts: conflicts };
}

function fromHint(ctx: EngineContext, id: string, hint: CustomerHint, altIds: readonly string[] | undefined): Customer {
  return {
    id,
    plan: hint.plan ?? "",
    type: hint.type !== undefined && hint.type !== "" ? hint.type : "user",
    refs: dedupe(hint.refs),
    altIds: dedupe(altIds),
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
  const lists = checkHint(ctx, stored.id, hint);
  return withConflicts(mergeHint(ctx, stored, hint, lists.altIds), lists.conflicts);
}

function mergeHint(ctx: EngineContext, stored: Customer, hint: CustomerHint, altIds: readonly string[] | undefined): CallerResolution {
  const merged: Customer = {
    ...stored,
    plan: hint.plan !== undefined && hint.plan !== "" ? hint.plan : stored.plan,
    type: hint.type !== undefined && hint.type !== "" ? hint.type : stored.type,
    refs: mergeList(stored.refs, hint.refs),
    altIds: mergeList(stored.altIds, altIds),
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
