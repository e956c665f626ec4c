/**
 * A reset rule as a short string that meter rows and exports keep: which rule a meter's period
 * start was computed under. Stored, because the live policy alone cannot tell: a customer's plan
 * changes through its refs, a plan is removed, the default moves, and the next call judges the
 * meter by another rule than the one that wrote it.
 *
 * Keys compare by meaning, as `sameResetRule` does: `1day` and `24hr` are one key, `86400000ms`.
 * Calendar rules are their canonical schedule text (`monthly:1`, `weekly:mon`), a limit that never
 * resets is `never`.
 */
import { WEEKDAYS, parseResetSchedule } from "./parse-reset-schedule.js";
import type { CalendarSchedule, ResetRule } from "./types.js";

export const NEVER_RESETS = "never";

/** Compiled rules are immutable: each one's key is worked out once. */
const keys = new WeakMap<ResetRule, string>();

/** The key of `rule` (undefined = never resets). */
export function resetRuleKey(rule: ResetRule | undefined): string {
  if (rule === undefined) return NEVER_RESETS;
  let key = keys.get(rule);
  if (key === undefined) {
    key = rule.kind === "rolling" ? `${rule.everyMs}ms` : scheduleKey(rule.schedule);
    keys.set(rule, key);
  }
  return key;
}

function scheduleKey(s: CalendarSchedule): string {
  switch (s.kind) {
    case "hourly":
    case "daily":
      return s.kind;
    case "weekly":
      return `weekly:${WEEKDAYS[s.weekday] ?? String(s.weekday)}`;
    case "monthly":
    case "quarterly":
      return `${s.kind}:${s.day}`;
    case "yearly":
      return `yearly:${s.month}-${s.day}`;
  }
}

export type ResetRuleKeyResult = { readonly ok: true; readonly rule: ResetRule | undefined } | { readonly ok: false; readonly message: string };

/** The rule a key stands for; a sentence saying why when it stands for none. */
export function resetRuleOfKey(key: string): ResetRuleKeyResult {
  if (key === NEVER_RESETS) return { ok: true, rule: undefined };
  const rolling = /^([1-9]\d{0,15})ms$/.exec(key);
  if (rolling !== null) {
    const everyMs = Number(rolling[1]);
    if (Number.isSafeInteger(everyMs)) return { ok: true, rule: { kind: "rolling", everyMs, text: key } };
  }
  const s = parseResetSchedule(key);
  // Only the canonical spelling: a key is written by `resetRuleKey`, never typed.
  if (s.ok && scheduleKey(s.schedule) === key) return { ok: true, rule: { kind: "calendar", schedule: s.schedule, text: s.text } };
  return { ok: false, message: `"${key}" is not a reset rule: expected "never", a period in ms ("86400000ms") or a calendar schedule ("monthly:1")` };
}
