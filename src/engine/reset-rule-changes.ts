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
 * The moment of the change is when the engine first decides under the new policy, for policy
 * swaps that keep the plan. The data dir keeps these moments (`reset-rule-history.ts`), so they
 * outlive the process, and a rule changed while it was down is a swap dated at the next process's
 * first operation. Every other way a meter comes to be judged by another rule (a plan changed
 * through refs, removed, or no longer the default; a row the history does not cover: imported,
 * or written before the dir kept one) is seen from the rule the meter's row names, and judged
 * without the moment: the count is kept only while neither rule has reset it (see `judgedPeriod`).
 */
import { LimitrError } from "../errors/index.js";
import type { CompiledLimit, CompiledPolicy, ResetRule } from "../policy/index.js";
import { initialPeriodStart, nextResetAfter, resetRuleKey, resetRuleOfKey, sameResetRule } from "../policy/index.js";
import type { Meter } from "./types.js";

/**
 * One stretch of a lineage's history (the same plan's limit on the same entitlement, through the
 * policy swaps): the reset rule in force, and the change that began it (undefined when none is
 * known: the first rule the lineage was seen with).
 */
export interface RuleEra {
  readonly reset: ResetRule | undefined;
  readonly change: ResetRuleChange | undefined;
}

/** A limit whose reset rule differs from the one the previous policy had for the same plan and entitlement. */
export interface ResetRuleChange {
  /** Epoch ms of the first operation under the new policy. */
  readonly at: number;
  /** The lineage's rule before the change (it may have changed before, too). */
  readonly previous: RuleEra;
}

/** The reset-rule changes known for the limits of the live policy. */
export interface ResetRuleChanges {
  get(limit: CompiledLimit): ResetRuleChange | undefined;
  /**
   * When the data dir's first policy was seen (Infinity before): what a lineage's rule was before
   * then is not known (rows from a version that kept no history, or imported), after then it is.
   */
  readonly since: number;
}

/** The lineages of the last policy seen: plan → entitlement → its current era. */
export type LineageEras = ReadonlyMap<string, ReadonlyMap<string, RuleEra>>;

/** What the tracker starts from: the history a data dir kept (`reset-rule-history.ts`). */
export interface KnownRuleHistory {
  readonly since: number;
  readonly eras: LineageEras;
}

/** Notices policy swaps and records which limits changed their reset rule, and when. */
export interface ResetRuleTracker {
  /** Called with the policy and `now` of every operation; cheap when the policy is unchanged. */
  observe(policy: CompiledPolicy, now: number): void;
  readonly changes: ResetRuleChanges;
  /**
   * The history as it stands after a swap changed it, until `taken` (the store must keep it: a
   * restart then goes on from it instead of forgetting every swap). Undefined otherwise, so the
   * hot path reads one field.
   */
  unsaved: KnownRuleHistory | undefined;
  /** `history` was handed to the store. */
  taken(): void;
  /** The store failed to keep `history`: unsaved again, unless a newer one is. */
  lost(history: KnownRuleHistory): void;
}

/**
 * A tracker that goes on from `known` (the history a data dir kept), or starts one at its first
 * policy. Swaps while the process was down are dated at its first operation, as any swap is.
 */
export function createResetRuleTracker(known?: KnownRuleHistory): ResetRuleTracker {
  const changes = new WeakMap<CompiledLimit, ResetRuleChange>();
  let last: CompiledPolicy | undefined;
  let eras: LineageEras | undefined = known?.eras;
  let since = known?.since ?? Infinity;
  let latest: KnownRuleHistory | undefined;
  const tracker: ResetRuleTracker = {
    changes: {
      get: (limit) => changes.get(limit),
      get since() {
        return since;
      },
    },
    unsaved: undefined,
    taken() {
      tracker.unsaved = undefined;
    },
    lost(history) {
      if (latest === history && tracker.unsaved === undefined) tracker.unsaved = history;
    },
    observe(policy, now) {
      if (policy === last) return;
      last = policy;
      const before = eras;
      const first = since === Infinity;
      if (first) since = now;
      let changed = first || before === undefined;
      const next = new Map<string, Map<string, RuleEra>>();
      for (const [planName, plan] of policy.plans) {
        const beforePlan = before?.get(planName);
        const planEras = new Map<string, RuleEra>();
        for (const [name, ent] of plan.entitlements) {
          const limit = ent.limit;
          if (limit === undefined) continue;
          const old = beforePlan?.get(name);
          let era: RuleEra;
          if (old === undefined) {
            // A lineage not seen before: no change of it is known.
            era = { reset: limit.reset, change: undefined };
            changed = true;
          } else if (sameResetRule(limit.reset, old.reset)) {
            // Same rule as before: an earlier change still explains this limit's older meters.
            era = old;
          } else {
            // Never dated before the change it follows (a clock set back, here or across a
            // restart): the chain stays newest first. The stored times are never moved by a
            // clock that may be the wrong one (`swapsFrom` reads them against now).
            era = keptChanges({ reset: limit.reset, change: { at: Math.max(now, old.change?.at ?? -Infinity), previous: old } });
            changed = true;
          }
          if (era.change !== undefined) changes.set(limit, era.change);
          planEras.set(name, era);
        }
        if (planEras.size > 0) next.set(planName, planEras);
        if (beforePlan !== undefined && beforePlan.size !== planEras.size) changed = true;
      }
      if (before !== undefined && [...before.keys()].some((p) => !next.has(p))) changed = true;
      eras = next;
      if (changed) {
        latest = { since, eras: next };
        tracker.unsaved = latest;
      }
    },
  };
  return tracker;
}

