/**
 * Reset-period changes across policy swaps (SPEC §4: changing the policy never resets or strands a
 * meter). A stored meter's period start was computed under the rule in force when it was written.
 * Judged by a new rule alone it can look long over: a `monthly:1` meter started on the 1st "ended"
 * on the 2nd under `daily`, so every such meter would read zero the moment `reset_sch` changed,
 * and in the other direction a `daily` meter left over from an earlier day would come back to
 * life under `monthly`. Instead a meter written under an older rule is judged in two steps:
 *
 * - if its period had already ended under the old rule when the rule changed, it is over (zero);
 * - otherwise its value carries into the new rule's period that contains the moment of the
 *   change, and the new rule resets it from there as usual.
 *
 * The moment of the change is when the engine first decides under the new policy. Known only in
 * memory: a meter untouched between a rule change and a restart is judged by the new rule alone.
 */
import type { CompiledLimit, CompiledPolicy } from "../policy/index.js";
import { initialPeriodStart, nextResetAfter, sameResetRule } from "../policy/index.js";

/** A limit whose reset rule differs from the one the previous policy had for the same plan and entitlement. */
export interface ResetRuleChange {
  /** Epoch ms of the first operation under the new policy. */
  readonly at: number;
  /** The same plan's limit on the same entitlement before the change (it may have changed before, too). */
  readonly previous: CompiledLimit;
}

/** The reset-rule changes known for the limits of the live policy. */
export interface ResetRuleChanges {
  get(limit: CompiledLimit): ResetRuleChange | undefined;
}

/** Notices policy swaps and records which limits changed their reset rule, and when. */
export interface ResetRuleTracker {
  /** Called with the policy and `now` of every operation; cheap when the policy is unchanged. */
  observe(policy: CompiledPolicy, now: number): void;
  readonly changes: ResetRuleChanges;
}

export function createResetRuleTracker(): ResetRuleTracker {
  const changes = new WeakMap<CompiledLimit, ResetRuleChange>();
  let last: CompiledPolicy | undefined;
  return {
    changes,
    observe(policy, now) {
      if (policy === last) return;
      const previous = last;
      last = policy;
      if (previous === undefined) return;
      for (const [planName, plan] of policy.plans) {
        const before = previous.plans.get(planName);
        if (before === undefined) continue;
        for (const [name, ent] of plan.entitlements) {
          const limit = ent.limit;
          const old = before.entitlements.get(name)?.limit;
          if (limit === undefined || old === undefined) continue;
          if (!sameResetRule(limit.reset, old.reset)) {
            changes.set(limit, { at: now, previous: old });
          } else {
            // Same rule as before: an earlier change still explains this limit's older meters.
            const inherited = changes.get(old);
            if (inherited !== undefined) changes.set(limit, inherited);
          }
        }
      }
    },
  };
}


/**
 * The period a stored meter is in under `limit` once earlier rule changes are taken into account:
 * `expired` when its period had ended under the rule it was written under; else the period start
 * to judge it from under `limit` (the stored one when no change concerns it).
 */
export function carriedPeriod(changes: ResetRuleChanges, limit: CompiledLimit, storedStart: number): { readonly start: number; readonly expired: boolean } {
  const change = changes.get(limit);
  if (change === undefined) return { start: storedStart, expired: false };
  const anchored = initialPeriodStart(limit.reset, change.at);
  // Started in (or after) the new rule's period of the change: all of its usage is in that period
  // (a start written under the old calendar is reported on the new rule's boundary).
  if (storedStart >= anchored) return { start: limit.reset?.kind === "calendar" ? initialPeriodStart(limit.reset, storedStart) : storedStart, expired: false };
  const before = carriedPeriod(changes, change.previous, storedStart);
  if (before.expired) return before;
  const oldRule = change.previous.reset;
  if (oldRule !== undefined && nextResetAfter(oldRule, before.start) <= change.at) return { start: before.start, expired: true };
  // Still running when the rule changed: carried into the new rule's period of the change (a meter
  // that now never resets keeps its own start).
  return { start: limit.reset === undefined ? storedStart : anchored, expired: false };
}
