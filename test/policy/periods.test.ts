import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { calendarFloor, calendarNext, currentPeriodStart, initialPeriodStart, nextResetAfter } from "../../src/policy/periods.js";
import type { CalendarSchedule, ResetRule } from "../../src/policy/types.js";

const t = (iso: string): number => {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new Error(`bad test time ${iso}`);
  return ms;
};
const iso = (ms: number): string => new Date(ms).toISOString();
const cal = (schedule: CalendarSchedule): ResetRule => ({ kind: "calendar", schedule, text: "test" });
const rolling = (everyMs: number): ResetRule => ({ kind: "rolling", everyMs, text: "test" });

const DAY = 86_400_000;

describe("rolling periods", () => {
  const rule = rolling(30 * DAY);
  const start = t("2024-01-15T10:20:30.400Z");

  it("start at the meter's own creation time", () => {
    expect(initialPeriodStart(rule, start)).toBe(start);
  });

  it("end one length after the start", () => {
    expect(nextResetAfter(rule, start)).toBe(start + 30 * DAY);
  });

  it("keep the stored start while the period lasts", () => {
    expect(currentPeriodStart(rule, start, start)).toBe(start);
    expect(currentPeriodStart(rule, start, start + 30 * DAY - 1)).toBe(start);
  });

  it("start a new period exactly at the boundary", () => {
    expect(currentPeriodStart(rule, start, start + 30 * DAY)).toBe(start + 30 * DAY);
  });

  it("collapse several missed periods into one, anchored at the meter's start", () => {
    expect(currentPeriodStart(rule, start, start + 95 * DAY)).toBe(start + 90 * DAY);
    expect(currentPeriodStart(rolling(1000), 5, 5 + 1000 * 7 + 999)).toBe(5 + 7000);
  });

  it("never rewind when the clock is behind the stored start", () => {
    expect(currentPeriodStart(rule, start, start - DAY)).toBe(start);
  });
});

describe("no reset rule", () => {
  it("starts now and never moves", () => {
    expect(initialPeriodStart(undefined, 1234)).toBe(1234);
    expect(currentPeriodStart(undefined, 1234, 1e13)).toBe(1234);
  });
});

