/**
 * Hot reload against the real, spawned sidecar, its policy in a kubelet-style ConfigMap volume
 * written with kubelet's atomic writer: a limit change applies within 2 s and meters keep their
 * values; an invalid document is rejected while the old policy keeps deciding; deleting the key
 * keeps the last good policy and says so; SIGHUP forces a re-read; every decision and meter event
 * names the policy version it was made under. Plus a plain file edited in place or renamed over.
 */
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { allowOne, collect, connectClients, unary, type Obj } from "./helpers/clients.js";
import { startSidecar, stopSidecar } from "./helpers/sidecar-process.js";
import { policyYaml, sleep, startReloadSidecar, timestampMs, versionOf, waitFor, type ReloadSidecar } from "./helpers/reload-fixture.js";

/** free (default) with 5 tokens; pro with `proLimit` tokens, hard. */
function proPolicy(proLimit: number, note = ""): string {
  return policyYaml({ free: { default: true, entitlements: { tokens: { value: 5 } } }, pro: { entitlements: { tokens: { value: proLimit } } } }, note);
}

const REJECTED_ERRORS = [
  'policy.plans.free.entitlements.tokens.limit.credit: credit "tokenz" does not exist',
  'policy.plans.pro.entitlements.tokens.limit.mode: unknown mode "strict"; allowed: hard, soft, observe',
];

/** Two errors at two paths; pro's limit of 100 would allow what the live policy denies. */
function invalidPolicy(note: string): string {
  return policyYaml(
    { free: { default: true, entitlements: { tokens: { value: 5, credit: "tokenz" } } }, pro: { entitlements: { tokens: { value: 100, mode: "strict" } } } },
    note,
  );
}

const PRO = { customer_hint: { plan: "pro" } };

function item(res: Obj): Obj {
  return (res.items as Obj[])[0] ?? {};
}

async function meter(s: ReloadSidecar, customerId: string, entitlement: string): Promise<Obj> {
  const res = await unary(s.clients.decision, "GetMeters", { customer_id: customerId, entitlements: [entitlement] });
  return (res.meters as Obj[])[0] ?? {};
}

let running: ReloadSidecar | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

