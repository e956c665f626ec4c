/**
 * A reset rule changed while the sidecar was down: the new process never saw the old policy, so
 * only the meter's row can say which rule its period was computed under. A month still running
 * carries into the new rule's period of its last use; judged by the new rule alone it would read
 * zero.
 */
import { writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, describe, expect, it } from "vitest";
import { allowOne, connectClients, unary, type Obj } from "./helpers/clients.js";
import { timestampMs } from "./helpers/reload-fixture.js";
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

  it("monthly:1 → hourly keeps this month's count in the hour it was last counted in", async () => {
    // The count is kept only in the hour of its last use: start well clear of the next hour.
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
