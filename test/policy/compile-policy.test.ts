import { describe, expect, it } from "vitest";
import { compilePolicy, loadPolicy } from "../../src/policy/compile-policy.js";
import { summarizePolicy } from "../../src/policy/summarize-policy.js";
import type { CompileResult, CompiledPolicy, PolicyIssue } from "../../src/policy/types.js";

const CREDITS = {
  token: { unit: "token", price: { amount: 0.00002 } },
  storage: { stof_units: "MB", unit: "MB" },
  time: { stof_units: "s" },
};

/** A one-plan policy whose `pro.chat` entitlement has `limit`. */
const withLimit = (limit: unknown): unknown => ({
  policy: { credits: CREDITS, plans: { pro: { default: true, entitlements: { chat: { limit } } } } },
});
const LIMIT = "policy.plans.pro.entitlements.chat.limit";

function compiled(doc: unknown): { policy: CompiledPolicy; warnings: readonly PolicyIssue[] } {
  const r: CompileResult = compilePolicy(doc, { version: "test" });
  if (!r.ok) throw new Error(`expected the policy to compile:\n${r.issues.map((i) => `${i.path}: ${i.message}`).join("\n")}`);
  return r;
}
function issues(doc: unknown): readonly PolicyIssue[] {
  const r = compilePolicy(doc, { version: "test" });
  if (r.ok) throw new Error("expected the policy to be rejected");
  return r.issues;
}
const err = (path: string, message: string): PolicyIssue => ({ kind: "error", path, message });
const warn = (path: string, message: string): PolicyIssue => ({ kind: "warning", path, message });
const chatLimit = (doc: unknown) => compiled(doc).policy.plans.get("pro")?.entitlements.get("chat")?.limit;