describe("policy reload in a running sidecar (kubelet ..data swaps)", () => {
  it("applies a limit change within 2 s; meters keep their values; responses and meter events carry the deciding version", async () => {
    const before = proPolicy(10);
    const vA = versionOf(before);
    const s = (running = await startReloadSidecar(before));
    expect((await s.status()).version).toBe(vA);

    const first = await allowOne(s.clients, "c1", "tokens", 6, PRO);
    expect(first).toMatchObject({ allowed: true, plan: "pro", policy_version: vA });
    expect(item(first)).toMatchObject({ value: 6, limit: 10 });

    const vB = await s.write(proPolicy(8));
    expect(vB).not.toBe(vA);
    const status = await s.waitForVersion(vB, 2_000);
    expect(status).toMatchObject({ source: s.policyPath, rejections_since_applied: 0, last_errors: [] });

    // The 6 used under the old limit count against the new one: 6 + 3 > 8 (under 10 it would pass).
    const denied = await allowOne(s.clients, "c1", "tokens", 3);
    expect(denied).toMatchObject({ allowed: false, reason: "REASON_HARD_LIMIT", policy_version: vB });
    expect(await meter(s, "c1", "tokens")).toMatchObject({ value: 6, limit: 8, remaining: 2 });
    const filled = await allowOne(s.clients, "c1", "tokens", 2);
    expect(filled).toMatchObject({ allowed: true, policy_version: vB });
    expect(item(filled)).toMatchObject({ value: 8, limit: 8, remaining: 0 });

    const changes = (await s.events(["EVENT_TYPE_METER_CHANGED", "EVENT_TYPE_METER_LIMIT"])).map((e) => e.meter as Obj);
    expect(changes.map((m) => [m.new_value, m.limit, m.policy_version])).toEqual([
      [6, 10, vA],
      [9, 8, vB],
      [8, 8, vB],
    ]);
    const applied = (await s.events(["EVENT_TYPE_POLICY_APPLIED"])).map((e) => (e.policy_applied as Obj).policy_version);
    expect(applied).toEqual([vA, vB]);
  });

  it("rejects an invalid policy: the old one keeps deciding, GetPolicyStatus and the event log say why, a valid one applies", async () => {
    const good = proPolicy(10);
    const vA = versionOf(good);
    const s = (running = await startReloadSidecar(good));
    const appliedAt = timestampMs((await s.status()).applied_at);
    expect(appliedAt).toBeGreaterThan(0);
    expect(await allowOne(s.clients, "c1", "tokens", 4, PRO)).toMatchObject({ allowed: true, policy_version: vA });

    const bad1 = invalidPolicy("bad edit 1");
    const vBad1 = await s.write(bad1);
    const rejected = await waitFor("the first rejection in GetPolicyStatus", async () => {
      const st = await s.status();
      return st.rejections_since_applied === 1 ? st : undefined;
    }, 2_000);
    expect(rejected).toMatchObject({ version: vA, source: s.policyPath });
    expect([...(rejected.last_errors as string[])].sort()).toEqual(REJECTED_ERRORS);
    expect(timestampMs(rejected.applied_at)).toBe(appliedAt);
    expect(timestampMs(rejected.last_rejected_at)).toBeGreaterThanOrEqual(appliedAt ?? 0);

    // Still policy A: 4 + 6 = 10 fits, one more does not (the rejected pro limit of 100 would allow it).
    expect(await allowOne(s.clients, "c1", "tokens", 6)).toMatchObject({ allowed: true, policy_version: vA });
    expect(await allowOne(s.clients, "c1", "tokens", 1)).toMatchObject({ allowed: false, reason: "REASON_HARD_LIMIT", policy_version: vA });

    const vBad2 = await s.write(invalidPolicy("bad edit 2"));
    const second = await waitFor("the second rejection", async () => {
      const st = await s.status();
      return st.rejections_since_applied === 2 ? st : undefined;
    }, 2_000);
    const secondRejectedAt = timestampMs(second.last_rejected_at);
    expect(secondRejectedAt).toBeGreaterThanOrEqual(timestampMs(rejected.last_rejected_at) ?? 0);

    const vC = await s.write(proPolicy(20, "fixed"));
    const fixed = await s.waitForVersion(vC, 2_000);
    expect(fixed).toMatchObject({ source: s.policyPath, rejections_since_applied: 0, last_errors: [] });
    // "When the most recent rejection happened": an apply since does not erase it.
    expect(timestampMs(fixed.last_rejected_at)).toBe(secondRejectedAt);
    expect(timestampMs(fixed.applied_at)).toBeGreaterThan(appliedAt ?? 0);
    const after = await allowOne(s.clients, "c1", "tokens", 5);
    expect(after).toMatchObject({ allowed: true, policy_version: vC });
    expect(item(after)).toMatchObject({ value: 15, limit: 20 });

    // The durable log, replayed from sequence 1 over WatchEvents, holds every policy event in order.
    const stream = (s.clients.decision as unknown as { WatchEvents(r: Obj, m: unknown, o: grpc.CallOptions): grpc.ClientReadableStream<Obj> }).WatchEvents(
      { from_sequence: 1, types: ["EVENT_TYPE_POLICY_APPLIED", "EVENT_TYPE_POLICY_REJECTED"] },
      undefined,
      { deadline: Date.now() + 10_000 },
    );
    const { messages } = await collect(stream, 4);
    const policyEvents = messages.map((m) => m.event as Obj);
    expect(policyEvents.map((e) => [e.type, ((e.policy_applied ?? e.policy_rejected) as Obj).policy_version])).toEqual([
      ["EVENT_TYPE_POLICY_APPLIED", vA],
      ["EVENT_TYPE_POLICY_REJECTED", vBad1],
      ["EVENT_TYPE_POLICY_REJECTED", vBad2],
      ["EVENT_TYPE_POLICY_APPLIED", vC],
    ]);
    const firstRejection = policyEvents[1]?.policy_rejected as Obj;
    expect(firstRejection.source).toBe(s.policyPath);
    expect([...(firstRejection.errors as string[])].sort()).toEqual(REJECTED_ERRORS);
    expect((policyEvents[3]?.policy_applied as Obj).source).toBe(s.policyPath);
    // One log line per rejection, naming what was kept.
    expect(s.sidecar.logs.filter((l) => l.msg === "policy rejected; keeping the last good policy").map((l) => [l.version, l.keptVersion])).toEqual([
      [vBad1, vA],
      [vBad2, vA],
    ]);
  });

  it("a rejected edit rolled back to the document in force: policy-applied of that version again, counted as applied", async () => {
    const good = proPolicy(10);
    const vA = versionOf(good);
    const s = (running = await startReloadSidecar(good, ["--http-address", "127.0.0.1:0"]));
    const appliedAt = timestampMs((await s.status()).applied_at);
    const vBad = await s.write(invalidPolicy("bad edit"));
    await waitFor("the rejection", async () => ((await s.status()).rejections_since_applied === 1 ? true : undefined), 2_000);

    await s.write(good);
    const back = await waitFor("the rollback in GetPolicyStatus", async () => {
      const st = await s.status();
      return st.rejections_since_applied === 0 ? st : undefined;
    }, 2_000);
    expect(back).toMatchObject({ version: vA, last_errors: [] });
    // Nothing was applied anew: the policy in force has been in force since start-up.
    expect(timestampMs(back.applied_at)).toBe(appliedAt);

    // The stream says the rejection no longer stands: the version in force, applied again.
    const policyEvents = await waitFor("the third policy event", async () => {
      const events = await s.events(["EVENT_TYPE_POLICY_APPLIED", "EVENT_TYPE_POLICY_REJECTED"]);
      return events.length === 3 ? events : undefined;
    }, 2_000);
    expect(policyEvents.map((e) => [e.type, ((e.policy_applied ?? e.policy_rejected) as Obj).policy_version])).toEqual([
      ["EVENT_TYPE_POLICY_APPLIED", vA],
      ["EVENT_TYPE_POLICY_REJECTED", vBad],
      ["EVENT_TYPE_POLICY_APPLIED", vA],
    ]);
    expect(policyEvents[2]?.policy_applied).toMatchObject({ source: s.policyPath, removed_plans: [] });
    // One applied per policy-applied event.
    const metrics = await (await fetch(`http://${s.sidecar.httpAddress}/metrics`)).text();
    expect(metrics).toMatch(/^limitr_policy_reloads_total\{result="applied"\} 2$/m);
    expect(metrics).toMatch(/^limitr_policy_reloads_total\{result="rejected"\} 1$/m);
    expect(metrics).toMatch(new RegExp(`^limitr_policy_info\\{version="${vA}"\\} 1$`, "m"));
    // Re-reads of the same bytes (SIGHUP) add nothing.
    s.sidecar.kill("SIGHUP");
    await sleep(300);
    expect(await s.events(["EVENT_TYPE_POLICY_APPLIED", "EVENT_TYPE_POLICY_REJECTED"])).toHaveLength(3);
  });

  it("applies a policy with two default plans: the first is the default, and the second is logged as a warning", async () => {
    const s = (running = await startReloadSidecar(proPolicy(10)));
    // SPEC: "the first default wins". pro (100 tokens) is the first default here, free (5) the second.
    const twoDefaults = policyYaml({ pro: { default: true, entitlements: { tokens: { value: 100 } } }, free: { default: true, entitlements: { tokens: { value: 5 } } } });
    const v = await s.write(twoDefaults);
    expect(await s.waitForVersion(v, 2_000)).toMatchObject({ rejections_since_applied: 0, last_errors: [] });
    const fresh = await allowOne(s.clients, "new-customer", "tokens", 50);
    expect(fresh).toMatchObject({ allowed: true, plan: "pro", policy_version: v });
    await waitFor("the policy warning in the log", () => s.sidecar.logs.find((l) => l.msg === "policy warning" && l.version === v), 2_000);
    // Once: the watcher logs a policy's warnings, nothing else repeats them.
    expect(s.sidecar.logs.filter((l) => l.msg === "policy warning")).toEqual([
      expect.objectContaining({ component: "watch", version: v, path: "policy.plans.free.default", message: 'plans "pro" and "free" are both default: true; "pro", the first, is the default plan' }),
    ]);
  });

  it("applies a change of a credit's stof_units and warns that stored meters are not converted", async () => {
    const inUnits = (units: string): string => `policy:\n  credits:\n    disk: { stof_units: ${units} }\n  plans:\n    p: { default: true, entitlements: { storage: { limit: { credit: disk, value: 100 } } } }\n`;
    const s = (running = await startReloadSidecar(inUnits("MB")));
    const v = await s.write(inUnits("GB"));
    await s.waitForVersion(v, 2_000);
    const line = await waitFor("the unit warning", () => s.sidecar.logs.find((l) => l.msg === "credit units changed; stored meters are not converted"), 2_000);
    expect(line).toMatchObject({ version: v, path: "policy.credits.disk.stof_units" });
  });

  it("deleting the policy key keeps the last good policy and says so; when it returns it is applied", async () => {
    const good = proPolicy(10);
    const vA = versionOf(good);
    const s = (running = await startReloadSidecar(good));
    expect(await allowOne(s.clients, "c1", "tokens", 3, PRO)).toMatchObject({ allowed: true, policy_version: vA });

    await s.removeKey();
    const missing = await waitFor("the missing file in GetPolicyStatus", async () => {
      const st = await s.status();
      return (st.last_errors as string[]).length > 0 ? st : undefined;
    }, 2_000);
    expect(missing).toMatchObject({ version: vA, source: s.policyPath, rejections_since_applied: 0 });
    expect(missing.last_errors).toEqual([`policy file ${s.policyPath} does not exist; keeping policy ${vA}`]);
    // A missing file is an error to report, not a rejected document.
    expect(missing.last_rejected_at).toBeNull();
    expect(s.sidecar.logs.some((l) => l.msg === "policy source missing; keeping the last good policy" && l.keptVersion === vA)).toBe(true);

    // Policy A still decides: 3 + 7 = 10 fits, one more does not.
    expect(await allowOne(s.clients, "c1", "tokens", 7)).toMatchObject({ allowed: true, policy_version: vA });
    expect(await allowOne(s.clients, "c1", "tokens", 1)).toMatchObject({ allowed: false, reason: "REASON_HARD_LIMIT", policy_version: vA });
    expect(await meter(s, "c1", "tokens")).toMatchObject({ value: 10, limit: 10 });

    const vB = await s.write(proPolicy(12, "restored"));
    const back = await s.waitForVersion(vB, 2_000);
    expect(back).toMatchObject({ last_errors: [], rejections_since_applied: 0 });
    const after = await allowOne(s.clients, "c1", "tokens", 2);
    expect(after).toMatchObject({ allowed: true, policy_version: vB });
    expect(item(after)).toMatchObject({ value: 12, limit: 12 });
  });

  it("a plain file (no kubelet) is reloaded on an in-place write and on an editor-style rename over it", async () => {
    const root = await mkdtemp(join(tmpdir(), "limitr-plain-"));
    const file = join(root, "policy.yaml");
    await writeFile(file, proPolicy(10));
    const sidecar = await startSidecar(["--policy", file, "--data-dir", join(root, "data")]);
    const clients = connectClients(sidecar.grpcAddress);
    const versionIs = (v: string) => async () => ((await unary(clients.admin, "GetPolicyStatus", {})).version === v ? true : undefined);
    try {
      const inPlace = proPolicy(11, "in place");
      await writeFile(file, inPlace);
      await waitFor("the in-place write", versionIs(versionOf(inPlace)), 2_000);

      const renamed = proPolicy(12, "renamed over");
      await writeFile(join(root, ".policy.yaml.swp"), renamed);
      await rename(join(root, ".policy.yaml.swp"), file);
      await waitFor("the rename", versionIs(versionOf(renamed)), 2_000);
      const res = await allowOne(clients, "c1", "tokens", 12, PRO);
      expect(res).toMatchObject({ allowed: true, policy_version: versionOf(renamed) });
      expect(item(res)).toMatchObject({ value: 12, limit: 12 });
    } finally {
      clients.close();
      expect((await stopSidecar(sidecar)).code).toBe(0);
      await rm(root, { recursive: true, force: true });
    }
  });

  it("SIGHUP re-reads a change that neither the directory watch nor the (24 h) poll would see", async () => {
    const good = proPolicy(10);
    const vA = versionOf(good);
    // Polling only, every 24 h: nothing but SIGHUP can make this sidecar re-read the file.
    const s = (running = await startReloadSidecar(good, ["--policy-watch", "poll", "--policy-poll-interval", "24hr"]));
    const dataDir = await s.writer.currentDataDir();
    if (dataDir === undefined) throw new Error("no ..data after the first write");

    // An in-place edit inside the timestamped directory (no entry of the policy's directory changes).
    const changed = proPolicy(3, "edited in place");
    const vB = versionOf(changed);
    await writeFile(join(s.writer.dir, dataDir, "policy.yaml"), changed);
    // The premise, not a timing claim: well past the 150 ms debounce, nothing has noticed.
    await sleep(1_000);
    expect((await s.status()).version).toBe(vA);
    expect(await allowOne(s.clients, "c1", "tokens", 4, PRO)).toMatchObject({ allowed: true, policy_version: vA });

    s.sidecar.kill("SIGHUP");
    await s.waitForVersion(vB, 2_000);
    expect(s.sidecar.logs.some((l) => l.msg === "policy applied" && l.reason === "SIGHUP" && l.version === vB)).toBe(true);
    // The process is still serving after the signal, now under B (4 > 3).
    expect(await allowOne(s.clients, "c1", "tokens", 1)).toMatchObject({ allowed: false, reason: "REASON_HARD_LIMIT", policy_version: vB });
  });
});