// [schedule, now, expected period start, expected next reset]
const calendarCases: readonly [string, CalendarSchedule, string, string, string][] = [
  ["hourly mid-hour", { kind: "hourly" }, "2024-03-10T07:59:59.999Z", "2024-03-10T07:00:00.000Z", "2024-03-10T08:00:00.000Z"],
  ["hourly on the boundary", { kind: "hourly" }, "2024-03-10T08:00:00.000Z", "2024-03-10T08:00:00.000Z", "2024-03-10T09:00:00.000Z"],
  ["hourly across midnight", { kind: "hourly" }, "2024-12-31T23:30:00.000Z", "2024-12-31T23:00:00.000Z", "2025-01-01T00:00:00.000Z"],
  ["daily", { kind: "daily" }, "2024-02-28T23:59:59.999Z", "2024-02-28T00:00:00.000Z", "2024-02-29T00:00:00.000Z"],
  ["daily on the boundary", { kind: "daily" }, "2024-02-29T00:00:00.000Z", "2024-02-29T00:00:00.000Z", "2024-03-01T00:00:00.000Z"],
  ["daily across the year", { kind: "daily" }, "2023-12-31T12:00:00.000Z", "2023-12-31T00:00:00.000Z", "2024-01-01T00:00:00.000Z"],
  // 2024-01-03 is a Wednesday.
  ["weekly:mon mid-week", { kind: "weekly", weekday: 1 }, "2024-01-03T12:00:00.000Z", "2024-01-01T00:00:00.000Z", "2024-01-08T00:00:00.000Z"],
  ["weekly:mon on monday", { kind: "weekly", weekday: 1 }, "2024-01-08T00:00:00.000Z", "2024-01-08T00:00:00.000Z", "2024-01-15T00:00:00.000Z"],
  ["weekly:sun across the year", { kind: "weekly", weekday: 0 }, "2024-01-03T12:00:00.000Z", "2023-12-31T00:00:00.000Z", "2024-01-07T00:00:00.000Z"],
  ["weekly:wed on wednesday", { kind: "weekly", weekday: 3 }, "2024-01-03T00:00:00.000Z", "2024-01-03T00:00:00.000Z", "2024-01-10T00:00:00.000Z"],
  ["weekly:thu before 1970", { kind: "weekly", weekday: 4 }, "1969-12-30T05:00:00.000Z", "1969-12-25T00:00:00.000Z", "1970-01-01T00:00:00.000Z"],
  ["monthly:1", { kind: "monthly", day: 1 }, "2024-05-17T09:00:00.000Z", "2024-05-01T00:00:00.000Z", "2024-06-01T00:00:00.000Z"],
  ["monthly:1 across the year", { kind: "monthly", day: 1 }, "2024-12-31T23:59:59.999Z", "2024-12-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z"],
  ["monthly:1 on the boundary", { kind: "monthly", day: 1 }, "2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z", "2025-02-01T00:00:00.000Z"],
  ["monthly:31 Jan 31 → Feb 29 (leap)", { kind: "monthly", day: 31 }, "2024-01-31T00:00:00.000Z", "2024-01-31T00:00:00.000Z", "2024-02-29T00:00:00.000Z"],
  ["monthly:31 Feb 29 → Mar 31", { kind: "monthly", day: 31 }, "2024-03-01T00:00:00.000Z", "2024-02-29T00:00:00.000Z", "2024-03-31T00:00:00.000Z"],
  ["monthly:31 Jan 31 → Feb 28 (common)", { kind: "monthly", day: 31 }, "2023-02-10T00:00:00.000Z", "2023-01-31T00:00:00.000Z", "2023-02-28T00:00:00.000Z"],
  ["monthly:31 Apr 30 → May 31", { kind: "monthly", day: 31 }, "2023-05-30T00:00:00.000Z", "2023-04-30T00:00:00.000Z", "2023-05-31T00:00:00.000Z"],
  ["monthly:15 before the 15th", { kind: "monthly", day: 15 }, "2024-01-14T23:59:59.999Z", "2023-12-15T00:00:00.000Z", "2024-01-15T00:00:00.000Z"],
  ["monthly:30 in February", { kind: "monthly", day: 30 }, "2100-02-28T00:00:00.000Z", "2100-02-28T00:00:00.000Z", "2100-03-30T00:00:00.000Z"],
  ["monthly:last in a leap February", { kind: "monthly", day: "last" }, "2024-02-29T10:00:00.000Z", "2024-02-29T00:00:00.000Z", "2024-03-31T00:00:00.000Z"],
  ["monthly:last before it", { kind: "monthly", day: "last" }, "2024-02-28T10:00:00.000Z", "2024-01-31T00:00:00.000Z", "2024-02-29T00:00:00.000Z"],
  ["monthly:last in 2000 (leap, /400)", { kind: "monthly", day: "last" }, "2000-03-01T00:00:00.000Z", "2000-02-29T00:00:00.000Z", "2000-03-31T00:00:00.000Z"],
  ["quarterly:1", { kind: "quarterly", day: 1 }, "2024-06-30T23:59:59.999Z", "2024-04-01T00:00:00.000Z", "2024-07-01T00:00:00.000Z"],
  ["quarterly:1 across the year", { kind: "quarterly", day: 1 }, "2024-11-15T00:00:00.000Z", "2024-10-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z"],
  ["quarterly:31 clamps Apr to 30", { kind: "quarterly", day: 31 }, "2024-05-01T00:00:00.000Z", "2024-04-30T00:00:00.000Z", "2024-07-31T00:00:00.000Z"],
  ["quarterly:15 before Jan 15", { kind: "quarterly", day: 15 }, "2024-01-10T00:00:00.000Z", "2023-10-15T00:00:00.000Z", "2024-01-15T00:00:00.000Z"],
  ["yearly:1-1", { kind: "yearly", month: 1, day: 1 }, "2024-07-01T00:00:00.000Z", "2024-01-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z"],
  ["yearly:1-1 on the boundary", { kind: "yearly", month: 1, day: 1 }, "2025-01-01T00:00:00.000Z", "2025-01-01T00:00:00.000Z", "2026-01-01T00:00:00.000Z"],
  ["yearly:4-15 before it", { kind: "yearly", month: 4, day: 15 }, "2024-04-14T00:00:00.000Z", "2023-04-15T00:00:00.000Z", "2024-04-15T00:00:00.000Z"],
  ["yearly:2-29 in a leap year", { kind: "yearly", month: 2, day: 29 }, "2024-03-01T00:00:00.000Z", "2024-02-29T00:00:00.000Z", "2025-02-28T00:00:00.000Z"],
  ["yearly:2-29 clamps in common years", { kind: "yearly", month: 2, day: 29 }, "2025-02-28T00:00:00.000Z", "2025-02-28T00:00:00.000Z", "2026-02-28T00:00:00.000Z"],
  ["yearly:12-31", { kind: "yearly", month: 12, day: 31 }, "2024-12-30T00:00:00.000Z", "2023-12-31T00:00:00.000Z", "2024-12-31T00:00:00.000Z"],
];