describe("rejections: one fixture per rule, exact path and message", () => {
  it.each<[string, unknown, PolicyIssue]>([
    ["missing root policy", { plans: {} }, err("policy", 'the document must have a root key "policy" (found "plans" at the top level: indent them under policy:)')],
    ["empty document", null, err("policy", 'the document must have a root key "policy"')],
    ["policy not a mapping", { policy: "yes" }, err("policy", 'policy must be a mapping with credits and plans, got "yes"')],
    ["no plans", { policy: { credits: CREDITS } }, err("policy.plans", "policy must define at least one plan")],
    ["unknown credit", withLimit({ credit: "tokenz", value: 10 }), err(`${LIMIT}.credit`, 'credit "tokenz" does not exist')],
    ["missing credit", withLimit({ value: 10 }), err(`${LIMIT}.credit`, "credit is required")],
    ["unknown mode", withLimit({ credit: "token", value: 10, mode: "strict" }), err(`${LIMIT}.mode`, 'unknown mode "strict"; allowed: hard, soft, observe')],
    ["hard_trailing on soft", withLimit({ credit: "token", value: 10, mode: "soft", hard_trailing: true }), err(`${LIMIT}.hard_trailing`, "hard_trailing applies only to hard limits; this limit is soft")],
    ["hard_trailing on observe", withLimit({ credit: "token", value: 10, mode: "observe", hard_trailing: true }), err(`${LIMIT}.hard_trailing`, "hard_trailing applies only to hard limits; this limit is observe")],
    ["both reset_inc and reset_sch", withLimit({ credit: "token", value: 10, resets: true, reset_inc: "1day", reset_sch: "daily" }), err(LIMIT, "reset_inc and reset_sch are mutually exclusive; keep one of them")],
    ["monthly:32", withLimit({ credit: "token", value: 10, resets: true, reset_sch: "monthly:32" }), err(`${LIMIT}.reset_sch`, 'reset_sch "monthly:32": the day must be 1..31 or last')],
    ["weekly:funday", withLimit({ credit: "token", value: 10, resets: true, reset_sch: "weekly:funday" }), err(`${LIMIT}.reset_sch`, 'reset_sch "weekly:funday": "funday" is not a day of the week; use mon, tue, wed, thu, fri, sat or sun')],
    ["yearly:13-1", withLimit({ credit: "token", value: 10, resets: true, reset_sch: "yearly:13-1" }), err(`${LIMIT}.reset_sch`, 'reset_sch "yearly:13-1": the month must be 1..12')],
    ["yearly:2-30", withLimit({ credit: "token", value: 10, resets: true, reset_sch: "yearly:2-30" }), err(`${LIMIT}.reset_sch`, 'reset_sch "yearly:2-30": February has days 1..29')],
    ["nth_weekday", withLimit({ credit: "token", value: 10, resets: true, reset_sch: "nth_weekday:2:tue" }), err(`${LIMIT}.reset_sch`, 'reset_sch "nth_weekday:2:tue": nth_weekday schedules are not supported by limitr-sidecar; use weekly:DAY, monthly:N or monthly:last')],
    ["unknown schedule", withLimit({ credit: "token", value: 10, resets: true, reset_sch: "fortnightly" }), err(`${LIMIT}.reset_sch`, 'reset_sch "fortnightly" is not a schedule; allowed: hourly, daily, weekly:mon..sun, monthly:1..31, monthly:last, quarterly:1..31, yearly:M-D')],
    ["quarterly:0", withLimit({ credit: "token", value: 10, resets: true, reset_sch: "quarterly:0" }), err(`${LIMIT}.reset_sch`, 'reset_sch "quarterly:0": the day must be 1..31 (of January, April, July and October)')],
    ["malformed duration", withLimit({ credit: "token", value: 10, resets: true, reset_inc: "1fortnight" }), err(`${LIMIT}.reset_inc`, 'reset_inc unit "fortnight" is not a duration unit; use one of: ms, s, sec, min, h, hr, hour, hours, day, days')],
    ["zero duration", withLimit({ credit: "token", value: 10, resets: true, reset_inc: 0 }), err(`${LIMIT}.reset_inc`, "reset_inc must be greater than zero, got 0")],
    ["a period past a century, whose next reset no Timestamp holds", withLimit({ credit: "token", value: 10, resets: true, reset_inc: "104000000days" }), err(`${LIMIT}.reset_inc`, 'reset_inc must be at most 36500days (100 years), got "104000000days"')],
    ["a period a millisecond past a century", withLimit({ credit: "token", value: 10, resets: true, reset_inc: 36_500 * 86_400_000 + 1 }), err(`${LIMIT}.reset_inc`, "reset_inc must be at most 36500days (100 years), got 3153600000001")],
    ["negative price", { policy: { credits: { token: { price: { amount: -1 } } }, plans: { p: {} } } }, err("policy.credits.token.price.amount", "price.amount must not be negative, got -1")],
    ["a price finer than 18 decimals", { policy: { credits: { token: { price: { amount: "0.0000000000000000025" } } }, plans: { p: {} } } }, err("policy.credits.token.price.amount", 'price.amount "0.0000000000000000025" has more than 18 decimal places; amounts per unit are kept to 0.000000000000000001 USD')],
    ["an overhead_cost finer than 18 decimals", { policy: { credits: { token: { overhead_cost: 1.5e-19 } }, plans: { p: {} } } }, err("policy.credits.token.overhead_cost", "overhead_cost 1.5e-19 has more than 18 decimal places; amounts per unit are kept to 0.000000000000000001 USD")],
    ["price without amount", { policy: { credits: { token: { price: {} } }, plans: { p: {} } } }, err("policy.credits.token.price.amount", "price.amount is required (USD per unit)")],
    ["negative overhead_cost", { policy: { credits: { token: { overhead_cost: "-0.5" } }, plans: { p: {} } } }, err("policy.credits.token.overhead_cost", 'overhead_cost must not be negative, got "-0.5"')],
    ["unknown stof_units", { policy: { credits: { token: { stof_units: "tokens" } }, plans: { p: {} } } }, err("policy.credits.token.stof_units", 'unknown stof_units "tokens"; use "float" or one of: B, byte, bytes, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB, ms, s, sec, min, h, hr, hour, hours, day, days')],
    ["value neither number nor quantity", withLimit({ credit: "token", value: "lots" }), err(`${LIMIT}.value`, 'value "lots" is not a number or a quantity with units (e.g. 1000, "2GB", "100_000")')],
    ["value a list", withLimit({ credit: "token", value: [1] }), err(`${LIMIT}.value`, 'value a list is not a number or a quantity with units (e.g. 1000, "2GB", "100_000")')],
    ["missing value on a hard limit", withLimit({ credit: "token" }), err(`${LIMIT}.value`, "value is required")],
    ["negative value", withLimit({ credit: "token", value: -5 }), err(`${LIMIT}.value`, "value must not be negative, got -5")],
    ["a value that rounds to 0 in the credit's unit", { policy: { credits: { disk: { stof_units: "TB" } }, plans: { p: { entitlements: { e: { limit: { credit: "disk", value: "400B" } } } } } } }, err("policy.plans.p.entitlements.e.limit.value", 'value "400B" rounds to 0 TB at nine decimal places, the precision meters keep; keep credit "disk" in a smaller stof_units')],
    ["an increment that rounds to 0 in the credit's unit", { policy: { credits: { disk: { stof_units: "TB" } }, plans: { p: { entitlements: { e: { limit: { credit: "disk", value: "1TB", increment: "1B" } } } } } } }, err("policy.plans.p.entitlements.e.limit.increment", 'increment "1B" rounds to 0 TB at nine decimal places, the precision meters keep; keep credit "disk" in a smaller stof_units')],
    ["a plain value that rounds to 0", withLimit({ credit: "token", value: 1e-10 }), err(`${LIMIT}.value`, "value 1e-10 rounds to 0 at nine decimal places, the precision meters keep")],
    ["zero increment", withLimit({ credit: "token", value: 5, increment: 0 }), err(`${LIMIT}.increment`, "increment must be greater than zero, got 0")],
    ["negative increment", withLimit({ credit: "storage", value: 5, increment: "-1MB" }), err(`${LIMIT}.increment`, 'increment must be greater than zero, got "-1MB"')],
    ["size on a duration credit", withLimit({ credit: "time", value: "2GB" }), err(`${LIMIT}.value`, 'value "2GB": unit "GB" is a size but credit "time" is kept in s (a duration)')],
    ["size on a plain credit", withLimit({ credit: "token", value: "2GB" }), err(`${LIMIT}.value`, 'value "2GB": unit "GB" (size) cannot be used with credit "token", which counts plain numbers (no stof_units)')],
    ["spelled-out number", withLimit({ credit: "storage", value: "two GB" }), err(`${LIMIT}.value`, 'value "two GB" is not a number or a quantity with units (e.g. 1000, "2GB", "100_000")')],
    ["unknown unit word", withLimit({ credit: "storage", value: "2gigs" }), err(`${LIMIT}.value`, 'value "2gigs": unknown unit "gigs"; known units: B, byte, bytes, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB, ms, s, sec, min, h, hr, hour, hours, day, days')],
    ["thresholds not a list", withLimit({ credit: "token", value: 5, thresholds: 80 }), err(`${LIMIT}.thresholds`, "thresholds must be a list of percents such as [50, 80, 100], got 80")],
    ["negative threshold", withLimit({ credit: "token", value: 5, thresholds: [50, -5] }), err(`${LIMIT}.thresholds.1`, "threshold must be a percent greater than zero, got -5")],
    ["zero threshold", withLimit({ credit: "token", value: 5, thresholds: [0] }), err(`${LIMIT}.thresholds.0`, "threshold must be a percent greater than zero, got 0")],
    ["text threshold", withLimit({ credit: "token", value: 5, thresholds: ["80%"] }), err(`${LIMIT}.thresholds.0`, 'threshold must be a percent greater than zero, got "80%"')],
    ["empty scope", { policy: { plans: { p: { entitlements: { seats: { scope: "" } } } } } }, err("policy.plans.p.entitlements.seats.scope", 'scope must not be empty; remove it to meter on the caller, or name a customer type such as "org"')],
    ["blank scope", { policy: { plans: { p: { entitlements: { seats: { scope: "  " } } } } } }, err("policy.plans.p.entitlements.seats.scope", 'scope must not be empty; remove it to meter on the caller, or name a customer type such as "org"')],
    ["limit fields written on the entitlement, an unlimited flag otherwise", { policy: { credits: CREDITS, plans: { p: { entitlements: { images: { credit: "token", value: 10 } } } } } }, err("policy.plans.p.entitlements.images", '"credit", "value" are fields of limit: put them under limit: (limit: { credit: …, value: … }); without limit: the entitlement is an unlimited feature flag')],
    ["one limit field written on the entitlement", { policy: { plans: { p: { entitlements: { chat: { mode: "soft", description: "Chat" } } } } } }, err("policy.plans.p.entitlements.chat", '"mode" is a field of limit: put it under limit: (limit: { credit: …, value: … }); without limit: the entitlement is an unlimited feature flag')],
    ["limits: for limit:, an unlimited flag otherwise", { policy: { credits: CREDITS, plans: { p: { entitlements: { chat: { limits: { credit: "token", value: 100 } } } } } } }, err("policy.plans.p.entitlements.chat.limits", 'unknown field "limits" (did you mean "limit"?); without limit: the entitlement is an unlimited feature flag')],
    ["entitlement false", { policy: { plans: { p: { entitlements: { beta: false } } } } }, err("policy.plans.p.entitlements.beta", 'entitlement "beta" is false; remove it from the plan to withhold it')],
    ["limit null", withLimit(null), err(LIMIT, "limit must be a mapping with at least a credit and a value, got nothing; remove it to make a feature flag")],
    ["resets not a boolean", withLimit({ credit: "token", value: 5, resets: "yes" }), err(`${LIMIT}.resets`, 'resets must be true or false, got "yes"')],
    ["default not a boolean", { policy: { plans: { p: { default: 1 } } } }, err("policy.plans.p.default", "default must be true or false, got 1")],
    ["label not text", { policy: { plans: { p: { label: 7 } } } }, err("policy.plans.p.label", "label must be text, got 7")],
    ["credit not a mapping", { policy: { credits: { token: 5 }, plans: { p: {} } } }, err("policy.credits.token", 'credit "token" must be a mapping (label, unit, stof_units, price, overhead_cost), got 5')],
  ])("%s", (_name, doc, expected) => {
    expect(issues(doc).filter((i) => i.kind === "error")).toEqual([expected]);
  });

  it("writes names that would break the dotted path in brackets", () => {
    const doc = { policy: { plans: { "pro.v2": { entitlements: { "a b": { limit: { credit: "x", value: 1 } } } } } } };
    expect(issues(doc)).toEqual([err('policy.plans["pro.v2"].entitlements["a b"].limit.credit', 'credit "x" does not exist')]);
  });
});

