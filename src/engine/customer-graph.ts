/**
 * The customer graph: finding a customer by id or alt id, the plan it is on (own, inherited
 * through refs, or the default), and the owner of a scoped meter (nearest customer of a type).
 * Every walk is cycle-safe: refs are user data and may loop.
 */
import type { CompiledPlan, CompiledPolicy } from "../policy/index.js";
import type { Customer, CustomerView, StateReader } from "./types.js";

/** A customer by primary id, else by alternate id. */
export function findCustomer(state: StateReader, id: string): Customer | undefined {
  const direct = state.getCustomer(id);
  if (direct !== undefined) return direct;
  const primary = state.resolveAltId(id);
  return primary === undefined ? undefined : state.getCustomer(primary);
}

/**
 * Looks a ref up, seeing `self` (which may be a not-yet-committed version of a stored customer)
 * in place of its stored record, so a walk over a hinted or virtual caller is consistent.
 */
function lookupRef(state: StateReader, self: Customer, id: string): Customer | undefined {
  if (id === self.id) return self;
  const found = findCustomer(state, id);
  return found !== undefined && found.id === self.id ? self : found;
}

/** The plan a customer is enforced on, and where it came from. */
export interface ResolvedPlan {
  readonly plan: CompiledPlan | undefined;
  /** The plan's name; empty when none resolves. */
  readonly name: string;
  readonly source: CustomerView["planSource"];
  /** The customer's own plan name when the policy no longer has it. */
  readonly missingPlan: string | undefined;
}

const NO_PLAN: ResolvedPlan = { plan: undefined, name: "", source: "none", missingPlan: undefined };

/**
 * SPEC §3: the customer's own plan if the policy has it; else the first ref, depth-first, that
 * resolves a plan; else the default plan; else none.
 */
export function resolvePlan(policy: CompiledPolicy, state: StateReader, customer: Customer): ResolvedPlan {
  const missingPlan = customer.plan !== "" && !policy.plans.has(customer.plan) ? customer.plan : undefined;
  const own = customer.plan === "" ? undefined : policy.plans.get(customer.plan);
  if (own !== undefined) return { plan: own, name: own.name, source: "own", missingPlan: undefined };
  if (customer.refs.length > 0) {
    const visited = new Set<string>([customer.id]);
    const inherited = inheritedPlan(policy, state, customer, customer.refs, visited);
    if (inherited !== undefined) return { plan: inherited, name: inherited.name, source: "inherited", missingPlan };
  }
  const fallback = policy.defaultPlan === undefined ? undefined : policy.plans.get(policy.defaultPlan);
  if (fallback !== undefined) return { plan: fallback, name: fallback.name, source: "default", missingPlan };
  return missingPlan === undefined ? NO_PLAN : { ...NO_PLAN, missingPlan };
}

function inheritedPlan(
  policy: CompiledPolicy,
  state: StateReader,
  self: Customer,
  refs: readonly string[],
  visited: Set<string>,
): CompiledPlan | undefined {
  for (const ref of refs) {
    const c = lookupRef(state, self, ref);
    if (c === undefined || visited.has(c.id)) continue;
    visited.add(c.id);
    const own = c.plan === "" ? undefined : policy.plans.get(c.plan);
    if (own !== undefined) return own;
    const deeper = inheritedPlan(policy, state, self, c.refs, visited);
    if (deeper !== undefined) return deeper;
  }
  return undefined;
}

/**
 * SPEC §3 scope: the nearest customer of `type`, breadth-first over refs starting at the caller
 * itself (depth 0). Undefined when none is reachable.
 */
export function resolveScopeOwner(state: StateReader, caller: Customer, type: string): Customer | undefined {
  if (caller.type === type) return caller;
  if (caller.refs.length === 0) return undefined;
  const visited = new Set<string>([caller.id]);
  let level: Customer[] = [caller];
  while (level.length > 0) {
    const next: Customer[] = [];
    for (const c of level) {
      for (const ref of c.refs) {
        const r = lookupRef(state, caller, ref);
        if (r === undefined || visited.has(r.id)) continue;
        if (r.type === type) return r;
        visited.add(r.id);
        next.push(r);
      }
    }
    level = next;
  }
  return undefined;
}
