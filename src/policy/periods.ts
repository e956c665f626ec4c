/**
 * Meter periods: when a period starts and ends under a reset rule. All times are epoch ms, UTC.
 *
 * Pure arithmetic on epoch milliseconds. No local time anywhere (only `Date.UTC`-style helpers
 * and `getUTC*`), so the answers do not depend on the host's time zone or DST. A time exactly at
 * a boundary belongs to the new period.
 */
import type { CalendarSchedule, ResetRule } from "./types.js";

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;
/** 1970-01-01 was a Thursday (`getUTCDay()` = 4). */
const EPOCH_WEEKDAY = 4;

/** Start of a brand-new meter's period: `now` for rolling rules and no rule; the latest calendar boundary at or before `now` for calendar rules. */
export function initialPeriodStart(rule: ResetRule | undefined, now: number): number {
  if (rule?.kind === "calendar") return calendarFloor(rule.schedule, now);
  return now;
}

/** The end (exclusive) of the period that started at `periodStart`: start + length for rolling rules, the first calendar boundary after `periodStart` for calendar rules. */
export function nextResetAfter(rule: ResetRule, periodStart: number): number {
  if (rule.kind === "rolling") return periodStart + rule.everyMs;
  return calendarNext(rule.schedule, periodStart);
}

/**
 * The start of the period containing `now` for a meter whose stored period began at
 * `periodStart`: `periodStart` itself while that period lasts (or with no rule); else, for
 * rolling rules, `periodStart + k × length` (missed periods collapse), and for calendar rules
 * the latest boundary at or before `now`.
 */
export function currentPeriodStart(rule: ResetRule | undefined, periodStart: number, now: number): number {
  if (rule === undefined) return periodStart;
  // A clock that went backwards (or a meter stamped in the future) never rewinds a period.
  if (now < nextResetAfter(rule, periodStart)) return periodStart;
  if (rule.kind === "rolling") {
    const k = Math.floor((now - periodStart) / rule.everyMs);
    return periodStart + k * rule.everyMs;
  }
  return calendarFloor(rule.schedule, now);
}

/** The latest boundary of `schedule` at or before `t`. */
export function calendarFloor(schedule: CalendarSchedule, t: number): number {
  switch (schedule.kind) {
    case "hourly":
      return t - mod(t, HOUR_MS);
    case "daily":
      return t - mod(t, DAY_MS);
    case "weekly": {
      const day = Math.floor(t / DAY_MS);
      const back = mod(mod(day + EPOCH_WEEKDAY, 7) - schedule.weekday, 7);
      return (day - back) * DAY_MS;
    }
    default: {
      const cycle = monthCycle(schedule);
      const d = new Date(t);
      const monthIndex = d.getUTCFullYear() * 12 + d.getUTCMonth();
      let k = Math.floor((monthIndex - cycle.offset) / cycle.step);
      // The boundary in t's own month may still lie ahead of t (t is before day N).
      if (cycleBoundary(cycle, k) > t) k -= 1;
      return cycleBoundary(cycle, k);
    }
  }
}

/** The first boundary of `schedule` strictly after `t`. */
export function calendarNext(schedule: CalendarSchedule, t: number): number {
  switch (schedule.kind) {
    case "hourly":
      return calendarFloor(schedule, t) + HOUR_MS;
    case "daily":
      return calendarFloor(schedule, t) + DAY_MS;
    case "weekly":
      return calendarFloor(schedule, t) + 7 * DAY_MS;
    default: {
      const last = lastMonthly.get(schedule);
      if (last !== undefined && last.t === t) return last.next;
      // Month lengths vary, so step through month indexes rather than adding milliseconds.
      const cycle = monthCycle(schedule);
      const d = new Date(t);
      const monthIndex = d.getUTCFullYear() * 12 + d.getUTCMonth();
      let k = Math.floor((monthIndex - cycle.offset) / cycle.step);
      if (cycleBoundary(cycle, k) > t) k -= 1;
      const next = cycleBoundary(cycle, k + 1);
      lastMonthly.set(schedule, { t, next });
      return next;
    }
  }
}

/**
 * The last month-based answer of `calendarNext`, per schedule. Every decision asks for the end of
 * each meter's period, and the meters of one limit share their period start, so the same
 * question comes on call after call; the Date arithmetic runs once per new one. Per schedule,
 * not one entry for all: each limit compiles its own schedule, so a call touching three monthly
 * limits asked three questions in turn and a single entry missed every one (~0.5 µs per 3-item
 * Allow). Schedules are immutable compiled policy, so the answer for the same schedule
 * object and time never changes; a replaced policy's schedules go with it.
 */
const lastMonthly = new WeakMap<CalendarSchedule, { readonly t: number; readonly next: number }>();

/**
 * Month-based schedules as one shape: boundary k falls in month index `k × step + offset`
 * (month index = year × 12 + month0) on `day`, clamped to that month's length.
 */
interface MonthCycle {
  readonly step: number;
  readonly offset: number;
  readonly day: number | "last";
}

function monthCycle(schedule: Extract<CalendarSchedule, { kind: "monthly" | "quarterly" | "yearly" }>): MonthCycle {
  switch (schedule.kind) {
    case "monthly":
      return { step: 1, offset: 0, day: schedule.day };
    case "quarterly":
      return { step: 3, offset: 0, day: schedule.day };
    case "yearly":
      return { step: 12, offset: schedule.month - 1, day: schedule.day };
  }
}

function cycleBoundary(cycle: MonthCycle, k: number): number {
  const monthIndex = k * cycle.step + cycle.offset;
  const year = Math.floor(monthIndex / 12);
  const month0 = monthIndex - year * 12;
  const last = daysInMonth(year, month0);
  const day = cycle.day === "last" ? last : Math.min(cycle.day, last);
  return utcMidnight(year, month0, day);
}

/** Days in a month of the proleptic Gregorian calendar (`month0` 0..11). */
export function daysInMonth(year: number, month0: number): number {
  if (month0 === 1) return isLeapYear(year) ? 29 : 28;
  return month0 === 3 || month0 === 5 || month0 === 8 || month0 === 10 ? 30 : 31;
}

function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** `Date.UTC` without its quirk of mapping years 0..99 to 1900..1999. */
function utcMidnight(year: number, month0: number, day: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month0, day);
  return d.getTime();
}

/** Modulo with the sign of the divisor, so times before 1970 floor correctly. */
function mod(a: number, b: number): number {
  return ((a % b) + b) % b;
}

/**
 * Whether two rules end periods at the same moments. Compared by meaning, not by `text`: a
 * rolling rule's text is the author's spelling, and rewriting `1day` as `24hr` must not re-anchor
 * every running meter at the moment of the swap.
 */
export function sameResetRule(a: ResetRule | undefined, b: ResetRule | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.kind === "rolling") return b.kind === "rolling" && a.everyMs === b.everyMs;
  if (b.kind !== "calendar") return false;
  const x = a.schedule;
  const y = b.schedule;
  switch (x.kind) {
    case "hourly":
    case "daily":
      return y.kind === x.kind;
    case "weekly":
      return y.kind === "weekly" && y.weekday === x.weekday;
    case "monthly":
      return y.kind === "monthly" && y.day === x.day;
    case "quarterly":
      return y.kind === "quarterly" && y.day === x.day;
    case "yearly":
      return y.kind === "yearly" && y.month === x.month && y.day === x.day;
  }
}
