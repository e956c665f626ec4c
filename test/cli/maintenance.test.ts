import { afterEach, describe, expect, it } from "vitest";
import { createLogger } from "../../src/cli/logger.js";
import { createMaintenanceRound } from "../../src/cli/maintenance.js";
import { createLmdbStore, type LmdbStore } from "../../src/store/index.js";
import { meter, meterEvent } from "../store/fixtures.js";
import { tempDir } from "../store/temp-store.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function capture(): { logger: ReturnType<typeof createLogger>; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { logger: createLogger({ write: (l) => void lines.push(JSON.parse(l) as Record<string, unknown>) }), lines };
}

const DAY = 86_400_000;
// The fixtures' events are from 2023: keep them by age, prune by count.
const CENTURY = 36_500 * DAY;
const BUDGET = 200 * 1024;

/** A store in a temp dir holding `n` meter events (~200 bytes each). */
async function filled(n: number): Promise<string> {
  const t = tempDir();
  cleanups.push(t.remove);
  const s = createLmdbStore({ path: t.dir });
  for (let i = 0; i < n; i++) await s.commit([{ kind: "meter-put", meter: meter("c1", "chat", BigInt(i)) }], [meterEvent("c1", "chat", 1n)]);
  await s.close();
  return t.dir;
}

function open(path: string, readOnly = false): LmdbStore {
  const s = createLmdbStore({ path, maxDataBytes: BUDGET, readOnly });
  cleanups.push(() => s.close());
  return s;
}

describe("a maintenance round", () => {
  it("prunes past retention and stays quiet while the data is under 80% of the budget", async () => {
    const s = open(await filled(300));
    const { logger, lines } = capture();
    await createMaintenanceRound(s, { eventRetention: CENTURY, eventRetentionCount: 100, idempotencyWindow: DAY, maxDataBytes: BUDGET }, logger)();
    expect(lines.map((l) => l["msg"])).toEqual(["pruned"]);
    expect(lines[0]?.["events"]).toBe(200);
  });

  it("still says the data nears the budget when pruning fails", async () => {
    // Read-only: every prune transaction is refused, as a prune failing round after round is.
    const s = open(await filled(1000), true);
    expect(s.stats().dataBytes).toBeGreaterThan(0.8 * BUDGET);
    const { logger, lines } = capture();
    await createMaintenanceRound(s, { eventRetention: CENTURY, eventRetentionCount: 100, idempotencyWindow: DAY, maxDataBytes: BUDGET }, logger)();
    expect(lines.map((l) => [l["level"], l["msg"]])).toEqual([
      ["error", "pruning failed; will retry"],
      ["warn", "data nearing --max-data-bytes: writes are refused past it; shorten retention or raise the limit"],
    ]);
    expect(lines[1]?.["tables"]).toMatchObject({ events: expect.any(Number) });
  });
});
