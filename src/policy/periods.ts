/**
 * Meter periods: when a period starts and ends under a reset rule. All times are epoch ms, UTC.
 * CONTRACT STUB — the policy work replaces these bodies; signatures are what the engine uses.
 */
import type { ResetRule } from "./types.js";

/** Start of a brand-new meter's period: `now` for rolling rules and no rule; the latest calendar boundary at or before `now` for calendar rules. */
export function initialPeriodStart(rule: ResetRule | undefined, now: number): number {
  void rule;
  return now;
}

/** The end (exclusive) of the period that started at `periodStart`: start + length for rolling rules, the first calendar boundary after `periodStart` for calendar rules. */
export function nextResetAfter(rule: ResetRule, periodStart: number): number {
  void rule;
  return periodStart;
}

/**
 * The start of the period containing `now` for a meter whose stored period began at
 * `periodStart`: `periodStart` itself while that period lasts (or with no rule); else, for
 * rolling rules, `periodStart + k × length` (missed periods collapse), and for calendar rules
 * the latest boundary at or before `now`.
 */
export function currentPeriodStart(rule: ResetRule | undefined, periodStart: number, now: number): number {
  void rule;
  void now;
  return periodStart;
}
