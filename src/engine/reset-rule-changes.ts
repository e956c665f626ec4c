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
 * The moment of the change is when the engine first decides under the new policy; this is known
 * only in memory, for policy swaps that keep the plan. Every other way a meter comes to be judged
 * by another rule (a plan changed through refs, removed, or no longer the default; a restart in
 * between) is seen from the rule the meter's row names, and judged without the moment: the count
 * is kept only while neither rule has reset it (see `judgedPeriod`).
 */
import { LimitrError } from "../errors/index.js";
import type { CompiledLimit, CompiledPolicy, ResetRule } from "../policy/index.js";
import { initialPeriodStart, nextResetAfter, resetRuleKey, resetRuleOfKey, sameResetRule } from "../policy/index.js";
import type { Meter } from "./types.js";

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
  /**
   * When the tracker first saw a policy (Infinity before): what a lineage's rule was before then
   * is not known (a restart in between), after then it is.
   */
  readonly since: number;
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
  let since = Infinity;
  return {
    changes: {
      get: (limit) => changes.get(limit),
      get since() {
        return since;
      },
    },
    observe(policy, now) {
      if (policy === last) return;
      const previous = last;
      last = policy;
      if (previous === undefined) {
        since = now;
        return;
      }
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

/** Where a stored meter's period stands under the live limit: its start, or over (`expired`). */
export interface JudgedPeriod {
  readonly start: number;
  readonly expired: boolean;
  /**
   * Set for a count carried across a change whose moment is not known: when it ends, the first
   * moment either rule would have reset it. Until then the row keeps the rule, period start and
   * judgement time it has, so every call judges it the same way.
   */
  readonly until?: number;
}

/**
 * How `stored` is judged under `limit` at `now` when its period start was computed under another
 * reset rule; undefined when nothing needs judging (the common case: one string comparison).
 *
 * - The policy swaps above date a change when they concern the row: some swapped this limit's
 *   rule after the row was last judged (`Meter.judgedAt`), and the rule they swapped away from
 *   then is the one the row names (a row of another plan's lineage, or one written after the
 *   swaps, is not theirs). Then the chain of those swaps judges it. A row set under another rule
 *   than the lineage had then (an unseen change came first) is over if that rule would have ended
 *   its count before the first of them; else a row set before the tracker first saw a policy (a
 *   restart) is carried on through them, and one set while it ran (another plan's) is judged
 *   against the live rule as below.
 * - Otherwise the moment of the change is not known, only that it came after the row was last
 *   judged. The count is kept until the first moment either rule would have reset it since: the
 *   end of its own rule's period, or of the live rule's period that contains the last judgement
 *   (`until`). Until then it is reported in that period of the live rule, and calls count on it
 *   without rewriting the row's rule, start or judgement time, so the answer depends on neither
 *   which call comes first nor whether one was denied; from then on it starts afresh under the
 *   live rule. In doubt a count is dropped, never revived: `monthly:1` → `daily` keeps the count
 *   until the end of the day it was last judged in; `monthly:1` → never resets keeps it until the
 *   month ends.
 * - A row from before rules were stored: the policy swaps' changes only, as before.
 * - The stand-in limit of a meter its plan no longer meters (`unenforced`) judges nothing: it
 *   resets by the rule the row names (`unenforcedLimit`), which the meter keeps until a plan
 *   meters it again.
 *
 * A decision on a meter carried by the swaps writes it with the live rule (`WorkMeter.changed`).
 */
export function judgedPeriod(changes: ResetRuleChanges | undefined, limit: CompiledLimit, stored: Meter, now: number): JudgedPeriod | undefined {
  if (limit.unenforced === true) return undefined;
  const written = stored.resetRule;
  // The swaps the engine saw, when any concern this limit.
  const swaps = changes?.get(limit) === undefined ? undefined : changes;
  if (written === undefined) return swaps === undefined ? undefined : carriedPeriod(swaps, limit, stored.periodStart);
  if (swaps === undefined && written === resetRuleKey(limit.reset)) return undefined;
  const own = writtenRule(stored, written);
  const judgedAt = judgedTime(stored, own, now);
  if (swaps !== undefined) {
    const { then, firstSwap } = lineageAt(swaps, limit, judgedAt);
    if (then !== limit) {
      if (resetRuleKey(then.reset) === written) return carriedPeriod(swaps, limit, stored.periodStart, judgedAt);
      // Set under another rule than the lineage had then: an unseen change came first, to the
      // lineage's rule before its swaps (a restart) or to this plan at some moment (a move from
      // another plan, before or after the swaps: not known). Over if the lineage's rule then
      // would have ended the count before the first swap: in doubt a count is dropped.
      const unseen = unseenCarry(own, then.reset, stored.periodStart, judgedAt);
      if (unseen.until <= firstSwap) return { start: stored.periodStart, expired: true, until: unseen.until };
      // Set before the tracker knew the lineage: a restart, so the count goes on through the
      // swaps. Set while it did: of another plan, judged against the live rule below.
      if (judgedAt < swaps.since) return carriedPeriod(swaps, limit, unseen.start, judgedAt);
    }
  }
  if (written === resetRuleKey(limit.reset)) return undefined;
  const { start, until } = unseenCarry(own, limit.reset, stored.periodStart, judgedAt);
  return { start: now >= until ? stored.periodStart : start, expired: now >= until, until };
}

/**
 * When a row was last judged. A row without the time (an import of an export from before it was
 * kept), or with one outside the period it names or after now (which no decision writes), was
 * judged no earlier than its period started: the period start stands in.
 */
function judgedTime(stored: Meter, own: ResetRule | undefined, now: number): number {
  const j = stored.judgedAt;
  const start = stored.periodStart;
  // A time after now is no decision's either: only a clock that went back can leave one (an
  // import refuses it).
  return j !== undefined && j >= start && j <= now && (own === undefined || j < nextResetAfter(own, start)) ? j : start;
}

/**
 * A count written under `own` from `storedStart`, last judged at `judgedAt`, judged by `rule`
 * without knowing when the rule changed: kept in `rule`'s period containing `judgedAt` (from
 * `start`) until the first moment either rule would have reset it (`until`).
 */
function unseenCarry(own: ResetRule | undefined, rule: ResetRule | undefined, storedStart: number, judgedAt: number): { readonly start: number; readonly until: number } {
  const start = rule === undefined ? storedStart : initialPeriodStart(rule, judgedAt);
  const until = Math.min(own === undefined ? Infinity : nextResetAfter(own, storedStart), rule === undefined ? Infinity : nextResetAfter(rule, start));
  return { start, until };
}

/**
 * The limit of `limit`'s lineage (same plan and entitlement through the swaps) in force at `t`,
 * and when the first swap after `t` came (Infinity when none did: `then` is `limit`).
 */
function lineageAt(changes: ResetRuleChanges, limit: CompiledLimit, t: number): { readonly then: CompiledLimit; readonly firstSwap: number } {
  let then = limit;
  let firstSwap = Infinity;
  for (let c = changes.get(then); c !== undefined && c.at > t; c = changes.get(then)) {
    then = c.previous;
    firstSwap = c.at;
  }
  return { then, firstSwap };
}

function writtenRule(stored: Meter, key: string): ResetRule | undefined {
  const r = resetRuleOfKey(key);
  if (r.ok) return r.rule;
  // Rows are written from compiled rules and imports are checked: only a damaged row gets here.
  throw new LimitrError("INTERNAL", `stored meter (${stored.owner}, ${stored.entitlement}): reset rule ${r.message}`);
}

/**
 * The period a stored meter is in under `limit` once earlier rule changes (those after `since`)
 * are taken into account: `expired` when its period had ended under the rule it was written
 * under; else the period start to judge it from under `limit` (the stored one when no change
 * concerns it).
 */
export function carriedPeriod(changes: ResetRuleChanges, limit: CompiledLimit, storedStart: number, since = -Infinity): JudgedPeriod {
  const change = changes.get(limit);
  // Changes up to `since` came before the row was last judged: it was written under their rule.
  if (change === undefined || change.at <= since) return { start: storedStart, expired: false };
  return carryAcross(change.previous.reset, limit.reset, storedStart, change.at, () => carriedPeriod(changes, change.previous, storedStart, since));
}

/**
 * One rule change at `at`, from `oldRule` to `newRule`, for a meter stored with `storedStart`;
 * `before` says where the meter stood under `oldRule` (earlier changes).
 */
function carryAcross(oldRule: ResetRule | undefined, newRule: ResetRule | undefined, storedStart: number, at: number, before: () => JudgedPeriod): JudgedPeriod {
  const anchored = initialPeriodStart(newRule, at);
  // Started in (or after) the new rule's period of the change: all of its usage is in that period
  // (a start written under the old calendar is reported on the new rule's boundary).
  if (storedStart >= anchored) return { start: newRule?.kind === "calendar" ? initialPeriodStart(newRule, storedStart) : storedStart, expired: false };
  const was = before();
  if (was.expired) return was;
  if (oldRule !== undefined && nextResetAfter(oldRule, was.start) <= at) return { start: was.start, expired: true };
  // Still running when the rule changed: carried into the new rule's period of the change (a meter
  // that now never resets keeps its own start).
  return { start: newRule === undefined ? storedStart : anchored, expired: false };
}