/**
 * The most changes a lineage keeps. Each swap that changes its rule adds one: without a bound the
 * stored history (rewritten whole at each such swap) and the walk that judges a row would grow
 * for ever. A row last judged before the oldest change kept is judged as if the rule before that
 * change had been in force since (so, in doubt, a count set under another rule is dropped).
 */
export const MAX_KEPT_CHANGES = 256;

/** `era` with at most `MAX_KEPT_CHANGES` changes: the oldest dropped; `era` itself when within. */
export function keptChanges(era: RuleEra): RuleEra {
  const kept: ResetRuleChange[] = []; // newest first
  for (let c = era.change; c !== undefined; c = c.previous.change) {
    if (kept.length === MAX_KEPT_CHANGES) return rebuiltFrom(era.reset, kept);
    kept.push(c);
  }
  return era;
}

/** The lineage whose rule is `reset` after `changes` (newest first), and nothing before them. */
function rebuiltFrom(reset: ResetRule | undefined, changes: readonly ResetRuleChange[]): RuleEra {
  const oldest = changes[changes.length - 1] as ResetRuleChange;
  let rebuilt: RuleEra = { reset: oldest.previous.reset, change: undefined };
  for (let j = changes.length - 1; j >= 0; j--) {
    const after = j === 0 ? reset : (changes[j - 1] as ResetRuleChange).previous.reset;
    rebuilt = { reset: after, change: { at: (changes[j] as ResetRuleChange).at, previous: rebuilt } };
  }
  return rebuilt;
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
 *   its count before the first of them; else a row set before the history began (`since`: an
 *   older version's, or imported) is carried on through them, and one set since (another plan's)
 *   is judged against the live rule as below.
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
  // The latest of the swaps the engine saw, when any concern this limit.
  const swap = changes?.get(limit);
  if (written === undefined) return swap === undefined ? undefined : carriedPeriod(swap, limit.reset, stored.periodStart);
  if (swap === undefined && written === resetRuleKey(limit.reset)) return undefined;
  const own = writtenRule(stored, written);
  const judgedAt = judgedTime(stored, own, now);
  if (swap !== undefined) {
    const from = swapsFrom(swap, limit.reset, written, judgedAt, now);
    const { then, firstSwap } = lineageAt(swap, from);
    if (then !== undefined) {
      if (resetRuleKey(then.reset) === written) return carriedPeriod(swap, limit.reset, stored.periodStart, from);
      // Set under another rule than the lineage had then: an unseen change came first, to the
      // lineage's rule before its swaps (before the history began) or to this plan at some
      // moment (a move from another plan, before or after the swaps: not known). Over if the
      // lineage's rule then would have ended the count before the first swap: in doubt a count
      // is dropped.
      const unseen = unseenCarry(own, then.reset, stored.periodStart, judgedAt);
      if (unseen.until <= firstSwap) return { start: stored.periodStart, expired: true, until: unseen.until };
      // Set before the history began, so the count goes on through the swaps. Set since: of
      // another plan, judged against the live rule below.
      if (judgedAt < (changes as ResetRuleChanges).since) return carriedPeriod(swap, limit.reset, unseen.start, judgedAt);
    }
  }
  if (written === resetRuleKey(limit.reset)) return undefined;
  const { start, until } = unseenCarry(own, limit.reset, stored.periodStart, judgedAt);
  return { start: now >= until ? stored.periodStart : start, expired: now >= until, until };
}

/**
 * From when the swaps after a row's last judgement count: that judgement, unless every one of
 * them is dated after now and one brought in the rule the row names. A clock that ran ahead when
 * such a swap was first seen (here, or in an earlier process) dated it so, and a row written
 * under its rule since, by the clock set right, looks older than the swap; judged through it, its
 * count would be over at every call. Such a row was written under the swap: it counts from the
 * moment of the oldest that brought its rule in. A swap after the judgement that is dated by the
 * clock as it is came after the row for certain, and so did every newer one. This holds only
 * while the clock is behind the swap: after that moment the row looks older than it again (the
 * sidecar trusts its clock; docs/kubernetes.md says what a wrong one does).
 */
function swapsFrom(latest: ResetRuleChange, live: ResetRule | undefined, written: string, judgedAt: number, now: number): number {
  let from = judgedAt;
  let after = live;
  for (let c: ResetRuleChange | undefined = latest; c !== undefined && c.at > judgedAt; c = c.previous.change) {
    if (c.at <= now) return judgedAt;
    if (resetRuleKey(after) === written) from = c.at;
    after = c.previous.reset;
  }
  return from;
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
 * The era of a lineage (same plan and entitlement through the swaps, the latest being `latest`)
 * in force at `t`, and when the first swap after `t` came; undefined and Infinity when none came
 * after `t` (the live rule was in force).
 */
function lineageAt(latest: ResetRuleChange, t: number): { readonly then: RuleEra | undefined; readonly firstSwap: number } {
  let then: RuleEra | undefined;
  let firstSwap = Infinity;
  for (let c: ResetRuleChange | undefined = latest; c !== undefined && c.at > t; c = then.change) {
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
 * The period a stored meter is in under `rule`, the rule `change` brought in, once that change and
 * the earlier ones of its lineage (those after `since`) are taken into account: `expired` when its
 * period had ended under the rule it was written under; else the period start to judge it from
 * under `rule` (the stored one when no change concerns it).
 */
function carriedPeriod(change: ResetRuleChange | undefined, rule: ResetRule | undefined, storedStart: number, since = -Infinity): JudgedPeriod {
  // Changes up to `since` came before the row was last judged: it was written under their rule.
  if (change === undefined || change.at <= since) return { start: storedStart, expired: false };
  const previous = change.previous;
  return carryAcross(previous.reset, rule, storedStart, change.at, () => carriedPeriod(previous.change, previous.reset, storedStart, since));
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
