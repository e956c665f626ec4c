/**
 * Meters survive every kind of policy change in a running sidecar: raising and lowering a limit,
 * hard ↔ soft, a shorter reset period, a renamed plan (customers fall back to the default plan,
 * visibly), and an entitlement that leaves and comes back. Each change is a kubelet `..data` swap
 * and is waited for in GetPolicyStatus before its effect is checked.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allowOne, unary, type Obj } from "./helpers/clients.js";
import { policyYaml, startReloadSidecar, timestampMs, type EntitlementSpec, type ReloadSidecar } from "./helpers/reload-fixture.js";

interface Shape {
  /** The paid plan's name (renamed in one step). */
  readonly paid?: string;
  readonly tokens?: EntitlementSpec;
  /** Whether the paid plan has the `extra` entitlement. */
  readonly extra?: boolean;
}

const TOKENS: EntitlementSpec = { value: 100, mode: "hard", resetSch: "monthly:1" };

/** free (default): tokens soft 1000; the paid plan: tokens (as given), images hard 10, extra hard 50. */
function policy({ paid = "pro", tokens = TOKENS, extra = true }: Shape = {}): string {
  return policyYaml({
    free: { default: true, entitlements: { tokens: { value: 1000, mode: "soft", resetSch: "monthly:1" } } },
    [paid]: { entitlements: { tokens, images: { value: 10 }, ...(extra ? { extra: { value: 50 } } : {}) } },
  });
}

const DAY_MS = 86_400_000;

let s: ReloadSidecar;
beforeAll(async () => {
  s = await startReloadSidecar(policy());
  await unary(s.clients.admin, "UpsertCustomer", { customer_id: "u1", plan: "pro" });
  expect(await allowOne(s.clients, "u1", "tokens", 40)).toMatchObject({ allowed: true });
  expect(await allowOne(s.clients, "u1", "images", 4)).toMatchObject({ allowed: true });
  expect(await allowOne(s.clients, "u1", "extra", 7)).toMatchObject({ allowed: true });
});
afterAll(async () => {
  await s.close();
});

async function apply(text: string): Promise<string> {
  const version = await s.write(text);
  await s.waitForVersion(version, 2_000);
  return version;
}

async function meters(...entitlements: string[]): Promise<Record<string, Obj>> {
  const res = await unary(s.clients.decision, "GetMeters", { customer_id: "u1", entitlements });
  return Object.fromEntries((res.meters as Obj[]).map((m) => [m.entitlement as string, m]));
}

