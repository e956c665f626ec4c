import { describe, expect, it } from "vitest";
import { parseResetSchedule } from "../../src/policy/parse-reset-schedule.js";
import type { CalendarSchedule } from "../../src/policy/types.js";

describe("parseResetSchedule", () => {
  it.each<[string, CalendarSchedule, string]>([
    ["hourly", { kind: "hourly" }, "hourly"],
    ["daily", { kind: "daily" }, "daily"],
    [" DAILY ", { kind: "daily" }, "daily"],
    ["weekly:sun", { kind: "weekly", weekday: 0 }, "weekly:sun"],
    ["weekly:mon", { kind: "weekly", weekday: 1 }, "weekly:mon"],
    ["weekly:sat", { kind: "weekly", weekday: 6 }, "weekly:sat"],
    ["weekly:Tuesday", { kind: "weekly", weekday: 2 }, "weekly:tue"],
    ["monthly:1", { kind: "monthly", day: 1 }, "monthly:1"],
    ["monthly:01", { kind: "monthly", day: 1 }, "monthly:1"],
    ["monthly:31", { kind: "monthly", day: 31 }, "monthly:31"],
    ["monthly:last", { kind: "monthly", day: "last" }, "monthly:last"],
    ["quarterly:1", { kind: "quarterly", day: 1 }, "quarterly:1"],
    ["yearly:1-1", { kind: "yearly", month: 1, day: 1 }, "yearly:1-1"],
    ["yearly:02-29", { kind: "yearly", month: 2, day: 29 }, "yearly:2-29"],
    ["yearly:12-31", { kind: "yearly", month: 12, day: 31 }, "yearly:12-31"],
  ])("%j", (text, schedule, normalised) => {
    expect(parseResetSchedule(text)).toEqual({ ok: true, schedule, text: normalised });
  });

  it.each([
    ["weekly", 'reset_sch "weekly" needs a day: weekly:mon..sun'],
    ["monthly", 'reset_sch "monthly" needs a day: monthly:1..31 or monthly:last'],
    ["monthly:0", 'reset_sch "monthly:0": the day must be 1..31 or last'],
    ["monthly:1.5", 'reset_sch "monthly:1.5": the day must be 1..31 or last'],
    ["quarterly", 'reset_sch "quarterly" needs a day: quarterly:1..31'],
    ["yearly", 'reset_sch "yearly" needs a month and day: yearly:M-D, e.g. yearly:1-1'],
    ["yearly:4-31", 'reset_sch "yearly:4-31": April has days 1..30'],
    ["yearly:1-0", 'reset_sch "yearly:1-0": January has days 1..31'],
    ["daily:3", 'reset_sch "daily:3" is not a schedule; allowed: hourly, daily, weekly:mon..sun, monthly:1..31, monthly:last, quarterly:1..31, yearly:M-D'],
    ["monthly:1:2", 'reset_sch "monthly:1:2" is not a schedule; allowed: hourly, daily, weekly:mon..sun, monthly:1..31, monthly:last, quarterly:1..31, yearly:M-D'],
    ["nth_weekday:1:mon", 'reset_sch "nth_weekday:1:mon": nth_weekday schedules are not supported by limitr-sidecar; use weekly:DAY, monthly:N or monthly:last'],
  ])("rejects %j", (text, message) => {
    expect(parseResetSchedule(text)).toEqual({ ok: false, message });
  });

  it("rejects non-text", () => {
    expect(parseResetSchedule(5)).toEqual({ ok: false, message: 'reset_sch must be a schedule such as "monthly:1", got 5; allowed: hourly, daily, weekly:mon..sun, monthly:1..31, monthly:last, quarterly:1..31, yearly:M-D' });
  });
});