describe("calendar periods", () => {
  it.each(calendarCases)("%s", (_name, schedule, now, start, next) => {
    const rule = cal(schedule);
    expect(iso(initialPeriodStart(rule, t(now)))).toBe(start);
    expect(iso(nextResetAfter(rule, t(start)))).toBe(next);
  });

  it("keep the stored start until the next boundary, then jump to the latest boundary", () => {
    const rule = cal({ kind: "monthly", day: 1 });
    const start = t("2024-01-01T00:00:00Z");
    expect(currentPeriodStart(rule, start, t("2024-01-31T23:59:59.999Z"))).toBe(start);
    expect(iso(currentPeriodStart(rule, start, t("2024-02-01T00:00:00Z")))).toBe("2024-02-01T00:00:00.000Z");
    // Several missed months collapse into the current one.
    expect(iso(currentPeriodStart(rule, start, t("2024-06-15T00:00:00Z")))).toBe("2024-06-01T00:00:00.000Z");
  });

  it("end a period that began off-boundary (e.g. after the rule changed) at the next boundary", () => {
    const rule = cal({ kind: "daily" });
    const start = t("2024-01-01T13:45:00Z");
    expect(iso(nextResetAfter(rule, start))).toBe("2024-01-02T00:00:00.000Z");
    expect(currentPeriodStart(rule, start, t("2024-01-01T23:00:00Z"))).toBe(start);
  });

  it("walk month ends month by month from Jan 31 without drifting to the 28th", () => {
    const rule = cal({ kind: "monthly", day: 31 });
    let at = t("2023-01-31T00:00:00Z");
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) {
      at = nextResetAfter(rule, at);
      seen.push(iso(at).slice(0, 10));
    }
    expect(seen).toEqual(["2023-02-28", "2023-03-31", "2023-04-30", "2023-05-31"]);
  });
});

const scheduleArb: fc.Arbitrary<CalendarSchedule> = fc.oneof(
  fc.constant<CalendarSchedule>({ kind: "hourly" }),
  fc.constant<CalendarSchedule>({ kind: "daily" }),
  fc.integer({ min: 0, max: 6 }).map((weekday): CalendarSchedule => ({ kind: "weekly", weekday })),
  fc.oneof(fc.integer({ min: 1, max: 31 }), fc.constant("last" as const)).map((day): CalendarSchedule => ({ kind: "monthly", day })),
  fc.integer({ min: 1, max: 31 }).map((day): CalendarSchedule => ({ kind: "quarterly", day })),
  fc.record({ month: fc.integer({ min: 1, max: 12 }), day: fc.integer({ min: 1, max: 31 }) }).map(({ month, day }): CalendarSchedule => ({ kind: "yearly", month, day })),
);
const ruleArb: fc.Arbitrary<ResetRule> = fc.oneof(
  scheduleArb.map(cal),
  fc.integer({ min: 1, max: 400 * DAY }).map(rolling),
);
// 1900 .. 2200, so leap centuries are covered.
const timeArb = fc.integer({ min: t("1900-01-01T00:00:00Z"), max: t("2200-01-01T00:00:00Z") });