describe("a policy with many errors lists them all, in document order", () => {
  it("reports every error at once", () => {
    const text = `
policy:
  credits:
    token:
      price: { amount: -1 }
      overhead_cost: -2
    storage:
      stof_units: MB
  plans:
    free:
      default: true
      entitlements:
        chat:
          limit: { credit: tokenz, mode: strict, value: lots, increment: 0 }
        storage:
          scope: ""
          limit: { credit: storage, value: 2s, mode: soft, hard_trailing: true, resets: true, reset_inc: 1day, reset_sch: monthly:32, thresholds: [0] }
    pro:
      default: true
`;
    const r = loadPolicy(text, { version: "t" });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const ent = "policy.plans.free.entitlements";
    expect(r.issues.map((i) => `${i.kind} ${i.path}: ${i.message}`)).toEqual([
      "error policy.credits.token.price.amount: price.amount must not be negative, got -1",
      "error policy.credits.token.overhead_cost: overhead_cost must not be negative, got -2",
      `error ${ent}.chat.limit.credit: credit "tokenz" does not exist`,
      `error ${ent}.chat.limit.mode: unknown mode "strict"; allowed: hard, soft, observe`,
      `error ${ent}.chat.limit.value: value "lots" is not a number or a quantity with units (e.g. 1000, "2GB", "100_000")`,
      `error ${ent}.chat.limit.increment: increment must be greater than zero, got 0`,
      `error ${ent}.storage.scope: scope must not be empty; remove it to meter on the caller, or name a customer type such as "org"`,
      `error ${ent}.storage.limit.value: value "2s": unit "s" is a duration but credit "storage" is kept in MB (a size)`,
      `error ${ent}.storage.limit.hard_trailing: hard_trailing applies only to hard limits; this limit is soft`,
      `error ${ent}.storage.limit.reset_sch: reset_sch "monthly:32": the day must be 1..31 or last`,
      `error ${ent}.storage.limit: reset_inc and reset_sch are mutually exclusive; keep one of them`,
      `error ${ent}.storage.limit.thresholds.0: threshold must be a percent greater than zero, got 0`,
      'warning policy.plans.pro.default: plans "free" and "pro" are both default: true; "free", the first, is the default plan',
    ]);
  });

  it("keeps warnings next to the errors so the author sees everything", () => {
    const r = issues(withLimit({ credit: "tokenz", value: 1, mdoe: "soft" }));
    expect(r).toEqual([
      warn(`${LIMIT}.mdoe`, 'unknown field "mdoe" is ignored (did you mean "mode"?)'),
      err(`${LIMIT}.credit`, 'credit "tokenz" does not exist'),
    ]);
  });

  it("does not report follow-on errors for limits on a credit that is itself invalid", () => {
    const doc = { policy: { credits: { disk: { stof_units: "megabytes" } }, plans: { p: { entitlements: { d: { limit: { credit: "disk", value: "1GB" } } } } } } };
    expect(issues(doc).map((i) => i.path)).toEqual(["policy.credits.disk.stof_units"]);
  });
});