// The steps build on each other (one sidecar, one customer), in order.
describe("meters across policy changes", () => {
  it("raising a limit keeps the value", async () => {
    await apply(policy({ tokens: { ...TOKENS, value: 200 } }));
    expect((await meters("tokens")).tokens).toMatchObject({ value: 40, limit: 200, remaining: 160, mode: "LIMIT_MODE_HARD" });
  });

  it("lowering it below the value keeps the value and denies", async () => {
    const v = await apply(policy({ tokens: { ...TOKENS, value: 30 } }));
    expect((await meters("tokens")).tokens).toMatchObject({ value: 40, limit: 30, remaining: -10 });
    expect(await allowOne(s.clients, "u1", "tokens", 1)).toMatchObject({ allowed: false, reason: "REASON_HARD_LIMIT", policy_version: v });
  });

  it("hard → soft allows past the limit as overage, on the same meter; soft → hard denies again", async () => {
    await apply(policy({ tokens: { ...TOKENS, value: 30, mode: "soft" } }));
    const soft = await allowOne(s.clients, "u1", "tokens", 5);
    expect(soft).toMatchObject({ allowed: true, reason: "REASON_SOFT_LIMIT_EXCEEDED" });
    expect((soft.items as Obj[])[0]).toMatchObject({ value: 45, limit: 30, overage: 15, mode: "LIMIT_MODE_SOFT" });

    await apply(policy({ tokens: { ...TOKENS, value: 30, mode: "hard" } }));
    expect((await meters("tokens")).tokens).toMatchObject({ value: 45, mode: "LIMIT_MODE_HARD" });
    expect(await allowOne(s.clients, "u1", "tokens", 1)).toMatchObject({ allowed: false, reason: "REASON_HARD_LIMIT" });
  });

  it("monthly:1 → daily keeps a meter used today, in today's period", async () => {
    const before = (await meters("tokens")).tokens as Obj;
    const now = Date.now();
    const monthStart = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1);
    expect(timestampMs(before.period_start)).toBe(monthStart);

    await apply(policy({ tokens: { ...TOKENS, value: 30, resetSch: "daily" } }));
    const dayStart = Math.floor(Date.now() / DAY_MS) * DAY_MS;
    const after = (await meters("tokens")).tokens as Obj;
    expect(after).toMatchObject({ value: 45, limit: 30 });
    // The period is now the current day (the 1st of the month is a day too: then it is the same).
    expect(timestampMs(after.period_start)).toBe(dayStart);
    expect(timestampMs(after.next_reset)).toBe(dayStart + DAY_MS);
    // Counting goes on from 45 (a raise makes room), and the next read still has it.
    await apply(policy({ tokens: { ...TOKENS, value: 100, resetSch: "daily" } }));
    const next = await allowOne(s.clients, "u1", "tokens", 5);
    expect((next.items as Obj[])[0]).toMatchObject({ value: 50, limit: 100 });
    expect((await meters("tokens")).tokens).toMatchObject({ value: 50 });
  });

  it("removing an entitlement keeps its meter stored; it comes back with its value", async () => {
    const tokens: EntitlementSpec = { ...TOKENS, resetSch: "daily" };
    await apply(policy({ tokens, extra: false }));
    expect((await meters("extra")).extra).toMatchObject({ kind: "METER_KIND_FEATURE", granted: false });
    const denied = await allowOne(s.clients, "u1", "extra", 1);
    expect(denied.allowed).toBe(false);
    expect(["REASON_NOT_ENTITLED", "REASON_UNKNOWN_ENTITLEMENT"]).toContain(denied.reason);

    await apply(policy({ tokens, extra: true }));
    expect((await meters("extra")).extra).toMatchObject({ kind: "METER_KIND_METERED", value: 7, limit: 50 });
  });

  it("renaming the customer's plan falls back to the default plan (GetCustomer, policy-applied removed_plans) and keeps meters", async () => {
    const tokens: EntitlementSpec = { ...TOKENS, resetSch: "daily" };
    const renamed = await apply(policy({ paid: "pro_2026", tokens }));
    const got = (await unary(s.clients.admin, "GetCustomer", { customer_id: "u1" })).customer as Obj;
    expect(got).toMatchObject({ plan: "pro", effective_plan: "free", plan_source: "PLAN_SOURCE_DEFAULT", missing_plan: "pro" });
    const applied = (await s.events(["EVENT_TYPE_POLICY_APPLIED"])).map((e) => e.policy_applied as Obj);
    expect(applied.at(-1)).toMatchObject({ policy_version: renamed, removed_plans: ["pro"] });

    // On free now: the same tokens meter, under free's soft limit of 1000.
    const onFree = await allowOne(s.clients, "u1", "tokens", 1);
    expect(onFree).toMatchObject({ allowed: true, plan: "free", policy_version: renamed });
    expect((onFree.items as Obj[])[0]).toMatchObject({ value: 51, limit: 1000, mode: "LIMIT_MODE_SOFT" });
    // images is not on free: not enforced, but still stored.
    expect((await meters("images")).images).toMatchObject({ granted: false });

    await apply(policy({ tokens }));
    const home = (await unary(s.clients.admin, "GetCustomer", { customer_id: "u1" })).customer as Obj;
    expect(home).toMatchObject({ effective_plan: "pro", plan_source: "PLAN_SOURCE_OWN", missing_plan: "" });
    const all = await meters("tokens", "images", "extra");
    expect(all.tokens).toMatchObject({ value: 51 });
    expect(all.images).toMatchObject({ value: 4, limit: 10 });
    expect(all.extra).toMatchObject({ value: 7 });
  });
});