describe("period properties", () => {
  it("the current period contains now: start <= now < nextResetAfter(start)", () => {
    fc.assert(
      fc.property(ruleArb, timeArb, fc.integer({ min: 0, max: 3000 * DAY }), (rule, start0, ahead) => {
        const start = initialPeriodStart(rule, start0);
        const now = start0 + ahead;
        const current = currentPeriodStart(rule, start, now);
        expect(current).toBeLessThanOrEqual(now);
        expect(nextResetAfter(rule, current)).toBeGreaterThan(now);
        expect(current).toBeGreaterThanOrEqual(start);
      }),
    );
  });

  it("is idempotent: recomputing from the current start changes nothing", () => {
    fc.assert(
      fc.property(ruleArb, timeArb, fc.integer({ min: 0, max: 3000 * DAY }), (rule, start0, ahead) => {
        const start = initialPeriodStart(rule, start0);
        const current = currentPeriodStart(rule, start, start0 + ahead);
        expect(currentPeriodStart(rule, current, start0 + ahead)).toBe(current);
        expect(initialPeriodStart(rule, current)).toBe(current);
      }),
    );
  });

  it("calendar boundaries are fixed points of the floor, and the next one is strictly later", () => {
    fc.assert(
      fc.property(scheduleArb, timeArb, (schedule, now) => {
        const floor = calendarFloor(schedule, now);
        expect(floor).toBeLessThanOrEqual(now);
        expect(calendarFloor(schedule, floor)).toBe(floor);
        const next = calendarNext(schedule, now);
        expect(next).toBeGreaterThan(now);
        expect(calendarFloor(schedule, next)).toBe(next);
        // Nothing lies between two consecutive boundaries.
        expect(calendarNext(schedule, floor)).toBe(next);
        expect(calendarFloor(schedule, next - 1)).toBe(floor);
      }),
    );
  });

  it("calendarNext answers each schedule and time as if asked for the first time, in any order", () => {
    // It remembers its last month-based answer: interleaved and repeated questions must not
    // get another schedule's or another time's boundary.
    const fresh = (s: CalendarSchedule): CalendarSchedule => ({ ...s });
    fc.assert(
      fc.property(fc.array(fc.tuple(scheduleArb, timeArb), { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 30 }), (asked, order) => {
        const want = asked.map(([s, t]) => calendarNext(fresh(s), t));
        for (const i of order) {
          const k = i % asked.length;
          const [s, t] = asked[k] as [CalendarSchedule, number];
          expect(calendarNext(s, t)).toBe(want[k]);
        }
      }),
    );
    const monthly: CalendarSchedule = { kind: "monthly", day: 1 };
    const yearly: CalendarSchedule = { kind: "yearly", month: 7, day: 1 };
    const t = Date.UTC(2026, 2, 15);
    expect([calendarNext(monthly, t), calendarNext(yearly, t), calendarNext(monthly, t)]).toEqual([Date.UTC(2026, 3, 1), Date.UTC(2026, 6, 1), Date.UTC(2026, 3, 1)]);
    expect(calendarNext(monthly, Date.UTC(2026, 3, 1))).toBe(Date.UTC(2026, 4, 1));
  });

  it("calendar boundaries are UTC midnights (or hours) on the scheduled day", () => {
    fc.assert(
      fc.property(scheduleArb, timeArb, (schedule, now) => {
        const b = new Date(calendarFloor(schedule, now));
        expect(b.getUTCMinutes() + b.getUTCSeconds() + b.getUTCMilliseconds()).toBe(0);
        if (schedule.kind !== "hourly") expect(b.getUTCHours()).toBe(0);
        if (schedule.kind === "weekly") expect(b.getUTCDay()).toBe(schedule.weekday);
        if (schedule.kind === "monthly" || schedule.kind === "quarterly" || schedule.kind === "yearly") {
          const lastDay = new Date(Date.UTC(b.getUTCFullYear(), b.getUTCMonth() + 1, 0)).getUTCDate();
          const want = schedule.day === "last" ? lastDay : Math.min(schedule.day, lastDay);
          expect(b.getUTCDate()).toBe(want);
        }
        if (schedule.kind === "quarterly") expect(b.getUTCMonth() % 3).toBe(0);
        if (schedule.kind === "yearly") expect(b.getUTCMonth()).toBe(schedule.month - 1);
      }),
    );
  });
});
