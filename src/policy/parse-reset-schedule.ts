/**
 * `reset_sch` text → a UTC calendar schedule: `hourly`, `daily`, `weekly:mon`..`sun`,
 * `monthly:N` (1..31, clamped to the month's length), `monthly:last`, `quarterly:N`,
 * `yearly:M-D`.
 */
import type { CalendarSchedule } from "./types.js";

/** A parsed schedule with its normalised text, or a sentence saying what is wrong. */
export type ScheduleResult =
  | { readonly ok: true; readonly schedule: CalendarSchedule; readonly text: string }
  | { readonly ok: false; readonly message: string };

const ALLOWED = "hourly, daily, weekly:mon..sun, monthly:1..31, monthly:last, quarterly:1..31, yearly:M-D";

/** `weekly:` day names, indexed as `Date.getUTCDay()`; the canonical spelling of a schedule. */
export const WEEKDAYS: readonly string[] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const WEEKDAY_NAMES: readonly string[] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
/** Longest length of each month (February in a leap year): `yearly:2-29` is valid, `yearly:2-30` is not. */
const MAX_DAYS: readonly number[] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const MONTH_NAMES: readonly string[] = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

const fail = (message: string): ScheduleResult => ({ ok: false, message });

/** Parses a `reset_sch` value (case-insensitive, surrounding spaces ignored). */
export function parseResetSchedule(input: unknown): ScheduleResult {
  if (typeof input !== "string") return fail(`reset_sch must be a schedule such as "monthly:1", got ${typeof input === "number" ? String(input) : "a " + typeof input}; allowed: ${ALLOWED}`);
  const text = input.trim().toLowerCase();
  const [kind = "", arg, ...rest] = text.split(":");
  const bad = fail(`reset_sch "${input}" is not a schedule; allowed: ${ALLOWED}`);
  if (kind === "nth_weekday") {
    return fail(`reset_sch "${input}": nth_weekday schedules are not supported by limitr-sidecar; use weekly:DAY, monthly:N or monthly:last`);
  }
  if (kind === "hourly" || kind === "daily") {
    return arg === undefined ? { ok: true, schedule: { kind }, text } : bad;
  }
  if (rest.length > 0) return bad;
  switch (kind) {
    case "weekly": {
      if (arg === undefined) return fail(`reset_sch "${input}" needs a day: weekly:mon..sun`);
      let weekday = WEEKDAYS.indexOf(arg);
      if (weekday < 0) weekday = WEEKDAY_NAMES.indexOf(arg);
      if (weekday < 0) return fail(`reset_sch "${input}": "${arg}" is not a day of the week; use mon, tue, wed, thu, fri, sat or sun`);
      return { ok: true, schedule: { kind: "weekly", weekday }, text: `weekly:${WEEKDAYS[weekday] ?? arg}` };
    }
    case "monthly": {
      if (arg === undefined) return fail(`reset_sch "${input}" needs a day: monthly:1..31 or monthly:last`);
      if (arg === "last") return { ok: true, schedule: { kind: "monthly", day: "last" }, text };
      const day = dayNumber(arg);
      if (day === undefined) return fail(`reset_sch "${input}": the day must be 1..31 or last`);
      return { ok: true, schedule: { kind: "monthly", day }, text: `monthly:${day}` };
    }
    case "quarterly": {
      if (arg === undefined) return fail(`reset_sch "${input}" needs a day: quarterly:1..31`);
      const day = dayNumber(arg);
      if (day === undefined) return fail(`reset_sch "${input}": the day must be 1..31 (of January, April, July and October)`);
      return { ok: true, schedule: { kind: "quarterly", day }, text: `quarterly:${day}` };
    }
    case "yearly": {
      const m = arg === undefined ? null : /^(\d{1,2})-(\d{1,2})$/.exec(arg);
      if (!m) return fail(`reset_sch "${input}" needs a month and day: yearly:M-D, e.g. yearly:1-1`);
      const month = Number(m[1]);
      const day = Number(m[2]);
      if (month < 1 || month > 12) return fail(`reset_sch "${input}": the month must be 1..12`);
      const max = MAX_DAYS[month - 1] ?? 31;
      if (day < 1 || day > max) return fail(`reset_sch "${input}": ${MONTH_NAMES[month - 1] ?? "that month"} has days 1..${max}`);
      return { ok: true, schedule: { kind: "yearly", month, day }, text: `yearly:${month}-${day}` };
    }
    default:
      return bad;
  }
}

function dayNumber(text: string): number | undefined {
  if (!/^\d{1,2}$/.test(text)) return undefined;
  const day = Number(text);
  return day >= 1 && day <= 31 ? day : undefined;
}