describe("warnings: unknown and upstream-only fields never reject a policy", () => {
  it("warns about unknown fields, with a suggestion for typos", () => {
    const doc = {
      extra: 1,
      policy: {
        credits: { token: { unit: "token", colour: "red" } },
        plans: { pro: { lable: "Pro", entitlements: { chat: { limit: { credit: "token", value: 5, reset_sh: "daily" } } } } },
      },
    };
    expect(compiled(doc).warnings).toEqual([
      warn("extra", 'unknown field "extra" is ignored'),
      warn("policy.credits.token.colour", 'unknown field "colour" is ignored'),
      warn("policy.plans.pro.lable", 'unknown field "lable" is ignored (did you mean "label"?)'),
      warn("policy.plans.pro.entitlements.chat.limit.reset_sh", 'unknown field "reset_sh" is ignored (did you mean "reset_sch"?)'),
    ]);
  });

  it("says where a limit field beside a limit belongs, and leaves other near misses and upstream fields warnings", () => {
    const doc = {
      policy: {
        credits: CREDITS,
        plans: { pro: { entitlements: { chat: { limit: { credit: "token", value: 5 }, mode: "soft" }, seats: { scop: "org", hidden: true } } } },
      },
    };
    expect(compiled(doc).warnings).toEqual([
      warn("policy.plans.pro.entitlements.chat.mode", '"mode" is a field of limit, not of the entitlement; it is ignored here'),
      warn("policy.plans.pro.entitlements.seats.scop", 'unknown field "scop" is ignored (did you mean "scope"?)'),
      warn("policy.plans.pro.entitlements.seats.hidden", 'field "hidden" is not enforced by limitr-sidecar; it is ignored'),
    ]);
  });

  it("says when a quantity is rounded to the nine decimal places meters keep", () => {
    const { warnings } = compiled({
      policy: {
        credits: CREDITS,
        plans: { pro: { entitlements: { chat: { limit: { credit: "token", value: 0.1234567891, minimum: "-0.0000000001" } }, disk: { limit: { credit: "storage", value: "1.0000005B", increment: "1MiB" } } } } },
      },
    });
    expect(warnings).toEqual([
      warn("policy.plans.pro.entitlements.chat.limit.value", "value 0.1234567891 is rounded to 0.123456789: meters keep nine decimal places of the credit's unit"),
      warn("policy.plans.pro.entitlements.chat.limit.minimum", 'minimum "-0.0000000001" is rounded to 0: meters keep nine decimal places of the credit\'s unit'),
      warn("policy.plans.pro.entitlements.disk.limit.value", 'value "1.0000005B" is rounded to 0.000001 MB: meters keep nine decimal places of the credit\'s unit'),
    ]);
  });

  it("warns that thresholds on a limit of 0 never fire", () => {
    const message = "thresholds are percents of value, which is 0 here: they never fire";
    expect(compiled(withLimit({ credit: "token", value: 0, thresholds: [80] })).warnings).toEqual([warn(`${LIMIT}.thresholds`, message)]);
    expect(compiled(withLimit({ credit: "token", mode: "observe", thresholds: [50] })).warnings).toEqual([warn(`${LIMIT}.thresholds`, message)]);
    expect(compiled(withLimit({ credit: "token", value: 10, thresholds: [80] })).warnings).toEqual([]);
  });

  it("says upstream Limitr fields are not enforced", () => {
    const doc = {
      policy: {
        exchange: { usd: 1 },
        credits: { token: { description: "LLM tokens", resets: true, price: { amount: 1, id: "price_123" } } },
        plans: { pro: { hidden: true, trial_period: "14days", entitlements: { chat: { limit: { credit: "token", value: 5, hold_ttl: "5min", governor_rate: 3, ewma_alpha: 0.2 } } } } },
      },
    };
    const notEnforced = (path: string, field: string) => warn(path, `field "${field}" is not enforced by limitr-sidecar; it is ignored`);
    const l = "policy.plans.pro.entitlements.chat.limit";
    expect(compiled(doc).warnings).toEqual([
      notEnforced("policy.exchange", "exchange"),
      notEnforced("policy.credits.token.description", "description"),
      notEnforced("policy.credits.token.resets", "resets"),
      notEnforced("policy.credits.token.price.id", "id"),
      notEnforced("policy.plans.pro.hidden", "hidden"),
      notEnforced("policy.plans.pro.trial_period", "trial_period"),
      notEnforced(`${l}.hold_ttl`, "hold_ttl"),
      notEnforced(`${l}.governor_rate`, "governor_rate"),
      notEnforced(`${l}.ewma_alpha`, "ewma_alpha"),
    ]);
  });

  it("warns when one entitlement counts different credits in different plans (meters survive plan changes)", () => {
    const doc = {
      policy: {
        credits: CREDITS,
        plans: { a: { entitlements: { x: { limit: { credit: "token", value: 1 } } } }, b: { entitlements: { x: { limit: { credit: "storage", value: 1 } } } } },
      },
    };
    expect(compiled(doc).warnings).toEqual([
      warn("policy.plans.b.entitlements.x.limit.credit", 'entitlement "x" counts credit "storage" here but "token" in plan "a"; a customer who changes plan keeps the meter\'s value unconverted'),
    ]);
  });

  it("warns when a scoped entitlement resets differently in different plans (the meter is shared), not when unscoped", () => {
    const limit = (reset: Record<string, unknown>) => ({ limit: { credit: "token", value: 5, ...reset } });
    const doc = {
      policy: {
        credits: CREDITS,
        plans: {
          a: { entitlements: { seats: { scope: "org", ...limit({ resets: true, reset_sch: "monthly:1" }) }, x: limit({ resets: true, reset_sch: "daily" }) } },
          b: { entitlements: { seats: { scope: "org", ...limit({ resets: true, reset_sch: "daily" }) }, x: limit({ resets: true, reset_sch: "monthly:1" }) } },
          // Another scope type is another meter; the same rule spelt otherwise is the same rule.
          c: { entitlements: { seats: { scope: "team", ...limit({ resets: true, reset_inc: "1day" }) } } },
          d: { entitlements: { seats: { scope: "team", ...limit({ resets: true, reset_inc: "24hr" }) } } },
          e: { entitlements: { seats: { scope: "org", ...limit({}) } } },
        },
      },
    };
    const shared = (plan: string, here: string, there: string) =>
      warn(
        `policy.plans.${plan}.entitlements.seats.limit`,
        `entitlement "seats" is shared through scope "org" and resets ${here} here but ${there} in plan "a"; each call judges the shared meter by its caller's plan, so a count one plan wrote is kept under the other's only until either rule would reset it: give it one reset rule`,
      );
    expect(compiled(doc).warnings).toEqual([shared("b", '"daily"', '"monthly:1"'), shared("e", "never", '"monthly:1"')]);
  });

  it("warns that reset_inc / reset_sch without resets: true have no effect, and leaves the meter unreset", () => {
    const r = compiled(withLimit({ credit: "token", value: 5, reset_sch: "daily" }));
    expect(r.warnings).toEqual([warn(`${LIMIT}.reset_sch`, "reset_sch has no effect without resets: true; this meter never resets")]);
    expect(r.policy.plans.get("pro")?.entitlements.get("chat")?.limit?.reset).toBeUndefined();
    const r2 = compiled(withLimit({ credit: "token", value: 5, resets: false, reset_inc: "1hr" }));
    expect(r2.warnings).toEqual([warn(`${LIMIT}.reset_inc`, "reset_inc has no effect without resets: true; this meter never resets")]);
  });
});

