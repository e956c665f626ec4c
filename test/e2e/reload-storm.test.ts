/**
 * A reload storm: 50 kubelet `..data` swaps in about 5 s, some of them invalid, while 4 clients
 * (each its own channel) call Allow(1) back to back on two shared meters. Every call must succeed;
 * every answer must be made under exactly one valid policy (its version is one that was written
 * valid, and its limit and mode are that version's); each client sees versions only move forward;
 * no count is lost or doubled (the allowed calls of a meter produced exactly the values 1..n and
 * the final meter is n, with one meter-changed or meter-overage event per allowed call); in the event log each
 * version's policy-applied precedes the meter events decided under it; and the sidecar ends on
 * the last document written.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allowOne, connectClients, unary, type Obj, type SidecarClients } from "./helpers/clients.js";
import { policyYaml, sleep, startReloadSidecar, versionOf, waitFor, type ReloadSidecar } from "./helpers/reload-fixture.js";

const SWAPS = 50;
const SPACING_MS = 100;

interface Spec {
  readonly index: number;
  readonly limit: number;
  readonly mode: "hard" | "soft";
}

/** Swap i is invalid when i % 5 === 3 (and 48, 49: two bad edits right before the last, valid one). */
const isInvalid = (i: number): boolean => i % 5 === 3 || i === 48 || i === 49;

function validDoc(spec: Spec): string {
  return policyYaml(
    { free: { default: true, entitlements: { tokens: { value: 5 } } }, pro: { entitlements: { tokens: { value: spec.limit, mode: spec.mode } } } },
    `swap ${spec.index}`,
  );
}

/** Would allow everything (limit 1e9) if it were ever applied; it names a credit that does not exist. */
function invalidDoc(i: number): string {
  return policyYaml(
    { free: { default: true, entitlements: { tokens: { value: 5, credit: "tokenz" } } }, pro: { entitlements: { tokens: { value: 1_000_000_000 } } } },
    `swap ${i} (bad)`,
  );
}

interface Answer {
  readonly client: number;
  readonly customer: string;
  readonly res: Obj;
}

let s: ReloadSidecar;
const specs = new Map<string, Spec>();
/** Version → position in write order (the initial document is 0). */
const order = new Map<string, number>();
const invalidVersions = new Set<string>();
let lastValid = "";

beforeAll(async () => {
  const initial: Spec = { index: 0, limit: 100_000, mode: "hard" };
  const text = validDoc(initial);
  specs.set(versionOf(text), initial);
  order.set(versionOf(text), 0);
  s = await startReloadSidecar(text);
  for (const id of ["alpha", "beta"]) await unary(s.clients.admin, "UpsertCustomer", { customer_id: id, plan: "pro" });
});
afterAll(async () => {
  await s.close();
});

