/**
 * A reset rule changed across a restart. The data dir keeps the history of the rules its policies
 * had (written with the commits), so a rule changed while the sidecar was down is a swap dated at
 * the new process's first operation, and a swap the old process saw still dates, after a kill -9,
 * the meters it left untouched. Judged by the new rule alone, a running count would read zero.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { allowOne, connectClients, unary, type Obj } from "./helpers/clients.js";
import { createKubeletWriter } from "../helpers/kubelet-writer.js";
import { timestampMs, versionOf, waitFor } from "./helpers/reload-fixture.js";
import { startSidecar, stopSidecar } from "./helpers/sidecar-process.js";
import { makeTestDir } from "./helpers/test-policy.js";

const HOUR_MS = 3_600_000;
const policy = (resetSch: string): string => `
policy:
  credits:
    token: { label: Token }
  plans:
    free:
      default: true
      entitlements:
        tokens: { limit: { credit: token, mode: hard, value: 100, resets: true, reset_sch: '${resetSch}' } }
`;

describe("a reset rule changed across a restart", () => {
  const t = makeTestDir(policy("monthly:1"));
  afterAll(() => t.cleanup());

  it("monthly:1 → hourly carries this month's count into the hour of the first operation after the restart", async () => {
    // The next hour resets the carried count: start well clear of it.
    const toNextHour = HOUR_MS - (Date.now() % HOUR_MS);
    if (toNextHour < 15_000) await sleep(toNextHour + 100);
    const flags = ["--policy", t.policyPath, "--data-dir", t.dataDir];
    const first = await startSidecar(flags);
    const a = connectClients(first.grpcAddress);
    try {
      expect(await allowOne(a, "u1", "tokens", 40)).toMatchObject({ allowed: true });
    } finally {
      a.close();
    }
    expect(await stopSidecar(first)).toMatchObject({ code: 0 });

    writeFileSync(t.policyPath, policy("hourly"));
    const second = await startSidecar(flags);
    const b = connectClients(second.grpcAddress);
    try {
      const res = await unary<{ meters: Obj[] }>(b.decision, "GetMeters", { customer_id: "u1", entitlements: ["tokens"] });
      const m = res.meters[0] as Obj;
      expect(m).toMatchObject({ value: 40, limit: 100 });
      const start = timestampMs(m.period_start);
      expect(start).toBe(Math.floor(Date.now() / HOUR_MS) * HOUR_MS);
      expect(timestampMs(m.next_reset)).toBe((start ?? 0) + HOUR_MS);
      // The count goes on from 40: 61 more would pass 100.
      expect(await allowOne(b, "u1", "tokens", 61)).toMatchObject({ allowed: false, reason: "REASON_HARD_LIMIT" });
    } finally {
      b.close();
      await stopSidecar(second);
    }
  });
});

describe("a swap the sidecar saw, then kill -9", () => {
  const rolling = (every: string): string => policy("x").replace("reset_sch: 'x'", `reset_inc: '${every}'`);
  const root = mkdtempSync(join(tmpdir(), "limitr-swap-kill-"));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("still dates the meters the swap left untouched after the restart", async () => {
    const volume = join(root, "policy");
    mkdirSync(volume);
    const writer = createKubeletWriter(volume);
    await writer.write({ "policy.yaml": rolling("1hr") });
    const flags = ["--policy", join(volume, "policy.yaml"), "--data-dir", join(root, "data")];
    const first = await startSidecar(flags);
    const a = connectClients(first.grpcAddress);
    let swappedAt: number | undefined;
    try {
      expect(await allowOne(a, "untouched", "tokens", 40)).toMatchObject({ allowed: true });
      // Judged from its row alone after the restart, the count would end 15 s after its last use
      // (the shorter rule's period from then): let that pass before the swap.
      await sleep(15_500);
      const next = rolling("15s");
      await writer.write({ "policy.yaml": next });
      await waitFor("the 15 s policy", async () => ((await unary<Obj>(a.admin, "GetPolicyStatus", {})).version === versionOf(next) ? true : undefined), 5_000);
      // The first decision under the swap: a new meter, so its period starts at the swap's moment.
      const used = await allowOne(a, "user", "tokens", 1);
      swappedAt = timestampMs(((used.items as Obj[])[0] as Obj).period_start);
    } finally {
      a.close();
    }
    first.kill("SIGKILL");
    expect(await first.exited).toMatchObject({ signal: "SIGKILL" });

    const second = await startSidecar(flags);
    const b = connectClients(second.grpcAddress);
    try {
      const res = await unary<{ meters: Obj[] }>(b.decision, "GetMeters", { customer_id: "untouched", entitlements: ["tokens"] });
      const m = res.meters[0] as Obj;
      // Carried from the swap's moment, as the first process would have answered.
      expect(m).toMatchObject({ value: 40 });
      expect(timestampMs(m.period_start)).toBe(swappedAt);
      expect(timestampMs(m.next_reset)).toBe((swappedAt ?? 0) + 15_000);
    } finally {
      b.close();
      await stopSidecar(second);
    }
  }, 60_000);
});