describe("compiled values", () => {
  it("applies the defaults: mode hard, increment 1, no minimum, no reset, no thresholds", () => {
    const limit = chatLimit(withLimit({ credit: "token", value: 10 }));
    expect(limit).toMatchObject({ mode: "hard", value: 10_000_000_000n, increment: 1_000_000_000n, hardTrailing: false, thresholds: [] });
    expect(limit?.minimum).toBeUndefined();
    expect(limit?.reset).toBeUndefined();
  });

  it("converts quantities into the credit's stof_units", () => {
    expect(chatLimit(withLimit({ credit: "storage", value: "1GB" }))?.value).toBe(1000n * 1_000_000_000n);
    expect(chatLimit(withLimit({ credit: "storage", value: "10MiB", increment: "2000000bytes", minimum: "-1KB" }))).toMatchObject({
      value: 10_485_760_000n,
      increment: 2_000_000_000n,
      minimum: -1_000_000n,
    });
    expect(chatLimit(withLimit({ credit: "time", value: "5min" }))?.value).toBe(300n * 1_000_000_000n);
    expect(chatLimit(withLimit({ credit: "token", value: "100_000" }))?.value).toBe(100_000n * 1_000_000_000n);
    expect(chatLimit(withLimit({ credit: "token", value: 1e9 }))?.value).toBe(1_000_000_000n * 1_000_000_000n);
    // A value written in the credit's own display unit needs no conversion.
    expect(chatLimit(withLimit({ credit: "token", value: "500 token" }))?.value).toBe(500n * 1_000_000_000n);
  });

  it("compiles resets: default rolling 30 days, reset_inc durations and numbers, calendar schedules", () => {
    expect(chatLimit(withLimit({ credit: "token", value: 1, resets: true }))?.reset).toEqual({ kind: "rolling", everyMs: 2_592_000_000, text: "30days" });
    expect(chatLimit(withLimit({ credit: "token", value: 1, resets: true, reset_inc: "5min" }))?.reset).toEqual({ kind: "rolling", everyMs: 300_000, text: "5min" });
    expect(chatLimit(withLimit({ credit: "token", value: 1, resets: true, reset_inc: "36500days" }))?.reset).toEqual({ kind: "rolling", everyMs: 36_500 * 86_400_000, text: "36500days" });
    expect(chatLimit(withLimit({ credit: "token", value: 1, resets: true, reset_inc: 1000 }))?.reset).toEqual({ kind: "rolling", everyMs: 1000, text: "1000ms" });
    expect(chatLimit(withLimit({ credit: "token", value: 1, resets: true, reset_sch: "Weekly:Friday" }))?.reset).toEqual({ kind: "calendar", schedule: { kind: "weekly", weekday: 5 }, text: "weekly:fri" });
    expect(chatLimit(withLimit({ credit: "token", value: 1, resets: true, reset_sch: "monthly:last" }))?.reset).toEqual({ kind: "calendar", schedule: { kind: "monthly", day: "last" }, text: "monthly:last" });
    expect(chatLimit(withLimit({ credit: "token", value: 1, resets: true, reset_sch: "quarterly:15" }))?.reset).toEqual({ kind: "calendar", schedule: { kind: "quarterly", day: 15 }, text: "quarterly:15" });
    expect(chatLimit(withLimit({ credit: "token", value: 1, resets: true, reset_sch: "yearly:2-29" }))?.reset).toEqual({ kind: "calendar", schedule: { kind: "yearly", month: 2, day: 29 }, text: "yearly:2-29" });
    expect(chatLimit(withLimit({ credit: "token", value: 1, resets: true, reset_sch: "hourly" }))?.reset).toEqual({ kind: "calendar", schedule: { kind: "hourly" }, text: "hourly" });
  });

  it("returns thresholds sorted and de-duplicated", () => {
    expect(chatLimit(withLimit({ credit: "token", value: 1, thresholds: [100, 50, 80, 50, 120.5] }))?.thresholds).toEqual([50, 80, 100, 120.5]);
  });

  it("lets an observe limit leave out its value (0) and hard limits use hard_trailing", () => {
    expect(chatLimit(withLimit({ credit: "token", mode: "observe" }))).toMatchObject({ mode: "observe", value: 0n });
    expect(chatLimit(withLimit({ credit: "token", value: 3, hard_trailing: true }))).toMatchObject({ mode: "hard", hardTrailing: true });
  });

  it("treats {}, null and true entitlements as feature flags, and collects entitlement names", () => {
    const { policy } = compiled({ policy: { plans: { a: { default: true, entitlements: { x: {}, y: null, z: true } }, b: { entitlements: { w: { description: "W", scope: "org" } } } } } });
    const a = policy.plans.get("a");
    expect([...(a?.entitlements.values() ?? [])].map((e) => [e.name, e.limit, e.scope, e.description])).toEqual([
      ["x", undefined, undefined, ""],
      ["y", undefined, undefined, ""],
      ["z", undefined, undefined, ""],
    ]);
    expect(policy.plans.get("b")?.entitlements.get("w")).toEqual({ name: "w", description: "W", scope: "org", limit: undefined });
    expect([...policy.entitlementNames].sort()).toEqual(["w", "x", "y", "z"]);
    expect(policy.defaultPlan).toBe("a");
    expect(a?.isDefault).toBe(true);
    expect(policy.plans.get("b")?.isDefault).toBe(false);
  });

  it("warns when a hard or soft limit's minimum is above its value, not when it is below", () => {
    expect(compiled(withLimit({ credit: "token", value: 10, minimum: 20 })).warnings).toEqual([
      warn(`${LIMIT}.minimum`, "minimum 20 is above value 10: a decrease never takes a meter below its minimum, so within the limit no usage is ever given back"),
    ]);
    expect(compiled(withLimit({ credit: "storage", mode: "soft", value: "1GB", minimum: "2GB" })).warnings).toHaveLength(1);
    expect(compiled(withLimit({ credit: "storage", value: "1GB", minimum: "999MB" })).warnings).toEqual([]);
    expect(compiled(withLimit({ credit: "token", mode: "observe", value: 0, minimum: 5 })).warnings).toEqual([]);
  });

  it("takes the first of several default plans, and warns naming the others", () => {
    const { policy, warnings } = compiled({ policy: { plans: { free: { default: true }, pro: {}, team: { default: true }, max: { default: true } } } });
    expect(policy.defaultPlan).toBe("free");
    expect(warnings).toEqual([
      warn("policy.plans.team.default", 'plans "free" and "team" are both default: true; "free", the first, is the default plan'),
      warn("policy.plans.max.default", 'plans "free" and "max" are both default: true; "free", the first, is the default plan'),
    ]);
  });

  it("takes the first default in the document even when a later plan's name looks like an integer", () => {
    const yaml = 'policy:\n  plans:\n    pro: { default: true }\n    "2": { default: true }\n    10: { default: true }\n    free: {}\n';
    const json = '{"policy": {"plans": {"pro": {"default": true}, "2": {"default": true}, "10": {"default": true}, "free": {}}}}';
    for (const text of [yaml, json]) {
      const r = loadPolicy(text, { version: "v" });
      expect(r.ok && r.policy.defaultPlan).toBe("pro");
      expect(r.ok && [...r.policy.plans.keys()]).toEqual(["pro", "2", "10", "free"]);
      expect(r.ok && r.warnings.map((w) => w.path)).toEqual(["policy.plans.2.default", "policy.plans.10.default"]);
    }
  });

  it("keeps document order for plans merged in, where the merge puts them", () => {
    const text = "shared: &shared\n  \"2\": { default: true }\n  team: {}\npolicy:\n  plans:\n    pro: { default: true }\n    <<: *shared\n    free: {}\n    team: { label: Team }\n";
    const r = loadPolicy(text, { version: "v" });
    expect(r.ok && r.policy.defaultPlan).toBe("pro");
    expect(r.ok && [...r.policy.plans.keys()]).toEqual(["pro", "2", "team", "free"]);
    expect(r.ok && r.policy.plans.get("team")?.label).toBe("Team");
  });

  it("compiles credits with Limitr's defaults", () => {
    const { policy } = compiled({ policy: { credits: { token: null, disk: { stof_units: "GB", price: { amount: "0.25" } }, plain: { stof_units: "float", label: "Plain", unit: "pt", overhead_cost: 0.5 } }, plans: { p: {} } } });
    expect(policy.credits.get("token")).toEqual({ name: "token", label: "token", unit: "credit", stofUnits: undefined, unitKind: "count", price: undefined, overheadCost: 0n });
    expect(policy.credits.get("disk")).toEqual({ name: "disk", label: "disk", unit: "GB", stofUnits: "GB", unitKind: "size", price: 250_000_000_000_000_000n, overheadCost: 0n });
    expect(policy.credits.get("plain")).toEqual({ name: "plain", label: "Plain", unit: "pt", stofUnits: undefined, unitKind: "count", price: undefined, overheadCost: 500_000_000_000_000_000n });
    expect(policy.defaultPlan).toBeUndefined();
    expect(policy.version).toBe("test");
  });

  it("keeps prices and costs per unit to 18 decimals, so per-token prices are not rounded", () => {
    const r = loadPolicy("policy: { credits: { cached: { price: { amount: 0.0000000025 }, overhead_cost: '0.0000000014' } }, plans: { p: {} } }", { version: "v" });
    expect(r.ok && r.policy.credits.get("cached")).toMatchObject({ price: 2_500_000_000n, overheadCost: 1_400_000_000n });
    expect(r.ok && summarizePolicy(r.policy)).toMatch(/cached +credit +number +0\.0000000025 +0\.0000000014/);
  });
});