describe("reload storm", () => {
  it("50 swaps in 5 s (some invalid) under 4 busy clients: no failed call, no mixed or invalid policy, no lost count, ends on the last valid one", async () => {
    const answers: Answer[] = [];
    const failures: unknown[] = [];
    let stop = false;
    const channels: SidecarClients[] = [0, 1, 2, 3].map(() => connectClients(s.sidecar.grpcAddress));
    const customers = ["alpha", "alpha", "beta", "beta"];
    const loops = channels.map(async (c, client) => {
      const customer = customers[client] ?? "alpha";
      while (!stop) {
        try {
          answers.push({ client, customer, res: await allowOne(c, customer, "tokens", 1) });
        } catch (e) {
          failures.push(e);
        }
      }
    });

    // The storm: a swap every 100 ms, on a fixed schedule (a slow write does not stretch it).
    const t0 = Date.now();
    for (let i = 1; i <= SWAPS; i++) {
      await sleep(t0 + i * SPACING_MS - Date.now());
      let text: string;
      if (isInvalid(i)) {
        text = invalidDoc(i);
        invalidVersions.add(versionOf(text));
      } else {
        // Limits jump around (some below what is already used) and some versions are soft.
        const spec: Spec = { index: i, limit: ((i * 137) % 900) + 20, mode: i % 7 === 0 ? "soft" : "hard" };
        text = validDoc(spec);
        specs.set(versionOf(text), spec);
        lastValid = versionOf(text);
      }
      order.set(versionOf(text), i);
      expect(await s.writer.write({ "policy.yaml": text, "README.txt": "owned by the platform team\n" })).toBe(true);
    }
    expect(isInvalid(SWAPS)).toBe(false);

    // It ends on the last document, which is valid, within the 2 s the issue allows.
    const final = await s.waitForVersion(lastValid, 2_000);
    expect(final).toMatchObject({ last_errors: [], rejections_since_applied: 0 });
    // Let every client make calls under the final policy before stopping.
    await waitFor(
      "every client to decide under the final policy",
      () => ([0, 1, 2, 3].every((c) => answers.some((a) => a.client === c && a.res.policy_version === lastValid)) ? true : undefined),
      10_000,
    );
    stop = true;
    await Promise.all(loops);
    for (const c of channels) c.close();

    expect(failures).toEqual([]);
    expect(answers.length).toBeGreaterThan(100);

    // Each answer is made under one valid version, with that version's limit and mode.
    const inconsistent: unknown[] = [];
    for (const { res } of answers) {
      const spec = specs.get(res.policy_version as string);
      const item = (res.items as Obj[])[0];
      if (spec === undefined || item === undefined) {
        inconsistent.push({ why: "unknown version or no item", res });
        continue;
      }
      const value = item.value as number;
      const ok =
        item.limit === spec.limit &&
        item.mode === (spec.mode === "hard" ? "LIMIT_MODE_HARD" : "LIMIT_MODE_SOFT") &&
        (spec.mode === "hard"
          ? res.allowed
            ? res.reason === "REASON_OK" && value <= spec.limit
            : res.reason === "REASON_HARD_LIMIT" && value + 1 > spec.limit
          : res.allowed === true &&
            res.reason === (value > spec.limit ? "REASON_SOFT_LIMIT_EXCEEDED" : "REASON_OK") &&
            item.overage === Math.max(0, value - spec.limit));
      if (!ok) inconsistent.push({ spec, res });
    }
    expect(inconsistent).toEqual([]);

    // A client's calls are sequential, so the versions it sees only move forward in write order.
    for (const client of [0, 1, 2, 3]) {
      const seen = answers.filter((a) => a.client === client).map((a) => order.get(a.res.policy_version as string) ?? -1);
      expect(seen.every((v, k) => k === 0 || v >= (seen[k - 1] ?? 0))).toBe(true);
    }
    // The swaps really landed between decisions: the initial, the final and some in between.
    const versionsSeen = new Set(answers.map((a) => a.res.policy_version));
    expect(versionsSeen.size).toBeGreaterThanOrEqual(3);

    // No lost or doubled count: the allowed calls of a meter made exactly the values 1..n, and n is stored.
    for (const customer of ["alpha", "beta"]) {
      const values = answers
        .filter((a) => a.customer === customer && a.res.allowed === true)
        .map((a) => ((a.res.items as Obj[])[0]?.value as number) ?? -1)
        .sort((x, y) => x - y);
      expect(values).toEqual(values.map((_, k) => k + 1));
      const got = await unary(s.clients.decision, "GetMeters", { customer_id: customer, entitlements: ["tokens"] });
      expect((got.meters as Obj[])[0]).toMatchObject({ value: values.length });
    }

    // The event log agrees: only valid documents were applied, only invalid ones rejected.
    const log = await s.events(["EVENT_TYPE_POLICY_APPLIED", "EVENT_TYPE_METER_CHANGED", "EVENT_TYPE_METER_LIMIT", "EVENT_TYPE_METER_OVERAGE"]);
    // In the log, a version's policy-applied comes before any meter event decided under it.
    const appliedAtSeq = new Map<string, number>();
    const early: unknown[] = [];
    for (const e of log) {
      if (e.type === "EVENT_TYPE_POLICY_APPLIED") appliedAtSeq.set((e.policy_applied as Obj).policy_version as string, Number(e.sequence));
      else if (!appliedAtSeq.has((e.meter as Obj).policy_version as string)) early.push(e);
    }
    expect(early).toEqual([]);
    // Each allowed Allow(1) logged exactly one meter-changed, or a meter-overage when a soft
    // version let it past the limit; each denied one exactly one meter-limit.
    const allowed = answers.filter((a) => a.res.allowed === true);
    const counted = log.filter((e) => e.type === "EVENT_TYPE_METER_CHANGED" || e.type === "EVENT_TYPE_METER_OVERAGE");
    expect(counted).toHaveLength(allowed.length);
    expect(log.filter((e) => e.type === "EVENT_TYPE_METER_OVERAGE")).toHaveLength(allowed.filter((a) => a.res.reason === "REASON_SOFT_LIMIT_EXCEEDED").length);
    expect(log.filter((e) => e.type === "EVENT_TYPE_METER_LIMIT")).toHaveLength(answers.length - allowed.length);
    const applied = (await s.events(["EVENT_TYPE_POLICY_APPLIED"])).map((e) => (e.policy_applied as Obj).policy_version as string);
    const rejected = (await s.events(["EVENT_TYPE_POLICY_REJECTED"])).map((e) => (e.policy_rejected as Obj).policy_version as string);
    expect(applied.every((v) => specs.has(v))).toBe(true);
    expect(rejected.every((v) => invalidVersions.has(v))).toBe(true);
    expect(applied.at(-1)).toBe(lastValid);
    expect(applied.length).toBeGreaterThanOrEqual(3);
  });
});
